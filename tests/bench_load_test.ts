/**
 * The bench's own logic: if it miscounts, it reports nonsense. bench/load.ts
 * (the fallback load generator) is held to what a tiny server really wrote;
 * the runner's rounds, paired ratios, CPU accounting over a process tree,
 * report and SVG chart are held to known inputs and real processes.
 */
import assert from "node:assert/strict";
import {
  barLength,
  escapeXml,
  MAX_SCORE,
  renderChart,
} from "../bench/chart.ts";
import {
  CASES,
  engineRows,
  engineSpecs,
  errorsOf,
  workersRows,
  wsLargeRowOf,
  wsSmallRows,
} from "../bench/cases.ts";
import { IdleHolder } from "../bench/clients.ts";
import {
  h2loadGenerator,
  parseH2loadOutput,
  parseWrkOutput,
  toolFailed,
  wrkGenerator,
} from "../bench/generators.ts";
import {
  ResponseScanner,
  runLoad,
  UncountableResponseError,
} from "../bench/load.ts";
import {
  bash,
  freePort,
  listenerPid,
  nginxConfig,
  pinned,
  placements,
  spawnTree,
  treeCpuReading,
  treeCpuSeconds,
  treePids,
} from "../bench/procs.ts";
import {
  cpuLadder,
  PARSE_REPLY_CPU,
  renderTable,
  type Row,
  verdictOf,
} from "../bench/report.ts";
import {
  type Bench,
  clean,
  cores,
  describeMeasured,
  type Measured,
  measureOnce,
  noAnswerReason,
  type ServerSpec,
} from "../bench/measure.ts";
import { selectCases } from "../bench/run.ts";
import {
  bareLoopWorkers,
  defaultApp,
  denoServeParallel,
  denoServeWs,
  spindleWsWeb,
  wsFloor,
  wsFloorWeb,
} from "../bench/specs.ts";
import {
  FrameCounter,
  maskedFrame,
  openWebSocket,
  runWsLoad,
} from "../bench/ws_load.ts";
import { serve } from "../lib/http/server.ts";
import { FrameParser } from "../lib/http/ws/frame.ts";
import { upgradeWebSocket } from "../lib/http/ws_connection.ts";
import { concat as concatBytes, lacks } from "./helpers/socket.ts";
import {
  atLeast,
  atMost,
  cpuBetween,
  cpuListSize,
  cpuMicrosPerUnit,
  type CpuReading,
  impossibleCpu,
  listeningInodes,
  median,
  pairedRatios,
  parseStat,
  roundOrder,
  statTicks,
  summarizePaired,
} from "../bench/stats.ts";

const encoder = new TextEncoder();

function response(status: number, body: string, extra = ""): string {
  return `HTTP/1.1 ${status} X\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`;
}

/** Feeds `bytes` in pieces cut at `cuts` as a connection would, keeping unfinished heads. */
function scanInPieces(bytes: Uint8Array, cuts: number[]): ResponseScanner {
  const scanner = new ResponseScanner();
  const buf = new Uint8Array(bytes.length);
  let end = 0;
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    buf.set(bytes.subarray(from, cut), end);
    end += cut - from;
    from = cut;
    const used = scanner.scan(buf, 0, end);
    buf.copyWithin(0, used, end);
    end -= used;
  }
  return scanner;
}

const streams: [name: string, raw: string, responses: number, bad: number][] = [
  ["one small response", response(200, "hello"), 1, 0],
  ["empty body", response(200, ""), 1, 0],
  [
    "header names in any case",
    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nCONTENT-LENGTH:2\r\n\r\nxy",
    2,
    0,
  ],
  [
    "body holding CRLF CRLF",
    response(200, "\r\n\r\nHTTP/1.1 200 X\r\n\r\n") + response(200, "z"),
    2,
    0,
  ],
  [
    "304 and 204 with no body",
    "HTTP/1.1 304 N\r\nContent-Length: 99\r\n\r\nHTTP/1.1 204 N\r\n\r\n",
    2,
    0,
  ],
  [
    "error statuses counted apart",
    response(404, "nope") + response(500, "") + response(301, ""),
    3,
    2,
  ],
  [
    "several headers",
    response(
      200,
      "ok",
      "Date: x\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n",
    ).repeat(3),
    3,
    0,
  ],
];

for (const [name, raw, responses, bad] of streams) {
  Deno.test(`ResponseScanner.scan() counts ${responses} for ${name}, cut anywhere`, () => {
    const bytes = encoder.encode(raw);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const scanner = scanInPieces(bytes, [cut]);
      assert.equal(scanner.responses, responses, `cut at ${cut}`);
      assert.equal(scanner.errorStatuses, bad, `cut at ${cut}`);
    }
    const byteByByte = scanInPieces(
      bytes,
      Array.from({ length: bytes.length }, (_, i) => i),
    );
    assert.equal(byteByByte.responses, responses, "one byte at a time");
  });
}

Deno.test("ResponseScanner.scan() does not count a response still missing body bytes", () => {
  const bytes = encoder.encode(response(200, "hello"));
  const scanner = scanInPieces(bytes.subarray(0, bytes.length - 1), []);
  assert.equal(scanner.responses, 0);
});

Deno.test("ResponseScanner.scan() notes Connection: close once that response is complete", () => {
  const bytes = encoder.encode(response(200, "bye", "Connection: Close\r\n"));
  assert.equal(
    scanInPieces(bytes.subarray(0, bytes.length - 1), []).closeSeen,
    false,
  );
  assert.equal(scanInPieces(bytes, []).closeSeen, true);
});

const uncountable: [name: string, raw: string][] = [
  [
    "chunked body",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  ],
  [
    "no Content-Length",
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
  ],
];
for (const [name, raw] of uncountable) {
  Deno.test(`ResponseScanner.scan() throws rather than guess, for ${name}`, () => {
    assert.throws(
      () => scanInPieces(encoder.encode(raw), []),
      UncountableResponseError,
    );
  });
}

/** A raw TCP server answering each request; it counts what it wrote. */
interface TinyServer extends AsyncDisposable {
  readonly port: number;
  readonly responses: number;
  readonly bytes: number;
}

/**
 * Answers every request (a GET, so ended by CRLF CRLF) with `reply(n)`,
 * written in two pieces to split heads across reads. After `closeAfter`
 * responses on one connection it closes that connection.
 */
function startTinyServer(
  reply: (n: number, last: boolean) => string,
  closeAfter = Infinity,
): TinyServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const handlers: Promise<void>[] = [];
  let responses = 0;
  let bytes = 0;

  async function handle(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    let served = 0;
    try {
      for (let n; (n = await conn.read(buf)) !== null;) {
        pending += new TextDecoder().decode(buf.subarray(0, n));
        const parts = pending.split("\r\n\r\n");
        pending = parts.pop()!;
        for (let i = 0; i < parts.length; i++) {
          served++;
          const last = served >= closeAfter;
          const out = encoder.encode(reply(responses, last));
          const half = Math.floor(out.length / 2);
          await conn.write(out.subarray(0, half));
          await conn.write(out.subarray(half));
          responses++;
          bytes += out.length;
          if (last) return;
        }
      }
    } catch {
      // the client closed at its deadline
    } finally {
      if (conns.delete(conn)) conn.close();
    }
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conn.setNoDelay(true); // the two pieces must not wait on delayed ACKs
        conns.add(conn);
        handlers.push(handle(conn));
      }
    } catch {
      // listener closed
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get responses() {
      return responses;
    },
    get bytes() {
      return bytes;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        conns.delete(conn);
        conn.close();
      }
      await Promise.all(handlers);
    },
  };
}

const loads: [connections: number, pipeline: number][] = [[1, 1], [3, 1], [
  2,
  4,
]];
for (const [connections, pipeline] of loads) {
  Deno.test(`runLoad() counts what the server wrote, ${connections} conns x ${pipeline} pipelined`, async () => {
    await using server = startTinyServer((n) =>
      response(200, "x".repeat(n % 50))
    );
    const result = await runLoad({
      hostname: "127.0.0.1",
      port: server.port,
      path: "/",
      connections,
      durationMs: 300,
      pipeline,
    });
    assert.ok(result.requests > 50, `only ${result.requests} responses`);
    // Responses in flight at the deadline were written but not counted.
    assert.ok(
      result.requests <= server.responses,
      `${result.requests} > ${server.responses}`,
    );
    assert.ok(
      result.requests >= server.responses - connections * pipeline,
      `${result.requests} counted, ${server.responses} written`,
    );
    assert.ok(result.bytes <= server.bytes);
    assert.equal(result.errorStatuses, 0);
    assert.equal(result.socketErrors, 0);
    assert.equal(result.connects, connections);
    assert.ok(
      Math.abs(
        result.requestsPerSec - result.requests / (result.durationMs / 1000),
      ) < 1e-6,
    );
  });
}

Deno.test("runLoad() counts error statuses apart, when the server answers 503", async () => {
  await using server = startTinyServer(() => response(503, "busy"));
  const result = await runLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/",
    connections: 2,
    durationMs: 200,
    pipeline: 1,
  });
  assert.ok(result.requests > 0);
  assert.equal(result.errorStatuses, result.requests);
});

Deno.test("runLoad() reconnects without an error, when the server closes after Connection: close", async () => {
  await using server = startTinyServer(
    (_, last) => response(200, "ok", last ? "Connection: close\r\n" : ""),
    3,
  );
  const result = await runLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/",
    connections: 2,
    durationMs: 300,
    pipeline: 1,
  });
  assert.equal(result.socketErrors, 0, result.firstError);
  assert.ok(result.connects > 2 * 5, `only ${result.connects} connects`);
  assert.ok(result.requests >= (result.connects - 2) * 3);
});

Deno.test("runLoad() reports a socket error, when the server closes mid-response", async () => {
  await using server = startTinyServer(
    () => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    1,
  );
  const result = await runLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/",
    connections: 1,
    durationMs: 200,
    pipeline: 1,
  });
  assert.equal(result.requests, 0);
  assert.ok(result.socketErrors > 0);
  assert.match(result.firstError ?? "", /closed/);
});

// ---- the runner's own logic: rounds, ratios, CPU, processes, chart ----

Deno.test("median() takes the middle value, the mean of two for an even count, NaN for none", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([5]), 5);
  assert.ok(Number.isNaN(median([])));
  assert.equal(median([Number.NaN, 7, 1, 9]), 7, "NaN (no figure) is left out");
});

Deno.test("roundOrder() alternates two sides and rotates three, each first as often", () => {
  assert.deepEqual(roundOrder(2, 0), [0, 1]);
  assert.deepEqual(roundOrder(2, 1), [1, 0]);
  assert.deepEqual(roundOrder(2, 2), [0, 1]);
  assert.deepEqual(roundOrder(3, 1), [1, 2, 0]);
  for (const sides of [2, 3]) {
    const first = new Array(sides).fill(0);
    for (let round = 0; round < sides * 4; round++) {
      const order = roundOrder(sides, round);
      assert.deepEqual([...order].sort(), [...Array(sides).keys()]);
      first[order[0]]++;
    }
    assert.ok(first.every((n) => n === 4), `${sides} sides: ${first}`);
  }
});

Deno.test("summarizePaired() is the median of per-round ratios, not the ratio of medians or of bests", () => {
  // Round 2 was slow for both servers (the machine was busy): pairing
  // cancels it; comparing the best or the median of each side does not.
  const spindle = [100, 50, 110];
  const reference = [125, 60, 100];
  const s = summarizePaired(spindle, reference);
  assert.deepEqual(s.ratios, [0.8, 50 / 60, 1.1]);
  assert.equal(s.median, 50 / 60);
  assert.equal(s.low, 0.8);
  assert.equal(s.high, 1.1);
  assert.notEqual(s.median, median(spindle) / median(reference));
  assert.notEqual(s.median, Math.max(...spindle) / Math.max(...reference));
  assert.throws(() => pairedRatios([1, 2], [1]), RangeError);
});

Deno.test("summarizePaired() leaves out a round with no reference figure", () => {
  const s = summarizePaired([1, 2, 3], [0, 2, 3]);
  assert.equal(s.ratios.length, 3);
  assert.equal(s.median, 1);
});

Deno.test("cpuMicrosPerUnit() divides CPU seconds by the work done, NaN for none", () => {
  assert.equal(cpuMicrosPerUnit(0.5, 100_000), 5);
  assert.ok(Number.isNaN(cpuMicrosPerUnit(0.5, 0)));
});

const STAT_LINES = [
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
  "4242 (deno) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 40 0 0 20 0 9 0 100 0 0",
  "4243 (a (tricky) name) R 4242 4242 4242 0 -1 4194560 10 0 0 0 7 3 0 0 20 0 1 0 101 0",
  "",
  "garbage",
];

Deno.test("statTicks() sums utime and stime, counting fields after the last ')'", () => {
  assert.equal(statTicks(STAT_LINES.slice(0, 1)), 290);
  assert.equal(statTicks(STAT_LINES.slice(1, 2)), 10);
  assert.equal(statTicks(STAT_LINES), 300, "blank and broken lines count 0");
});

Deno.test("parseStat() reads pid, start time and CPU ticks; null for what is no stat line", () => {
  assert.deepEqual(parseStat(STAT_LINES[0]), {
    pid: 4242,
    start: 100,
    ticks: 290,
  });
  assert.deepEqual(parseStat(STAT_LINES[1]), {
    pid: 4243,
    start: 101,
    ticks: 10,
  });
  assert.equal(parseStat(""), null);
  assert.equal(parseStat("garbage"), null);
});

/** A reading of the tree under pid 10 at `at` ticks after boot: [pid, start, ticks] each. */
function reading(at: number, ...procs: [number, number, number][]): CpuReading {
  return {
    root: 10,
    atTicks: at,
    ticksPerSec: 100,
    procs: procs.map(([pid, start, ticks]) => ({ pid, start, ticks })),
  };
}

Deno.test("cpuBetween() counts what each process spent between the readings", () => {
  // The engine (started at 50) and a child it started during the window (at 1,200).
  const spent = cpuBetween(
    reading(1_000, [10, 50, 9_000]),
    reading(1_500, [10, 50, 9_700], [11, 1_200, 40]),
  );
  assert.deepEqual(spent, { seconds: 7.4, problems: [] });
});

Deno.test("cpuBetween() counts no process's past: a failed read before the run is a problem, not its whole life", () => {
  // The engine had spent 90 s before this 5 s window (earlier rounds, the
  // warm-up), 7 s in it. Its stat missing from the first reading once made
  // that 0 and the round 97 s: 19.4 "cores". Now no figure, and why.
  const before = reading(1_000);
  const after = reading(1_500, [10, 50, 9_700]);
  const old = statTicks(["", `10 (deno) S 1 ${"0 ".repeat(9)}9000 700 0 0`]) /
    100;
  assert.equal(old, 97, "the old sum: after minus a 0 before");
  const spent = cpuBetween(before, after);
  assert.ok(Number.isNaN(spent.seconds));
  assert.deepEqual(spent.problems, [
    "the engine's CPU (pid 10) could not be read before the run",
  ]);
});

Deno.test("cpuBetween() leaves out an older process that joined the tree, and says so; a pid reused is not the same process", () => {
  const spent = cpuBetween(
    reading(1_000, [10, 50, 9_000], [12, 60, 10]),
    // 11 is old (started at 70) but was not in the first reading; 12 was
    // replaced by a new process of the same pid, started in the window.
    reading(1_500, [10, 50, 9_700], [11, 70, 5_000], [12, 1_100, 30]),
  );
  assert.equal(spent.seconds, 7.3);
  assert.deepEqual(spent.problems, [
    "pid 11 joined the tree during the run with 50.00 s of CPU from before it: not counted",
    "pid 12 left the tree during the run: its CPU in the run is not counted",
  ]);
});

Deno.test("impossibleCpu() flags more CPU than the window and the cores allow", () => {
  // Case 16's round: 10.68 cores on a 2-core machine.
  assert.match(
    impossibleCpu(53.4, 5_000, 2) ?? "",
    /^server CPU 53\.40 s in a 5\.00 s window is more than its 2 core\(s\) allow \(10\.68 cores\)$/,
  );
  assert.equal(impossibleCpu(9.9, 5_000, 2), null);
  assert.equal(impossibleCpu(10.02, 5_000, 2), null, "two ticks of slack");
  assert.notEqual(impossibleCpu(5.1, 5_000, 1), null);
  assert.equal(
    impossibleCpu(Number.NaN, 5_000, 2),
    null,
    "no figure: no claim",
  );
  assert.deepEqual(
    ["0", "0-1", "0-1,3", "4-7,9,11-12", "", "x"].map(cpuListSize),
    [1, 2, 3, 7, Number.NaN, Number.NaN],
  );
});

Deno.test("cores() is CPU over the bench's window; a run's CPU problems show on its line, apart from its errors", () => {
  const run: Measured = {
    requests: 50_000,
    bytes: 5_000_000,
    durationMs: 1_000, // wrk's own, shorter than the window
    requestsPerSec: 50_000,
    bytesPerSec: 5_000_000,
    errorStatuses: 0,
    socketErrors: 0,
    connects: Number.NaN,
    latencyP50Us: 1_000,
    latencyP99Us: 2_000,
    latencyMaxUs: 3_000,
    serverCpuSeconds: 1.2,
    logBytes: 0,
    windowMs: 1_250,
    cpuProblems: [],
  };
  assert.equal(cores(run).toFixed(2), "0.96");
  assert.ok(clean(run));
  const why = "the engine's CPU (pid 10) could not be read before the run";
  const bad = { ...run, cpuProblems: [why] };
  assert.ok(clean(bad), "the server answered well: only the figure is wrong");
  assert.ok(describeMeasured(bad).endsWith(`; ${why}`));
  assert.ok(!describeMeasured(run).includes("could not"));
});

const PROC_NET_TCP =
  `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0
`;

Deno.test("listeningInodes() keeps LISTEN sockets on the port, IPv4 and IPv6", () => {
  assert.deepEqual(listeningInodes(PROC_NET_TCP, 8080), ["111", "444"]);
  assert.deepEqual(listeningInodes(PROC_NET_TCP, 8081), ["333"]);
  assert.deepEqual(listeningInodes(PROC_NET_TCP, 80), []);
});

Deno.test("atLeast() and atMost() judge a figure and score the share of the target reached", () => {
  const rate = atLeast(0.9);
  assert.equal(rate.text, ">= 0.9x");
  assert.ok(rate.holds(0.9) && !rate.holds(0.89));
  assert.equal(rate.score(0.45), 0.5);
  const memory = atMost(8, "<= 8.0 KiB/conn");
  assert.ok(memory.holds(8) && !memory.holds(8.1));
  assert.equal(memory.score(16), 0.5, "twice the allowed size: half way");
  assert.equal(memory.score(4), 2);
  assert.ok(!rate.holds(Number.NaN) && !memory.holds(Number.NaN));
});

Deno.test("parseWrkOutput() reads totals and latency from the done hook; a 0 percentile is unknown", () => {
  const r = parseWrkOutput(
    'noise\nBENCH_JSON {"requests":1000,"bytes":50000,"durationUs":2000000,"connect":0,"read":1,"write":0,"status":3,"timeout":2,"p50":450,"p99":0,"max":9000}\n',
  );
  assert.equal(r.requestsPerSec, 500);
  assert.equal(r.bytesPerSec, 25_000);
  assert.equal(r.errorStatuses, 3);
  assert.equal(r.socketErrors, 3);
  assert.equal(r.latencyP50Us, 450);
  assert.ok(Number.isNaN(r.latencyP99Us));
  assert.equal(r.latencyMaxUs, 9000);
});

Deno.test("parseH2loadOutput() reads totals, errors and, from the request log, latency", () => {
  const r = parseH2loadOutput(
    `finished in 2.00s, 500.00 req/s, 25.00KB/s
requests: 1000 total, 1004 started, 1000 done, 997 succeeded, 3 failed, 2 errored, 1 timeout
status codes: 990 2xx, 0 3xx, 7 4xx, 0 5xx
traffic: 48.83KB (50000) total, 9.77KB (10000) headers (space savings 90.00%), 4.88KB (5000) data
`,
    "1\t200\t300\n2\t200\t100\n3\t-1\t5\n4\t404\t200\n",
  );
  assert.equal(r.requests, 1000);
  assert.equal(r.durationMs, 2000);
  assert.equal(r.requestsPerSec, 500);
  assert.equal(r.bytesPerSec, 25_000);
  assert.equal(r.errorStatuses, 7);
  assert.equal(r.socketErrors, 6);
  assert.equal(r.latencyP50Us, 200); // the failed stream (-1) is left out
  assert.equal(r.latencyMaxUs, 300);
  const none = parseH2loadOutput(
    `finished in 430us, 0.00 req/s, 0B/s
requests: 100 total, 0 started, 0 done, 0 succeeded, 100 failed, 100 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
`,
  );
  assert.equal(none.durationMs, 0.43);
  assert.equal(none.socketErrors, 200);
  assert.ok(Number.isNaN(none.latencyP99Us));
  assert.throws(() => parseH2loadOutput("no such output"), /Cannot parse/);
});

Deno.test("nginxConfig() turns HTTP/2 on as the installed nginx spells it", () => {
  const tls = { cert: "/c.pem", key: "/k.pem" };
  const old = nginxConfig("/d", "/r", 8443, false, {
    ...tls,
    version: "nginx/1.22.1",
  });
  assert.match(old, /listen 127\.0\.0\.1:8443 ssl http2;/);
  assert.match(old, /ssl_certificate \/c\.pem;/);
  const fresh = nginxConfig("/d", "/r", 8443, false, {
    ...tls,
    version: "nginx/1.25.1",
  });
  assert.match(fresh, /listen 127\.0\.0\.1:8443 ssl;\s+http2 on;/);
  assert.match(nginxConfig("/d", "/r", 80, false), /listen 127\.0\.0\.1:80;/);
});

Deno.test("escapeXml() escapes what would break SVG text or attributes", () => {
  assert.equal(
    escapeXml(`a<b>&"c'`),
    "a&lt;b&gt;&amp;&quot;c&#39;",
  );
});

Deno.test("barLength() is proportional up to the cap, 0 for nothing measured", () => {
  const one = barLength(1);
  assert.ok(one > 0);
  assert.equal(barLength(2), 2 * one);
  assert.equal(barLength(MAX_SCORE), MAX_SCORE * one);
  assert.equal(barLength(MAX_SCORE * 10), barLength(MAX_SCORE));
  assert.equal(barLength(Number.NaN), 0);
  assert.equal(barLength(-1), 0);
});

/** Tags of an SVG document open and close in order (a small well-formedness check). */
function assertBalanced(svg: string): void {
  const stack: string[] = [];
  for (
    const [tag, close, name, selfClose] of svg.matchAll(
      /<(\/?)([a-z]+)[^>]*?(\/?)>/g,
    )
  ) {
    if (selfClose) continue;
    if (close) assert.equal(stack.pop(), name, `unbalanced at ${tag}`);
    else stack.push(name);
  }
  assert.deepEqual(stack, []);
  assert.doesNotMatch(svg.replace(/&(lt|gt|amp|quot|#39);/g, ""), /&/);
}

Deno.test("renderChart() draws a bar per measured row, an arrow past the scale, and escapes text", () => {
  const svg = renderChart("Title <1>", [
    {
      label: "1 a & b",
      score: 0.5,
      text: "0.45x, target >= 0.9x",
      pass: false,
    },
    { label: "2 c", score: 1.2, text: "1.2x", pass: true },
    { label: "3 d", score: 7, text: "21x", pass: true },
    { label: "4 e", score: Number.NaN, text: "did not run", pass: false },
  ]);
  assertBalanced(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /Title &lt;1&gt;/);
  assert.match(svg, /1 a &amp; b/);
  assert.match(svg, /target &gt;= 0.9x/);
  // Background plus three bars; the fourth row was not measured.
  assert.equal(svg.match(/<rect /g)?.length, 4);
  assert.match(svg, new RegExp(`width="${barLength(0.5)}"[^>]*fill="#c62828"`));
  assert.match(svg, new RegExp(`width="${barLength(1.2)}"[^>]*fill="#2e7d32"`));
  assert.equal(svg.match(/<path /g)?.length, 1, "one arrow, for the 7x bar");
  assert.match(svg, /did not run \(not measured\)/);
});

Deno.test("renderChart() widens to fit the longest label and text", () => {
  const widthOf = (svg: string) => Number(/width="(\d+)"/.exec(svg)![1]);
  const bar = { label: "1 a", score: 1, text: "1.0x", pass: true };
  const narrow = widthOf(renderChart("t", [bar]));
  const wide = widthOf(
    renderChart("t", [bar, { ...bar, text: "x".repeat(200) }]),
  );
  assert.ok(wide >= narrow + 150 * 6, `${narrow} -> ${wide}`);
  const svg = renderChart("t", [{ ...bar, label: "y".repeat(80) }]);
  const labelX = Number(
    /<text x="(\d+)"[^>]*text-anchor="end">y/.exec(svg)![1],
  );
  assert.ok(labelX >= 80 * 6, `label ends at ${labelX}, starts off the left`);
});

Deno.test("renderTable() fails a row with a problem even when its figure meets the target", () => {
  const row = {
    id: "1",
    title: "a | b",
    spindle: "1 req/s",
    reference: "1 req/s",
    value: 2,
    valueText: "2.00x",
    cpu: null,
    target: atLeast(1),
    problems: [],
    caveats: [],
    chartLabel: "1",
    chartText: "",
  };
  assert.equal(verdictOf(row), "pass");
  const failed = { ...row, problems: ["Spindle: 3 socket errors"] };
  assert.equal(verdictOf(failed), "FAIL");
  const table = renderTable([row, failed]);
  assert.match(table, /a \\\| b/, "a | in a cell is escaped");
  assert.match(table, /\*\*FAIL\*\* \(Spindle: 3 socket errors\)/);
});

Deno.test("cpuLadder() splits a request's CPU into floor, parse+reply, engine, app and log, with the budget a target leaves", () => {
  const row = (id: string, spindle: number, reference: number): Row => ({
    id,
    title: id,
    spindle: "",
    reference: "",
    value: 1,
    valueText: "",
    cpu: { spindle, reference, unit: "µs/req" },
    target: atLeast(1),
    problems: [],
    caveats: [],
    chartLabel: id,
    chartText: "",
  });
  const engine = {
    ...row("3b", 7.8, 6.9),
    moreCpu: { [PARSE_REPLY_CPU]: 7.3 },
  };
  const rows = [row("1", 20, 7.2), row("2", 10, 7), engine];
  const note = cpuLadder(rows)!;
  assert.match(note, /bare Deno\.listen loop 6\.90 µs/);
  assert.match(
    note,
    /\(parse\+reply loop\) 7\.30 µs \(\+0\.40: parse, reply\)/,
  );
  assert.match(note, /engine alone 7\.80 µs \(\+0\.50: its loop/);
  assert.match(note, /--quiet 10\.00 µs \(\+2\.20: router/);
  assert.match(note, /access log 20\.00 µs \(\+10\.00: the log\)/);
  assert.match(
    note,
    /0\.9x target leaves 8\.00 µs per request: 0\.70 µs over the parse\+reply loop for the keep-alive loop, app and log;/,
  );
  const slow = { ...engine, moreCpu: { [PARSE_REPLY_CPU]: 8.5 } };
  assert.match(
    cpuLadder([...rows.slice(0, 2), slow])!,
    /leaves 8\.00 µs per request: 0\.50 µs less than the parse\+reply loop alone;/,
  );
  assert.equal(cpuLadder(rows.slice(1)), null, "case 1 missing");
  assert.equal(
    cpuLadder([...rows.slice(0, 2), { ...engine, cpu: null }]),
    null,
  );
  assert.equal(
    cpuLadder([...rows.slice(0, 2), row("3b", 7.8, 6.9)]),
    null,
    "the parse+reply loop missing",
  );
});

Deno.test("CASES have unique numbers and names, and every case runs or says why not", () => {
  assert.equal(new Set(CASES.map((c) => c.id)).size, CASES.length);
  assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length);
  for (const c of CASES) assert.ok(c.run || c.pending, c.name);
  assert.deepEqual(
    selectCases(CASES, "3,static-8m").map((c) => c.id),
    [3, 6],
  );
  assert.equal(selectCases(CASES, undefined).length, CASES.length);
  assert.throws(() => selectCases(CASES, "1,nope"), /Unknown case: nope/);
});

/** Runs `deno eval` of `code` under bash (not exec'd: a tree of two). */
function busyTree(code: string) {
  const logFile = Deno.makeTempFileSync({ suffix: ".log" });
  const tree = spawnTree(
    {
      name: "busy",
      argv: ["bash", "-c", '"$@"; true', "bash", Deno.execPath(), "eval", code],
      port: 0,
      logFile,
    },
    { serverCpus: null, loadCpus: null, fdLimit: 1024 },
    false,
  );
  return { tree, logFile };
}

/** Resolves once `path` holds `text`; fails after 30 s (a busy machine starts Deno slowly). */
async function waitForFile(path: string, text: string): Promise<void> {
  const until = Date.now() + 30_000;
  while (!(await Deno.readTextFile(path)).includes(text)) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("treeCpuSeconds() counts the CPU of a grandchild, and stop() ends the whole group", async () => {
  // The grandchild burns 0.3 s of its own CPU time, says so, then idles.
  const { tree, logFile } = busyTree(
    `import process from "node:process";
    while (process.cpuUsage().user < 300_000) {}
    console.log("burnt");
    setInterval(() => {}, 1000);`,
  );
  try {
    const root = await tree.pid;
    await waitForFile(logFile, "burnt");
    const pids = await treePids(root);
    assert.equal(pids.length, 2, `${pids}`);
    assert.equal(pids[0], root);
    const seconds = await treeCpuSeconds(root);
    assert.ok(seconds >= 0.29, `${seconds} s`);
    // Read whole, the grandchild was there before and after: what it spent
    // in between (idle: well under its 0.3 s) counts, with no problem.
    const first = await treeCpuReading(root);
    assert.deepEqual(first.procs.map((p) => p.pid), pids);
    const between = cpuBetween(first, await treeCpuReading(root));
    assert.deepEqual(between.problems, []);
    assert.ok(
      between.seconds >= 0 && between.seconds < 0.29,
      `${between.seconds} s`,
    );
    // A first reading that missed it: its 0.3 s past is not counted.
    const missed = cpuBetween(
      { ...first, procs: first.procs.slice(0, 1) },
      await treeCpuReading(root),
    );
    assert.ok(missed.seconds < 0.29, `${missed.seconds} s`);
    assert.match(missed.problems.join(), new RegExp(`pid ${pids[1]} joined`));
    assert.ok(
      seconds >= await treeCpuSeconds(pids[1]),
      "the tree holds at least its grandchild",
    );
    await tree.stop();
    assert.equal(
      (await bash(`kill -0 ${pids[1]} 2>/dev/null || echo gone`)).trim(),
      "gone",
    );
  } finally {
    await tree.stop();
    await Deno.remove(logFile);
    await Deno.remove(`${logFile}.err`).catch(() => {});
  }
});

Deno.test("listenerPid() finds the process of the tree that listens, not its parent", async () => {
  const port = freePort();
  const { tree, logFile } = busyTree(
    `Deno.listen({ hostname: "127.0.0.1", port: ${port} });
    console.log("listening");
    setInterval(() => {}, 1000);`,
  );
  try {
    const root = await tree.pid;
    await waitForFile(logFile, "listening");
    const pids = await treePids(root);
    assert.equal(await listenerPid(root, port), pids[1]);
    assert.equal(await listenerPid(root, freePort()), null);
  } finally {
    await tree.stop();
    await Deno.remove(logFile);
    await Deno.remove(`${logFile}.err`).catch(() => {});
  }
});

Deno.test("FrameCounter counts server messages split at any byte, skipping pings and noting a close", () => {
  const frames = [
    Uint8Array.of(0x81, 3, 0x61, 0x62, 0x63), // text "abc"
    Uint8Array.of(0x89, 0), // ping
    Uint8Array.of(0x82, 126, 0x01, 0x00, ...new Uint8Array(256)), // 256-byte binary
    Uint8Array.of(0x01, 1, 0x61), // a first fragment: not a message yet
    Uint8Array.of(0x80, 1, 0x62), // its last: one message
    Uint8Array.of(0x88, 2, 0x03, 0xe8), // close 1000
  ];
  const wire = concatBytes(frames);
  for (let cut = 1; cut < wire.length; cut++) {
    const counter = new FrameCounter();
    counter.push(wire.subarray(0, cut), cut);
    counter.push(wire.subarray(cut), wire.length - cut);
    assert.equal(counter.messages, 3, `cut at ${cut}`);
    assert.equal(counter.closed, true, `cut at ${cut}`);
  }
});

Deno.test("maskedFrame() builds client frames the engine's parser reads back", () => {
  for (const size of [5, 300, 70_000]) {
    const payload = new Uint8Array(size).map((_, i) => i & 0xff);
    const frame = maskedFrame(0x2, payload);
    const seen: Uint8Array[] = [];
    new FrameParser({
      maxFrameBytes: 1 << 20,
      requireMask: true,
      allowRsv1: false,
    })
      .parse(frame, {
        frameStart: () => {},
        framePayload: (bytes) => void seen.push(bytes.slice()),
        frameEnd: () => false,
      });
    assert.deepEqual(concatBytes(seen), payload, `${size} bytes`);
  }
});

Deno.test("runWsLoad() counts echoed messages from the engine's WebSocket, with no errors", async () => {
  await using server = serve({ port: 0, accessLog: false }, (req) => {
    const { socket, reply } = upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return reply;
  });
  const result = await runWsLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/echo",
    connections: 4,
    durationMs: 300,
    messageBytes: 32,
    depth: 4,
    binary: false,
  });
  assert.equal(result.socketErrors, 0, result.firstError);
  assert.equal(result.connects, 4);
  assert.ok(result.requests > 0, "messages echoed");
  assert.ok(
    result.bytes >= result.requests * 34,
    "each echo is a 34-byte frame",
  );
});

/** Starts `bench/servers/<file>` on `port` with network access only. */
function benchServer(
  file: string,
  port: number,
  ...rest: string[]
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      new URL(`../bench/servers/${file}`, import.meta.url).pathname,
      `${port}`,
      ...rest,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** `connect()` once the server started accepts; a generous bound for a busy machine. */
async function whenUp(
  connect: () => Promise<Deno.TcpConn>,
): Promise<Deno.TcpConn> {
  for (const deadline = Date.now() + 30_000;;) {
    try {
      return await connect();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

Deno.test("the WebSocket floor server echoes each small masked frame as a server frame", async () => {
  const port = freePort();
  const child = benchServer("ws_floor.ts", port);
  try {
    const conn = await whenUp(() => openWebSocket("127.0.0.1", port, "/echo"));
    try {
      await conn.write(maskedFrame(0x1, new TextEncoder().encode("hello")));
      const got = new Uint8Array(64);
      let n = 0;
      while (n < 7) {
        const read = await conn.read(got.subarray(n));
        assert.notEqual(read, null, "the floor closed early");
        n += read!;
      }
      assert.deepEqual(
        got.subarray(0, n),
        Uint8Array.of(0x81, 5, ...new TextEncoder().encode("hello")),
      );
    } finally {
      conn.close();
    }
    const result = await runWsLoad({
      hostname: "127.0.0.1",
      port,
      path: "/echo",
      connections: 4,
      durationMs: 300,
      messageBytes: 32,
      depth: 1,
      binary: false,
    });
    assert.equal(result.socketErrors, 0, result.firstError);
    assert.ok(result.requests > 0, "messages echoed");
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
});

/** Exactly `count` bytes from `conn`; fails if it closes first. */
async function readExactly(
  conn: Deno.Conn,
  count: number,
): Promise<Uint8Array> {
  const got = new Uint8Array(count);
  for (let n = 0; n < count;) {
    const read = await conn.read(got.subarray(n));
    assert.notEqual(read, null, `closed after ${n} of ${count} bytes`);
    n += read!;
  }
  return got;
}

Deno.test("the WebSocket floor server echoes big and small masked binary frames byte for byte", async () => {
  const port = freePort();
  const child = benchServer("ws_floor.ts", port);
  // Each with the echo's header: 7-bit, 16-bit and 64-bit lengths; the
  // second 256 KiB and the 70,000 bytes reuse the socket's kept buffer.
  const cases: [bytes: number, seed: number, head: number[]][] = [
    [256 * 1024, 1, [0x82, 127, 0, 0, 0, 0, 0, 4, 0, 0]],
    [32, 2, [0x82, 32]],
    [1000, 3, [0x82, 126, 0x03, 0xe8]],
    [256 * 1024, 4, [0x82, 127, 0, 0, 0, 0, 0, 4, 0, 0]],
    [70_000, 5, [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]],
  ];
  try {
    const conn = await whenUp(() => openWebSocket("127.0.0.1", port, "/echo"));
    try {
      for (const [bytes, seed, head] of cases) {
        const payload = new Uint8Array(bytes);
        for (let i = 0; i < bytes; i++) {
          payload[i] = (i * seed + (i >> 8)) & 0xff;
        }
        await conn.write(maskedFrame(0x2, payload));
        // The header first: a wrong one says how many bytes would follow.
        const echoHead = await readExactly(conn, head.length);
        assert.deepEqual(echoHead, Uint8Array.from(head), `${bytes} B`);
        assert.deepEqual(await readExactly(conn, bytes), payload, `${bytes} B`);
      }
    } finally {
      conn.close();
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
});

Deno.test("the bare loop in 2 workers listens twice on one port, answers, and stops on SIGTERM", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net",
      `--allow-read=${new URL("../bench/servers/", import.meta.url).pathname}`,
      new URL("../bench/servers/bare_loop_workers.ts", import.meta.url)
        .pathname,
      `${port}`,
      "2",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // Through bash: Deno wants --allow-all to read /proc/net.
  const listeningOnPort = async () =>
    listeningInodes(
      await bash("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"),
      port,
    ).length;
  // Ended, its stdout ends too: a worker that never listens fails the
  // wait below rather than hang it (a generous bound for a busy machine).
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    let out = "";
    while (!/worker 0 listening/.test(out) || !/worker 1 listening/.test(out)) {
      const { value, done } = await lines.read();
      assert.ok(!done, `the floor ended before both workers listened: ${out}`);
      out += value;
    }
    // One listening socket per worker (reusePort), not one shared.
    assert.equal(await listeningOnPort(), 2);
    const result = await runLoad({
      hostname: "127.0.0.1",
      port,
      path: "/",
      connections: 16,
      durationMs: 300,
      pipeline: 1,
    });
    assert.equal(result.socketErrors, 0, result.firstError);
    assert.equal(result.errorStatuses, 0);
    assert.ok(result.requests > 0, "requests answered");
    child.kill("SIGTERM");
    assert.equal((await child.status).signal, "SIGTERM");
    assert.equal(await listeningOnPort(), 0, "no worker left listening");
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
    await child.status;
    await lines.cancel();
  }
});

/**
 * A one-second run of `requestsPerSec` requests (100 bytes each, as many
 * logged) with `serverCpuSeconds` of server CPU.
 */
function oneSecondRun(
  requestsPerSec: number,
  serverCpuSeconds: number,
): Measured {
  return {
    requests: requestsPerSec,
    bytes: requestsPerSec * 100,
    durationMs: 1_000,
    requestsPerSec,
    bytesPerSec: requestsPerSec * 100,
    errorStatuses: 0,
    socketErrors: 0,
    connects: 128,
    latencyP50Us: 1_000,
    latencyP99Us: 2_000,
    latencyMaxUs: 3_000,
    serverCpuSeconds,
    logBytes: requestsPerSec * 100,
    windowMs: 1_000,
    cpuProblems: [],
  };
}

Deno.test("case 9's requests/s rows show the 2-worker floor's rate against deno serve --parallel's and its CPU per request", () => {
  const run = oneSecondRun;
  const specs = {
    spindle: defaultApp({ flags: ["--workers", "2"] }),
    reference: denoServeParallel(2),
    floor: bareLoopWorkers(2),
  };
  const rows = workersRows(9, 2, 1000, specs, [
    [run(80_000, 1.2), run(90_000, 1.26)],
    [run(100_000, 1), run(100_000, 1)],
    [run(120_000, 0.84), run(130_000, 0.91)],
  ]);
  assert.deepEqual(rows.map((r) => r.id), ["9c", "9d"]);
  assert.equal(
    rows[0].reference,
    "100,000 req/s; floor 125,000 req/s = 1.25x (1.20-1.30), 7.00 µs/req",
  );
  assert.equal(rows[0].valueText, "0.85x (0.80-0.90)");
  assert.equal(verdictOf(rows[0]), "FAIL", "the target is still 1.0x");
  assert.deepEqual(rows[0].cpu, {
    spindle: 14.5,
    reference: 10,
    unit: "µs/req",
  });
  assert.equal(rows[1].reference, "p99 2.00 ms");
  assert.deepEqual(rows[0].problems, []);
  assert.deepEqual(rows[0].caveats, []);
  const failed = workersRows(9, 0, 128, specs, [
    [run(80_000, 1.2)],
    [run(100_000, 1)],
    [{ ...run(120_000, 0.84), socketErrors: 3 }],
  ]);
  assert.match(failed[0].caveats.join(), /bare loop \(2 workers\)/);
  assert.deepEqual(failed[0].problems, [], "the floor's errors fail no row");
});

Deno.test("rows 15a and 15d: the default app's /echo and the web API's echo, each against Deno.serve, 15d's target stopping at the web floor's rate / 1.05", () => {
  const specs = {
    spindle: { ...defaultApp(), logsAccess: false },
    reference: denoServeWs(),
    floor: wsFloor(),
    web: spindleWsWeb(),
    webFloor: wsFloorWeb(),
  };
  const argvOf = (spec: ServerSpec) =>
    spec.launch({} as Bench, 1, "/dev/null").argv.join(" ");
  assert.match(argvOf(specs.web), /bench\/servers\/spindle_ws_web\.ts 1$/);
  assert.match(argvOf(specs.web), /--expose-gc-as=/, "the engine's V8 flags");
  assert.match(argvOf(specs.webFloor), /bench\/servers\/ws_floor_web\.ts 1$/);
  const deno = [oneSecondRun(100_000, 0.95), oneSecondRun(100_000, 0.95)];
  const runs = [
    [oneSecondRun(104_000, 0.96), oneSecondRun(106_000, 0.96)],
    deno,
    [oneSecondRun(110_000, 0.9), oneSecondRun(112_000, 0.9)],
    [oneSecondRun(96_000, 0.96), oneSecondRun(98_000, 0.96)],
    [
      { ...oneSecondRun(96_000, 0.96), socketErrors: 2 },
      oneSecondRun(98_000, 0.5),
    ],
  ];
  const [a, d] = wsSmallRows(15, specs, runs);
  assert.equal(a.id, "15a");
  assert.equal(a.valueText, "1.05x (1.04-1.06)");
  assert.equal(a.target.text, ">= 1.0x");
  assert.equal(verdictOf(a), "pass");
  assert.equal(
    a.reference,
    "100,000 msg/s; floor 111,000 msg/s = 1.11x (1.10-1.12), 8.11 µs/msg",
  );
  assert.equal(a.cpu?.unit, "µs/msg");
  assert.equal(d.id, "15d");
  assert.equal(d.valueText, "0.97x (0.96-0.98)");
  // The web floor at 0.97x Deno.serve: the target is 0.97 / 1.05.
  assert.equal(d.target.text, ">= 0.92x (web floor 0.97x / 1.05)");
  assert.equal(verdictOf(d), "pass");
  assert.match(d.reference, /; web floor 97,000 msg\/s = 0\.97x/);
  assert.deepEqual(d.problems, [], "the web floor's errors fail no row");
  assert.match(d.caveats.join(), /ws web floor/);
  assert.match(d.title, /web API/);
  // Slower than that fails.
  const slow = [...runs];
  slow[3] = [oneSecondRun(80_000, 0.96), oneSecondRun(82_000, 0.96)];
  assert.equal(verdictOf(wsSmallRows(15, specs, slow)[1]), "FAIL");
  // With the web floor above Deno.serve, 15d's target is Deno.serve's.
  const fast = [...runs];
  fast[4] = [oneSecondRun(120_000, 0.96), oneSecondRun(120_000, 0.96)];
  assert.equal(wsSmallRows(15, specs, fast)[1].target.text, ">= 1.0x");
});

Deno.test("row 15b shows the WebSocket floor's bytes/s against Deno.serve's and its CPU per MiB, and is still judged against Deno.serve", () => {
  const MIB = 1024 * 1024;
  /** One second echoing `mib` MiB in 256 KiB messages, with `cpu` s of server CPU. */
  const run = (mib: number, cpu: number): Measured => ({
    ...oneSecondRun(mib * 4, cpu),
    bytes: mib * MIB,
    bytesPerSec: mib * MIB,
  });
  const specs = {
    spindle: { ...defaultApp(), logsAccess: false },
    reference: denoServeWs(),
    floor: wsFloor(),
  };
  const argv = specs.floor.launch({} as Bench, 1, "/dev/null").argv;
  assert.ok(
    argv.some((a) => a.endsWith("bench/servers/ws_floor.ts")),
    argv.join(" "),
  );
  const deno = [run(1000, 0.9), run(1000, 0.9)];
  const floor = [run(880, 0.704), run(960, 0.768)];
  const row = wsLargeRowOf(15, specs, [
    [run(800, 0.8), run(900, 0.9)],
    deno,
    floor,
  ]);
  assert.equal(row.id, "15b");
  assert.equal(row.spindle, "850.0 MiB/s");
  assert.equal(
    row.reference,
    "1000.0 MiB/s; floor 920.0 MiB/s = 0.92x (0.88-0.96), 800.0 µs/MiB",
  );
  assert.equal(row.valueText, "0.85x (0.80-0.90)");
  assert.deepEqual(row.cpu, {
    spindle: 1000,
    reference: 900,
    unit: "µs/MiB",
  });
  assert.equal(row.target.text, ">= 1.0x", "the target is still Deno.serve's");
  assert.equal(verdictOf(row), "FAIL");
  assert.deepEqual(row.problems, []);
  assert.deepEqual(row.caveats, [
    "not saturated: ws floor 0.74 cores",
    "2 rounds",
  ]);
  assert.match(
    renderTable([row]),
    /^\| 15b \| .*256 KiB binary.* \| 850\.0 MiB\/s \| 1000\.0 MiB\/s; floor 920\.0 MiB\/s = 0\.92x \(0\.88-0\.96\), 800\.0 µs\/MiB \| 0\.85x/m,
  );
  const faster = wsLargeRowOf(15, specs, [
    [run(1050, 0.9), run(1100, 0.9)],
    deno,
    [{ ...run(880, 0.704), socketErrors: 1 }, run(960, 0.768)],
  ]);
  assert.equal(verdictOf(faster), "pass", "the floor's errors fail no row");
  assert.match(faster.caveats.join(), /ws floor: 0 bad statuses, 1 socket/);
});

Deno.test("case 3 measures the parse+reply loop in its rounds and shows it beside the bare loop in 3a and 3b", () => {
  const run = oneSecondRun;
  const specs = engineSpecs();
  const argv = specs.parseReply.launch({} as Bench, 1, "/dev/null").argv;
  assert.ok(
    argv.some((a) => a.endsWith("bench/servers/parse_reply_loop.ts")),
    argv.join(" "),
  );
  const rows = engineRows(3, specs, [
    [run(100_000, 0.8), run(100_000, 0.8)],
    [run(125_000, 0.875), run(125_000, 0.875)],
    [run(140_000, 0.98), run(150_000, 0.9)],
    [run(125_000, 0.9125), run(137_500, 1.00375)],
  ]);
  assert.deepEqual(rows.map((r) => r.id), ["3a", "3b"]);
  assert.equal(
    rows[0].reference,
    "125,000 req/s; floor 145,000 req/s = 1.16x (1.12-1.20); parse+reply loop 131,250 req/s = 1.05x (1.00-1.10)",
  );
  assert.equal(rows[0].valueText, "0.80x (0.80-0.80)");
  assert.deepEqual(rows[0].cpu, { spindle: 8, reference: 7, unit: "µs/req" });
  assert.equal(
    rows[1].reference,
    "6.50 µs/req; parse+reply loop 7.30 µs/req = 1.13x (1.04-1.22)",
  );
  assert.deepEqual(rows[1].cpu, { spindle: 8, reference: 6.5, unit: "µs/req" });
  assert.equal(rows[1].moreCpu?.[PARSE_REPLY_CPU]?.toFixed(2), "7.30");
  assert.equal(rows[1].target.text, "<= 1.05x the floor", "targets unchanged");
  assert.equal(verdictOf(rows[1]), "FAIL");
  assert.deepEqual(rows[0].problems, []);
  const failed = engineRows(3, specs, [
    [run(100_000, 0.8)],
    [run(125_000, 0.875)],
    [run(140_000, 0.98)],
    [{ ...run(130_000, 0.949), socketErrors: 2 }],
  ]);
  assert.match(failed[0].caveats.join(), /parse\+reply loop/);
  assert.deepEqual(failed[0].problems, [], "its errors fail no row");
});

Deno.test("IdleHolder holds keep-alive connections and WebSockets that still answer", async () => {
  await using server = serve({ port: 0, accessLog: false }, (req) => {
    if (req.path !== "/ws") return { status: 200, body: "hi" };
    const { socket, reply } = upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return reply;
  });
  for (const websocket of [false, true]) {
    await using holder = await IdleHolder.open({
      hostname: "127.0.0.1",
      port: server.port,
      path: websocket ? "/ws" : "/",
      websocket,
      count: 120, // over one connect batch
      cpus: null,
      fdLimit: 1024,
    });
    assert.equal(holder.count, 120, `websocket: ${websocket}`);
    assert.equal(await holder.alive(), 120, `websocket: ${websocket}`);
  }
});

Deno.test({
  name:
    "placements(): a spread process gets every core, even under a runner pinned to core 1",
  // Needs taskset (util-linux), as the bench does to pin.
  ignore: await lacks("taskset"),
  fn: async () => {
    const { pinned: p, spread } = placements(2, true, 1024);
    assert.deepEqual(p, { serverCpus: "0", loadCpus: "1", fdLimit: 1024 });
    assert.deepEqual(spread, {
      serverCpus: "0-1",
      loadCpus: "0-1",
      fdLimit: 1024,
    });
    const none = placements(2, false, 1024);
    assert.equal(none.spread.serverCpus, null);
    assert.equal(none.pinned.loadCpus, null);
    // What the runner does when it pins: itself to core 1, children inherit.
    // A spread server must still be free to run on core 0.
    const cores = navigator.hardwareConcurrency;
    const all = placements(cores, true, 1024).spread.serverCpus!;
    const out = await new Deno.Command("taskset", {
      args: [
        "-c",
        "1",
        ...pinned(all),
        "grep",
        "^Cpus_allowed_list:",
        "/proc/self/status",
      ],
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const list = new TextDecoder().decode(out.stdout).split(":")[1].trim();
    assert.equal(list, cores === 1 ? "0" : `0-${cores - 1}`);
  },
});

/** h2load's whole summary of a timed run (-D) whose clients never connected: it says nothing else. */
const H2LOAD_NOTHING = `starting benchmark...
spawning thread #0: 4 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 5.00s, 0.00 req/s, 0B/s
requests: 0 total, 0 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 0B (0) total, 0B (0) headers (space savings 0.00%), 0B (0) data
`;

Deno.test("parseH2loadOutput() and parseWrkOutput() say why a run got no answer, never a bare 0", () => {
  const never = parseH2loadOutput(H2LOAD_NOTHING);
  assert.equal(never.requests, 0);
  assert.match(
    never.firstError ?? "",
    /started no request: no client got through/,
  );
  const unanswered = parseH2loadOutput(
    H2LOAD_NOTHING.replace("0 total, 0 started", "0 total, 128 started"),
  );
  assert.match(
    unanswered.firstError ?? "",
    /started 128 requests and none was done/,
  );
  const failed = parseH2loadOutput(
    H2LOAD_NOTHING.replace("0 failed, 0 errored", "4 failed, 4 errored"),
  );
  assert.match(
    failed.firstError ?? "",
    /^4 failed, 4 errored, 0 timeout; h2load started no request/,
  );
  const wrk = parseWrkOutput(
    'BENCH_JSON {"requests":0,"bytes":0,"durationUs":5000000,"connect":0,"read":0,"write":0,"status":0,"timeout":0,"p50":0,"p99":0,"max":0}\n',
  );
  assert.equal(wrk.firstError, "wrk got no response and counted no error");
  assert.equal(
    parseH2loadOutput(H2LOAD_NOTHING.replace(
      "0 total, 0 started, 0 done",
      "9 total, 9 started, 9 done",
    )).firstError,
    undefined,
  );
});

Deno.test("toolFailed() keeps the exit status and the last lines, errors first", () => {
  const r = toolFailed("h2load", {
    code: 1,
    stdout: "starting benchmark...\nfinished in 1ms\n",
    stderr: "line 1\nline 2\nline 3\nNo protocol negotiated. Aborted\n\n",
  }, 5000);
  assert.equal(r.requests, 0);
  assert.ok(
    !clean({
      ...r,
      serverCpuSeconds: 0,
      logBytes: 0,
      windowMs: 1,
      cpuProblems: [],
    }),
  );
  assert.equal(
    r.firstError,
    "h2load exited with status 1: line 2 / line 3 / No protocol negotiated. Aborted",
  );
  assert.equal(
    toolFailed("wrk", { code: 2, stdout: "", stderr: "" }, 1).firstError,
    "wrk exited with status 2, printing nothing",
  );
});

Deno.test("a run with no answer reads as such on its line and on its row: what the server logged, whether it still accepts", () => {
  const empty: Measured = {
    ...parseH2loadOutput(H2LOAD_NOTHING),
    serverCpuSeconds: 0,
    logBytes: 120,
    windowMs: 5_100,
    cpuProblems: [],
  };
  const why = noAnswerReason(
    empty.firstError,
    "[WRN] spindle.server: TLS listener stalled out of file descriptors; listening again",
    8443,
    true,
  );
  assert.match(
    why,
    /^h2load started no request.*; the server's last log line over the run: "\[WRN\] spindle.server: TLS listener stalled.*"; port 8443 still accepts connections$/,
  );
  assert.equal(
    noAnswerReason(undefined, "", 8443, false),
    "no request answered, and the generator counted no error; the server wrote nothing over the run; port 8443 refuses connections now",
  );
  const run = { ...empty, firstError: why };
  const line = describeMeasured(run);
  assert.ok(
    line.startsWith(
      "no request answered; server CPU 0.00 cores; h2load started no request",
    ),
    line,
  );
  assert.doesNotMatch(line, /NaN|Infinity/);
  const answered = { ...run, requests: 10, firstError: undefined };
  assert.deepEqual(errorsOf("Spindle", [answered, answered, answered]), []);
  const problems = errorsOf("Spindle", [answered, run, answered, run]);
  assert.equal(problems.length, 1);
  assert.ok(
    problems[0].startsWith(
      `Spindle: no answer in run 2, 4 of 4 (${why.slice(0, 30)}`,
    ),
    problems[0],
  );
});

const noH2load = await lacks("h2load");
Deno.test({
  name:
    "measureOnce() with h2load against a port that refuses: a run of no answer that says why, over real processes",
  ignore: noH2load,
  fn: async () => {
    // A port bound then freed: nothing listens there now.
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "bench_noanswer_" });
    try {
      const accessLog = `${dir}/access.log`;
      await Deno.writeTextFile(accessLog, "an earlier line\n");
      const server = {
        name: "nothing",
        pid: Deno.pid,
        enginePid: Deno.pid,
        port,
        accessLog,
        cpusAllowed: "",
        stderrTail: () => Promise.resolve(""),
        stop: () => Promise.resolve(),
      };
      const r = await measureOnce(
        {} as Bench,
        server,
        {
          path: "/",
          connections: 2,
          pipeline: 2,
          threads: 1,
          generate: h2loadGenerator(),
        },
        { serverCpus: null, loadCpus: null, fdLimit: 1024 },
        1000,
      );
      assert.equal(r.requests, 0);
      assert.ok(!clean(r));
      const line = describeMeasured(r);
      assert.match(
        line,
        /^no request answered; server CPU [\d.]+ cores; h2load started no request/,
      );
      assert.match(
        line,
        new RegExp(
          `the server wrote nothing over the run; port ${port} refuses connections now$`,
        ),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "wrkGenerator() turns a wrk that exits with an error into a run that says so",
  ignore: await lacks("wrk"),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "bench_wrkfail_" });
    try {
      // No such host: wrk exits at once with its error on stderr.
      const r = await wrkGenerator(dir)({
        hostname: "no-such-host.invalid",
        port: 1,
        path: "/",
        connections: 1,
        pipeline: 1,
        threads: 1,
        durationMs: 1000,
        cpus: null,
        fdLimit: 1024,
      });
      assert.equal(r.requests, 0);
      assert.match(r.firstError ?? "", /^wrk exited with status [1-9]\d*: .+/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// The whole loop, and its halves that split its cost over sockets: `reply`
// parses nothing (a head without Host is answered), `parse` parses and
// sends the writer's bytes made once.
const PARSE_REPLY_PARTS: [args: string[], hostless: string][] = [
  [[], "refused"],
  [["parse"], "refused"],
  [["reply"], "answered"],
];
for (const [args, hostless] of PARSE_REPLY_PARTS) {
  Deno.test(`the parse-and-reply loop${args.map((a) => ` ${a}`).join("")} answers with the engine's reply; a head without Host is ${hostless}`, async () => {
    const port = freePort();
    const child = benchServer("parse_reply_loop.ts", port, ...args);
    try {
      const conn = await whenUp(() =>
        Deno.connect({ hostname: "127.0.0.1", port })
      );
      const encoder = new TextEncoder();
      const decoder = new TextDecoder();
      const got = new Uint8Array(1024);
      const reply = async () => {
        let text = "";
        while (!text.endsWith("hello")) {
          const n = await conn.read(got);
          if (n === null) return null;
          text += decoder.decode(got.subarray(0, n));
        }
        return text;
      };
      try {
        for (let i = 0; i < 2; i++) {
          await conn.write(
            encoder.encode("GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
          );
          const text = await reply();
          assert.match(
            text ?? "closed early",
            /^HTTP\/1\.1 200 OK\r\nDate: .+ GMT\r\n/,
          );
          assert.match(text!, /\r\ncontent-type: text\/plain\r\n/i);
          assert.match(text!, /\r\nContent-Length: 5\r\nKeep-Alive: timeout=5/);
        }
        // The parse is the engine's: a head without Host ends the loop.
        await conn.write(encoder.encode("GET /a HTTP/1.1\r\n\r\n"));
        const last = await reply();
        if (hostless === "answered") {
          assert.match(last ?? "closed", /^HTTP\/1\.1 200 OK\r\n/);
        } else assert.equal(last, null);
      } finally {
        conn.close();
      }
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  });
}
