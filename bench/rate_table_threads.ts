/**
 * The shared rate table under two engines at once: CPU ns per operation
 * (the process's user + system time over every operation of every thread,
 * which holds better than wall time on a busy machine) when two threads
 * (real Workers) hammer one client's entry, or two clients' entries,
 * against one thread alone. Rounds alternate the layouts; the median of
 * each is printed.
 *
 *   deno run -A bench/rate_table_threads.ts [--rounds 7] [--ops 2000000] [--lib DIR]
 *
 * `--lib DIR` loads `DIR/lib/shared/rate_table.ts` (a clone of another
 * commit) in place of this one's, for a before/after on the same machine.
 * Operations:
 * - take: `SharedRateTable.take()` one request at a time (a budget under
 *   512: every request reaches the shared entry);
 * - hit: `SharedRateLimiter.hit()` on a 10^9 budget (what `--rate-limit
 *   1000000/1s` does per request, leases and all).
 */
/// <reference lib="deno.worker" />
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

interface Task {
  readonly lib: string;
  readonly op: "take" | "hit";
  readonly key: string;
  readonly ops: number;
  readonly memory: Int32Array;
  readonly start: Int32Array;
}

interface Done {
  readonly allowed: number;
}

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown })
  .WorkerGlobalScope !== "undefined";

if (inWorker) {
  self.onmessage = async (e: MessageEvent<Task>) => {
    const t = e.data;
    const mod = await import(t.lib);
    const run = operation(mod, t);
    run(20_000); // warm up the JIT before the start line
    Atomics.add(t.start, 1, 1);
    Atomics.notify(t.start, 1);
    Atomics.wait(t.start, 0, 0); // every thread starts at once
    const allowed = run(t.ops);
    self.postMessage({ allowed } satisfies Done);
  };
} else {
  await main();
}

// deno-lint-ignore no-explicit-any
function operation(mod: any, t: Task): (n: number) => number {
  if (t.op === "take") {
    const table = new mod.SharedRateTable(t.memory);
    return (n) => {
      let allowed = 0;
      for (let i = 0; i < n; i++) {
        if (table.take(t.key, 7, 0, 1e9).taken) allowed++;
      }
      return allowed;
    };
  }
  const policy = { limit: 1e9, windowMs: 60_000 };
  const limiter = new mod.SharedRateLimiter(policy, t.memory, () => 7 * 60_000);
  return (n) => {
    let allowed = 0;
    for (let i = 0; i < n; i++) if (limiter.hit(t.key).allowed) allowed++;
    return allowed;
  };
}

async function main(): Promise<void> {
  const args = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "7" },
      ops: { type: "string", default: "2000000" },
      lib: { type: "string" },
    },
  });
  const rounds = Number(args.values.rounds);
  const ops = Number(args.values.ops);
  const lib = args.values.lib === undefined
    ? new URL("../lib/shared/rate_table.ts", import.meta.url).href
    : pathToFileURL(resolve(args.values.lib, "lib/shared/rate_table.ts")).href;
  const { createRateMemory } = await import(lib);
  const layouts: Record<string, string[]> = {
    "1 thread": ["10.0.0.1"],
    "2 threads, one key": ["10.0.0.1", "10.0.0.1"],
    "2 threads, two keys": ["10.0.0.1", "10.0.0.2"],
  };
  for (const op of ["take", "hit"] as const) {
    const ns = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const [name, keys] of Object.entries(layouts)) {
        const memory = createRateMemory(10_000);
        const { done: got, cpuNs } = await inThreads(keys, {
          lib,
          op,
          ops,
          memory,
        });
        const all = ns.get(name) ?? [];
        all.push(cpuNs / (ops * keys.length));
        ns.set(name, all);
        const allowed = got.reduce((s, d) => s + d.allowed, 0);
        if (allowed !== ops * keys.length) {
          throw new Error(`${op} ${name}: ${allowed} allowed`);
        }
      }
    }
    for (const [name, all] of ns) {
      console.log(
        `${op.padEnd(4)} ${name.padEnd(20)} ${
          median(all).toFixed(1).padStart(7)
        } CPU ns/op (rounds ${all.map((n) => n.toFixed(0)).join(" ")})`,
      );
    }
  }
}

/** Runs one worker per key, all released at once; their results, and the CPU they took. */
async function inThreads(
  keys: readonly string[],
  t: Omit<Task, "key" | "start">,
): Promise<{ done: Done[]; cpuNs: number }> {
  const start = new Int32Array(new SharedArrayBuffer(8));
  const workers = keys.map(() =>
    new Worker(import.meta.url, { type: "module" })
  );
  try {
    const done = workers.map((w, i) =>
      new Promise<Done>((ok, fail) => {
        w.onmessage = (e) => ok(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          fail(new Error(e.message));
        };
        w.postMessage({ ...t, key: keys[i], start } satisfies Task);
      })
    );
    for (let n; (n = Atomics.load(start, 1)) < keys.length;) {
      const wait = Atomics.waitAsync(start, 1, n);
      if (wait.async) await wait.value;
    }
    const before = cpuUsage();
    Atomics.store(start, 0, 1);
    Atomics.notify(start, 0);
    const results = await Promise.all(done);
    const used = cpuUsage(before);
    return { done: results, cpuNs: (used.user + used.system) * 1000 };
  } finally {
    for (const w of workers) w.terminate();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
