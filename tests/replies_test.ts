import assert from "node:assert/strict";
import {
  bytes,
  errorWithHeaders,
  html,
  json,
  redirect,
  replyHeader,
  stream,
  text,
  withHeaders,
} from "../lib/app/replies.ts";
import { HttpError } from "../lib/http/errors.ts";
import { flatten } from "./fixtures/app_request.ts";

const builders: [
  name: string,
  make: () => ReturnType<typeof json>,
  type: string,
  body: string,
][] = [
  [
    "json()",
    () => json({ a: [1, "x"] }),
    "application/json",
    '{"a":[1,"x"]}\n',
  ],
  ["json() of undefined", () => json(undefined), "application/json", "null\n"],
  ["text()", () => text("héllo"), "text/plain; charset=utf-8", "héllo"],
  ["html()", () => html("<p>hi</p>"), "text/html; charset=utf-8", "<p>hi</p>"],
  [
    "bytes()",
    () => bytes(Uint8Array.of(104, 105)),
    "application/octet-stream",
    "hi",
  ],
  [
    "bytes() typed",
    () => bytes(Uint8Array.of(104, 105), { contentType: "image/x-test" }),
    "image/x-test",
    "hi",
  ],
  [
    "stream()",
    () =>
      stream(ReadableStream.from([Uint8Array.of(111, 107)]), {
        contentType: "text/plain",
      }),
    "text/plain",
    "ok",
  ],
];
for (const [name, make, type, body] of builders) {
  Deno.test(`${name} builds a 200 with ${type}`, async () => {
    const a = await flatten(make());
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-type"), type);
    assert.equal(a.text, body);
  });
}

Deno.test("reply builders take a status and headers, any case, which win over defaults", async () => {
  const a = await flatten(
    json({}, {
      status: 201,
      headers: { Location: "/x", "Content-Type": "application/ld+json" },
    }),
  );
  assert.equal(a.status, 201);
  assert.equal(a.headers.get("location"), "/x");
  assert.equal(a.headers.get("content-type"), "application/ld+json");
});

Deno.test("redirect() answers 302 by default with Location and no body, refusing CR/LF", () => {
  assert.deepEqual(redirect("/next"), {
    status: 302,
    headers: { location: "/next" },
    body: null,
  });
  assert.equal(redirect("/p", 308).status, 308);
  assert.throws(() => redirect("/a\r\nSet-Cookie: x=1"), TypeError);
});

Deno.test("replyHeader() reads records and pair lists, any case", () => {
  assert.equal(
    replyHeader(
      { status: 200, headers: { "Content-Type": "a/b" } },
      "content-type",
    ),
    "a/b",
  );
  assert.equal(
    replyHeader({ status: 200, headers: [["Vary", "Origin"]] }, "vary"),
    "Origin",
  );
  assert.equal(replyHeader({ status: 200 }, "vary"), undefined);
});

Deno.test("withHeaders() replaces named fields and keeps repeated Set-Cookie", () => {
  const reply = {
    status: 200,
    headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"], [
      "Vary",
      "Origin",
    ]] as [string, string][],
  };
  const out = withHeaders(reply, {
    vary: "Origin, Accept-Encoding",
    "x-new": "1",
  });
  assert.deepEqual(out.headers, [
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
    ["vary", "Origin, Accept-Encoding"],
    ["x-new", "1"],
  ]);
  assert.deepEqual(reply.headers.length, 3, "the original is not changed");
});

Deno.test("errorWithHeaders() adds fields to an HttpError, its own winning", () => {
  const err = new HttpError(429, "slow down", {
    expose: "Too many",
    headers: { "retry-after": "5" },
    close: true,
  });
  const out = errorWithHeaders(err, { "retry-after": "1", "x-extra": "y" });
  assert.equal(out.status, 429);
  assert.equal(out.expose, "Too many");
  assert.equal(out.close, true);
  assert.deepEqual(out.headers, { "retry-after": "5", "x-extra": "y" });
});
