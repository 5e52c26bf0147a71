import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { HeaderFields } from "../lib/http/headers.ts";
import { parseHead } from "../lib/http/parser.ts";

const fields = HeaderFields.fromLists(
  ["host", "accept", "k", "accept"],
  ["a.test", "text/html", "kelvin", "*/*"],
);

Deno.test("HeaderFields.get() finds a field asked for in any case", () => {
  assert.equal(fields.get("host"), "a.test");
  assert.equal(fields.get("Host"), "a.test");
  assert.equal(fields.get("HOST"), "a.test");
  assert.equal(fields.get("accept"), "text/html", "the first of two");
  assert.equal(fields.get("range"), undefined);
  assert.equal(fields.get("Range"), undefined);
  assert.equal(fields.has("ACCEPT"), true);
  assert.equal(fields.has("accept-encoding"), false);
});

Deno.test("HeaderFields.getJoined() joins every value, whatever the case asked", () => {
  assert.equal(fields.getJoined("accept"), "text/html, */*");
  assert.equal(fields.getJoined("Accept"), "text/html, */*");
  assert.equal(fields.getJoined("x-none"), undefined);
});

Deno.test("HeaderFields folds a name beyond ASCII as toLowerCase() does", () => {
  // The Kelvin sign lower-cases to "k": the skip for lower-case names must
  // not change what such a name finds.
  assert.equal(
    fields.get("\u212a"),
    "\u212a".toLowerCase() === "k" ? "kelvin" : undefined,
  );
  assert.equal(fields.getJoined("\u212a"), fields.get("\u212a"));
});

Deno.test("HeaderFields.fromLists() pairs each name with its value, in order", () => {
  assert.equal(fields.size, 4);
  assert.deepEqual([...fields], [
    ["host", "a.test"],
    ["accept", "text/html"],
    ["k", "kelvin"],
    ["accept", "*/*"],
  ]);
  assert.equal(new HeaderFields().size, 0);
});

const encoder = new TextEncoder();

/** A head parsed from `buf`, then `buf` overwritten as the next request's read would. */
function parsedThenReused(raw: string) {
  const buf = new Uint8Array([...raw].map((c) => c.charCodeAt(0)));
  const head = parseHead(buf, 0, buf.length, DEFAULT_LIMITS);
  buf.set(encoder.encode(raw.replace(/[^\r\n]/g, "x")));
  return head.headers;
}

Deno.test("HeaderFields from a parsed head give each value as sent, trimmed, after the buffer is reused", () => {
  const fields = parsedThenReused(
    "GET / HTTP/1.1\r\nHost: a.test\r\nAccept:text/html\r\n" +
      "X-Pad: \t two  words \t \r\nX-Empty:\r\nX-Blank:   \r\n" +
      "X-Obs: caf\xe9 \xff\r\nACCEPT: */*\r\nX-Colon: a:b: c\r\n" +
      "Cookie: theme=dark; s=1\r\n\r\n",
  );
  const sent: [string, string][] = [
    ["host", "a.test"],
    ["accept", "text/html"],
    ["x-pad", "two  words"],
    ["x-empty", ""],
    ["x-blank", ""],
    ["x-obs", "caf\xe9 \xff"],
    ["accept", "*/*"],
    ["x-colon", "a:b: c"],
    ["cookie", "theme=dark; s=1"],
  ];
  assert.deepEqual([...fields], sent);
  assert.deepEqual([...fields.entries()], sent, "twice: nothing used up");
  assert.equal(fields.size, sent.length);
  const same = HeaderFields.fromLists(
    sent.map(([n]) => n),
    sent.map(([, v]) => v),
  );
  for (const [name] of sent) {
    for (const asked of [name, name.toUpperCase()]) {
      assert.equal(fields.get(asked), same.get(asked), asked);
      assert.equal(fields.getJoined(asked), same.getJoined(asked), asked);
      assert.equal(fields.has(asked), true, asked);
    }
  }
  assert.equal(fields.getJoined("accept"), "text/html, */*");
  assert.equal(fields.get("x-blank"), "");
  for (
    const miss of ["x", "hos", "hostx", "x-pad ", "", "x-colon: a", "X-COLON:A"]
  ) {
    assert.equal(fields.get(miss), undefined, JSON.stringify(miss));
    assert.equal(fields.getJoined(miss), undefined, JSON.stringify(miss));
  }
});

Deno.test("HeaderFields.get() never takes a name with a colon for the start of a line", () => {
  const fields = HeaderFields.fromLists(["x", "x-y"], ["y:z", "1"]);
  assert.equal(fields.get("x:y"), undefined);
  assert.equal(fields.get("x"), "y:z");
  assert.equal(fields.get("x-y"), "1");
});

Deno.test("HeaderFields.fromLists() refuses what a parsed line cannot hold", () => {
  const bad: [string, string][] = [
    ["a:b", "1"],
    ["", "1"],
    ["x", "a\r\nb"],
    ["x", " lead"],
    ["x", "trail\t"],
  ];
  for (const [name, value] of bad) {
    assert.throws(
      () => HeaderFields.fromLists([name], [value]),
      TypeError,
      JSON.stringify([name, value]),
    );
  }
});

Deno.test("HeaderFields.hasPrefix() tells whether any field's name starts so", () => {
  const sent = parsedThenReused(
    'GET / HTTP/1.1\r\nHost: a.test\r\nX-If: no\r\nIF-None-Match: "a"\r\n\r\n',
  );
  assert.equal(sent.hasPrefix("if-"), true, "sent in upper case");
  assert.equal(sent.hasPrefix("if-none-match"), true);
  assert.equal(sent.hasPrefix("x-if"), true);
  assert.equal(sent.hasPrefix("if-match"), false);
  assert.equal(sent.hasPrefix("range"), false);
  const none = parsedThenReused("GET / HTTP/1.1\r\nHost: if-a\r\n\r\n");
  assert.equal(none.hasPrefix("if-"), false, "not in a value");
  assert.equal(new HeaderFields().hasPrefix("if-"), false);
  assert.equal(fields.hasPrefix("acc"), true);
  assert.equal(fields.hasPrefix("if-"), false);
});
