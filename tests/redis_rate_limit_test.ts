/**
 * The rate limit kept in Redis: one count for every instance, the same
 * decisions as the in-memory limiter, the script re-sent after Redis
 * forgets it, and the way out when Redis stops answering (fail open with
 * one log line per outage, or 503). The store tests run a real
 * redis-server; without one they are skipped, saying so.
 */
import assert from "node:assert/strict";
import { RateLimiter } from "../lib/app/middleware/rate_limit.ts";
import type {
  RateDecision,
  RateLimitStore,
} from "../lib/app/rate_limit_store.ts";
import {
  connectRateLimitStore,
  FailoverStore,
  RedisRateLimitStore,
} from "../lib/app/redis_rate_limit.ts";
import { hasCommand, RedisServer, until } from "../deploy/procs.ts";
import { captureLogs } from "./fixtures/engine_log.ts";

const redisMissing = !(await hasCommand("redis-server"));
if (redisMissing) console.log("skipped: redis-server is not installed");

const POLICY = { limit: 3, windowMs: 10_000 };

/** A clock the test moves by hand, away from any real window edge. */
function clock() {
  const c = { now: 1_000_000_000_000, at: (ms: number) => c.now = 1e12 + ms };
  return c;
}

async function store(
  redis: RedisServer,
  now: () => number,
  timeoutMs = 1000,
): Promise<RedisRateLimitStore> {
  return await RedisRateLimitStore.connect({
    ...POLICY,
    url: redis.url,
    timeoutMs,
    now,
  });
}

Deno.test({
  name:
    "RedisRateLimitStore counts one limit across instances, deciding as the local limiter does",
  ignore: redisMissing,
}, async () => {
  const redis = await RedisServer.start();
  const c = clock();
  const a = await store(redis, () => c.now);
  const b = await store(redis, () => c.now);
  try {
    const local = new RateLimiter({ ...POLICY, now: () => c.now });
    // Two instances take turns; the local limiter sees every request.
    const steps: [ms: number, via: RedisRateLimitStore][] = [
      [0, a],
      [1, b],
      [2, a],
      [3, b], // the 4th in the window: refused, whoever asks
      [10_000, a], // the next window: the old one still counts whole
      [14_999, b], // 3 x 0.5001 + 0 + 1 <= 3: fits
      [15_000, a], // 3 x 0.5 + 1 + 1 > 3
      [15_001, b],
      [30_000, a], // two windows later: forgotten
    ];
    const shared: RateDecision[] = [];
    const alone: RateDecision[] = [];
    for (const [ms, via] of steps) {
      c.at(ms);
      shared.push(await via.hit("203.0.113.7"));
      alone.push(local.hit("203.0.113.7"));
    }
    assert.deepEqual(shared, alone);
    assert.deepEqual(
      shared.map((d) => d.allowed),
      [true, true, true, false, false, true, false, false, true],
    );
    assert.equal((await b.hit("198.51.100.1")).remaining, 2, "clients apart");
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test({
  name:
    "RedisRateLimitStore re-sends its script after Redis forgot it, and keys expire after two windows",
  ignore: redisMissing,
}, async () => {
  const redis = await RedisServer.start();
  const s = await store(redis, () => Date.now());
  try {
    assert.equal((await s.hit("k")).remaining, 2);
    assert.equal(await redis.cli("SCRIPT", "FLUSH"), "OK");
    assert.equal((await s.hit("k")).remaining, 1, "NOSCRIPT, then EVAL");
    const ttl = Number(await redis.cli("PTTL", "spindle:rl:k"));
    assert.ok(ttl > 0 && ttl <= 2 * POLICY.windowMs, `PTTL ${ttl}`);
  } finally {
    await s.close();
    await redis.stop();
  }
});

/** A remote store the test switches on and off. */
class FlakyStore implements RateLimitStore {
  readonly limit = POLICY.limit;
  readonly windowMs = POLICY.windowMs;
  up = true;
  calls = 0;
  hit(): Promise<RateDecision> {
    this.calls++;
    if (!this.up) return Promise.reject(new Error("connection refused"));
    return Promise.resolve({
      allowed: true,
      limit: this.limit,
      remaining: 99,
      resetSeconds: 1,
      retryAfterSeconds: 0,
    });
  }
}

Deno.test("FailoverStore fails open to local counts, logs an outage once after 3 failures in a row, then tries the remote once a second", async () => {
  await using logs = await captureLogs();
  const c = clock();
  const remote = new FlakyStore();
  const local = new RateLimiter({ ...POLICY, now: () => c.now });
  const s = new FailoverStore(remote, local, {
    mode: "open",
    label: "redis://test",
    now: () => c.now,
  });
  assert.equal((await s.hit("a")).remaining, 99, "the remote decides");
  remote.up = false;
  const during = [];
  for (let i = 0; i < 5; i++) during.push(await s.hit("a"));
  assert.deepEqual(
    during.map((d) => d.allowed),
    [true, true, true, false, false],
    "the local limiter holds the line meanwhile",
  );
  assert.equal(remote.calls, 4, "three failed checks, then none for a second");
  c.at(1000);
  await s.hit("a");
  assert.equal(remote.calls, 5, "a second later, one request tries again");
  remote.up = true;
  c.at(2000);
  assert.equal((await s.hit("a")).remaining, 99, "back to the remote");
  assert.equal(s.down, false);
  const lines = logs.of("spindle", "app", "rate-limit").map((r) =>
    `${r.level} ${r.rawMessage}`
  );
  assert.deepEqual(lines, [
    "error Rate limit store {store} unreachable ({error}): {action} until it answers again",
    "warning Rate limit store {store} answers again after {ms} ms; {count} requests were {how} meanwhile",
  ]);
});

Deno.test("FailoverStore fails closed with 503 and Retry-After while the remote is down", async () => {
  await using _logs = await captureLogs();
  const remote = new FlakyStore();
  remote.up = false;
  const s = new FailoverStore(remote, new RateLimiter(POLICY), {
    mode: "closed",
    label: "redis://test",
  });
  await assert.rejects(async () => await s.hit("a"), {
    name: "HttpError",
    status: 503,
    headers: { "retry-after": "1" },
  });
  await assert.rejects(async () => await s.hit("a"), { status: 503 });
  await assert.rejects(async () => await s.hit("a"), { status: 503 });
  assert.throws(() => s.hit("a"), { status: 503 }, "in an outage, at once");
});

Deno.test({
  name:
    "connectRateLimitStore() serves through a Redis outage and a stall, then counts in Redis again",
  ignore: redisMissing,
}, async () => {
  await using _logs = await captureLogs();
  const redis = await RedisServer.start();
  const s = await connectRateLimitStore(POLICY, redis.url, {
    mode: "open",
    timeoutMs: 50,
  });
  try {
    assert.equal((await s.hit("a")).remaining, 2);
    await redis.stop();
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      assert.equal((await s.hit("a")).allowed, true, "fails open");
    }
    assert.ok(Date.now() - started < 1000, "without waiting for Redis");
    assert.equal(s.down, true, "three failures in a row: an outage");
    await redis.restart(); // empty: the count starts again
    await until(async () => {
      await s.hit("b");
      return !s.down;
    }, "the store to use Redis again");
    assert.equal(await redis.cli("EXISTS", "spindle:rl:b"), "1");

    redis.pause(); // connected, but no answer: the timeout decides
    const before = Date.now();
    await s.hit("c");
    assert.ok(Date.now() - before < 1000, `${Date.now() - before} ms`);
    await s.hit("c");
    await s.hit("c");
    assert.equal(s.down, true);
    redis.resume();
    await until(async () => {
      await s.hit("c");
      return !s.down;
    }, "the store to come back after the stall");
  } finally {
    await s.close();
    await redis.stop();
  }
});
