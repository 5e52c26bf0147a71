/**
 * Unmasking against a byte-by-byte reference: the dispatcher, the JS word
 * loop and the WebAssembly SIMD module, at every alignment and mask phase,
 * at lengths around each threshold, in pieces, inside a larger buffer; and
 * the JS fallback where the runtime has no WebAssembly or no SIMD.
 */
import assert from "node:assert/strict";
import { SIMD_UNMASK_MIN, unmask, unmaskWords } from "../lib/http/ws/unmask.ts";
import { loadSimdUnmask, UNMASK_WASM } from "../lib/http/ws/unmask_simd.ts";

const MASK = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
/** Bytes kept before and after each view: a write outside it shows there. */
const PAD = 16;
/** The SIMD module's window (unmask_simd.ts), for lengths around it. */
const WINDOW = 16 * 1024;
const T = SIMD_UNMASK_MIN;
/**
 * Every length up to 100 (the byte loop, the word loop from 64 bytes with
 * 0 to 7 words after its groups of eight, every lead), and each other
 * threshold's neighbours: the SIMD minimum, the module's window.
 */
const LENGTHS = [
  ...Array.from({ length: 101 }, (_, i) => i),
  ...[T - 1, T, T + 1, T + 63, WINDOW - 1, WINDOW, WINDOW + 1, 2 * WINDOW + 5],
  ...[64 * 1024 + 3, 1024 * 1024 + 7],
];

type Unmask = (bytes: Uint8Array, mask: Uint8Array, phase?: number) => void;

/** RFC 6455 §5.3 as written: byte i XOR mask[(phase + i) mod 4]. */
function referenceUnmask(bytes: Uint8Array, mask: Uint8Array, phase: number) {
  for (let i = 0; i < bytes.length; i++) bytes[i] ^= mask[(phase + i) % 4];
}

/** Bytes that differ from their neighbours and from the mask's period. */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + (i >>> 8) * 7) & 0xff;
  return out;
}

/** The first index where `a` and `b` differ, or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Checks `fn` on a view of `length` bytes at every byteOffset 0..15 and phase 0..3, PAD bytes around it untouched. */
function checkEveryAlignment(fn: Unmask, length: number, name: string) {
  const original = pattern(length + 15 + 2 * PAD);
  for (let offset = 0; offset < 16; offset++) {
    for (let phase = 0; phase < 4; phase++) {
      const buf = original.slice();
      const expected = original.slice();
      const start = PAD + offset;
      referenceUnmask(expected.subarray(start, start + length), MASK, phase);
      fn(buf.subarray(start, start + length), MASK, phase);
      const at = firstDifference(buf, expected);
      assert.equal(
        at,
        -1,
        `${name}: length ${length}, offset ${offset}, phase ${phase}: byte ${
          at - start
        } of the view is wrong`,
      );
    }
  }
}

const simd = loadSimdUnmask(WebAssembly);
/** The SIMD module alone, with the mask word for `phase` as unmask() builds it. */
const simdUnmask: Unmask = (bytes, mask, phase = 0) => {
  assert.ok(simd);
  simd(
    bytes,
    mask[phase & 3] | (mask[(phase + 1) & 3] << 8) |
      (mask[(phase + 2) & 3] << 16) | (mask[(phase + 3) & 3] << 24),
  );
};

Deno.test("the SIMD module is valid WebAssembly and runs here (Deno has WebAssembly SIMD)", () => {
  assert.ok(WebAssembly.validate(UNMASK_WASM));
  assert.equal(typeof simd, "function");
});

const IMPLEMENTATIONS: [name: string, fn: Unmask][] = [
  ["unmask()", unmask],
  ["unmaskWords()", unmaskWords],
  ["the SIMD module", simdUnmask],
];
for (const [name, fn] of IMPLEMENTATIONS) {
  Deno.test(`${name} matches a byte-by-byte XOR at every alignment, mask phase and length around each threshold, and touches nothing around`, () => {
    for (const length of LENGTHS) checkEveryAlignment(fn, length, name);
  });

  Deno.test(`${name} unmasks one payload in pieces split at odd points, each resuming the mask's phase`, () => {
    const length = 3 * WINDOW + 4 * T + 101;
    const original = pattern(length + 5 + 2 * PAD);
    const buf = original.slice();
    const expected = original.slice();
    const start = PAD + 5;
    referenceUnmask(expected.subarray(start, start + length), MASK, 0);
    const cuts = [1, 4, 7, 40, T - 3, T + 5, 2 * T + 1, WINDOW + 3];
    let at = 0;
    for (let k = 0; at < length; k++) {
      const n = Math.min(cuts[k % cuts.length], length - at);
      fn(buf.subarray(start + at, start + at + n), MASK, at & 3);
      at += n;
    }
    assert.equal(firstDifference(buf, expected), -1);
  });

  Deno.test(`${name} changes only the view it is given, in the middle of a larger buffer`, () => {
    const buf = new Uint8Array(3 * 1024 * 1024).fill(0xa5);
    const start = 1024 * 1024 + 3;
    const length = 1024 * 1024 + 7;
    const expected = buf.slice();
    referenceUnmask(expected.subarray(start, start + length), MASK, 2);
    const view = buf.subarray(start, start + length);
    fn(view, MASK, 2);
    assert.equal(firstDifference(buf, expected), -1);
    assert.equal(buf[start - 1], 0xa5);
    assert.equal(buf[start + view.length], 0xa5);
    assert.equal(view[0], 0xa5 ^ MASK[2]);
  });
}

Deno.test("loadSimdUnmask() gives no unmasker without WebAssembly, without SIMD, or when instantiating fails", () => {
  assert.equal(loadSimdUnmask(undefined), undefined);
  const noSimd = { validate: () => false } as unknown as typeof WebAssembly;
  assert.equal(loadSimdUnmask(noSimd), undefined);
  const failing = {
    validate: () => true,
    Module: class {
      constructor() {
        throw new WebAssembly.CompileError("Out of memory");
      }
    },
  } as unknown as typeof WebAssembly;
  assert.equal(loadSimdUnmask(failing), undefined);
});

const UNMASK_URL = new URL("../lib/http/ws/unmask.ts", import.meta.url).href;

Deno.test("unmask() falls back to the JS loop where the runtime has no WebAssembly (V8 --jitless)", async () => {
  // A process of its own: the unmasker is chosen once per process.
  const script = `
    import { SIMD_UNMASK_MIN as T, unmask } from "${UNMASK_URL}";
    if (typeof WebAssembly !== "undefined") throw new Error("WebAssembly is here");
    const mask = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
    for (const length of [T - 1, T, T + 1, 64 * 1024 + 3]) {
      for (let offset = 0; offset < 4; offset++) {
        for (let phase = 0; phase < 4; phase++) {
          const buf = new Uint8Array(length + 8).map((_, i) => i * 31);
          const view = buf.subarray(offset, offset + length);
          unmask(view, mask, phase);
          for (let i = 0; i < buf.length; i++) {
            const inView = i >= offset && i < offset + length;
            const want = ((i * 31) & 0xff) ^ (inView ? mask[(phase + i - offset) % 4] : 0);
            if (buf[i] !== want) throw new Error(\`length \${length} offset \${offset} phase \${phase} byte \${i}\`);
          }
        }
      }
    }
    console.log("ok");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", "--v8-flags=--jitless", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  assert.equal(decoder.decode(out.stdout), "ok\n");
});
