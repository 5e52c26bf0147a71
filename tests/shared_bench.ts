/**
 * What sharing limits across `--workers` costs a request: each shared
 * structure beside the one-engine structure it replaces, in one thread (no
 * contention; two engines hitting the same key contend on one entry's lock).
 *
 *   deno bench --allow-read tests/shared_bench.ts
 */
import { AppMetrics, ENGINE_COLUMNS } from "../lib/app/metrics.ts";
import { RateLimiter } from "../lib/app/middleware/rate_limit.ts";
import { Semaphore } from "../lib/http/semaphore.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { CounterTable, createCounterMemory } from "../lib/shared/counters.ts";
import {
  createRateMemory,
  SharedRateLimiter,
} from "../lib/shared/rate_table.ts";
import { createSlotMemory, SharedSlots } from "../lib/shared/slots.ts";

// 1,000 clients, each request from the next: every hit finds its key in
// a table that holds others.
const CLIENTS = Array.from(
  { length: 1000 },
  (_, i) => `10.0.${i >> 8}.${i & 255}`,
);
let next = 0;
const client = () => CLIENTS[next = (next + 1) % CLIENTS.length];

const policy = { limit: 1e9, windowMs: 60_000 };
const memoryLimiter = new RateLimiter(policy);
const sharedLimiter = new SharedRateLimiter(policy, createRateMemory(10_000));

Deno.bench("rate limit: hit, this engine's Map", { group: "rate" }, () => {
  memoryLimiter.hit(client());
});
Deno.bench("rate limit: hit, shared table", { group: "rate" }, () => {
  sharedLimiter.hit(client());
});

const semaphore = new Semaphore(4096, 1024);
const slots = new SharedSlots(createSlotMemory(4), 0, 4096, 1024);
Deno.bench(
  "connection cap: take and give back, this engine's",
  { group: "slots" },
  () => {
    semaphore.tryAcquire();
    semaphore.release();
  },
);
Deno.bench(
  "connection cap: take and give back, shared",
  { group: "slots" },
  () => {
    slots.tryAcquire();
    slots.release();
  },
);

const table = new CounterTable(createCounterMemory(2, 4, ENGINE_COLUMNS));
table.attach(0, 1);
const ownStats = new EngineStats();
const sharedStats = new EngineStats(table.row(0));
const ownMetrics = new AppMetrics();
const sharedMetrics = new AppMetrics({ table, cell: 0 });

/** What the engine and the app count for one request. */
function count(stats: EngineStats, metrics: AppMetrics): void {
  stats.bytesIn += 90;
  stats.requests++;
  stats.bytesOut += 160;
  metrics.record("/echo/{text}", 200);
}

Deno.bench(
  "counters: one request, this engine's",
  { group: "counters" },
  () => {
    count(ownStats, ownMetrics);
  },
);
Deno.bench("counters: one request, shared table", { group: "counters" }, () => {
  count(sharedStats, sharedMetrics);
});
