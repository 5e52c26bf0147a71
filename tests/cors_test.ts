import assert from "node:assert/strict";
import { cors } from "../lib/app/middleware/cors.ts";
import { json, text } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import { HttpError } from "../lib/http/errors.ts";
import type { Reply } from "../lib/http/handler.ts";
import { call, fake } from "./fixtures/app_request.ts";

function app(origins: string) {
  return new Router()
    .use(cors(origins))
    .get("/api/items", () => json([1]))
    .post("/api/items", () => json({ ok: true }, { status: 201 }))
    .get("/api/fail", () => {
      throw new HttpError(409, "clash");
    })
    .fallback(() => text("static file"))
    .handler();
}

Deno.test("cors() echoes a listed origin with Vary: Origin", async () => {
  const a = await call(
    app("https://a.test, https://b.test"),
    fake("GET", "/api/items", { headers: { origin: "https://b.test" } }).req,
  );
  assert.equal(a.headers.get("access-control-allow-origin"), "https://b.test");
  assert.equal(a.headers.get("vary"), "Origin");
  assert.match(
    a.headers.get("access-control-expose-headers") ?? "",
    /Location/,
  );
});

Deno.test("cors() gives no grant to an unlisted origin, but still says it varies", async () => {
  const a = await call(
    app("https://a.test"),
    fake("GET", "/api/items", { headers: { origin: "https://evil.test" } }).req,
  );
  assert.equal(a.headers.get("access-control-allow-origin"), undefined);
  assert.equal(a.headers.get("vary"), "Origin");
});

Deno.test("cors() with * grants any origin without Vary", async () => {
  const a = await call(
    app("*"),
    fake("GET", "/api/items", { headers: { origin: "https://x.test" } }).req,
  );
  assert.equal(a.headers.get("access-control-allow-origin"), "*");
  assert.equal(a.headers.get("vary"), undefined);
});

Deno.test("cors() answers a preflight with the route's own methods", async () => {
  const a = await call(
    app("https://a.test"),
    fake("OPTIONS", "/api/items", {
      headers: {
        origin: "https://a.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "Content-Type, X-Token",
      },
    }).req,
  );
  assert.equal(a.status, 204);
  assert.equal(a.headers.get("access-control-allow-origin"), "https://a.test");
  assert.equal(
    a.headers.get("access-control-allow-methods"),
    "GET, POST, HEAD, OPTIONS",
  );
  assert.equal(
    a.headers.get("access-control-allow-headers"),
    "Content-Type, X-Token",
  );
  assert.equal(a.headers.get("access-control-max-age"), "600");
  assert.match(a.headers.get("vary") ?? "", /Access-Control-Request-Headers/);
});

Deno.test("cors() does not echo requested headers that are not a token list", async () => {
  const a = await call(
    app("*"),
    fake("OPTIONS", "/api/items", {
      headers: {
        origin: "https://a.test",
        "access-control-request-method": "GET",
        "access-control-request-headers": "x-a, <script>",
      },
    }).req,
  );
  assert.equal(a.headers.get("access-control-allow-headers"), undefined);
});

Deno.test("cors() adds its fields to errors, so a page can read them", async () => {
  const a = await call(
    app("*"),
    fake("GET", "/api/fail", { headers: { origin: "https://a.test" } }).req,
  );
  assert.equal(a.status, 409);
  assert.equal(a.headers.get("access-control-allow-origin"), "*");
});

Deno.test("cors() covers static files (the fallback) too", async () => {
  const a = await call(
    app("*"),
    fake("GET", "/index.html", { headers: { origin: "https://a.test" } }).req,
  );
  assert.equal(a.text, "static file");
  assert.equal(a.headers.get("access-control-allow-origin"), "*");
  assert.match(
    a.headers.get("access-control-expose-headers")!,
    /Content-Range/,
  );
});

Deno.test("cors() with * leaves a request without Origin as it is, synchronously", () => {
  const reply = text("x");
  const handler = new Router().use(cors("*")).get("/x", () => reply).handler();
  assert.equal(handler(fake("GET", "/x").req), reply);
  const listed = new Router().use(cors("https://a.test")).get("/x", () => reply)
    .handler()(fake("GET", "/x").req);
  assert.ok(!(listed instanceof Promise));
  assert.equal(
    (listed.headers as Record<string, string>).vary,
    "Origin",
    "a list still says the reply varies",
  );
});

Deno.test("cors() merges its fields into a frozen record once, for each origin", () => {
  const headers = Object.freeze({
    "content-type": "text/plain",
    vary: "Accept",
  });
  const handler = new Router()
    .use(cors("https://a.test, https://b.test"))
    .get("/x", () => ({ status: 200, headers, body: "x" }))
    .handler();
  const ask = (origin: string) =>
    handler(fake("GET", "/x", { headers: { origin } }).req) as Reply;
  const a1 = ask("https://a.test");
  const a2 = ask("https://a.test");
  const b = ask("https://b.test");
  assert.equal(a1.headers, a2.headers);
  assert.ok(Object.isFrozen(a1.headers));
  assert.notEqual(a1.headers, b.headers);
  const fields = a1.headers as Record<string, string>;
  assert.equal(fields["access-control-allow-origin"], "https://a.test");
  assert.equal(fields.vary, "Accept, Origin");
  assert.equal(
    (b.headers as Record<string, string>)["access-control-allow-origin"],
    "https://b.test",
  );
});
