/** SharedRateTable: one rate limit budget per client over every engine. */
import assert from "node:assert/strict";
import {
  createRateMemory,
  ENTRY_INTS,
  hashKey,
  LEASE_SHARE,
  MAX_LEASE,
  MAX_LEASES,
  PROBE,
  SharedRateLimiter,
} from "../lib/shared/rate_table.ts";
import { inThreads } from "./helpers/threads.ts";

/** Two engines' limiters over one table, on a clock the test moves. */
function twoEngines(limit: number, windowMs: number, clients = 100) {
  const memory = createRateMemory(clients);
  const clock = { now: 0 };
  const limiter = () =>
    new SharedRateLimiter({ limit, windowMs }, memory, () => clock.now);
  return { a: limiter(), b: limiter(), clock, memory };
}

Deno.test("SharedRateLimiter gives a client one budget whichever engine it reaches", () => {
  const { a, b } = twoEngines(3, 10_000);
  const seen = [a, b, a, b, a].map((l) => l.hit("10.0.0.1").allowed);
  assert.deepEqual(seen, [true, true, true, false, false]);
  assert.equal(b.hit("10.0.0.2").allowed, true, "clients are counted apart");
});

Deno.test("SharedRateLimiter slides as the memory store does", () => {
  const { a, b, clock } = twoEngines(2, 10_000);
  assert.ok(a.hit("a").allowed && b.hit("a").allowed);
  clock.now = 14_999;
  assert.equal(a.hit("a").allowed, false, "2 * 0.5001 + 1 > 2");
  clock.now = 15_000;
  assert.equal(b.hit("a").allowed, true, "2 * 0.5 + 1 = 2 fits");
  assert.equal(a.hit("a").allowed, false);
  clock.now = 30_000;
  assert.equal(a.hit("a").remaining, 1, "two windows later nothing is left");
});

Deno.test("SharedRateLimiter gives back a forgiven request to every engine", () => {
  const { a, b } = twoEngines(1, 10_000);
  assert.equal(a.hit("a").allowed, true);
  assert.equal(b.hit("a").allowed, false);
  a.forgive("a");
  assert.equal(b.hit("a").allowed, true);
});

Deno.test("SharedRateLimiter never lets a client past its limit under an address flood", () => {
  // Room for 16 clients; 2,000 of them each try limit + 3 times.
  const { a, b } = twoEngines(4, 10_000, 16);
  const allowed = new Map<string, number>();
  for (let round = 0; round < 7; round++) {
    for (let i = 0; i < 2000; i++) {
      const key = `2001:db8:${i}::/64`;
      const engine = (i + round) % 2 === 0 ? a : b;
      if (engine.hit(key).allowed) {
        allowed.set(key, (allowed.get(key) ?? 0) + 1);
      }
    }
  }
  for (const [key, n] of allowed) assert.ok(n <= 4, `${key} got ${n}`);
});

Deno.test("SharedRateLimiter takes over entries idle for two windows", () => {
  const { a, clock, memory } = twoEngines(1, 1_000, 64);
  const entries = memory.length / ENTRY_INTS;
  for (let i = 0; i < 4 * entries; i++) a.hit(`c${i}`);
  clock.now = 3_000;
  // New clients find room again, each with its whole budget.
  for (let i = 0; i < entries / 4; i++) {
    assert.equal(a.hit(`fresh${i}`).allowed, true, `fresh${i}`);
    assert.equal(a.hit(`fresh${i}`).allowed, false);
  }
});

Deno.test("SharedRateLimiter: an engine whose clock lags a window behind never rolls an entry back", () => {
  // Each engine reads its own batch clock: near a window's end one may
  // still be in window 0 while the other is in window 1.
  const memory = createRateMemory(16);
  const policy = { limit: 3, windowMs: 10_000 };
  const clocks = { a: 10_000, b: 9_999 };
  const a = new SharedRateLimiter(policy, memory, () => clocks.a);
  const b = new SharedRateLimiter(policy, memory, () => clocks.b);
  const seen = [a, a, a, b, a, b].map((l) => l.hit("10.0.0.1").allowed);
  // a spent window 1's budget; b, behind, counts into window 1 as well
  // (its previous window counted whole) instead of wiping window 1.
  assert.deepEqual(seen, [true, true, true, false, false, false]);
  clocks.b = 10_001;
  assert.equal(b.hit("10.0.0.1").allowed, false, "window 1 still spent");
});

/**
 * Two threads, started at once, each try `hits` hits on one key of a
 * `limit` budget: how many got through. The budget is large enough for
 * their hits to overlap (one thread does not finish before the other starts).
 */
async function allowedFromTwoThreads(
  task: "rate" | "limiter" | "rollover",
  limit: number,
  hits = 4 * limit,
): Promise<number> {
  const memory = createRateMemory(16);
  const start = new Int32Array(new SharedArrayBuffer(4));
  const job = { task, memory, key: "10.1.1.1", hits, limit, start, parties: 2 };
  const seen = await inThreads<{ allowed: number }>([job, job]);
  return seen[0].allowed + seen[1].allowed;
}

Deno.test("SharedRateTable counts one budget from two threads exactly", async () => {
  assert.equal(await allowedFromTwoThreads("rate", 100_000), 100_000);
});

Deno.test("SharedRateLimiter leases a large budget: one step on the shared entry per lease, remaining exact", () => {
  const { a, b } = twoEngines(100_000, 10_000);
  // Engine a counts MAX_LEASE at once and answers the next ones itself.
  for (let i = 1; i <= MAX_LEASE + 2; i++) {
    assert.equal(a.hit("10.0.0.1").remaining, 100_000 - i);
  }
  // b sees a's two leases counted whole: 2 * MAX_LEASE, not MAX_LEASE + 2.
  assert.equal(b.hit("10.0.0.1").remaining, 100_000 - 2 * MAX_LEASE - 1);
});

Deno.test("SharedRateLimiter leases never let a client past its limit, and spent to the end give it all", () => {
  const limit = 10 * LEASE_SHARE;
  const { a, b, clock } = twoEngines(limit, 10_000);
  let allowed = 0;
  // Uneven turns, so each engine is often mid-lease when the other claims.
  for (let i = 0; allowed <= limit && i < 3 * limit; i++) {
    const engine = (i * 7) % 5 < 2 ? a : b;
    if (engine.hit("10.0.0.1").allowed) allowed++;
  }
  assert.equal(allowed, limit, "both spent their leases before being refused");
  assert.equal(a.hit("10.0.0.1").allowed, false);
  assert.equal(b.hit("10.0.0.1").allowed, false);
  // A lease ends with its window: a's unspent units of window 0 are not
  // spent in window 2, where b's lease holds back its own.
  a.hit("10.0.0.2");
  clock.now = 20_000;
  assert.equal(b.hit("10.0.0.2").remaining, limit - 1);
  let inWindow2 = 0;
  for (let i = 0; i < 2 * limit; i++) {
    if (a.hit("10.0.0.2").allowed) inWindow2++;
  }
  assert.equal(inWindow2, limit - limit / LEASE_SHARE);
});

Deno.test("SharedRateLimiter leases to at most MAX_LEASES clients, then counts one at a time until the window ends", () => {
  const { a, b, clock } = twoEngines(100_000, 10_000, 2 * MAX_LEASES);
  const key = (i: number) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`;
  for (let i = 0; i < MAX_LEASES + 1; i++) a.hit(key(i));
  // The first client's lease is counted whole; the last one got none.
  assert.equal(b.hit(key(0)).remaining, 100_000 - MAX_LEASE - 1);
  assert.equal(b.hit(key(MAX_LEASES)).remaining, 100_000 - 2);
  // Next window: a's old leases make room, and leasing resumes.
  clock.now = 10_000;
  a.hit(key(MAX_LEASES + 1));
  assert.equal(
    b.hit(key(MAX_LEASES + 1)).remaining,
    100_000 - MAX_LEASE - 1,
  );
});

Deno.test("SharedRateLimiter leases count one budget from two threads exactly", async () => {
  // Both threads spend their leases before being refused: nothing held back.
  assert.equal(await allowedFromTwoThreads("limiter", 1_000_000), 1_000_000);
});

Deno.test("SharedRateLimiter counts one budget exactly from two threads either side of a window's end", async () => {
  // Window 8 starts with window 7's count whole (carry 1), and the hits
  // of window 7 that come after count there too: one budget in all.
  assert.equal(await allowedFromTwoThreads("rollover", 500, 200_000), 500);
  // Leased: each flip of the clock leaves a lease's unspent units counted
  // (held back, never handed out twice).
  const leased = await allowedFromTwoThreads("rollover", 5000);
  assert.ok(leased <= 5000 && leased > 0, `${leased} allowed`);
});

Deno.test("SharedRateLimiter never lets a client past its limit under an address flood from two threads", async () => {
  // Room for 16 clients; 2,000 of them, each tried limit + 3 times by
  // each thread, which claim and share the same few entries at once.
  const memory = createRateMemory(16);
  const start = new Int32Array(new SharedArrayBuffer(4));
  const job = {
    task: "flood",
    memory,
    keys: 2000,
    rounds: 7,
    limit: 4,
    start,
    parties: 2,
  };
  const seen = await inThreads<{ allowed: number[] }>([job, job]);
  let total = 0;
  for (let i = 0; i < job.keys; i++) {
    const n = seen[0].allowed[i] + seen[1].allowed[i];
    assert.ok(n <= job.limit, `client ${i} got ${n}`);
    total += n;
  }
  assert.ok(total > 0, "some clients were let through");
});

Deno.test("hashKey() never gives the empty entry's tag and spreads near keys", () => {
  const homes = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const [a, b] = hashKey(`10.0.${i >> 8}.${i & 255}`);
    assert.ok(a !== 0 || b !== 0);
    homes.add(a & 1023);
  }
  assert.ok(homes.size > 550, `${homes.size} homes of 1024 for 1000 keys`);
});

Deno.test("createRateMemory() sizes a power of two at least twice the clients", () => {
  for (const clients of [1, 10, 1000, 10_000]) {
    const entries = createRateMemory(clients).length / ENTRY_INTS;
    assert.ok(entries >= 2 * clients && entries >= 2 * PROBE);
    assert.equal(entries & (entries - 1), 0);
  }
});
