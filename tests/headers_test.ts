import assert from "node:assert/strict";
import { HeaderFields } from "../lib/http/headers.ts";

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
