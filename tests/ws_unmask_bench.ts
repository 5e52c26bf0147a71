/**
 * How long unmasking takes at the sizes that choose its path: the JS loop
 * alone (the baseline) against `unmask()`, which goes through the
 * WebAssembly SIMD module from 512 bytes. Run with
 * `deno bench tests/ws_unmask_bench.ts`; compare before and after a change.
 */
import { unmask, unmaskWords } from "../lib/http/ws/unmask.ts";

const MASK = new Uint8Array([0x12, 0x34, 0x56, 0x78]);

for (const size of [32, 1024, 64 * 1024, 256 * 1024]) {
  // Offset 2, as a payload after a 2-byte header in a read buffer.
  const payload = new Uint8Array(size + 2).subarray(2);
  const group = `${size} bytes`;
  let phase = 0;
  Deno.bench(`unmaskWords() ${group}`, { group, baseline: true }, () => {
    unmaskWords(payload, MASK, phase++ & 3);
  });
  Deno.bench(`unmask() ${group}`, { group }, () => {
    unmask(payload, MASK, phase++ & 3);
  });
}
