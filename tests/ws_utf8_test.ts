/**
 * The incremental UTF-8 validator against the sequences of Autobahn's 6.x
 * cases (Markus Kuhn's UTF-8 decoder stress test), whole and split at
 * every byte, and its fail-fast position.
 */
import assert from "node:assert/strict";
import { isUtf8, Utf8Text, Utf8Validator } from "../lib/http/ws/utf8.ts";
import { hex, SEQUENCES } from "./fixtures/utf8_sequences.ts";

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

Deno.test("Utf8Text decodes text split at every byte, and in one-byte pieces", () => {
  const text = "aé€😀 κόσμε\ufeff z 🎉";
  const bytes = new TextEncoder().encode(text);
  const t = new Utf8Text();
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.ok(t.write(bytes.subarray(0, cut)));
    assert.ok(t.write(bytes.subarray(cut)));
    assert.equal(t.finish(), text, `cut at ${cut}`);
  }
  for (let i = 0; i < bytes.length; i++) {
    assert.ok(t.write(bytes.subarray(i, i + 1)));
  }
  assert.equal(t.finish(), text, "byte by byte");
});

Deno.test("Utf8Text refuses bad bytes at once and text cut inside a character at the end", () => {
  const t = new Utf8Text();
  assert.equal(t.write(hex("68 eda080")), false);
  t.reset();
  assert.ok(t.write(hex("68 e282")));
  assert.equal(t.finish(), undefined);
  assert.ok(t.write(hex("e282ac")), "finish() started over");
  assert.equal(t.finish(), "€");
});
