/**
 * Unmasking client payloads (RFC 6455 §5.3): each byte XORed with the
 * 4-byte mask key, in place. Under 64 bytes a JavaScript loop goes a byte
 * at a time, then 32-bit words at a time; from {@link SIMD_UNMASK_MIN}
 * bytes a WebAssembly SIMD module (./unmask_simd.ts) takes over where the
 * runtime runs one (not under V8's `--jitless`), else the same JS loop.
 *
 * @module
 */
import { loadSimdUnmask, type WordUnmask } from "./unmask_simd.ts";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/**
 * Below this many bytes, a byte loop with the mask in locals beats making a
 * 32-bit view: 21 / 50 ns at 32 bytes, 40 / 51 at 64, 67 / 59 at 96.
 */
const WORD_UNMASK_MIN = 64;
/**
 * From this many bytes, the SIMD module unmasks, the copies into its
 * memory and back included: on this machine as fast as the JS loop at
 * 256-384 bytes, 0.87x its time at 512, 0.66x at 1 KiB, ~0.5x at 2-16 KiB.
 */
export const SIMD_UNMASK_MIN = 512;

/**
 * The SIMD unmasker: undefined until the first payload that could use it
 * (a server that never sees one never compiles it), null where the runtime
 * has no WebAssembly or no SIMD.
 */
let simdUnmask: WordUnmask | null | undefined;

/**
 * XORs `bytes` in place with the 4-byte `mask`, starting at mask offset
 * `phase` (a payload split across reads resumes mid-mask). On this
 * machine 256 KiB takes ~12 µs with WebAssembly SIMD, ~20 µs in the JS
 * loop. The first payload of 512 bytes or more compiles the module
 * (~0.3 ms, once per process or worker).
 */
export function unmask(bytes: Uint8Array, mask: Uint8Array, phase = 0): void {
  if (bytes.length >= SIMD_UNMASK_MIN && simdUnmask !== null) {
    const simd = simdUnmask ??= loadSimdUnmask(globalThis.WebAssembly) ?? null;
    if (simd !== null) return simd(bytes, maskWord(mask, phase));
  }
  unmaskWords(bytes, mask, phase);
}

/**
 * {@link unmask} in JavaScript alone, whatever the length: runs of 64
 * bytes and more go through a 32-bit view, eight words a turn of the loop.
 */
export function unmaskWords(
  bytes: Uint8Array,
  mask: Uint8Array,
  phase = 0,
): void {
  const n = bytes.length;
  if (n < WORD_UNMASK_MIN || !LITTLE_ENDIAN) {
    return unmaskBytes(bytes, mask, phase);
  }
  // Bytes up to a 4-aligned address, then whole words, then the tail.
  const lead = (4 - (bytes.byteOffset & 3)) & 3;
  let i = 0;
  for (; i < lead; i++) bytes[i] ^= mask[(phase + i) & 3];
  const word = maskWord(mask, phase + lead);
  const words = (n - lead) >>> 2;
  const view = new Int32Array(bytes.buffer, bytes.byteOffset + lead, words);
  let w = 0;
  for (const last = words - 7; w < last; w += 8) {
    view[w] ^= word;
    view[w + 1] ^= word;
    view[w + 2] ^= word;
    view[w + 3] ^= word;
    view[w + 4] ^= word;
    view[w + 5] ^= word;
    view[w + 6] ^= word;
    view[w + 7] ^= word;
  }
  for (; w < words; w++) view[w] ^= word;
  for (i = lead + words * 4; i < n; i++) bytes[i] ^= mask[(phase + i) & 3];
}

/** {@link unmask} a byte at a time, four bytes a turn. */
function unmaskBytes(bytes: Uint8Array, mask: Uint8Array, phase: number): void {
  const n = bytes.length;
  const m0 = mask[phase & 3];
  const m1 = mask[(phase + 1) & 3];
  const m2 = mask[(phase + 2) & 3];
  const m3 = mask[(phase + 3) & 3];
  let i = 0;
  for (const last = n - 3; i < last; i += 4) {
    bytes[i] ^= m0;
    bytes[i + 1] ^= m1;
    bytes[i + 2] ^= m2;
    bytes[i + 3] ^= m3;
  }
  if (i < n) bytes[i] ^= m0;
  if (i + 1 < n) bytes[i + 1] ^= m1;
  if (i + 2 < n) bytes[i + 2] ^= m2;
}

/** The 32-bit word of `mask` starting at offset `phase`, its first byte lowest. */
function maskWord(mask: Uint8Array, phase: number): number {
  return mask[phase & 3] | (mask[(phase + 1) & 3] << 8) |
    (mask[(phase + 2) & 3] << 16) | (mask[(phase + 3) & 3] << 24);
}
