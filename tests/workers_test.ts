/**
 * WorkerPool: real Worker threads on one port (reusePort), supervised:
 * replaced when they die, swapped on reload, stopped on shutdown.
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { backoffMs, WorkerPool } from "../lib/http/workers.ts";
import { sleep, waitFor } from "./helpers/socket.ts";
import { freePort } from "../deploy/procs.ts";

const ENTRY = new URL("./fixtures/pool_worker.ts", import.meta.url);

interface Ended {
  readonly cell: number;
  readonly slot: number;
  readonly died: boolean;
  readonly at: number;
}

/** A pool of `size` fixture workers; `fail(slot, n)` fails the nth start of a slot. */
async function startPool(
  size: number,
  fail: (slot: number, n: number) => boolean = () => false,
) {
  const port = freePort();
  const starts = new Map<number, number>();
  const startedAt: { slot: number; at: number }[] = [];
  const ended: Ended[] = [];
  const pool = await WorkerPool.start({
    entry: ENTRY,
    size,
    args: [],
    cells: 2 * size + 2,
    share: (cell, slot) => {
      const n = (starts.get(slot) ?? 0) + 1;
      starts.set(slot, n);
      startedAt.push({ slot, at: performance.now() });
      return { port, id: `${slot}.${n}`, fail: fail(slot, n), cell };
    },
    release: (cell, slot, died) =>
      ended.push({ cell, slot, died, at: performance.now() }),
    stopTimeoutMs: 2000,
  });
  return {
    pool,
    port,
    ended,
    startedAt,
    [Symbol.asyncDispose]: () => pool.shutdown(),
  };
}

/** The id of the worker that answers a fresh connection to `path`. */
async function ask(port: number, path = "/"): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: { connection: "close" },
  });
  assert.equal(res.status, 200);
  return await res.text();
}

/** As {@link ask}, waiting out a moment with no worker listening. */
async function askSoon(port: number, path = "/"): Promise<string> {
  for (let tries = 1;; tries++) {
    try {
      return await ask(port, path);
    } catch (err) {
      if (tries === 100) throw err;
      await sleep(50);
    }
  }
}

/**
 * Asks until every id in `want` answered (connections spread by hash), for
 * up to 30 s: a worker just started may take a while to listen on a busy
 * machine (500 quick asks once missed a replacement).
 */
async function seeAll(
  port: number,
  want: (ids: Set<string>) => boolean,
  asker = ask,
) {
  const ids = new Set<string>();
  const until = Date.now() + 30_000;
  while (!want(ids) && Date.now() < until) ids.add(await asker(port));
  return ids;
}

Deno.test("backoffMs() replaces at once, then doubles from 100 ms up to 30 s", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(backoffMs),
    [0, 100, 200, 400, 800],
  );
  assert.equal(backoffMs(20), 30_000);
});

Deno.test("WorkerPool serves from every worker on one port", async () => {
  await using p = await startPool(2);
  const ids = await seeAll(p.port, (s) => s.size === 2);
  assert.deepEqual([...ids].sort(), ["1.1", "2.1"]);
});

Deno.test("WorkerPool replaces a worker that throws while the other keeps serving", async () => {
  await using p = await startPool(2);
  const crashed = await ask(p.port, "/crash");
  const slot = Number(crashed.split(".")[0]);
  await waitFor(() => p.ended.some((e) => e.died), "the death");
  assert.deepEqual(
    p.ended.map(({ slot, died }) => ({ slot, died })),
    [{ slot, died: true }],
  );
  // Connections made once it is gone all reach a live worker.
  for (let i = 0; i < 30; i++) await ask(p.port);
  const ids = await seeAll(p.port, (s) => s.has(`${slot}.2`));
  assert.ok(ids.has(`${slot}.2`), `no replacement among ${[...ids]}`);
  assert.equal(p.pool.running, 2);
});

Deno.test("WorkerPool backs off while a slot keeps dying", async () => {
  // The delay the pool chose for each death, as it logs it.
  const deaths: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (record: LogRecord) => deaths.push(record) },
    loggers: [
      {
        category: ["spindle", "workers"],
        lowestLevel: "error",
        sinks: ["capture"],
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await using p = await startPool(1);
    // One worker: between a death and its replacement nobody listens.
    for (let n = 1; n <= 3; n++) {
      await seeAll(p.port, (s) => s.has(`1.${n}`), askSoon);
      await askSoon(p.port, "/crash");
      await waitFor(() => p.ended.length === n, "the death");
    }
    await waitFor(() => p.startedAt.length === 4, "the third replacement");
    assert.deepEqual(
      deaths.filter((r) => r.properties.event === "worker-died")
        .map((r) => r.properties.delayMs),
      [0, 100, 200],
    );
    // And the pool waited them: a lower bound only, as a busy machine can
    // only make a replacement later.
    const waited = (n: number) => p.startedAt[n].at - p.ended[n - 1].at;
    assert.ok(waited(2) >= 90, `second replacement waited ${waited(2)} ms`);
    assert.ok(waited(3) >= 190, `third replacement waited ${waited(3)} ms`);
  } finally {
    await reset();
  }
});

Deno.test("WorkerPool.reload() puts a fresh worker in each slot, the old ones drain, no request fails", async () => {
  await using p = await startPool(2);
  let failures = 0;
  let asked = 0;
  let running = true;
  // Kept-alive connections, as browsers and wrk keep them: each old worker
  // closes its own only with a reply that says so, or once idle.
  const client = Deno.createHttpClient({});
  const load = (async () => {
    while (running) {
      try {
        const res = await fetch(`http://127.0.0.1:${p.port}/`, { client });
        await res.text();
        if (res.ok) asked++;
        else failures++;
      } catch {
        failures++;
      }
    }
  })();
  const result = await p.pool.reload();
  await waitFor(() => p.ended.length === 2, "the old workers to end");
  running = false;
  await load;
  client.close();
  assert.deepEqual(result, { reloaded: 2, failures: [] });
  assert.equal(failures, 0, `${failures} of ${asked + failures} failed`);
  assert.deepEqual(p.ended.map((e) => e.died), [false, false]);
  const ids = await seeAll(p.port, (s) => s.size === 2);
  assert.deepEqual([...ids].sort(), ["1.2", "2.2"]);
});

Deno.test("WorkerPool.reload() keeps a slot's old worker when its fresh one fails to start", async () => {
  await using p = await startPool(2, (slot, n) => slot === 2 && n === 2);
  const result = await p.pool.reload();
  assert.equal(result.reloaded, 1);
  assert.match(result.failures.join(), /worker 2: 2\.2 refuses to start/);
  const ids = await seeAll(p.port, (s) => s.size === 2);
  assert.deepEqual([...ids].sort(), ["1.2", "2.1"]);
});

Deno.test("WorkerPool.start() rejects with the failure's exit code and stops the rest", async () => {
  const port = freePort();
  const ended: number[] = [];
  await assert.rejects(
    WorkerPool.start({
      entry: ENTRY,
      size: 2,
      args: [],
      cells: 6,
      share: (_cell, slot) => ({ port, id: `${slot}.1`, fail: slot === 2 }),
      release: (cell) => ended.push(cell),
      stopTimeoutMs: 2000,
    }),
    (err: Error & { code?: number }) => {
      assert.match(err.message, /2\.1 refuses to start/);
      assert.equal(err.code, 2);
      return true;
    },
  );
  assert.deepEqual(ended.sort(), [0, 1]);
  // Nothing listens on the port any more.
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("WorkerPool swaps in a fresh worker for one whose heap passed its budget", async () => {
  await using p = await startPool(1);
  await ask(p.port, "/exhausted");
  await waitFor(() => p.ended.length === 1, "the old worker to end");
  assert.equal(p.ended[0].died, false, "drained, not dead");
  assert.equal(await ask(p.port), "1.2");
  await sleep(0);
});
