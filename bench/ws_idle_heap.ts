/**
 * What an idle WebSocket on the default app's `/echo` holds, in-process:
 * the engine serves on a real port in this process, a child process
 * (`bench/clients.ts hold-ws`) opens the sockets and holds them, and the
 * figures are this process's heap after a full collection (live objects
 * only, steady on a busy machine), before the collection (what case 15c's
 * RSS sees: live objects plus the handshakes' garbage not yet collected),
 * and the heap bytes V8 allocated per upgrade. Run with the GC exposed:
 *
 *   deno run --v8-flags=--expose-gc --allow-net --allow-read --allow-write \
 *     --allow-run --allow-env --unstable-net bench/ws_idle_heap.ts [-n 5000] [--rounds 3]
 */
import { parseArgs } from "node:util";
import { getHeapStatistics } from "node:v8";
import { DEFAULT_APP, DEFAULT_STATIC } from "../lib/app/settings.ts";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { createApp } from "../lib/app/routes.ts";
import { serve } from "../lib/http/server.ts";
import { EngineStats } from "../lib/http/stats.ts";

const HOLDER = new URL("./clients.ts", import.meta.url).pathname;
const KIB = 1024;

/** A full collection, twice (finalizers may free more the second time). */
function collect(): void {
  const gc = Reflect.get(globalThis, "gc") as (() => void) | undefined;
  if (gc === undefined) {
    throw new Error("Run with --v8-flags=--expose-gc");
  }
  gc();
  gc();
}

function heap(): { used: number; total: number; external: number } {
  const m = Deno.memoryUsage();
  return { used: m.heapUsed, total: m.heapTotal, external: m.external };
}

function allocatedBytes(): number {
  return Number(Reflect.get(getHeapStatistics(), "total_allocated_bytes"));
}

/** Holds `count` idle WebSockets on /echo of `port` until the returned function is called. */
async function hold(
  port: number,
  count: number,
): Promise<{ held: number; release: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      HOLDER,
      "hold-ws",
      "127.0.0.1",
      String(port),
      "/echo",
      String(count),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    line += value;
  }
  const { held } = JSON.parse(line) as { held?: number };
  if (typeof held !== "number") throw new Error(`Holder said: ${line}`);
  return {
    held,
    release: async () => {
      await child.stdin.close();
      await reader.cancel();
      await child.status;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      n: { type: "string", short: "n", default: "5000" },
      rounds: { type: "string", default: "3" },
    },
  });
  const count = Number(values.n);
  const root = await Deno.makeTempDir({ prefix: "spindle_ws_idle_" });
  const stats = new EngineStats();
  let port = 0;
  const limits = { ...DEFAULT_LIMITS, maxConns: count + 100 };
  const handler = createApp({
    ...DEFAULT_APP,
    static: { ...DEFAULT_STATIC, root },
    uploads: `${root}/uploads`,
  }, { stats, hostname: "127.0.0.1", port: () => port, limits });
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    accessLog: false,
    limits,
    stats,
  }, handler);
  port = server.port;
  // Warm up: the upgrade path compiled before the first round.
  (await (await hold(port, 200)).release)();
  await sleep(300);
  console.log(
    `${count} idle WebSockets on /echo, KiB per socket: live heap (after GC) | heap used, heap total before GC | external | allocated per upgrade`,
  );
  for (let round = 1; round <= Number(values.rounds); round++) {
    collect();
    const before = heap();
    const allocated = allocatedBytes();
    const holder = await hold(port, count);
    await sleep(500);
    const upgrade = (allocatedBytes() - allocated) / holder.held;
    const busy = heap();
    collect();
    const live = heap();
    const per = (a: number, b: number) =>
      ((a - b) / holder.held / KIB).toFixed(2);
    console.log(
      `round ${round}: ${per(live.used, before.used)} | ${
        per(busy.used, before.used)
      }, ${per(busy.total, before.total)} | ${
        per(live.external, before.external)
      } | ${(upgrade / KIB).toFixed(2)}`,
    );
    await holder.release();
    await sleep(300);
  }
  await Deno.remove(root, { recursive: true });
}
