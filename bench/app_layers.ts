/**
 * What each layer of the default app costs per request, in-process: the
 * engine's own `Connection` over a fake socket (no syscalls, so the figures
 * hold steady on a busy machine), with the handler growing one layer at a
 * time: engine alone, router, each middleware, the whole default app, and
 * the static fallback.
 *
 *   deno bench --allow-read --allow-write --allow-env --unstable-net bench/app_layers.ts
 *
 * or, for a table of CPU time per request that holds on a busy machine
 * (`--rows WORD` runs the rows named so and those they add to; `--alone`
 * only the named rows, for `--cpu-prof`):
 *
 *   deno run --allow-read --allow-write --allow-env --unstable-net bench/app_layers.ts --rounds 30
 *
 * The table's last column is the heap bytes allocated per request (V8's own
 * count, the lowest of the rounds): it holds exactly on a busy machine, so
 * an allocation saved shows where CPU time cannot.
 *
 * Each bench serves {@link REQUESTS} keep-alive requests on one connection,
 * so the time Deno prints divided by REQUESTS is the cost of one request.
 * A layer's cost is the difference between its row and the row it adds to.
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { getHeapStatistics } from "node:v8";
import { DEFAULT_APP, DEFAULT_STATIC } from "../lib/app/settings.ts";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { AccessLog, setAccessLog } from "../lib/http/access_log.ts";
import { Connection } from "../lib/http/connection.ts";
import { DeadlineWheel, timeoutsOf } from "../lib/http/deadlines.ts";
import type { Handler, Reply } from "../lib/http/handler.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { batchNow } from "../lib/http/clock.ts";
import { parseHead } from "../lib/http/parser.ts";
import { OutBuffer, writeFields, writeFraming } from "../lib/http/response.ts";
import { AppMetrics } from "../lib/app/metrics.ts";
import { compression } from "../lib/app/middleware/compression.ts";
import { hostGuard } from "../lib/app/middleware/host_guard.ts";
import { Router } from "../lib/app/router.ts";
import { createApp } from "../lib/app/routes.ts";
import { staticFiles } from "../lib/app/static_files.ts";
import {
  createRateMemory,
  SharedRateLimiter,
} from "../lib/shared/rate_table.ts";
import { FakeSocket } from "./fake_socket.ts";

/** Requests per bench iteration (one connection). */
export const REQUESTS = 1000;
const PORT = 8080;
const encoder = new TextEncoder();

/** The head wrk sends. */
function wrkHead(path: string, extra = ""): Uint8Array {
  return encoder.encode(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\n${extra}\r\n`,
  );
}

/** A socket that hands over `request` (one or more requests) per read, `count` times, then EOF. */
class FakeConn extends FakeSocket {
  readonly localAddr: Deno.NetAddr = {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: PORT,
  };
  #left: number;

  constructor(readonly request: Uint8Array, count: number) {
    super();
    this.#left = count;
  }
  /** How much of the current copy of `request` was handed over. */
  #at = 0;
  read(into: Uint8Array): Promise<number | null> {
    if (this.#left === 0) return Promise.resolve(null);
    // As a socket does: no more than fits.
    const n = Math.min(into.length, this.request.length - this.#at);
    into.set(this.request.subarray(this.#at, this.#at + n));
    this.#at += n;
    if (this.#at === this.request.length) {
      this.#at = 0;
      this.#left--;
    }
    return Promise.resolve(n);
  }
}

const stats = new EngineStats();
const TIMEOUTS = timeoutsOf(DEFAULT_LIMITS);
/** Never advanced: the fake connections finish long before any deadline. */
const WHEEL = new DeadlineWheel(1000, TIMEOUTS.keepAliveMs);

/**
 * Serves `count` reads of `request` (one or more requests each) through
 * `handler` on one fake connection.
 */
export async function serveFake(
  handler: Handler,
  request: Uint8Array,
  count = REQUESTS,
  accessLog = false,
): Promise<number> {
  const conn = new FakeConn(request, count);
  const c = new Connection(conn as unknown as Deno.Conn, {
    limits: DEFAULT_LIMITS,
    handler,
    stats,
    secure: false,
    accessLog,
    onClose: () => {},
    timeouts: TIMEOUTS,
    keepAliveMs: () => TIMEOUTS.keepAliveMs,
    wheel: WHEEL,
  });
  await c.run();
  return conn.sent;
}

/** What bench/servers/bare_loop.ts sends: a fixed reply, no parse. */
const BARE_REPLY = encoder.encode(
  "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n" +
    "date: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\nhello",
);

/**
 * bench/servers/bare_loop.ts's loop on the fake socket: one fixed reply
 * per read. The floor any engine's row sits on in this harness.
 */
export async function serveBare(
  request: Uint8Array,
  count = REQUESTS,
): Promise<number> {
  const conn = new FakeConn(request, count);
  const buf = new Uint8Array(4096);
  while ((await conn.read(buf)) !== null) {
    for (let off = 0; off < BARE_REPLY.length;) {
      off += await conn.write(BARE_REPLY.subarray(off));
    }
  }
  return conn.sent;
}

const HELLO: Reply = Object.freeze({
  status: 200,
  headers: Object.freeze({ "content-type": "text/plain" }),
  body: "hello",
});

const server = {
  stats,
  hostname: "127.0.0.1",
  port: () => PORT,
};

/** `text/plain` as the default app's echo route sends it. */
const PLAIN = Object.freeze({ "content-type": "text/plain" });

/** A router with the echo route and `layers` of the default app's middleware. */
function routerWith(...layers: string[]): Handler {
  const router = new Router();
  if (layers.includes("metrics")) router.use(new AppMetrics().middleware());
  if (layers.includes("host")) {
    router.use(hostGuard({ hostname: "127.0.0.1", port: () => PORT })!);
  }
  if (layers.includes("compression")) router.use(compression());
  router.get(
    "/echo/{text}",
    (req): Reply => ({ status: 200, headers: PLAIN, body: req.params.text }),
    layers.includes("compression")
      ? { use: [compression({ minBytes: 0 })] }
      : undefined,
  );
  return router.handler();
}

const root = await Deno.makeTempDir({ prefix: "spindle_bench_" });
// 1 KiB of text, as bench/run.ts's static case serves.
await Deno.writeTextFile(`${root}/hello.txt`, "x".repeat(1023) + "\n");
const staticConfig = { ...DEFAULT_STATIC, root };
const appConfig = {
  ...DEFAULT_APP,
  static: staticConfig,
  uploads: `${root}/uploads`,
};
const app = createApp(appConfig, server);
const appRate = createApp({
  ...appConfig,
  rateLimit: { limit: 1e12, windowMs: 60_000 },
}, server);
/**
 * The store `--workers` engines count in (a table in shared memory, leases
 * of 64): bench case 16's shape, with room to spare for a fast machine.
 */
const sharedRate = { limit: 10_000_000, windowMs: 1_000 };
const appRateShared = createApp({ ...appConfig, rateLimit: sharedRate }, {
  ...server,
  rateLimitStore: new SharedRateLimiter(
    sharedRate,
    createRateMemory(10_000),
  ),
});
const appCors = createApp({ ...appConfig, cors: "*" }, server);

const ECHO = wrkHead("/echo/hello");
const ECHO_GZIP = wrkHead("/echo/hello", "Accept-Encoding: gzip\r\n");
const ECHO_ORIGIN = wrkHead("/echo/hello", "Origin: https://a.test\r\n");
/** Pipelined requests per read, as bench case 4 sends (wrk's pipeline script). */
const PIPELINE = 16;
/** {@link PIPELINE} echo requests in one read. */
const ECHO_PIPELINED = (() => {
  const batch = new Uint8Array(ECHO.length * PIPELINE);
  for (let i = 0; i < PIPELINE; i++) batch.set(ECHO, i * ECHO.length);
  return batch;
})();
const FILE = wrkHead("/hello.txt");
/**
 * What Chrome sends for a page typed into its address bar: 16 fields, as
 * a browser's head is (wrk's has one), a cookie among them.
 */
const browserHead = (path: string) =>
  wrkHead(
    path,
    [
      "Connection: keep-alive",
      "Cache-Control: max-age=0",
      'sec-ch-ua: "Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
      "sec-ch-ua-mobile: ?0",
      'sec-ch-ua-platform: "Linux"',
      "Upgrade-Insecure-Requests: 1",
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 " +
      "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9," +
      "image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
      "Sec-Fetch-Site: none",
      "Sec-Fetch-Mode: navigate",
      "Sec-Fetch-User: ?1",
      "Sec-Fetch-Dest: document",
      "Accept-Encoding: gzip, deflate, br, zstd",
      "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8",
      "Cookie: theme=dark; session=4f9a1c0e7b2d48e5a6c3f1b09d8e7a65; _ga=GA1.1.1234567890.1733480000",
      "",
    ].join("\r\n"),
  );
const BROWSER = browserHead("/echo/hello");
/** The same head for the static file: gzip from memory, four absent If-* fields. */
const BROWSER_FILE = browserHead("/hello.txt");

/**
 * The least a strict engine does over the bare loop, for the table's
 * lower bound: each read's head parsed by the engine's own `parseHead()`
 * (every RFC 9112 check, the Latin-1 text, the Host value), and with
 * `reply` the frozen reply written by the engine's writer (status line
 * with Date and nosniff, the fields, Content-Length and Keep-Alive, the
 * body) instead of a fixed one. No deadlines, counters, dispatch or
 * keep-alive decision: what is left of the engine's row over this one is
 * its connection loop. The reply reads the batch clock as the engine
 * does (here each read is a batch of its own: ~60 ns that sockets share
 * among a turn's reads).
 */
export async function serveMinimal(
  request: Uint8Array,
  count: number,
  reply: boolean,
): Promise<number> {
  const conn = new FakeConn(request, count);
  const buf = new Uint8Array(4096);
  const out = new OutBuffer();
  let n: number | null;
  while ((n = await conn.read(buf)) !== null) {
    const head = parseHead(buf, 0, n, DEFAULT_LIMITS);
    if (head.host === undefined) throw new Error("no Host");
    let bytes: Uint8Array = BARE_REPLY;
    if (reply) {
      writeFields(out, HELLO.status, HELLO.headers, batchNow());
      writeFraming(out, 5, false, false, false, TIMEOUTS.keepAliveMs);
      out.text(HELLO.body as string);
      bytes = out.take();
    }
    for (let off = 0; off < bytes.length;) {
      off += await conn.write(bytes.subarray(off));
    }
  }
  return conn.sent;
}

/** One row of the table: what it serves and the row its cost adds to. */
interface Case {
  readonly name: string;
  readonly handler: Handler;
  readonly request: Uint8Array;
  /** The row this one adds a layer to. */
  readonly over?: string;
  /** With the access log on (to a sink that drops the lines). */
  readonly accessLog?: boolean;
  /** The bare read/write loop instead of the engine (`handler` unused). */
  readonly bare?: boolean;
  /** {@link serveMinimal} instead of the engine: "parse", or with "reply". */
  readonly minimal?: "parse" | "reply";
  /** Requests in each read (`request` holds that many); 1 unless told. */
  readonly perRead?: number;
}

export const cases: readonly Case[] = [
  {
    name: "bare read/write loop (the floor)",
    handler: () => HELLO,
    request: ECHO,
    bare: true,
  },
  {
    name: "bare loop + parseHead() (engine's parse alone)",
    handler: () => HELLO,
    request: ECHO,
    bare: true,
    minimal: "parse",
    over: "bare read/write loop (the floor)",
  },
  {
    name: "bare loop + parseHead() + reply writer",
    handler: () => HELLO,
    request: ECHO,
    bare: true,
    minimal: "reply",
    over: "bare loop + parseHead() (engine's parse alone)",
  },
  {
    name: "engine alone (frozen reply)",
    handler: () => HELLO,
    request: ECHO,
    over: "bare loop + parseHead() + reply writer",
  },
  {
    name: "engine alone, a browser's head",
    handler: () => HELLO,
    request: BROWSER,
    over: "engine alone (frozen reply)",
  },
  {
    name: "router, /echo/{text}",
    handler: routerWith(),
    request: ECHO,
    over: "engine alone (frozen reply)",
  },
  {
    name: "+ metrics",
    handler: routerWith("metrics"),
    request: ECHO,
    over: "router, /echo/{text}",
  },
  {
    name: "+ host guard",
    handler: routerWith("metrics", "host"),
    request: ECHO,
    over: "+ metrics",
  },
  {
    name: "+ compression (no Accept-Encoding)",
    handler: routerWith("metrics", "host", "compression"),
    request: ECHO,
    over: "+ host guard",
  },
  {
    name: "default app (createApp)",
    handler: app,
    request: ECHO,
    over: "+ compression (no Accept-Encoding)",
  },
  {
    name: "default app + access log",
    handler: app,
    request: ECHO,
    accessLog: true,
    over: "default app (createApp)",
  },
  {
    name: "default app + access log, 16 pipelined",
    handler: app,
    request: ECHO_PIPELINED,
    perRead: PIPELINE,
    accessLog: true,
    over: "default app + access log",
  },
  {
    name: "default app + access log, a browser's head",
    handler: app,
    request: BROWSER,
    accessLog: true,
    over: "default app + access log",
  },
  {
    name: "default app, Accept-Encoding: gzip",
    handler: app,
    request: ECHO_GZIP,
    over: "default app (createApp)",
  },
  {
    name: "default app + --rate-limit",
    handler: appRate,
    request: ECHO,
    over: "default app (createApp)",
  },
  {
    name: "default app + --rate-limit, shared table (--workers)",
    handler: appRateShared,
    request: ECHO,
    over: "default app (createApp)",
  },
  {
    name: "default app + --cors '*', with Origin",
    handler: appCors,
    request: ECHO_ORIGIN,
    over: "default app (createApp)",
  },
  {
    name: "staticFiles() alone, 1 KiB file",
    handler: staticFiles(staticConfig),
    request: FILE,
    over: "engine alone (frozen reply)",
  },
  {
    name: "default app, static fallback",
    handler: app,
    request: FILE,
    over: "staticFiles() alone, 1 KiB file",
  },
  {
    name: "default app, static fallback, a browser's head",
    handler: app,
    request: BROWSER_FILE,
    over: "default app, static fallback",
  },
  {
    name: "default app, static fallback + access log",
    handler: app,
    request: FILE,
    accessLog: true,
    over: "default app, static fallback",
  },
];

/**
 * The access log writes to a sink that drops the bytes: its own cost only.
 * A fresh log each run: `setAccessLog(undefined)` closes the one it
 * replaces, and a closed log drops lines before formatting them.
 */
function sink(): AccessLog {
  return new AccessLog({
    format: "text",
    output: { writeSync: (b) => b.length },
  });
}

/** Heap bytes V8 has allocated so far (Deno's node:v8 has it; its types do not). */
function allocatedBytes(): number {
  return Number(Reflect.get(getHeapStatistics(), "total_allocated_bytes"));
}

/** Serves `count` requests of one row. */
function runCase(row: Case, requests = REQUESTS): Promise<number> {
  const count = Math.ceil(requests / (row.perRead ?? 1));
  if (row.minimal !== undefined) {
    return serveMinimal(row.request, count, row.minimal === "reply");
  }
  if (row.bare) return serveBare(row.request, count);
  if (!row.accessLog) return serveFake(row.handler, row.request, count);
  setAccessLog(sink());
  return serveFake(row.handler, row.request, count, true).finally(() =>
    setAccessLog(undefined)
  );
}

for (const row of cases) {
  // Warm caches (file lookups, encoded headers) and check there is a reply.
  if (await runCase(row, 2) === 0) throw new Error(`${row.name}: no reply`);
}

if (import.meta.main) {
  // deno run: interleaved rounds, the median of each row, in CPU ns per
  // request: steadier than Deno.bench's wall-clock mean when other work
  // shares the cores.
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "30" },
      rows: { type: "string", default: "" },
      alone: { type: "boolean", default: false },
    },
  });
  const rounds = Number(values.rounds);
  // --rows WORD picks rows by name, with the rows they add to unless --alone
  // (for a --cpu-prof of one row).
  const picked = new Set(cases.filter((c) => c.name.includes(values.rows)));
  if (!values.alone) {
    for (const row of [...picked].reverse()) {
      for (let c = row; c.over !== undefined;) {
        c = cases.find((b) => b.name === c.over)!;
        picked.add(c);
      }
    }
  }
  const rows = cases.filter((c) => picked.has(c));
  const times = rows.map(() => [] as number[]);
  /** Heap bytes per request, the lowest of the rounds. */
  const allocated = rows.map(() => Infinity);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < rows.length; i++) {
      const bytes = allocatedBytes();
      const t = cpuUsage();
      await runCase(rows[i]);
      const used = cpuUsage(t);
      const served = Math.ceil(REQUESTS / (rows[i].perRead ?? 1)) *
        (rows[i].perRead ?? 1);
      allocated[i] = Math.min(
        allocated[i],
        (allocatedBytes() - bytes) / served,
      );
      times[i].push((used.user + used.system) * 1e3 / served);
    }
  }
  const medians = new Map<string, number>();
  console.log(
    "| Handler | CPU ns per request (median) | min | added | heap B per request |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (let i = 0; i < rows.length; i++) {
    const sorted = times[i].sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1];
    const { name, over } = rows[i];
    medians.set(name, median);
    const base = over === undefined ? undefined : medians.get(over);
    const added = base === undefined ? "" : String(Math.round(median - base));
    console.log(
      `| ${name} | ${Math.round(median)} | ${
        Math.round(sorted[0])
      } | ${added} | ${Math.round(allocated[i])} |`,
    );
  }
} else {
  for (const row of cases) {
    Deno.bench({
      name: row.name,
      baseline: row.over === undefined,
      fn: async () => {
        await runCase(row);
      },
    });
  }
}

globalThis.addEventListener("unload", () => {
  Deno.removeSync(root, { recursive: true });
});
