import assert from "node:assert/strict";
import {
  _internals,
  decodeHuffman,
  encodeHuffman,
  huffmanLength,
  maxDecodedLength,
} from "../lib/http/h2/huffman.ts";
import { hex, unhex } from "./helpers/bytes.ts";

function encode(s: string): Uint8Array {
  const out = new Uint8Array(huffmanLength(s));
  assert.equal(encodeHuffman(s, out, 0), out.length);
  return out;
}

function decode(bytes: Uint8Array): string {
  const out = new Uint8Array(maxDecodedLength(bytes.length));
  const n = decodeHuffman(bytes, 0, bytes.length, out);
  return String.fromCharCode(...out.subarray(0, n));
}

// Codes copied from RFC 7541 Appendix B: the table is built from lengths
// alone, so these check the canonical construction end to end.
const APPENDIX_B: [symbol: number, code: number, bits: number][] = [
  [0, 0x1ff8, 13],
  [1, 0x7fffd8, 23],
  [9, 0xffffea, 24],
  [10, 0x3ffffffc, 30],
  [13, 0x3ffffffd, 30],
  [22, 0x3ffffffe, 30],
  [32, 0x14, 6],
  [48, 0x0, 5],
  [58, 0x5c, 7],
  [65, 0x21, 6],
  [92, 0x7fff0, 19],
  [97, 0x3, 5],
  [127, 0xffffffc, 28],
  [128, 0xfffe6, 20],
  [192, 0x3ffffe0, 26],
  [203, 0x7ffffde, 27],
  [249, 0xffffffe, 28],
  [254, 0x7fffff0, 27],
  [255, 0x3ffffee, 26],
  [256, 0x3fffffff, 30],
];

Deno.test("huffmanCode() matches RFC 7541 Appendix B", () => {
  for (const [symbol, code, bits] of APPENDIX_B) {
    assert.deepEqual(
      _internals.huffmanCode(symbol),
      [code, bits],
      `symbol ${symbol}`,
    );
  }
});

// Every Huffman string of RFC 7541 Appendix C.4 and C.6.
const EXAMPLES: [text: string, coded: string][] = [
  ["www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"],
  ["no-cache", "a8eb10649cbf"],
  ["custom-key", "25a849e95ba97d7f"],
  ["custom-value", "25a849e95bb8e8b4bf"],
  ["302", "6402"],
  ["private", "aec3771a4b"],
  [
    "Mon, 21 Oct 2013 20:13:21 GMT",
    "d07abe941054d444a8200595040b8166e082a62d1bff",
  ],
  ["https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"],
  ["307", "640eff"],
  [
    "Mon, 21 Oct 2013 20:13:22 GMT",
    "d07abe941054d444a8200595040b8166e084a62d1bff",
  ],
  ["gzip", "9bd9ab"],
  [
    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
  ],
];

for (const [text, coded] of EXAMPLES) {
  Deno.test(`Huffman codes "${text}" as RFC 7541 Appendix C does`, () => {
    assert.equal(hex(encode(text)), coded);
    assert.equal(huffmanLength(text), coded.length / 2);
    assert.equal(decode(unhex(coded)), text);
  });
}

Deno.test("Huffman round-trips every octet, alone and together", () => {
  let all = "";
  for (let c = 0; c < 256; c++) {
    const s = String.fromCharCode(c);
    assert.equal(decode(encode(s)), s, `octet ${c}`);
    all += s;
  }
  assert.equal(decode(encode(all)), all);
  assert.equal(
    decode(encode(all.split("").reverse().join(""))),
    [...all].reverse().join(""),
  );
});

Deno.test("decodeHuffman() writes from dst[0] and reads only src[start..end)", () => {
  const coded = encode("no-cache");
  const src = new Uint8Array(coded.length + 4).fill(0xaa);
  src.set(coded, 2);
  const dst = new Uint8Array(maxDecodedLength(coded.length));
  const n = decodeHuffman(src, 2, 2 + coded.length, dst);
  assert.equal(String.fromCharCode(...dst.subarray(0, n)), "no-cache");
});

const refused: [name: string, bytes: string][] = [
  // §5.2: padding longer than 7 bits.
  ["a whole byte of padding", "f1e3c2e5f23a6ba0ab90f4ffff"],
  ["a lone byte of ones", "ff"],
  // §5.2: padding that is not a prefix of EOS (ones).
  ["padding with a zero bit", "f1e3c2e5f23a6ba0ab90f4fe"],
  ["'0' padded with zeros", "00"],
  // §5.2: EOS inside the string.
  ["EOS", "fffffffc"],
  ["EOS after a symbol", "1fffffffff"],
];
for (const [name, bytes] of refused) {
  Deno.test(`decodeHuffman() refuses ${name}`, () => {
    const src = unhex(bytes);
    assert.throws(
      () => decodeHuffman(src, 0, src.length, new Uint8Array(64)),
      { name: "HuffmanError" },
    );
  });
}

Deno.test("an empty Huffman string decodes to nothing", () => {
  assert.equal(decodeHuffman(new Uint8Array(0), 0, 0, new Uint8Array(0)), 0);
  assert.equal(huffmanLength(""), 0);
});
