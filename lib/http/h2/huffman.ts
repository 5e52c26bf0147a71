/**
 * The Huffman code of HPACK (RFC 7541 §5.2, Appendix B): strings of octets
 * to bits and back. No I/O. Decoding walks a table built once at load, four
 * bits at a time, so a string costs two table reads per byte.
 */

/**
 * Code length in bits of each symbol 0-255 and EOS (256), from RFC 7541
 * Appendix B. The code is canonical: sorting symbols by (length, symbol)
 * and counting up gives every code, so the lengths are all we keep.
 */
// deno-fmt-ignore
const CODE_BITS = new Uint8Array([
  // 0-31: control bytes, rare
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  // 32-127: ASCII; digits and lower-case letters are shortest
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  // 128-255
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  // 256: EOS, never valid inside a string (§5.2)
  30,
]);

const EOS = 256;

/** The code of each symbol, right-aligned; `CODE_BITS` gives its length. */
const CODES = new Uint32Array(257);
{
  const order = Array.from({ length: 257 }, (_, s) => s).sort((a, b) =>
    CODE_BITS[a] - CODE_BITS[b] || a - b
  );
  let code = 0;
  for (let k = 0; k < order.length; k++) {
    if (k > 0) {
      code = (code + 1) * 2 ** (CODE_BITS[order[k]] - CODE_BITS[order[k - 1]]);
    }
    CODES[order[k]] = code;
  }
}

/**
 * Internals, for tests only: the code table, to check it against RFC 7541
 * Appendix B. Not part of the package's API.
 */
export const _internals = {
  /** The code of `symbol` (0-256) and its length in bits. */
  huffmanCode(symbol: number): [code: number, bits: number] {
    return [CODES[symbol], CODE_BITS[symbol]];
  },
};

// Decoding: the code tree's 256 inner nodes are the states. For each state
// and each 4-bit nibble, DECODE holds the state reached, the symbol emitted
// on the way (codes are at least 5 bits, so at most one), and whether the
// nibble ran into EOS.
// Built at the first decode, not on import: HTTP/2 code loads with every
// server, and a plain HTTP/1.1 start should not spend its milliseconds here.
const EMIT = 1 << 16;
const FAIL = 1 << 17;

interface DecodeTables {
  readonly decode: Uint32Array;
  /** 1 where a string may end in this state: at most 7 bits of padding, all ones (§5.2). */
  readonly accept: Uint8Array;
}

let tables: DecodeTables | undefined;

function buildDecodeTables(): DecodeTables {
  const DECODE = new Uint32Array(256 * 16);
  const ACCEPT = new Uint8Array(256);
  // Inner nodes get ids in creation order; a child < 0 is leaf -(symbol + 1).
  const zero: number[] = [0];
  const one: number[] = [0];
  for (let s = 0; s <= EOS; s++) {
    let node = 0;
    for (let b = CODE_BITS[s] - 1; b >= 0; b--) {
      const side = Math.floor(CODES[s] / 2 ** b) % 2 === 0 ? zero : one;
      if (b === 0) side[node] = -(s + 1);
      else {
        if (side[node] === 0) {
          side[node] = zero.length;
          zero.push(0);
          one.push(0);
        }
        node = side[node];
      }
    }
  }
  // Padding is a prefix of EOS: the all-ones path, at most 7 deep.
  for (let node = 0, depth = 0; depth <= 7; depth++, node = one[node]) {
    ACCEPT[node] = 1;
  }
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const next = (nibble >> b) & 1 ? one[node] : zero[node];
        if (next >= 0) {
          node = next;
          continue;
        }
        const symbol = -next - 1;
        if (symbol === EOS) {
          entry = FAIL;
          break;
        }
        entry = EMIT | (symbol << 8);
        node = 0;
      }
      DECODE[(state << 4) | nibble] = entry | node;
    }
  }
  return { decode: DECODE, accept: ACCEPT };
}

/** A Huffman string that RFC 7541 §5.2 forbids. */
export class HuffmanError extends Error {
  override name = "HuffmanError";
}

/** Most octets that `length` bytes of Huffman code can decode to (5-bit codes). */
export function maxDecodedLength(length: number): number {
  return Math.floor(length * 8 / 5);
}

/**
 * Decodes `src[start..end)` into `dst` from index 0 and returns the octet
 * count. `dst` must hold `maxDecodedLength(end - start)` bytes. Throws
 * {@link HuffmanError} on EOS in the string, or on padding that is longer
 * than 7 bits or not all ones.
 */
export function decodeHuffman(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
): number {
  const { decode: DECODE, accept: ACCEPT } = tables ??= buildDecodeTables();
  let state = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    let e = DECODE[(state << 4) | (byte >> 4)];
    if (e & FAIL) throw new HuffmanError("Huffman string holds EOS");
    if (e & EMIT) dst[n++] = (e >> 8) & 0xff;
    e = DECODE[((e & 0xff) << 4) | (byte & 0x0f)];
    if (e & FAIL) throw new HuffmanError("Huffman string holds EOS");
    if (e & EMIT) dst[n++] = (e >> 8) & 0xff;
    state = e & 0xff;
  }
  if (ACCEPT[state] !== 1) throw new HuffmanError("Huffman padding is not EOS");
  return n;
}

/**
 * Bytes the Huffman code of `s` takes. Each UTF-16 unit of `s` is one
 * octet: callers pass ASCII, or UTF-8 spelled as Latin-1.
 */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += CODE_BITS[s.charCodeAt(i) & 0xff];
  return (bits + 7) >> 3;
}

/**
 * Writes the Huffman code of `s` (octets as in {@link huffmanLength}) at
 * `dst[at]`, padded with ones to a whole byte. Returns the index after it.
 */
export function encodeHuffman(s: string, dst: Uint8Array, at: number): number {
  let acc = 0; // fewer than 8 pending bits between symbols
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    let len = CODE_BITS[c];
    let code = CODES[c];
    if (len > 24) {
      // 7 pending bits and a 30-bit code overflow an int: the top first.
      acc = (acc << (len - 16)) | (code >>> 16);
      bits += len - 16;
      while (bits >= 8) dst[at++] = acc >>> (bits -= 8);
      acc &= (1 << bits) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    bits += len;
    while (bits >= 8) dst[at++] = acc >>> (bits -= 8);
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) dst[at++] = (acc << (8 - bits)) | (0xff >> bits);
  return at;
}
