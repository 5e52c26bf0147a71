import assert from "node:assert/strict";
import { text } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import { trustProxy } from "../lib/app/client_addr.ts";
import { rateLimit, RateLimiter } from "../lib/app/middleware/rate_limit.ts";
import type { Reply } from "../lib/http/handler.ts";
import { OutBuffer, writeFields } from "../lib/http/response.ts";
import { call, fake } from "./fixtures/app_request.ts";

/** A limiter on a clock the test moves by hand. */
function limiter(limit: number, windowMs: number, maxEntries?: number) {
  const clock = { now: 0 };
  const rl = new RateLimiter({
    limit,
    windowMs,
    maxEntries,
    now: () => clock.now,
  });
  return { rl, clock };
}

Deno.test("RateLimiter.hit() allows `limit` requests in a window, then refuses", () => {
  const { rl } = limiter(3, 10_000);
  const seen = [1, 2, 3, 4].map(() => rl.hit("a"));
  assert.deepEqual(seen.map((d) => d.allowed), [true, true, true, false]);
  assert.deepEqual(seen.map((d) => d.remaining), [2, 1, 0, 0]);
  assert.equal(rl.hit("b").allowed, true, "clients are counted apart");
});

Deno.test("RateLimiter.hit() slides: the previous window counts by how much of it is still covered", () => {
  const { rl, clock } = limiter(2, 10_000);
  clock.now = 0;
  assert.ok(rl.hit("a").allowed && rl.hit("a").allowed);
  // Next window starts at 10 s; its first half still sees 2 * 0.5 = 1 or more.
  clock.now = 10_000;
  assert.equal(
    rl.hit("a").allowed,
    false,
    "at the edge the old window still counts whole",
  );
  clock.now = 14_999;
  assert.equal(rl.hit("a").allowed, false, "2 * 0.5001 + 1 > 2");
  clock.now = 15_000;
  assert.equal(rl.hit("a").allowed, true, "2 * 0.5 + 1 = 2 fits");
  assert.equal(rl.hit("a").allowed, false);
  // Two windows later nothing is remembered.
  clock.now = 30_000;
  assert.equal(rl.hit("a").remaining, 1);
});

Deno.test("RateLimiter.hit() tells a refused client exactly when the next request fits", () => {
  const { rl, clock } = limiter(2, 10_000);
  rl.hit("a");
  rl.hit("a");
  clock.now = 1_000;
  const refused = rl.hit("a");
  // Fits again at 15 s (see the sliding test): 14 s from now.
  assert.equal(refused.retryAfterSeconds, 14);
  clock.now = 1_000 + 13_999;
  assert.equal(rl.hit("a").allowed, false);
  clock.now = 1_000 + 14_000;
  assert.equal(rl.hit("a").allowed, true);
  clock.now = 16_000;
  const again = rl.hit("a"); // previous 2 * 0.4 + current 1 = 1.8: no room
  assert.equal(again.allowed, false);
  assert.equal(again.retryAfterSeconds, 4); // at 20 s: previous 1 * 1 + 0 = 1
  clock.now = 20_000;
  assert.equal(rl.hit("a").allowed, true);
});

Deno.test("RateLimiter.hit() does not count refused requests", () => {
  const { rl, clock } = limiter(1, 1_000);
  rl.hit("a");
  for (let i = 0; i < 50; i++) assert.equal(rl.hit("a").allowed, false);
  clock.now = 2_000; // previous window held 1, not 51: fully forgotten by now
  assert.equal(rl.hit("a").allowed, true);
});

Deno.test("RateLimiter keeps at most maxEntries clients under an address flood", () => {
  const { rl } = limiter(5, 10_000, 100);
  for (let i = 0; i < 10_000; i++) rl.hit(`10.0.${i >> 8}.${i & 255}`);
  assert.equal(rl.size, 100);
  // The newest clients are the ones kept.
  assert.equal(rl.hit("10.0.39.15").remaining, 3);
});

Deno.test("RateLimiter sweeps clients idle for two windows", () => {
  const { rl, clock } = limiter(5, 1_000);
  for (let i = 0; i < 50; i++) rl.hit(`c${i}`);
  assert.equal(rl.size, 50);
  clock.now = 1_500;
  rl.hit("fresh");
  assert.equal(rl.size, 51, "one window on, their counts still matter");
  clock.now = 3_000; // windows 1-2 s and earlier no longer count for anyone
  rl.hit("fresher");
  assert.equal(rl.size, 1);
});

Deno.test("rateLimit() answers 429 with Retry-After and RateLimit fields, and counts it", async () => {
  const clock = { now: 0 };
  const limited: string[] = [];
  const router = new Router()
    .use(
      rateLimit({
        limit: 2,
        windowMs: 10_000,
        now: () => clock.now,
        onLimited: (r) => limited.push(r.client),
      }),
    )
    .get("/x", () => text("ok"));
  const handler = router.handler();
  const first = await call(handler, fake("GET", "/x").req);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("ratelimit-limit"), "2");
  assert.equal(first.headers.get("ratelimit-remaining"), "1");
  assert.equal(first.headers.get("ratelimit-reset"), "10");
  assert.equal(first.headers.get("ratelimit-policy"), "2;w=10");
  await call(handler, fake("GET", "/x").req);
  const third = await call(handler, fake("GET", "/x").req);
  assert.equal(third.status, 429);
  // Both requests fall out of the sliding window by half at 15 s.
  assert.equal(third.headers.get("retry-after"), "15");
  assert.equal(third.headers.get("ratelimit-remaining"), "0");
  assert.match(third.text, /try again in 15 s/);
  assert.deepEqual(limited, ["127.0.0.1"]);
});

Deno.test("rateLimit() keeps its fields on errors thrown further in", async () => {
  const router = new Router().use(rateLimit({ limit: 5, windowMs: 1000 }));
  const a = await call(router.handler(), fake("GET", "/missing").req);
  assert.equal(a.status, 404);
  assert.equal(a.headers.get("ratelimit-remaining"), "4");
});

Deno.test("rateLimit() keys on X-Forwarded-For only behind a trusted proxy", async () => {
  const router = new Router().use(rateLimit({ limit: 1, windowMs: 60_000 }))
    .get("/", () => text("ok"));
  const trusted = router.handler({ trustProxy: trustProxy(["127.0.0.1"]) });
  const untrusted = router.handler();
  const from = (xff: string) =>
    fake("GET", "/", { headers: { "x-forwarded-for": xff } }).req;
  assert.equal((await call(trusted, from("1.1.1.1"))).status, 200);
  assert.equal(
    (await call(trusted, from("2.2.2.2"))).status,
    200,
    "another client, own budget",
  );
  assert.equal((await call(trusted, from("1.1.1.1"))).status, 429);
  // Without trust, the header is ignored: every request is 127.0.0.1.
  assert.equal((await call(untrusted, from("3.3.3.3"))).status, 200);
  assert.equal((await call(untrusted, from("4.4.4.4"))).status, 429);
});

Deno.test("rateLimit() counts a whole IPv6 /64 as one client", async () => {
  const router = new Router().use(rateLimit({ limit: 1, windowMs: 60_000 }))
    .get("/", () => text("ok"));
  const handler = router.handler();
  const a = await call(
    handler,
    fake("GET", "/", { peer: "2001:db8:0:1::1" }).req,
  );
  const b = await call(
    handler,
    fake("GET", "/", { peer: "2001:db8:0:1::ffff" }).req,
  );
  const c = await call(
    handler,
    fake("GET", "/", { peer: "2001:db8:0:2::1" }).req,
  );
  assert.deepEqual([a.status, b.status, c.status], [200, 429, 200]);
});

Deno.test("RateLimiter refuses a zero budget", () => {
  assert.throws(() => new RateLimiter({ limit: 0, windowMs: 1000 }), TypeError);
  assert.throws(() => new RateLimiter({ limit: 1, windowMs: 0 }), TypeError);
});

Deno.test("rateLimit() keeps a synchronous chain synchronous, refusals included", () => {
  const handler = new Router()
    .use(rateLimit({ limit: 1, windowMs: 60_000 }))
    .get("/x", () => text("ok"))
    .handler();
  const first = handler(fake("GET", "/x").req);
  assert.ok(!(first instanceof Promise));
  assert.equal(first.status, 200);
  assert.throws(() => handler(fake("GET", "/x").req), { status: 429 });
});

Deno.test("rateLimit() replaces a reply's own RateLimit fields and keeps the rest, frozen or not", async () => {
  const own = Object.freeze({
    "content-type": "text/plain",
    "RateLimit-Remaining": "999",
  });
  const handler = new Router()
    .use(rateLimit({ limit: 5, windowMs: 1000 }))
    .get("/frozen", () => ({ status: 200, headers: own, body: "ok" }))
    .get("/pairs", () => ({
      status: 200,
      headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"], [
        "ratelimit-limit",
        "9",
      ]],
      body: "ok",
    }))
    .handler();
  // Twice: the second answer comes from the frozen record's cached list.
  for (const remaining of ["4", "3"]) {
    const a = await call(handler, fake("GET", "/frozen").req);
    assert.equal(a.headers.get("ratelimit-remaining"), remaining);
    assert.equal(a.headers.get("content-type"), "text/plain");
  }
  const b = await call(handler, fake("GET", "/pairs").req);
  assert.equal(b.headers.get("ratelimit-limit"), "5");
  assert.equal(b.headers.get("set-cookie"), "a=1, b=2");
  assert.equal(b.headers.get("ratelimit-remaining"), "2");
});

Deno.test("rateLimit() spells RateLimit-Remaining in full, and a store's odd count as JavaScript does", async () => {
  const remainingAfterOne = async (store: Parameters<typeof rateLimit>[0]) => {
    const handler = new Router().use(rateLimit(store))
      .get("/", () => text("ok")).handler();
    const reply = await call(handler, fake("GET", "/").req);
    return reply.headers.get("ratelimit-remaining");
  };
  for (
    const limit of [1, 1000, 1001, 1_000_001, 1_000_000_001, 2 ** 53 + 1]
  ) {
    const remaining = await remainingAfterOne({ limit, windowMs: 60_000 });
    assert.equal(remaining, String(limit - 1), `limit ${limit}`);
  }
  const decision = {
    allowed: true,
    limit: 10,
    resetSeconds: 1,
    retryAfterSeconds: 0,
  };
  for (const remaining of [2.5, -1, 1e21]) {
    const store = {
      limit: 10,
      windowMs: 1000,
      hit: () => ({ ...decision, remaining }),
    };
    assert.equal(await remainingAfterOne(store), String(remaining));
  }
});

/** A reply's fields as the engine writes them, one "name: value" a line. */
function written(reply: Reply): string[] {
  const out = new OutBuffer();
  writeFields(out, reply.status, reply.headers, Date.UTC(2024, 0, 2));
  return new TextDecoder().decode(out.take()).split("\r\n").slice(3, -1);
}

Deno.test("rateLimit() fields as the engine writes them, as the reset second moves", async () => {
  const clock = { now: 0 };
  const own = Object.freeze({
    "content-type": "text/plain",
    "ratelimit-reset": "99",
  });
  const handler = new Router()
    .use(rateLimit({ limit: 9, windowMs: 10_000, now: () => clock.now }))
    .get("/frozen", () => ({ status: 200, headers: own, body: "ok" }))
    .get("/bare", () => ({ status: 204 }))
    .get(
      "/null",
      () => ({ status: 204, headers: null as unknown as undefined }),
    )
    .get("/pairs", () => ({ status: 200, headers: [["x-a", "1"]] }))
    .handler();
  const fields = async (path: string) =>
    written(await handler(fake("GET", path).req)).sort();
  const ours = (remaining: number, reset: number) => [
    "ratelimit-limit: 9",
    "ratelimit-policy: 9;w=10",
    `ratelimit-remaining: ${remaining}`,
    `ratelimit-reset: ${reset}`,
  ];
  // Twice each: the second time from the encoded fixed fields.
  assert.deepEqual(await fields("/frozen"), [
    "content-type: text/plain",
    ...ours(8, 10),
  ]);
  assert.deepEqual(await fields("/frozen"), [
    "content-type: text/plain",
    ...ours(7, 10),
  ]);
  assert.deepEqual(await fields("/bare"), ours(6, 10));
  assert.deepEqual(await fields("/bare"), ours(5, 10));
  clock.now = 1_500; // 8.5 s left: the reset field says 9 from now on
  assert.deepEqual(await fields("/frozen"), [
    "content-type: text/plain",
    ...ours(4, 9),
  ]);
  assert.deepEqual(await fields("/pairs"), [...ours(3, 9), "x-a: 1"]);
  assert.deepEqual(await fields("/bare"), ours(2, 9));
  assert.deepEqual(await fields("/null"), ours(1, 9));
});
