import assert from "node:assert/strict";
import {
  compression,
  compressReply,
  isCompressible,
} from "../lib/app/middleware/compression.ts";
import { AppRequest } from "../lib/app/app_request.ts";
import { bytes, json, stream, text } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import type { Reply } from "../lib/http/handler.ts";
import { fake, flatten, gunzip } from "./fixtures/app_request.ts";

const BIG = "spindle ".repeat(400); // 3200 bytes of very compressible text

function request(acceptEncoding?: string, method = "GET"): AppRequest {
  const headers: Record<string, string> = acceptEncoding === undefined
    ? {}
    : { "accept-encoding": acceptEncoding };
  const { req } = fake(method, "/", { headers });
  return new AppRequest(req, "/");
}

const negotiation: [acceptEncoding: string | undefined, gzipped: boolean][] = [
  ["gzip", true],
  ["GZIP", true],
  ["x-gzip", true],
  ["deflate, gzip;q=0.5", true],
  ["br;q=1, gzip;q=0.1", true], // br is not on offer for dynamic replies
  ["encoding-1, gzip, encoding-2", true],
  ["*", true],
  ["gzip;q=0", false],
  ["*;q=0, identity", false],
  ["identity", false],
  ["invalid-encoding", false],
  ["", false],
  [undefined, false],
  ["gzip;q=2", false], // malformed weight: the entry is dropped
];
for (const [accept, gzipped] of negotiation) {
  Deno.test(`compressReply() ${gzipped ? "gzips" : "sends identity"} for Accept-Encoding ${JSON.stringify(accept)}`, async () => {
    const a = await flatten(await compressReply(request(accept), text(BIG)));
    assert.equal(a.headers.get("vary"), "Accept-Encoding");
    if (!gzipped) {
      assert.equal(a.headers.get("content-encoding"), undefined);
      assert.equal(a.text, BIG);
      return;
    }
    assert.equal(a.headers.get("content-encoding"), "gzip");
    assert.equal(a.headers.get("content-length"), String(a.body.length));
    assert.ok(a.body.length < BIG.length / 10);
    assert.equal(await gunzip(a.body), BIG);
  });
}

const untouched: [name: string, reply: Reply][] = [
  ["a small body", text("tiny")],
  ["an already encoded body", {
    status: 200,
    headers: { "content-type": "text/plain", "content-encoding": "br" },
    body: BIG,
  }],
  ["a 206 range", {
    status: 206,
    headers: { "content-type": "text/plain", "content-range": "bytes 0-9/100" },
    body: BIG,
  }],
  [
    "a stream",
    stream(ReadableStream.from([new TextEncoder().encode(BIG)]), {
      contentType: "text/plain",
    }),
  ],
  ["an image", bytes(new Uint8Array(4096), { contentType: "image/png" })],
  ["no-transform", text(BIG, { headers: { "cache-control": "no-transform" } })],
  ["a 204", {
    status: 204,
    headers: { "content-type": "text/plain" },
    body: null,
  }],
  ["no content type", { status: 200, body: BIG }],
];
for (const [name, reply] of untouched) {
  Deno.test(`compressReply() leaves ${name} alone`, async () => {
    const out = await compressReply(request("gzip"), reply);
    assert.equal(out, reply);
  });
}

Deno.test("compressReply() gzips JSON and keeps other headers, adding to Vary", async () => {
  const reply = json({ items: Array.from({ length: 600 }, (_, i) => i) }, {
    headers: { vary: "Origin", "x-keep": "1" },
  });
  const a = await flatten(await compressReply(request("gzip"), reply));
  assert.equal(a.headers.get("content-encoding"), "gzip");
  assert.equal(a.headers.get("vary"), "Origin, Accept-Encoding");
  assert.equal(a.headers.get("x-keep"), "1");
  assert.equal(a.headers.get("content-type"), "application/json");
});

Deno.test("compressReply() gives the gzip bytes their own strong ETag", async () => {
  const a = await flatten(
    await compressReply(
      request("gzip"),
      text(BIG, { headers: { etag: '"v1"' } }),
    ),
  );
  assert.equal(a.headers.get("etag"), '"v1-gzip"');
});

Deno.test("compressReply() compresses HEAD like GET, so the lengths agree", async () => {
  const get = await flatten(
    await compressReply(request("gzip", "GET"), text(BIG)),
  );
  const head = await flatten(
    await compressReply(request("gzip", "HEAD"), text(BIG)),
  );
  assert.equal(
    head.headers.get("content-length"),
    get.headers.get("content-length"),
  );
});

Deno.test("compression() honours minBytes, down to 0 for the echo route", async () => {
  const router = new Router()
    .use(compression())
    .get("/small", () => text("abc"))
    .get("/echo", () => text("abc"), { use: [compression({ minBytes: 0 })] });
  const handler = router.handler();
  const headers = { "accept-encoding": "gzip" };
  const small = await flatten(
    await handler(fake("GET", "/small", { headers }).req),
  );
  assert.equal(small.headers.get("content-encoding"), undefined);
  const echo = await flatten(
    await handler(fake("GET", "/echo", { headers }).req),
  );
  assert.equal(echo.headers.get("content-encoding"), "gzip");
  assert.equal(await gunzip(echo.body), "abc");
  assert.equal(
    echo.headers.get("vary"),
    "Accept-Encoding",
    "the outer layer adds no second Vary",
  );
});

Deno.test("compressReply() sends a body past maxBytes as it is: gzip would hold the event loop", async () => {
  const big = "spindle ".repeat(10_000); // 80,000 bytes
  const reply = text(big);
  assert.equal(await compressReply(request("gzip"), reply), reply);
  const under = await flatten(
    await compressReply(request("gzip"), text(big), 1024, 128 * 1024),
  );
  assert.equal(under.headers.get("content-encoding"), "gzip");
  const handler = new Router()
    .use(compression({ maxBytes: 1000 }))
    .get("/big", () => text(BIG))
    .handler();
  const a = await flatten(
    await handler(
      fake("GET", "/big", { headers: { "accept-encoding": "gzip" } }).req,
    ),
  );
  assert.equal(a.headers.get("content-encoding"), undefined);
  assert.equal(a.text, BIG);
});

Deno.test("isCompressible() takes text-like types only", () => {
  for (
    const t of [
      "text/plain",
      "text/html; charset=utf-8",
      "application/json",
      "application/problem+json",
      "image/svg+xml",
      "application/xml",
      "application/javascript",
    ]
  ) {
    assert.ok(isCompressible(t), t);
  }
  for (
    const t of [
      undefined,
      "image/png",
      "application/octet-stream",
      "application/zip",
      "video/mp4",
    ]
  ) {
    assert.ok(!isCompressible(t), String(t));
  }
});

Deno.test("compression() leaves the fallback (static files) to its own negotiation", async () => {
  const handler = new Router()
    .use(compression())
    .get("/api", () => text(BIG))
    .fallback(() => text(BIG, { headers: { etag: '"static-v1"' } }))
    .handler();
  const headers = { "accept-encoding": "gzip" };
  const api = await flatten(
    await handler(fake("GET", "/api", { headers }).req),
  );
  assert.equal(api.headers.get("content-encoding"), "gzip");
  const file = await flatten(
    await handler(fake("GET", "/page.txt", { headers }).req),
  );
  assert.equal(file.headers.get("content-encoding"), undefined);
  assert.equal(file.headers.get("etag"), '"static-v1"');
});

Deno.test("compressReply() answers at once: no promise, gzip included", () => {
  const plain = compressReply(request(), text(BIG));
  assert.ok(!(plain instanceof Promise));
  const gzipped = compressReply(request("gzip"), text(BIG));
  assert.ok(!(gzipped instanceof Promise));
  assert.equal(
    (gzipped.headers as Record<string, string>)["content-encoding"],
    "gzip",
  );
});

// UTF-8 sizes worked out without encoding: 2-byte, 3-byte, 4-byte (a
// surrogate pair) and a lone surrogate (sent as U+FFFD, 3 bytes).
const sizes: [name: string, body: string, bytes: number][] = [
  ["é", "é".repeat(300), 600],
  ["€", "€".repeat(200), 600],
  ["😀", "😀".repeat(150), 600],
  ["a lone surrogate", "\ud800".repeat(200), 600],
  ["ASCII", "a".repeat(600), 600],
];
for (const [name, body, bytes] of sizes) {
  Deno.test(`compressReply() sizes ${name} text by its UTF-8 bytes`, async () => {
    assert.equal(new TextEncoder().encode(body).length, bytes);
    const gz = (min: number, max: number) =>
      replyHeaderOf(compressReply(request("gzip"), text(body), min, max));
    assert.equal(gz(bytes, bytes), "gzip", "exactly min and max");
    assert.equal(gz(bytes + 1, 10_000), undefined, "one byte short of min");
    assert.equal(gz(0, bytes - 1), undefined, "one byte past max");
    const a = await flatten(compressReply(request("gzip"), text(body), 0));
    assert.equal(await gunzip(a.body), body.replaceAll("\ud800", "\ufffd"));
  });
}

function replyHeaderOf(reply: Reply): string | undefined {
  const headers = reply.headers as Record<string, string> | undefined;
  return headers?.["content-encoding"];
}

Deno.test("compression() adds Accept-Encoding to Vary once, when an inner layer already did", async () => {
  const handler = new Router()
    .use(compression())
    .get("/echo", () => text(BIG), { use: [compression({ minBytes: 0 })] })
    .handler();
  const a = await flatten(await handler(fake("GET", "/echo").req));
  assert.equal(a.headers.get("content-encoding"), undefined);
  assert.equal(a.headers.get("vary"), "Accept-Encoding");
});

Deno.test("compressReply() keeps a frozen header record shared and frozen", () => {
  const headers: Readonly<Record<string, string>> = Object.freeze({
    "content-type": "text/plain",
  });
  const one = compressReply(request(), { status: 200, headers, body: BIG });
  const two = compressReply(request(), { status: 200, headers, body: BIG });
  assert.equal(one.headers, two.headers, "one record for every reply");
  assert.ok(Object.isFrozen(one.headers));
  assert.deepEqual(one.headers, {
    "content-type": "text/plain",
    vary: "Accept-Encoding",
  });
  assert.equal(headers.vary, undefined, "the handler's record is not changed");
});

Deno.test("compressReply() gzips a repeated text once, with one frozen set of fields", async () => {
  const headers: Readonly<Record<string, string>> = Object.freeze({
    "content-type": "text/plain",
    etag: '"v7"',
  });
  const make = () => ({ status: 200, headers, body: `${BIG}!` });
  const one = compressReply(request("gzip"), make(), 0);
  const two = compressReply(request("gzip"), make(), 0);
  assert.equal(one.body, two.body, "the same bytes");
  assert.equal(one.headers, two.headers, "the same fields");
  assert.ok(Object.isFrozen(two.headers));
  const a = await flatten(two);
  assert.equal(await gunzip(a.body), `${BIG}!`);
  assert.equal(a.headers.get("content-length"), String(a.body.length));
  assert.equal(a.headers.get("etag"), '"v7-gzip"');
  assert.equal(a.headers.get("vary"), "Accept-Encoding");
  // Other text, or the same text under other fields, is gzipped anew.
  const other = await flatten(compressReply(request("gzip"), text("abc"), 0));
  assert.equal(await gunzip(other.body), "abc");
  assert.equal(other.headers.get("etag"), undefined);
});
