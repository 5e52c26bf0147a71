/**
 * The incremental UTF-8 validator against the sequences of Autobahn's 6.x
 * cases (Markus Kuhn's UTF-8 decoder stress test), whole and split at
 * every byte, and its fail-fast position.
 */
import assert from "node:assert/strict";
import { isUtf8, Utf8Validator } from "../lib/http/ws/utf8.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

const KAPPA = "ceba e1bdb9 cf83 cebc ceb5"; // "κόσμε"

/** [category, hex bytes, valid]. */
const SEQUENCES: [string, string, boolean][] = [
  // 6.2-6.5 Some valid UTF-8
  ["valid", "68656c6c6f 24 776f726c64", true],
  ["valid", "68656c6c6f c2a2 776f726c64", true],
  ["valid", "68656c6c6f e282ac 776f726c64", true],
  ["valid", "68656c6c6f f0a4ada2 776f726c64", true],
  ["valid", KAPPA, true],
  // 6.6 prefixes of κόσμε: valid only on a character boundary (checked below too)
  ["prefix", "ce", false],
  ["prefix", "ceba", true],
  ["prefix", "cebae1", false],
  ["prefix", "cebae1bd", false],
  ["prefix", "cebae1bdb9", true],
  // 6.7 first possible sequence of each length
  ["first", "00", true],
  ["first", "c280", true],
  ["first", "e0a080", true],
  ["first", "f0908080", true],
  // 6.8 5- and 6-byte forms are not UTF-8
  ["5/6 bytes", "f888808080", false],
  ["5/6 bytes", "fc8480808080", false],
  // 6.9 last possible sequence of each length
  ["last", "7f", true],
  ["last", "dfbf", true],
  ["last", "efbfbf", true],
  ["last", "f48fbfbf", true],
  // 6.10 past U+10FFFF
  ["past max", "f7bfbfbf", false],
  ["past max", "fbbfbfbfbf", false],
  ["past max", "fdbfbfbfbfbf", false],
  // 6.11 other boundaries
  ["boundary", "ed9fbf", true],
  ["boundary", "ee8080", true],
  ["boundary", "efbfbd", true],
  ["boundary", "f48fbfbf", true],
  ["boundary", "f4908080", false],
  // 6.12 unexpected continuation bytes
  ["continuation", "80", false],
  ["continuation", "bf", false],
  ["continuation", "80bf", false],
  ["continuation", "80bf80", false],
  ["continuation", "80bf80bf", false],
  ["continuation", "80bf80bf80", false],
  ["continuation", "80bf80bf80bf", false],
  // 6.13 lonely start bytes followed by a space
  ["lonely start", "c020c120c220df20", false],
  ["lonely start", "e020e120ef20", false],
  ["lonely start", "f020f120f720", false],
  ["lonely start", "f820fb20", false],
  ["lonely start", "fc20fd20", false],
  // 6.14 last continuation byte missing
  ["truncated", "c0", false],
  ["truncated", "e080", false],
  ["truncated", "f08080", false],
  ["truncated", "f8808080", false],
  ["truncated", "fc80808080", false],
  ["truncated", "df", false],
  ["truncated", "efbf", false],
  ["truncated", "f7bfbf", false],
  ["truncated", "fbbfbfbf", false],
  ["truncated", "fdbfbfbfbf", false],
  // 6.15 concatenated incomplete sequences
  [
    "incomplete run",
    "c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf",
    false,
  ],
  // 6.16 impossible bytes
  ["impossible", "fe", false],
  ["impossible", "ff", false],
  ["impossible", "fefeffff", false],
  // 6.17 overlong "/"
  ["overlong", "c0af", false],
  ["overlong", "e080af", false],
  ["overlong", "f08080af", false],
  ["overlong", "f8808080af", false],
  ["overlong", "fc80808080af", false],
  // 6.18 maximum overlong sequences
  ["max overlong", "c1bf", false],
  ["max overlong", "e09fbf", false],
  ["max overlong", "f08fbfbf", false],
  ["max overlong", "f887bfbfbf", false],
  ["max overlong", "fc83bfbfbfbf", false],
  // 6.19 overlong NUL
  ["overlong NUL", "c080", false],
  ["overlong NUL", "e08080", false],
  ["overlong NUL", "f0808080", false],
  ["overlong NUL", "f880808080", false],
  ["overlong NUL", "fc8080808080", false],
  // 6.20 single UTF-16 surrogates
  ["surrogate", "eda080", false],
  ["surrogate", "edadbf", false],
  ["surrogate", "edae80", false],
  ["surrogate", "edafbf", false],
  ["surrogate", "edb080", false],
  ["surrogate", "edbe80", false],
  ["surrogate", "edbfbf", false],
  // 6.21 paired UTF-16 surrogates
  ["surrogate pair", "eda080edb080", false],
  ["surrogate pair", "eda080edbfbf", false],
  ["surrogate pair", "edadbfedb080", false],
  ["surrogate pair", "edadbfedbfbf", false],
  ["surrogate pair", "edae80edb080", false],
  ["surrogate pair", "edae80edbfbf", false],
  ["surrogate pair", "edafbfedb080", false],
  ["surrogate pair", "edafbfedbfbf", false],
  // 6.22 non-characters are valid UTF-8
  ["noncharacter", "efbfbe", true],
  ["noncharacter", "efbfbf", true],
  ["noncharacter", "f09fbfbe", true],
  ["noncharacter", "f1afbfbf", true],
  ["noncharacter", "f3bfbfbe", true],
  ["noncharacter", "f48fbfbf", true],
  // 6.23 specials
  ["special", "efbfb9", true],
  ["special", "efbfbd", true],
  // a byte-order mark is text like any other
  ["BOM", "efbbbf 68", true],
];

Deno.test("Utf8Validator agrees with Autobahn 6.x on every sequence, whole", () => {
  for (const [category, h, valid] of SEQUENCES) {
    assert.equal(isUtf8(hex(h)), valid, `${category}: ${h}`);
  }
});

Deno.test("Utf8Validator gives the same answer with the bytes split at every point", () => {
  for (const [category, h, valid] of SEQUENCES) {
    const bytes = hex(h);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const v = new Utf8Validator();
      const ok = v.write(bytes.subarray(0, cut)) &&
        v.write(bytes.subarray(cut)) && v.complete;
      assert.equal(ok, valid, `${category}: ${h} cut at ${cut}`);
    }
    // And one byte per write, as a worst-case fragmentation.
    const v = new Utf8Validator();
    let ok = true;
    for (let i = 0; i < bytes.length && ok; i++) {
      ok = v.write(bytes, i, i + 1);
    }
    assert.equal(ok && v.complete, valid, `${category}: ${h} byte by byte`);
  }
});

Deno.test("Utf8Validator fails at the first impossible byte, not at the end", () => {
  // Autobahn 6.4: "edited" then a surrogate: fail on the 0xA0, before the rest.
  const v = new Utf8Validator();
  assert.equal(v.write(hex("656469746564")), true);
  assert.equal(v.write(hex("ed")), true); // could still be U+D000..U+D7FF
  assert.equal(v.write(hex("a0")), false);
  assert.equal(v.write(hex("80")), false, "stays failed");
  v.reset();
  assert.equal(v.write(hex("f5")), false, "0xF5 can start nothing");
  v.reset();
  // U+110000 encoded with the UTF-8 scheme: F4 90 fails at the 0x90.
  assert.equal(v.write(hex("cebae1bdb9cf83cebcceb5f4")), true);
  assert.equal(v.write(hex("90")), false);
});

Deno.test("isUtf8() accepts every scalar value and refuses every surrogate", () => {
  const enc = new TextEncoder();
  for (let cp = 0; cp <= 0x10ffff; cp += cp < 0x800 ? 1 : 7) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    assert.ok(
      isUtf8(enc.encode(String.fromCodePoint(cp))),
      `U+${cp.toString(16)}`,
    );
  }
  for (let cp = 0xd800; cp <= 0xdfff; cp++) {
    const bytes = new Uint8Array([
      0xe0 | (cp >> 12),
      0x80 | ((cp >> 6) & 0x3f),
      0x80 | (cp & 0x3f),
    ]);
    assert.equal(isUtf8(bytes), false, `U+${cp.toString(16)}`);
  }
});

Deno.test("Utf8Validator checks long ASCII runs word by word at any alignment", () => {
  const enc = new TextEncoder();
  const text = enc.encode("a".repeat(300) + "é" + "b".repeat(300));
  const buf = new Uint8Array(text.length + 8);
  for (let shift = 0; shift < 4; shift++) {
    buf.set(text, shift);
    const view = buf.subarray(shift, shift + text.length);
    assert.ok(isUtf8(view), `valid at offset ${shift}`);
    // A bad byte deep in the run, past where the word scan starts.
    for (const at of [17, 64, 150, 299, 400, 599]) {
      const saved = view[at];
      view[at] = 0xff;
      assert.equal(isUtf8(view), false, `0xFF at ${at}, offset ${shift}`);
      view[at] = saved;
    }
  }
});
