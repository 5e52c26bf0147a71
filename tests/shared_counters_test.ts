/** CounterTable: the counters behind /metrics, written per engine, read as totals. */
import assert from "node:assert/strict";
import { AppMetrics, ENGINE_COLUMNS } from "../lib/app/metrics.ts";
import { EngineStats } from "../lib/http/stats.ts";
import {
  CounterTable,
  createCounterMemory,
  MAX_NAME_BYTES,
  MAX_NAMES,
} from "../lib/shared/counters.ts";

Deno.test("CounterTable.column() gives every engine the same column for a name", () => {
  const memory = createCounterMemory(2, 2, [["first", "counter"]]);
  const a = new CounterTable(memory);
  const b = new CounterTable(memory);
  assert.equal(a.column("first"), 0);
  const x = a.column("x");
  assert.equal(b.column("x"), x);
  assert.notEqual(b.column("y"), x);
  assert.equal(a.column("y"), b.column("y"));
});

Deno.test("CounterTable.read() sums every row into totals and per-slot sums", () => {
  const memory = createCounterMemory(2, 3);
  const table = new CounterTable(memory);
  const n = table.column("n");
  table.attach(0, 1);
  table.attach(1, 2);
  table.attach(2, 2);
  table.row(0)[n] = 5;
  table.row(1)[n] = 7;
  table.row(2)[n] = 1;
  const snap = table.read();
  assert.equal(snap.total[n], 13);
  assert.equal(snap.bySlot.get(1)![n], 5);
  assert.equal(snap.bySlot.get(2)![n], 8);
});

Deno.test("CounterTable.retire() keeps an ended engine's counters under its slot and drops its gauges", () => {
  const memory = createCounterMemory(1, 2);
  const table = new CounterTable(memory);
  const done = table.column("done");
  const open = table.column("open", "gauge");
  table.attach(0, 1);
  table.row(0)[done] = 10;
  table.row(0)[open] = 3;
  table.retire(0);
  table.attach(1, 1); // its replacement
  table.row(1)[done] = 2;
  table.row(1)[open] = 1;
  const snap = table.read();
  assert.equal(snap.total[done], 12, "a counter never goes back");
  assert.equal(snap.total[open], 1, "the dead engine's connections are gone");
  table.attach(0, 1);
  assert.equal(table.read().total[done], 12, "a reused cell starts at zero");
});

Deno.test("CounterTable.column() refuses a long name and says -1 when full", () => {
  const table = new CounterTable(createCounterMemory(1, 1));
  assert.throws(() => table.column("x".repeat(MAX_NAME_BYTES + 1)), RangeError);
  for (let i = 0; i < MAX_NAMES; i++) table.column(`c${i}`);
  assert.equal(table.column("one too many"), -1);
  assert.equal(table.column("c7"), 7);
});

Deno.test("AppMetrics.render() over a shared table shows totals and each worker", () => {
  const memory = createCounterMemory(2, 4, ENGINE_COLUMNS);
  const table = new CounterTable(memory);
  const engines = [0, 1].map((cell) => {
    table.attach(cell, cell + 1);
    return {
      stats: new EngineStats(table.row(cell)),
      metrics: new AppMetrics({ table, cell }),
    };
  });
  engines[0].stats.requests = 3;
  engines[1].stats.requests = 4;
  engines[1].stats.active = 2;
  engines[0].metrics.record("/echo/{text}", 200);
  engines[1].metrics.record("/echo/{text}", 204);
  engines[1].metrics.rateLimited = 5;
  const lines = engines[0].metrics.render(engines[0].stats).split("\n");
  for (
    const line of [
      'spindle_http_requests_total{route="/echo/{text}",status="2xx"} 2',
      "spindle_requests_total 7",
      "spindle_connections_active 2",
      "spindle_rate_limited_total 5",
      'spindle_worker_requests_total{worker="1"} 3',
      'spindle_worker_requests_total{worker="2"} 4',
      'spindle_worker_connections_active{worker="2"} 2',
      'spindle_worker_restarts_total{worker="1"} 0',
      "# TYPE spindle_worker_connections_active gauge",
    ]
  ) assert.ok(lines.includes(line), line);
});
