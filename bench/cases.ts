/**
 * Every case of `deno task bench`, one entry each, in the order they run.
 * Most are `paired()`: Spindle and a reference measured in alternating
 * rounds, the figure being the median of the per-round ratios, with each
 * server's CPU per request beside it. Adding such a case is one entry.
 */
import { IdleHolder, slowRead } from "./clients.ts";
import { hotSpots, newestProfile } from "./cpu_profile.ts";
import {
  type Bench,
  clean,
  cores,
  cpuPerUnit,
  HOST,
  KIB,
  type Load,
  type Measured,
  measureOnce,
  measureSides,
  medianCpu,
  MIB,
  type ServerSpec,
  type Side,
  sleep,
  startSpec,
  stopServer,
  withServers,
} from "./measure.ts";
import type { Placement } from "./procs.ts";
import { freePort, spawnTree, treeRssBytes } from "./procs.ts";
import {
  fmtBytes,
  fmtMs,
  fmtRatio,
  fmtRps,
  fmtSummary,
  PARSE_REPLY_CPU,
  type Row,
} from "./report.ts";
import {
  atLeast,
  atMost,
  median,
  roundOrder,
  summarizePaired,
  type Target,
} from "./stats.ts";
import {
  bareLoop,
  bareLoopWorkers,
  defaultApp,
  denoServeHello,
  denoServeParallel,
  denoServeTls,
  denoServeWs,
  engineDirect,
  engineHello,
  nginx,
  parseReplyLoop,
  relayHello,
  spindleWsWeb,
  wsFloor,
  wsFloorWeb,
} from "./specs.ts";
import { h2loadGenerator, wsGenerator } from "./generators.ts";

/** One case: a number and a name for `--only`, and what it measures. */
export interface BenchCase {
  readonly id: number;
  readonly name: string;
  readonly title: string;
  /** Tools it cannot run without. */
  readonly needs?: readonly ("wrk" | "nginx" | "h2load")[];
  /** Not measured yet, and why: a place kept for a coming case. */
  readonly pending?: string;
  readonly run?: (bench: Bench) => Promise<Row[]>;
}

/** The bench's files: names and sizes. */
export const FILES = {
  small: { name: "1k.bin", bytes: KIB },
  // Eight times the static handler's 1 MiB memory-cache limit: read from disk.
  big: { name: "8m.bin", bytes: 8 * MIB },
  // Sparse: a GiB that costs no disk, for the slow readers.
  huge: { name: "1g.bin", bytes: 1024 * MIB },
} as const;

/** Pinned cases: a server using less CPU than this was not their bottleneck. */
const SATURATED_CORES = 0.8;
/** An access line is longer than this; fewer bytes per request: no log. */
const MIN_LOG_BYTES_PER_REQ = 20;
/**
 * Flags for the cases holding thousands of idle connections: room above the
 * default --max-conns (4096), and an idle timeout longer than the case (the
 * default 5 s would close them mid-run).
 */
const HELD_FLAGS = ["--max-conns", "8192", "--keepalive-timeout", "2m"];
const LARGE_FILE_MAX_ADDED_BYTES = 100 * MIB;
const IDLE_MAX_BYTES_PER_CONN = 8 * KIB;
const START_MAX_MS = 200;
/** Time for a server to close thousands of sockets the client just closed. */
const SETTLE_MS = 500;

function hello(connections: number, pipeline = 1, threads = 1): Load {
  return { path: "/echo/hello", connections, pipeline, threads };
}

function file(name: string, connections: number): Load {
  return { path: `/${name}`, connections, pipeline: 1, threads: 1 };
}

/** HTTP/2 cases: few connections, many streams each, as browsers and proxies use h2. */
const H2_CONNS = 4;
const H2_STREAMS = 32;
const H2LOAD = h2loadGenerator();
/**
 * h2load never reopens a connection the server ends with GOAWAY, so the
 * default 10,000 streams per connection would end a run early: lifted, as
 * the bench's nginx lifts keepalive_requests.
 */
const H2_FLAGS = ["--max-requests", "10000000"];

/** `load` sent by h2load over TLS, `streams` at once on each connection. */
function h2(load: Load, streams: number): Load {
  return { ...load, pipeline: streams, generate: H2LOAD };
}

const rps = (r: Measured) => r.requestsPerSec;
const bps = (r: Measured) => r.bytesPerSec;
const p99 = (r: Measured) => r.latencyP99Us;

/**
 * Errors and CPU figures not to trust over a side's runs, as problem lines,
 * or nothing. Runs that got no answer at all are named, with why.
 */
export function errorsOf(name: string, runs: readonly Measured[]): string[] {
  const cpu = runs.flatMap((r) => r.cpuProblems).map((why) =>
    `${name}: ${why}`
  );
  const empty = runs.flatMap((r, i) => r.requests === 0 ? [i + 1] : []);
  const silent = empty.length === 0 ? [] : [
    `${name}: no answer in run ${empty.join(", ")} of ${runs.length} (${
      runs[empty[0] - 1].firstError ?? "no reason given"
    })`,
  ];
  const bad = runs.filter((r) => !clean(r) && r.requests !== 0);
  if (bad.length === 0) return [...silent, ...cpu];
  const statuses = runs.reduce((n, r) => n + r.errorStatuses, 0);
  const sockets = runs.reduce((n, r) => n + r.socketErrors, 0);
  const first = bad.find((r) => r.firstError)?.firstError;
  return [
    ...silent,
    `${name}: ${statuses} bad statuses, ${sockets} socket errors${
      first ? ` (${first})` : ""
    }`,
    ...cpu,
  ];
}

/** The access-log check: a server that should log wrote about a line per request. */
function logCheck(spec: ServerSpec, runs: readonly Measured[]): string[] {
  if (!spec.logsAccess) return [];
  const perReq = median(runs.map((r) => r.logBytes / r.requests));
  return perReq >= MIN_LOG_BYTES_PER_REQ ? [] : [
    `${spec.name}'s access log grew by only ${
      perReq.toFixed(1)
    } B/req: not written?`,
  ];
}

/**
 * Sides whose server was not the bottleneck (below SATURATED_CORES of its
 * core): the client or the kernel set the pace, so the ratio says less.
 */
function saturation(
  sides: readonly (readonly [ServerSpec, readonly Measured[]])[],
): string[] {
  const idle = sides
    .map(([spec, runs]) => [spec.name, median(runs.map(cores))] as const)
    .filter(([, used]) => used < SATURATED_CORES);
  return idle.length
    ? [
      `not saturated: ${
        idle.map(([name, used]) => `${name} ${used.toFixed(2)} cores`).join(
          ", ",
        )
      }`,
    ]
    : [];
}

/** What a paired case compares, and what it is held to. */
interface PairedCase {
  readonly id: number;
  readonly name: string;
  readonly title: string;
  /** Chart label; the title when absent. */
  readonly short?: string;
  readonly spindle: ServerSpec;
  readonly reference: ServerSpec;
  readonly load: Load;
  /** Compare bytes/s rather than requests/s (and CPU per MiB). */
  readonly perMiB?: boolean;
  readonly target: Target;
  readonly needs?: readonly ("wrk" | "nginx" | "h2load")[];
  /**
   * Rounds as a multiple of the bench's, for a row whose rounds move more
   * than its margin to the target; both sides get them.
   */
  readonly roundsTimes?: number;
}

/** `bench` with `times` as many rounds (both sides of a row get them). */
function moreRounds(bench: Bench, times: number): Bench {
  if (times === 1) return bench;
  return {
    ...bench,
    settings: { ...bench.settings, rounds: times * bench.settings.rounds },
  };
}

/**
 * A throughput case: Spindle and the reference (each pinned to the server
 * core) measured in alternating rounds; the figure is the median of the
 * per-round ratios Spindle / reference.
 */
function paired(c: PairedCase): BenchCase {
  return {
    id: c.id,
    name: c.name,
    title: c.title,
    needs: c.needs,
    run: (bench) =>
      withServers(
        bench,
        [c.spindle, c.reference],
        bench.pinned,
        async ([spindle, reference]) => {
          const [a, b] = await measureSides(
            moreRounds(bench, c.roundsTimes ?? 1),
            `${c.id} ${c.name}`,
            [
              { label: c.spindle.name, server: spindle, load: c.load },
              { label: c.reference.name, server: reference, load: c.load },
            ],
            bench.pinned,
            c.perMiB,
          );
          await profile(bench, c.id, c.title, c.spindle, c.load);
          return [pairedRow(c, a, b)];
        },
      ),
  };
}

function pairedRow(
  c: PairedCase,
  a: readonly Measured[],
  b: readonly Measured[],
): Row {
  const metric = c.perMiB ? bps : rps;
  const fmt = c.perMiB ? (n: number) => `${fmtBytes(n)}/s` : fmtRps;
  const summary = summarizePaired(a.map(metric), b.map(metric));
  return {
    id: `${c.id}`,
    title: c.title,
    spindle: fmt(median(a.map(metric))),
    reference: fmt(median(b.map(metric))),
    value: summary.median,
    valueText: fmtSummary(summary),
    cpu: {
      spindle: medianCpu(a, !!c.perMiB),
      reference: medianCpu(b, !!c.perMiB),
      unit: c.perMiB ? "µs/MiB" : "µs/req",
    },
    target: c.target,
    problems: [
      ...errorsOf(c.spindle.name, a),
      ...errorsOf(c.reference.name, b),
      ...logCheck(c.spindle, a),
      ...logCheck(c.reference, b),
    ],
    caveats: [
      ...saturation([[c.spindle, a], [c.reference, b]]),
      ...(c.roundsTimes ? [`${a.length} rounds`] : []),
    ],
    chartLabel: `${c.id} ${c.short ?? c.title}`,
    chartText: `${
      fmtRatio(summary.median)
    } ${c.reference.name}, target ${c.target.text}`,
  };
}

/**
 * A rate target against Deno.serve that stops where a floor allows: a
 * server may cost 5% more than its floor, so the target is 1.0x, or the
 * floor's ratio to Deno.serve / 1.05 when the floor itself is below it
 * (rows 3a and 15d).
 */
function rateWithinFloor(floorVsDeno: number, floorName: string): Target {
  const allowed = Math.min(1, floorVsDeno / 1.05);
  return allowed >= 1 ? atLeast(1) : atLeast(
    allowed,
    `>= ${allowed.toFixed(2)}x (${floorName} ${fmtRatio(floorVsDeno)} / 1.05)`,
  );
}

/**
 * The engine alone against Deno.serve, with two floors measured in the same
 * rounds: a bare Deno.listen loop doing no HTTP work, and that loop plus the
 * engine's parseHead() and reply writer (the least a strict HTTP/1.1 server
 * in JavaScript costs). The engine's CPU per request is held to within 5%
 * of the bare floor's; its rate to Deno.serve's, or to what the bare floor
 * allows when that floor itself is below Deno.serve.
 */
function engineCase(id: number): BenchCase {
  const load = { path: "/", connections: 64, pipeline: 1, threads: 1 };
  const specs = engineSpecs();
  const order = [specs.engine, specs.deno, specs.floor, specs.parseReply];
  return {
    id,
    name: "engine",
    title: ENGINE_TITLE,
    run: (bench) =>
      withServers(bench, order, bench.pinned, async (servers) => {
        const runs = await measureSides(
          bench,
          `${id} engine`,
          servers.map((server, i) => ({ label: order[i].name, server, load })),
          bench.pinned,
        );
        await profile(bench, id, ENGINE_TITLE, specs.engine, load);
        return engineRows(id, specs, runs);
      }),
  };
}

const ENGINE_TITLE = "Engine alone, fixed reply, 64 conns";

/** Case {@link engineCase}'s servers. */
export type EngineSpecs = Record<
  "engine" | "deno" | "floor" | "parseReply",
  ServerSpec
>;

/** Case {@link engineCase}'s servers, each measured in every round. */
export function engineSpecs(): EngineSpecs {
  return {
    engine: engineHello(),
    deno: denoServeHello(),
    floor: bareLoop(),
    parseReply: parseReplyLoop(),
  };
}

/**
 * Case {@link engineCase}'s two rows from the runs of the engine,
 * Deno.serve, the bare loop and the parse+reply loop, in that order: rate
 * against Deno.serve, then CPU per request against the bare loop, each with
 * both floors in its reference column.
 */
export function engineRows(
  id: number,
  specs: EngineSpecs,
  [engine, deno, floor, parse]: readonly (readonly Measured[])[],
): Row[] {
  const cpuOf = (r: Measured) => cpuPerUnit(r, false);
  const vsDeno = summarizePaired(engine.map(rps), deno.map(rps));
  const floorVsDeno = summarizePaired(floor.map(rps), deno.map(rps));
  const parseVsDeno = summarizePaired(parse.map(rps), deno.map(rps));
  const cpuVsFloor = summarizePaired(engine.map(cpuOf), floor.map(cpuOf));
  const parseVsFloor = summarizePaired(parse.map(cpuOf), floor.map(cpuOf));
  const rateTarget = rateWithinFloor(floorVsDeno.median, "floor");
  const cpuTarget = atMost(1.05, "<= 1.05x the floor");
  const problems = [
    ...errorsOf(specs.engine.name, engine),
    ...errorsOf(specs.deno.name, deno),
    ...errorsOf(specs.floor.name, floor),
  ];
  const us = (runs: readonly Measured[]) =>
    `${medianCpu(runs, false).toFixed(2)} µs/req`;
  const cpu = {
    spindle: medianCpu(engine, false),
    reference: medianCpu(floor, false),
    unit: "µs/req",
  };
  return [
    {
      id: `${id}a`,
      title: `${ENGINE_TITLE} (vs Deno.serve)`,
      spindle: fmtRps(median(engine.map(rps))),
      reference: `${fmtRps(median(deno.map(rps)))}; floor ${
        fmtRps(median(floor.map(rps)))
      } = ${fmtSummary(floorVsDeno)}; ${specs.parseReply.name} ${
        fmtRps(median(parse.map(rps)))
      } = ${fmtSummary(parseVsDeno)}`,
      value: vsDeno.median,
      valueText: fmtSummary(vsDeno),
      cpu: { ...cpu, reference: medianCpu(deno, false) },
      target: rateTarget,
      problems,
      caveats: [
        ...saturation([
          [specs.engine, engine],
          [specs.deno, deno],
          [specs.floor, floor],
          [specs.parseReply, parse],
        ]),
        ...errorsOf(specs.parseReply.name, parse),
      ],
      chartLabel: `${id}a Engine alone (vs Deno.serve)`,
      chartText: `${
        fmtRatio(vsDeno.median)
      } Deno.serve, target ${rateTarget.text}`,
    },
    {
      id: `${id}b`,
      title: `${ENGINE_TITLE}: CPU per request (vs the bare Deno.listen loop)`,
      spindle: us(engine),
      reference: `${us(floor)}; ${specs.parseReply.name} ${us(parse)} = ${
        fmtSummary(parseVsFloor)
      }`,
      value: cpuVsFloor.median,
      valueText: fmtSummary(cpuVsFloor),
      cpu,
      moreCpu: { [PARSE_REPLY_CPU]: medianCpu(parse, false) },
      target: cpuTarget,
      problems,
      caveats: [],
      chartLabel: `${id}b Engine CPU/request (vs floor)`,
      chartText: `${
        fmtRatio(cpuVsFloor.median)
      } the floor's CPU, target ${cpuTarget.text}`,
    },
  ];
}

/**
 * Many connections at once: no errors, and a p99 latency within twice
 * Deno.serve's (the median of per-round p99 ratios). The bare Deno.listen
 * loop runs in the same rounds: its CPU per request at this many
 * connections, against case 3's at 64, is what the runtime and the kernel
 * alone add for the connections (its p99 is no reference: it reads every
 * connection at once, and the runtime serves them unfairly).
 */
function manyConnsCase(id: number, connections: number): BenchCase {
  const title =
    `Default app /echo/hello, ${connections} conns, access log on (vs Deno.serve)`;
  const spindle = defaultApp();
  const reference = denoServeHello();
  const floor = bareLoop();
  const load = hello(connections);
  const target = atMost(2, "<= 2.0x p99, 0 errors");
  return {
    id,
    name: `conns-${connections}`,
    title,
    needs: ["wrk"],
    run: (bench) =>
      withServers(
        bench,
        [spindle, reference, floor],
        bench.pinned,
        async ([s, r, f]) => {
          const [a, b, c] = await measureSides(bench, `${id} conns`, [
            { label: spindle.name, server: s, load },
            { label: reference.name, server: r, load },
            { label: floor.name, server: f, load },
          ], bench.pinned);
          const summary = summarizePaired(a.map(p99), b.map(p99));
          return [{
            id: `${id}`,
            title,
            spindle: `p99 ${fmtMs(median(a.map(p99)))}, ${
              fmtRps(median(a.map(rps)))
            }`,
            reference: `p99 ${fmtMs(median(b.map(p99)))}, ${
              fmtRps(median(b.map(rps)))
            }; floor ${medianCpu(c, false).toFixed(2)} µs/req`,
            value: summary.median,
            valueText: `${fmtSummary(summary)} p99`,
            cpu: {
              spindle: medianCpu(a, false),
              reference: medianCpu(b, false),
              unit: "µs/req",
            },
            target,
            problems: [...errorsOf(spindle.name, a), ...logCheck(spindle, a)],
            caveats: [
              ...errorsOf(reference.name, b),
              ...errorsOf(floor.name, c),
            ],
            chartLabel: `${id} ${connections} conns: p99 latency`,
            chartText: `p99 ${
              fmtRatio(summary.median)
            } Deno.serve's, target ${target.text}`,
          }];
        },
      ),
  };
}

/**
 * Idle connections must not slow the busy ones: 16 active connections'
 * rate with `idleConns` idle keep-alive connections held, against the same
 * server's rate with none held, in alternating rounds.
 */
function idleHeldCase(id: number): BenchCase {
  const spindle = defaultApp({ flags: HELD_FLAGS });
  const load = hello(16);
  const target = atLeast(0.9);
  return {
    id,
    name: "idle-held",
    title: "Default app, 16 active conns with idle keep-alive conns held",
    run: (bench) =>
      withServers(bench, [spindle], bench.pinned, async ([server]) => {
        const count = heldCount(bench, id);
        const alive: number[] = [];
        const held: Side = {
          label: `${count} held`,
          server,
          load,
          around: async (run) => {
            const holder = await IdleHolder.open({
              hostname: HOST,
              port: server.port,
              path: "/echo/hello",
              count,
              cpus: bench.pinned.loadCpus,
              fdLimit: bench.pinned.fdLimit,
            });
            try {
              const result = await run();
              alive.push(await holder.alive());
              return result;
            } finally {
              await holder[Symbol.asyncDispose]();
              await sleep(SETTLE_MS); // the server closes its ends before the next run
            }
          },
        };
        const [a, b] = await measureSides(bench, `${id} idle-held`, [
          held,
          { label: "none held", server, load },
        ], bench.pinned);
        const summary = summarizePaired(a.map(rps), b.map(rps));
        const lost = alive.filter((n) => n < count);
        return [{
          id: `${id}`,
          title: `Default app ${
            HELD_FLAGS.join(" ")
          } /echo/hello, 16 active conns, ${count} idle conns held (vs none held)`,
          spindle: fmtRps(median(a.map(rps))),
          reference: `${fmtRps(median(b.map(rps)))} (none held)`,
          value: summary.median,
          valueText: fmtSummary(summary),
          cpu: {
            spindle: medianCpu(a, false),
            reference: medianCpu(b, false),
            unit: "µs/req",
          },
          target,
          problems: [
            ...errorsOf(spindle.name, [...a, ...b]),
            ...(lost.length
              ? [
                `idle conns still open at the end of a round: ${
                  lost.join(", ")
                } of ${count}`,
              ]
              : []),
          ],
          caveats: [],
          chartLabel: `${id} ${count} idle conns held`,
          chartText: `${
            fmtRatio(summary.median)
          } the rate with none held, target ${target.text}`,
        }];
      }),
  };
}

/** Idle connections to hold: the setting, within the fd limit. */
function heldCount(bench: Bench, id: number): number {
  const room = bench.pinned.fdLimit - 1024;
  if (room >= bench.settings.idleConns) return bench.settings.idleConns;
  bench.notes.push(
    `Case ${id} held ${room} idle connections, not ${bench.settings.idleConns}: the fd limit is ${bench.pinned.fdLimit}.`,
  );
  return Math.max(1, room);
}

/**
 * `--workers 2` against `deno serve --parallel` with 2 workers, nothing
 * pinned (servers and wrk -t2 share both cores), at each connection count:
 * requests per second and p99 latency, as paired ratios. The bare loop in
 * 2 Worker threads on one port runs in the same rounds: its rate and CPU
 * per request are what the runtime and the kernel alone allow two workers
 * (information; the target stays deno serve --parallel's).
 */
function workersCase(id: number, conns: readonly number[]): BenchCase {
  const specs = {
    spindle: defaultApp({ flags: ["--workers", "2"] }),
    reference: denoServeParallel(2),
    floor: bareLoopWorkers(2),
  };
  return {
    id,
    name: "workers",
    title: "--workers 2 vs deno serve --parallel",
    needs: ["wrk"],
    run: (bench) =>
      withServers(
        bench,
        [specs.spindle, specs.reference, specs.floor],
        bench.spread,
        async ([s, r, f]) => {
          const rows: Row[] = [];
          for (const [i, c] of conns.entries()) {
            const load = hello(c, 1, 2);
            const runs = await measureSides(bench, `${id} workers c${c}`, [
              { label: specs.spindle.name, server: s, load },
              { label: specs.reference.name, server: r, load },
              { label: specs.floor.name, server: f, load },
            ], bench.spread);
            rows.push(...workersRows(id, 2 * i, c, specs, runs));
          }
          return rows;
        },
      ),
  };
}

/**
 * Case {@link workersCase}'s two rows for `conns` connections (ids from
 * letter `letter` on): requests/s, then p99, from the runs of Spindle,
 * deno serve --parallel and the floor, in that order.
 */
export function workersRows(
  id: number,
  letter: number,
  conns: number,
  specs: Record<"spindle" | "reference" | "floor", ServerSpec>,
  [a, b, f]: readonly (readonly Measured[])[],
): Row[] {
  const rate = summarizePaired(a.map(rps), b.map(rps));
  const latency = summarizePaired(a.map(p99), b.map(p99));
  const floorVsRef = summarizePaired(f.map(rps), b.map(rps));
  const title =
    `Default app --workers 2, wrk -t2, ${conns} conns, nothing pinned (vs deno serve --parallel, 2 workers)`;
  const common = {
    cpu: {
      spindle: medianCpu(a, false),
      reference: medianCpu(b, false),
      unit: "µs/req",
    },
    problems: [
      ...errorsOf(specs.spindle.name, a),
      ...logCheck(specs.spindle, a),
    ],
    caveats: [
      ...errorsOf(specs.reference.name, b),
      ...errorsOf(specs.floor.name, f),
    ],
  };
  const rateTarget = atLeast(1);
  const p99Target = atMost(1, "<= 1.0x p99");
  return [{
    id: `${id}${String.fromCharCode(97 + letter)}`,
    title: `${title}: requests/s`,
    spindle: fmtRps(median(a.map(rps))),
    reference: `${fmtRps(median(b.map(rps)))}; floor ${
      fmtRps(median(f.map(rps)))
    } = ${fmtSummary(floorVsRef)}, ${medianCpu(f, false).toFixed(2)} µs/req`,
    value: rate.median,
    valueText: fmtSummary(rate),
    target: rateTarget,
    chartLabel: `${id} --workers 2, c${conns}: req/s`,
    chartText: `${
      fmtRatio(rate.median)
    } deno serve --parallel, target ${rateTarget.text}`,
    ...common,
  }, {
    id: `${id}${String.fromCharCode(97 + letter + 1)}`,
    title: `${title}: p99 latency`,
    spindle: `p99 ${fmtMs(median(a.map(p99)))}`,
    reference: `p99 ${fmtMs(median(b.map(p99)))}`,
    value: latency.median,
    valueText: `${fmtSummary(latency)} p99`,
    target: p99Target,
    chartLabel: `${id} --workers 2, c${conns}: p99`,
    chartText: `p99 ${
      fmtRatio(latency.median)
    } deno serve --parallel's, target ${p99Target.text}`,
    ...common,
  }];
}

/**
 * What the limits shared across `--workers` cost a request: `--workers 2`
 * with a rate limit no request reaches (every hit goes through the shared
 * table, all on one client's entry, which both workers lock in turn)
 * against `--workers 2` without one, nothing pinned, wrk -t2. The
 * connection cap and the /metrics counters are shared on both sides.
 */
function workersLimitsCase(id: number): BenchCase {
  const flags = ["--workers", "2", "--quiet"];
  const limited = defaultApp({
    name: "Spindle --rate-limit",
    flags: [...flags, "--rate-limit", "1000000/1s"],
  });
  const plain = defaultApp({ name: "Spindle", flags });
  const target = atLeast(0.95, ">= 0.95x");
  return {
    id,
    name: "workers-limits",
    title: "--workers 2: cost per request of limits shared across workers",
    needs: ["wrk"],
    run: (bench) =>
      withServers(bench, [limited, plain], bench.spread, async ([l, p]) => {
        const load = hello(128, 1, 2);
        // Unpinned, one round's rate moves +-20% with whatever else the two
        // cores run (session 21, busy: rounds 0.65-1.24): three times the
        // rounds, and the paired CPU difference beside the rate.
        const [a, b] = await measureSides(
          moreRounds(bench, 3),
          `${id} workers-limits`,
          [
            { label: limited.name, server: l, load },
            { label: plain.name, server: p, load },
          ],
          bench.spread,
        );
        const summary = summarizePaired(a.map(rps), b.map(rps));
        const cpuA = medianCpu(a, false);
        const cpuB = medianCpu(b, false);
        const extra = a.map((r, i) =>
          cpuPerUnit(r, false) - cpuPerUnit(b[i], false)
        );
        return [{
          id: `${id}`,
          title:
            `Default app --workers 2 --quiet --rate-limit 1000000/1s (a shared table, one client), wrk -t2, 128 conns, nothing pinned (vs no rate limit)`,
          spindle: fmtRps(median(a.map(rps))),
          reference: `${fmtRps(median(b.map(rps)))} (no rate limit)`,
          value: summary.median,
          valueText: `${fmtSummary(summary)}, ${
            (cpuA - cpuB).toFixed(2)
          } µs/req more (paired rounds ${Math.min(...extra).toFixed(2)} to ${
            Math.max(...extra).toFixed(2)
          }, median ${median(extra).toFixed(2)})`,
          cpu: { spindle: cpuA, reference: cpuB, unit: "µs/req" },
          target,
          problems: [
            ...errorsOf(limited.name, a),
            ...errorsOf(plain.name, b),
          ],
          caveats: [`${a.length} rounds`],
          chartLabel: `${id} --workers 2, shared rate limit`,
          chartText: `${
            fmtRatio(summary.median)
          } the rate without, target ${target.text}`,
        }];
      }),
  };
}

/**
 * Memory per idle keep-alive connection: the engine's RSS before and after
 * `idleConns` connections were opened (each answered once, then idle).
 * Rounds alternate Spindle and Deno.serve, each on a fresh server.
 */
function idleMemoryCase(id: number): BenchCase {
  const spindle = defaultApp({ flags: HELD_FLAGS });
  const reference = denoServeHello();
  const target = atMost(IDLE_MAX_BYTES_PER_CONN / KIB, "<= 8.0 KiB/conn");
  return {
    id,
    name: "idle-memory",
    title: "Memory per idle keep-alive conn",
    run: async (bench) => {
      const count = heldCount(bench, id);
      const perConn: number[][] = [[], []];
      const problems: string[] = [];
      for (let round = 0; round < bench.settings.memRounds; round++) {
        for (const i of roundOrder(2, round)) {
          const spec = [spindle, reference][i];
          const m = await idleMemory(bench, spec, count);
          perConn[i].push(m.perConn);
          const line = `${id} idle-memory, round ${round + 1}, ${spec.name}: ${
            fmtBytes(m.perConn)
          }/conn (engine RSS ${fmtBytes(m.before)} -> ${
            fmtBytes(m.after)
          }, ${m.alive}/${count} still open)`;
          bench.details.push(`- ${line}`);
          console.error(`  ${line}`);
          if (m.alive < count) {
            problems.push(
              `${spec.name}: ${m.alive} of ${count} idle conns still open at the end`,
            );
          }
        }
      }
      const kib = median(perConn[0]) / KIB;
      return [{
        id: `${id}`,
        title: `Default app ${
          HELD_FLAGS.join(" ")
        }, memory per idle keep-alive conn, ${count} held (vs Deno.serve)`,
        spindle: `${kib.toFixed(1)} KiB/conn`,
        reference: `${(median(perConn[1]) / KIB).toFixed(1)} KiB/conn`,
        value: kib,
        valueText: `${kib.toFixed(1)} KiB`,
        cpu: null,
        target,
        problems,
        caveats: [],
        chartLabel: `${id} Memory per idle conn`,
        chartText: `${kib.toFixed(1)} KiB/conn, target ${target.text}`,
      }];
    },
  };
}

/** RSS of a process tree: median of three samples, to step over a GC blip. */
async function steadyRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    samples.push(await treeRssBytes(pid));
    await sleep(100);
  }
  return median(samples);
}

async function idleMemory(
  bench: Bench,
  spec: ServerSpec,
  count: number,
  websocket = false,
): Promise<{ perConn: number; before: number; after: number; alive: number }> {
  const server = await startSpec(bench, spec, bench.pinned);
  try {
    await measureOnce(
      bench,
      server,
      websocket ? WS_SMALL : hello(64),
      bench.pinned,
      1000,
    );
    await sleep(500);
    const before = await steadyRss(server.enginePid);
    await using holder = await IdleHolder.open({
      hostname: HOST,
      port: server.port,
      path: websocket ? "/echo" : "/echo/hello",
      websocket,
      count,
      cpus: bench.pinned.loadCpus,
      fdLimit: bench.pinned.fdLimit,
    });
    await sleep(1000);
    const after = await steadyRss(server.enginePid);
    const alive = await holder.alive();
    return { perConn: (after - before) / holder.count, before, after, alive };
  } finally {
    await stopServer(bench, server);
  }
}

/** WebSocket echo: many sockets, one small text message in flight each. */
const WS_SMALL: Load = {
  path: "/echo",
  connections: 256,
  pipeline: 1,
  threads: 1,
  generate: wsGenerator(32, false),
};
/** WebSocket echo: one socket, one large binary message in flight. */
const WS_LARGE: Load = {
  path: "/echo",
  connections: 1,
  pipeline: 1,
  threads: 1,
  generate: wsGenerator(256 * KIB, true),
};

/**
 * WebSocket echo against `Deno.serve` with `Deno.upgradeWebSocket`: the
 * default app's WebSocket /echo (its access log has one line per socket,
 * not per message, so it is not checked), messages per second with many
 * sockets and small messages, bytes per second with one socket and large
 * ones (each with the floor measured in the same rounds: a bare
 * Deno.listen echo loop, bench/servers/ws_floor.ts), and memory per idle
 * WebSocket.
 */
function wsEchoCase(id: number): BenchCase {
  const spindle: ServerSpec = { ...defaultApp(), logsAccess: false };
  const reference = denoServeWs();
  return {
    id,
    name: "ws-echo",
    title: "WebSocket echo (vs Deno.serve + Deno.upgradeWebSocket)",
    run: async (bench) => {
      const [small, web] = await wsSmallRow(bench, id, spindle, reference);
      const rows = [small, await wsLargeRow(bench, id, spindle, reference)];
      // Room for the held sockets above the default --max-conns.
      const held: ServerSpec = {
        ...defaultApp({ flags: HELD_FLAGS }),
        logsAccess: false,
      };
      rows.push(await wsIdleMemoryRow(bench, `${id}c`, held, reference));
      rows.push(web);
      return rows;
    },
  };
}

/** A WebSocket row's CPU is per message, not per request. */
function perMessage(row: Row): Row {
  const msgs = (text: string) => text.replaceAll(" req/s", " msg/s");
  return {
    ...row,
    spindle: msgs(row.spindle),
    reference: msgs(row.reference),
    cpu: row.cpu && {
      ...row.cpu,
      unit: row.cpu.unit.replace("/req", "/msg"),
    },
  };
}

/** Case 15a's and 15d's servers, each measured in every round. */
export type WsSmallSpecs = Record<
  "spindle" | "reference" | "floor" | "web" | "webFloor",
  ServerSpec
>;

/**
 * Many sockets, small messages, five servers in the same alternating
 * rounds: the default app's `/echo` (handlers that get plain values),
 * `Deno.serve`, the floor, Spindle's echo through the web API
 * (`onmessage`, a `MessageEvent` a message) and the web API's floor. Rows
 * 15a and 15d (see {@link wsSmallRows}).
 */
async function wsSmallRow(
  bench: Bench,
  id: number,
  spindle: ServerSpec,
  reference: ServerSpec,
): Promise<Row[]> {
  const specs: WsSmallSpecs = {
    spindle,
    reference,
    floor: wsFloor(),
    web: spindleWsWeb(),
    webFloor: wsFloorWeb(),
  };
  const order = [
    specs.spindle,
    specs.reference,
    specs.floor,
    specs.web,
    specs.webFloor,
  ];
  return await withServers(bench, order, bench.pinned, async (servers) => {
    const runs = await measureSides(
      bench,
      `${id} ws-echo`,
      servers.map((server, i) => ({
        label: order[i].name,
        server,
        load: WS_SMALL,
      })),
      bench.pinned,
    );
    await profile(bench, id, WS_SMALL_TITLE, spindle, WS_SMALL);
    return wsSmallRows(id, specs, runs);
  });
}

const WS_SMALL_TITLE =
  "Default app WebSocket /echo, 256 sockets, 32-byte text messages, one in flight each (vs Deno.serve + Deno.upgradeWebSocket)";

/**
 * Rows 15a and 15d from the runs of {@link WsSmallSpecs}' servers in its
 * order. 15a: the default app's `/echo` against `Deno.serve` (target
 * 1.0x), the floor's rate beside Deno.serve's as case 3a shows the bare
 * loop. 15d: the same echo through the web API against `Deno.serve`, the
 * web floor beside it; as row 3a's engine, it may cost 5% more than its
 * floor, so its target stops at the web floor's rate / 1.05 when that
 * floor is below Deno.serve. The floor's errors fail 15a, as they always
 * did; the web floor's fail no row.
 */
export function wsSmallRows(
  id: number,
  specs: WsSmallSpecs,
  [ours, deno, floor, web, webFloor]: readonly (readonly Measured[])[],
): Row[] {
  const c: PairedCase = {
    id,
    name: "ws-echo",
    title: WS_SMALL_TITLE,
    short: "WebSocket echo, 256 sockets x 32 B",
    spindle: specs.spindle,
    reference: specs.reference,
    load: WS_SMALL,
    target: atLeast(1),
  };
  const floorText = (name: string, runs: readonly Measured[]) =>
    `${name} ${fmtRps(median(runs.map(rps)))} = ${
      fmtSummary(summarizePaired(runs.map(rps), deno.map(rps)))
    }, ${medianCpu(runs, false).toFixed(2)} µs/msg`;
  const row = pairedRow(c, ours, deno);
  const a = perMessage({
    ...row,
    id: `${id}a`,
    reference: `${row.reference}; ${floorText("floor", floor)}`,
    problems: [...row.problems, ...errorsOf(specs.floor.name, floor)],
    caveats: saturation([
      [specs.spindle, ours],
      [specs.reference, deno],
      [specs.floor, floor],
    ]),
    chartLabel: `${id}a ${c.short}`,
  });
  const webFloorVsDeno = summarizePaired(
    webFloor.map(rps),
    deno.map(rps),
  );
  const target = rateWithinFloor(webFloorVsDeno.median, "web floor");
  const webCase: PairedCase = {
    ...c,
    title:
      "WebSocket echo through the web API (onmessage, a MessageEvent a message), 256 sockets, 32-byte text (vs Deno.serve + Deno.upgradeWebSocket)",
    short: "WebSocket echo, web API, 256 x 32 B",
    spindle: specs.web,
    target,
  };
  const webRow = pairedRow(webCase, web, deno);
  const d = perMessage({
    ...webRow,
    id: `${id}d`,
    reference: `${webRow.reference}; ${floorText("web floor", webFloor)}`,
    caveats: [
      ...webRow.caveats,
      ...saturation([[specs.webFloor, webFloor]]),
      ...errorsOf(specs.webFloor.name, webFloor),
    ],
    chartLabel: `${id}d ${webCase.short}`,
  });
  return [a, d];
}

/** Case 15b: one socket, large binary messages, bytes/s against Deno.serve. */
function wsLargeCase(
  id: number,
  spindle: ServerSpec,
  reference: ServerSpec,
): PairedCase {
  return {
    id,
    name: "ws-echo",
    title:
      "Default app WebSocket /echo, one socket, 256 KiB binary messages, bytes/s (vs Deno.serve + Deno.upgradeWebSocket)",
    short: "WebSocket echo, 1 socket x 256 KiB",
    spindle,
    reference,
    load: WS_LARGE,
    perMiB: true,
    target: atLeast(1),
    // One socket is latency-bound: neither server fills a core, and one
    // round's ratio moves from 0.87x to 1.20x (session 20's full run).
    roundsTimes: 3,
  };
}

/**
 * One socket, large messages: Spindle against Deno.serve, with the floor
 * (bench/servers/ws_floor.ts: read, a fresh buffer, unmask, copy, write)
 * in the same alternating rounds.
 */
async function wsLargeRow(
  bench: Bench,
  id: number,
  spindle: ServerSpec,
  reference: ServerSpec,
): Promise<Row> {
  const c = wsLargeCase(id, spindle, reference);
  const specs = { spindle, reference, floor: wsFloor() };
  const order = [specs.spindle, specs.reference, specs.floor];
  return await withServers(bench, order, bench.pinned, async (servers) => {
    const runs = await measureSides(
      moreRounds(bench, c.roundsTimes ?? 1),
      `${id} ws-echo`,
      servers.map((server, i) => ({
        label: order[i].name,
        server,
        load: c.load,
      })),
      bench.pinned,
      true,
    );
    await profile(bench, id, c.title, spindle, c.load);
    return wsLargeRowOf(id, specs, runs);
  });
}

/**
 * Row 15b from the runs of Spindle, Deno.serve and the WebSocket floor, in
 * that order: Spindle's bytes/s against Deno.serve's (the target), and
 * beside Deno.serve's the floor's rate as a ratio to it and its server
 * CPU per MiB. The floor is information: its errors fail no row.
 */
export function wsLargeRowOf(
  id: number,
  specs: Record<"spindle" | "reference" | "floor", ServerSpec>,
  [ours, deno, floor]: readonly (readonly Measured[])[],
): Row {
  const c = wsLargeCase(id, specs.spindle, specs.reference);
  const row = pairedRow(c, ours, deno);
  const floorVsDeno = summarizePaired(floor.map(bps), deno.map(bps));
  return perMessage({
    ...row,
    id: `${id}b`,
    reference: `${row.reference}; floor ${
      fmtBytes(median(floor.map(bps)))
    }/s = ${fmtSummary(floorVsDeno)}, ${
      medianCpu(floor, true).toFixed(1)
    } µs/MiB`,
    caveats: [
      ...saturation([
        [specs.spindle, ours],
        [specs.reference, deno],
        [specs.floor, floor],
      ]),
      `${ours.length} rounds`,
      ...errorsOf(specs.floor.name, floor),
    ],
    chartLabel: `${id}b ${c.short}`,
  });
}

/** Memory per idle WebSocket, Spindle's against Deno.serve's, in alternating fresh servers. */
async function wsIdleMemoryRow(
  bench: Bench,
  id: string,
  spindle: ServerSpec,
  reference: ServerSpec,
): Promise<Row> {
  const count = heldCount(bench, Number.parseInt(id));
  const perConn: number[][] = [[], []];
  const problems: string[] = [];
  for (let round = 0; round < bench.settings.memRounds; round++) {
    for (const i of roundOrder(2, round)) {
      const spec = [spindle, reference][i];
      const m = await idleMemory(bench, spec, count, true);
      perConn[i].push(m.perConn);
      const line = `${id} ws idle memory, round ${round + 1}, ${spec.name}: ${
        fmtBytes(m.perConn)
      }/socket (engine RSS ${fmtBytes(m.before)} -> ${
        fmtBytes(m.after)
      }, ${m.alive}/${count} still answer)`;
      bench.details.push(`- ${line}`);
      console.error(`  ${line}`);
      if (m.alive < count) {
        problems.push(
          `${spec.name}: ${m.alive} of ${count} idle WebSockets still answer`,
        );
      }
    }
  }
  const ours = median(perConn[0]);
  const theirs = median(perConn[1]);
  const ratio = ours / theirs;
  const target = atMost(1, "<= 1.0x Deno.serve's");
  return {
    id,
    title: `Default app ${
      HELD_FLAGS.join(" ")
    }, memory per idle WebSocket on /echo, ${count} held (vs Deno.serve + Deno.upgradeWebSocket)`,
    spindle: `${(ours / KIB).toFixed(1)} KiB/socket`,
    reference: `${(theirs / KIB).toFixed(1)} KiB/socket`,
    value: ratio,
    valueText: fmtRatio(ratio),
    cpu: null,
    target,
    problems,
    caveats: [],
    chartLabel: `${id} Memory per idle WebSocket`,
    chartText: `${fmtRatio(ratio)} Deno.serve's, target ${target.text}`,
  };
}

/**
 * Start-up: from spawning the command to the first 200 on `/`, with a warm
 * module cache (one untimed start each first). `deno task serve` includes
 * whatever the task runs (a launcher); beside it, in the same alternating
 * runs: the engine's main.ts started directly (no task, no launcher), the
 * floor of a launcher (a bare Deno process starting a Deno.serve hello in
 * a second one) and `deno run` of a Deno.serve hello, the reference.
 */
function startupCase(id: number): BenchCase {
  const specs = [
    defaultApp(),
    engineDirect(),
    relayHello(),
    denoServeHello(),
  ];
  const target = atMost(START_MAX_MS, `<= ${START_MAX_MS} ms`);
  return {
    id,
    name: "startup",
    title: "Start to first answer",
    run: async (bench) => {
      const times: number[][] = specs.map(() => []);
      for (const spec of specs) await timeStart(bench, spec); // warm caches
      for (let run = 0; run < bench.settings.startRuns; run++) {
        for (const i of roundOrder(specs.length, run)) {
          const ms = await timeStart(bench, specs[i]);
          times[i].push(ms);
          bench.details.push(
            `- ${id} startup, run ${run + 1}, ${specs[i].name}: ${
              ms.toFixed(1)
            } ms`,
          );
        }
      }
      const [task, direct, relay, hello] = times.map(median);
      const range = (t: number[]) =>
        `${Math.min(...t).toFixed(0)}-${Math.max(...t).toFixed(0)}`;
      const msAndRatio = (ms: number) =>
        `${ms.toFixed(0)} ms = ${fmtRatio(ms / hello)}`;
      console.error(
        `  ${id} startup: deno task serve ${task.toFixed(0)} ms, main.ts ${
          direct.toFixed(0)
        } ms, 2 x deno run ${relay.toFixed(0)} ms, Deno.serve ${
          hello.toFixed(0)
        } ms`,
      );
      return [{
        id: `${id}`,
        title:
          "Start to first answer: `deno task serve` (vs `deno run` of a Deno.serve hello)",
        spindle: `${task.toFixed(0)} ms (${range(times[0])}) = ${
          fmtRatio(task / hello)
        }; main.ts alone ${msAndRatio(direct)}`,
        reference: `${hello.toFixed(0)} ms (${
          range(times[3])
        }); launcher floor (2 x deno run) ${msAndRatio(relay)}`,
        value: task,
        valueText: `${task.toFixed(0)} ms`,
        cpu: null,
        target,
        problems: [],
        caveats: [],
        chartLabel: `${id} Start to first answer`,
        chartText: `${task.toFixed(0)} ms, target ${target.text}`,
      }];
    },
  };
}

/** Milliseconds from spawning `spec` to its first 200 on `/`. */
async function timeStart(bench: Bench, spec: ServerSpec): Promise<number> {
  const { port, launch } = launchFresh(bench, spec);
  const started = performance.now();
  const tree = spawnTree(launch, bench.pinned, true);
  try {
    const deadline = started + 30_000;
    while (performance.now() < deadline) {
      if (await firstAnswer(port) === 200) return performance.now() - started;
      if (tree.exited()) break;
      await sleep(2);
    }
    throw new Error(
      `${spec.name} did not answer 200 on / ${
        tree.exited() ? "before it exited" : "in time"
      }: ${await tree.stderrTail()}`,
    );
  } finally {
    await tree.stop();
  }
}

let starts = 0;

function launchFresh(bench: Bench, spec: ServerSpec) {
  const port = freePort();
  const logFile = `${bench.tempDir}/start_${starts++}.log`;
  return { port, launch: spec.launch(bench, port, logFile) };
}

/** Status of `GET /`, or 0 when nothing listens yet. */
async function firstAnswer(port: number): Promise<number> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: HOST, port });
  } catch {
    return 0;
  }
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET / HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(64);
    let text = "";
    while (text.length < 12) {
      const n = await conn.read(buf);
      if (n === null) return 0;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return Number(text.slice(9, 12));
  } catch {
    return 0;
  } finally {
    conn.close();
  }
}

/**
 * Slow readers of a large file: the RSS a server adds while ten clients
 * read a 1 GiB file at a trickle and pause, then leave mid-body.
 */
function slowReadersCase(id: number): BenchCase {
  const target = atMost(
    LARGE_FILE_MAX_ADDED_BYTES / MIB,
    `< ${LARGE_FILE_MAX_ADDED_BYTES / MIB} MiB added`,
  );
  return {
    id,
    name: "slow-readers",
    title: "RSS added by slow readers of a 1 GiB file",
    run: async (bench) => {
      const results = [];
      const specs = [defaultApp({ benchRoot: true })];
      if (bench.tools.nginx) specs.push(nginx());
      for (const spec of specs) {
        const m = await largeFileMemory(bench, spec);
        const got = m.clients.reduce((n, c) => n + c.bytes, 0);
        const bad = m.clients.filter((c) => c.status !== 200 || c.error);
        const line = `${id} slow-readers, ${spec.name}: +${
          fmtBytes(m.added)
        } RSS (baseline ${fmtBytes(m.baseline)}, peak ${
          fmtBytes(m.peak)
        }); clients read ${fmtBytes(got)}; ${bad.length} clients failed${
          bad[0]
            ? ` (status ${bad[0].status}${
              bad[0].error ? `, ${bad[0].error}` : ""
            })`
            : ""
        }; server ${m.aliveAfter ? "answered" : "did NOT answer"} afterwards`;
        bench.details.push(`- ${line}`);
        console.error(`  ${line}`);
        results.push({ ...m, ok: bad.length === 0 && m.aliveAfter });
      }
      const [s, n] = results;
      const mib = s.added / MIB;
      return [{
        id: `${id}`,
        title:
          `Default app, RSS added by ${bench.settings.slowClients} slow readers of a 1 GiB file (nginx shown)`,
        spindle: `+${fmtBytes(s.added)}`,
        reference: n ? `+${fmtBytes(n.added)}` : "nginx missing",
        value: mib,
        valueText: `${mib.toFixed(1)} MiB`,
        cpu: null,
        target,
        problems: s.ok ? [] : ["a slow reader failed, or the server stopped"],
        caveats: [],
        chartLabel: `${id} Slow readers of 1 GiB: RSS`,
        chartText: `+${fmtBytes(s.added)}, target ${target.text}`,
      }];
    },
  };
}

async function largeFileMemory(bench: Bench, spec: ServerSpec) {
  const { settings } = bench;
  const server = await startSpec(bench, spec, bench.pinned);
  try {
    const warm = file(FILES.small.name, 8);
    await measureOnce(bench, server, warm, bench.pinned, 1000);
    await sleep(500);
    const baseline = await steadyRss(server.enginePid);
    let peak = baseline;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await treeRssBytes(server.enginePid));
        await sleep(100);
      }
    })();
    const clients = await Promise.all(
      Array.from({ length: settings.slowClients }, () =>
        slowRead({
          hostname: HOST,
          port: server.port,
          path: `/${FILES.huge.name}`,
          bytesPerSec: settings.slowBytesPerSec,
          durationMs: settings.slowMs,
          readMs: 2000,
          pauseMs: 1000,
        })),
    );
    await sleep(SETTLE_MS); // the server notices the closes
    sampling = false;
    await sampler;
    const after = await measureOnce(bench, server, warm, bench.pinned, 1000);
    return {
      added: peak - baseline,
      baseline,
      peak,
      clients,
      aliveAfter: clean(after),
    };
  } finally {
    await stopServer(bench, server);
  }
}

/**
 * An extra run of Spindle's side under --cpu-prof (when asked for), its hot
 * spots added to the report. The table's figures stay unprofiled.
 */
async function profile(
  bench: Bench,
  id: number,
  title: string,
  spec: ServerSpec,
  load: Load,
  placement: Placement = bench.pinned,
): Promise<void> {
  if (!bench.cpuProf || !spec.profiled) return;
  const dir = `${bench.tempDir}/prof_${id}`;
  await Deno.mkdir(dir, { recursive: true });
  console.error(`  profiling ${spec.name}: ${id}. ${title}`);
  const server = await startSpec(bench, spec, placement, dir);
  let result: Measured;
  try {
    result = await measureOnce(
      bench,
      server,
      load,
      placement,
      bench.settings.measureMs,
    );
  } finally {
    await stopServer(bench, server);
  }
  const found = await newestProfile(dir);
  const lines = [
    `### ${id}. ${title}`,
    "",
    `Profiled run (the engine process started directly under --cpu-prof): ${
      fmtRps(result.requestsPerSec)
    }.`,
    "",
  ];
  if (!found) lines.push("No profile was written.");
  else {
    lines.push(
      "| Self time | Share of busy time | Function |",
      "|---:|---:|---|",
    );
    for (const spot of hotSpots(found, 15)) {
      lines.push(
        `| ${spot.selfMs.toFixed(0)} ms | ${
          (spot.share * 100).toFixed(1)
        }% | \`${spot.where}\` |`,
      );
    }
  }
  bench.profiles.push(lines.join("\n"));
}

/** The case list, in run order. Numbers are stable: `--only` uses them. */
export const CASES: readonly BenchCase[] = [
  paired({
    id: 1,
    name: "app",
    title:
      "Default app /echo/hello, 64 conns, access log on (vs Deno.serve hello)",
    short: "Default app, access log on",
    spindle: defaultApp(),
    reference: denoServeHello(),
    load: hello(64),
    target: atLeast(0.9),
  }),
  paired({
    id: 2,
    name: "app-quiet",
    title: "Default app /echo/hello, 64 conns, --quiet (vs Deno.serve hello)",
    short: "Default app, --quiet",
    spindle: defaultApp({ flags: ["--quiet"] }),
    reference: denoServeHello(),
    load: hello(64),
    target: atLeast(1),
  }),
  engineCase(3),
  paired({
    id: 4,
    name: "pipelined",
    title:
      "Default app /echo/hello, 16 conns x 16 pipelined, access log on (vs Deno.serve hello)",
    short: "Default app, 16 pipelined",
    spindle: defaultApp(),
    reference: denoServeHello(),
    load: hello(16, 16),
    target: atLeast(3),
  }),
  paired({
    id: 5,
    name: "static-1k",
    title:
      "Default app, static 1 KiB file, 64 conns, access log on (vs nginx: log buffered, open_file_cache)",
    short: "Static 1 KiB (vs nginx)",
    spindle: defaultApp({ benchRoot: true }),
    reference: nginx(),
    load: file(FILES.small.name, 64),
    target: atLeast(1),
    needs: ["nginx"],
  }),
  paired({
    id: 6,
    name: "static-8m",
    title:
      "Default app, static 8 MiB file (past the memory cache), 16 conns, bytes/s (vs nginx, sendfile)",
    short: "Static 8 MiB (vs nginx)",
    spindle: defaultApp({ benchRoot: true }),
    reference: nginx(),
    load: file(FILES.big.name, 16),
    perMiB: true,
    target: atLeast(0.9),
    needs: ["nginx"],
  }),
  manyConnsCase(7, 1000),
  idleHeldCase(8),
  workersCase(9, [128, 1000]),
  idleMemoryCase(10),
  startupCase(11),
  slowReadersCase(12),
  // Coming cases: each becomes a paired() entry once its server side exists.
  paired({
    id: 13,
    name: "h2",
    title:
      "HTTP/2 over TLS, default app /echo/hello, h2load 4 conns x 32 streams, access log on, --max-requests lifted (vs Deno.serve over TLS)",
    short: "HTTP/2 /echo/hello (vs Deno.serve TLS)",
    spindle: defaultApp({ tls: true, flags: H2_FLAGS }),
    reference: denoServeTls(),
    load: h2(hello(H2_CONNS), H2_STREAMS),
    target: atLeast(1),
    needs: ["h2load"],
  }),
  paired({
    id: 14,
    name: "h2-static",
    title:
      "HTTP/2 over TLS, static 1 KiB file, h2load 4 conns x 32 streams, access log on, --max-requests lifted (vs nginx, http2)",
    short: "HTTP/2 static 1 KiB (vs nginx h2)",
    spindle: defaultApp({ tls: true, benchRoot: true, flags: H2_FLAGS }),
    reference: nginx(true),
    load: h2(file(FILES.small.name, H2_CONNS), H2_STREAMS),
    target: atLeast(0.8),
    needs: ["h2load", "nginx"],
  }),
  wsEchoCase(15),
  workersLimitsCase(16),
];
