/**
 * How the bench measures: servers started from a spec, load runs with the
 * server's CPU time and access-log bytes taken over the same window, and
 * rounds that alternate the servers' order so each case's figure is the
 * median of paired per-round ratios.
 */
import { join } from "node:path";
import type { Generator, GeneratorResult } from "./generators.ts";
import {
  accepts,
  bash,
  freePort,
  type Launch,
  type Placement,
  type ServerProcess,
  startServer,
  treeCpuReading,
} from "./procs.ts";
import {
  cpuBetween,
  cpuListSize,
  cpuMicrosPerUnit,
  impossibleCpu,
  median,
  roundOrder,
} from "./stats.ts";

/** Durations and counts for one bench run. */
export interface Settings {
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Measured runs per server per case, alternating order; the median counts. */
  readonly rounds: number;
  /** Idle keep-alive connections held in the connection and memory cases. */
  readonly idleConns: number;
  readonly memRounds: number;
  /** Timed starts per server in the start-up case. */
  readonly startRuns: number;
  readonly slowClients: number;
  readonly slowMs: number;
  readonly slowBytesPerSec: number;
}

/** The runner's state shared by every case. */
export interface Bench {
  readonly settings: Settings;
  /** Servers on one core, load generators on the other. */
  readonly pinned: Placement;
  /** Nothing pinned: servers and load share every core (the workers case). */
  readonly spread: Placement;
  readonly generate: Generator;
  readonly tempDir: string;
  /** Folder of the static files cases serve. */
  readonly root: string;
  readonly tools: {
    readonly wrk: boolean;
    readonly nginx: boolean;
    readonly h2load: boolean;
  };
  /** "Every run" lines of the report. */
  readonly details: string[];
  readonly notes: string[];
  readonly running: Set<ServerProcess>;
  /** Profile Spindle's side of each case in an extra run (--cpu-prof). */
  readonly cpuProf: boolean;
  /** Profile summaries for the report. */
  readonly profiles: string[];
}

export const HOST = "127.0.0.1";
export const KIB = 1024;
export const MIB = 1024 * KIB;
/** Log files are emptied between runs past this size, to spare the disk. */
const LOG_TRUNCATE_BYTES = 256 * MIB;

/** How to start one kind of server. */
export interface ServerSpec {
  /** Name in the table and logs, e.g. "Spindle" or "nginx". */
  readonly name: string;
  /** Writes an access line per request unbuffered: its log's growth is checked. */
  readonly logsAccess: boolean;
  launch(bench: Bench, port: number, logFile: string): Launch;
  /** The same server under `--cpu-prof`, writing to `dir`, if it can be. */
  readonly profiled?: (
    bench: Bench,
    port: number,
    logFile: string,
    dir: string,
  ) => Launch;
}

let logs = 0;

/**
 * Starts a server from its spec (under --cpu-prof into `profileDir` when
 * given); the runner stops it at the end if the case does not.
 */
export async function startSpec(
  bench: Bench,
  spec: ServerSpec,
  placement: Placement,
  profileDir?: string,
): Promise<ServerProcess> {
  const port = freePort();
  const logFile = join(bench.tempDir, `log_${logs++}_${port}.log`);
  const launch = profileDir && spec.profiled
    ? spec.profiled(bench, port, logFile, profileDir)
    : spec.launch(bench, port, logFile);
  const server = await startServer(
    launch,
    placement,
    placement.serverCpus !== null,
  );
  bench.running.add(server);
  const cmdline = (await bash(
    `tr '\\0' ' ' < /proc/${server.enginePid}/cmdline`,
  )).trim();
  bench.details.push(
    `- Started ${spec.name}: \`${
      launch.argv.join(" ")
    }\`; engine pid ${server.enginePid} (\`${cmdline}\`), cores ${server.cpusAllowed}`,
  );
  if (
    placement.serverCpus !== null && server.cpusAllowed !== placement.serverCpus
  ) {
    bench.notes.push(
      `${spec.name}'s engine (pid ${server.enginePid}) may run on cores ${server.cpusAllowed}, not ${placement.serverCpus}: the pinning did not reach it.`,
    );
  }
  return server;
}

/** Stops a server started by {@link startSpec}. */
export async function stopServer(
  bench: Bench,
  server: ServerProcess,
): Promise<void> {
  bench.running.delete(server);
  await server.stop();
}

/** Starts servers, runs `body`, stops them whatever happens. */
export async function withServers<T>(
  bench: Bench,
  specs: readonly ServerSpec[],
  placement: Placement,
  body: (servers: ServerProcess[]) => Promise<T>,
): Promise<T> {
  const servers: ServerProcess[] = [];
  try {
    for (const spec of specs) {
      servers.push(await startSpec(bench, spec, placement));
    }
    return await body(servers);
  } finally {
    for (const server of servers) await stopServer(bench, server);
  }
}

/** What the load generator sends. */
export interface Load {
  readonly path: string;
  readonly connections: number;
  readonly pipeline: number;
  /** wrk threads; 1 unless the case spreads over every core. */
  readonly threads: number;
  /** Another load generator than the run's (h2load, a WebSocket client). */
  readonly generate?: Generator;
}

/** A load run plus what the server spent on it. */
export interface Measured extends GeneratorResult {
  /** CPU time of the engine process (and its children) over the run. */
  readonly serverCpuSeconds: number;
  /** Bytes added to the server's access log over the run. */
  readonly logBytes: number;
  /**
   * Time between the two CPU readings by the bench's clock, from the start
   * of the first to the end of the second: never shorter than the time the
   * CPU figure covers (the load generator's own duration can be).
   */
  readonly windowMs: number;
  /** Why the CPU figure cannot be trusted (a failed read, more than the cores allow); none when sound. */
  readonly cpuProblems: readonly string[];
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/** One load run against `server`, with its CPU time and log growth. */
export async function measureOnce(
  bench: Bench,
  server: ServerProcess,
  load: Load,
  placement: Placement,
  durationMs: number,
): Promise<Measured> {
  if (await fileSize(server.accessLog) > LOG_TRUNCATE_BYTES) {
    // The log is opened O_APPEND, so the next line lands at the new end.
    await Deno.truncate(server.accessLog, 0);
  }
  const logBefore = await fileSize(server.accessLog);
  const windowStart = performance.now();
  const cpuBefore = await treeCpuReading(server.enginePid);
  const generate = load.generate ?? bench.generate;
  const result = await generate({
    ...load,
    hostname: HOST,
    port: server.port,
    durationMs,
    cpus: placement.loadCpus,
    fdLimit: placement.fdLimit,
  });
  const cpuAfter = await treeCpuReading(server.enginePid);
  const windowMs = performance.now() - windowStart;
  const logAfter = await fileSize(server.accessLog);
  const firstError = result.requests === 0
    ? noAnswerReason(
      result.firstError,
      await lastLine(server.accessLog, logBefore, logAfter),
      server.port,
      await accepts(server.port),
    )
    : result.firstError;
  const cpu = cpuBetween(cpuBefore, cpuAfter);
  const over = impossibleCpu(
    cpu.seconds,
    windowMs,
    cpuListSize(server.cpusAllowed),
    cpuAfter.ticksPerSec,
  );
  return {
    ...result,
    firstError,
    serverCpuSeconds: cpu.seconds,
    logBytes: Math.max(0, logAfter - logBefore),
    windowMs,
    cpuProblems: over === null ? cpu.problems : [...cpu.problems, over],
  };
}

/** Bytes of a log read back for its last line. */
const LAST_LINE_BYTES = 4 * KIB;

/** The last line the server wrote to `path` between offsets `from` and `to`, or "". */
async function lastLine(
  path: string,
  from: number,
  to: number,
): Promise<string> {
  if (to <= from) return "";
  const start = Math.max(from, to - LAST_LINE_BYTES);
  try {
    using file = await Deno.open(path);
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(to - start);
    let n = 0;
    while (n < buf.length) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    const lines = new TextDecoder().decode(buf.subarray(0, n)).trim();
    return lines.slice(lines.lastIndexOf("\n") + 1);
  } catch {
    return "";
  }
}

/**
 * Why a run got no answer at all: the generator's reason, the last line
 * the server wrote over the run (its log: a warning shows there), and
 * whether its port still takes connections, so the round's line says more
 * than a bare 0.
 */
export function noAnswerReason(
  generatorWhy: string | undefined,
  serverLine: string,
  port: number,
  stillAccepts: boolean,
): string {
  return [
    generatorWhy ?? "no request answered, and the generator counted no error",
    ...(serverLine === "" ? ["the server wrote nothing over the run"] : [
      `the server's last log line over the run: ${JSON.stringify(serverLine)}`,
    ]),
    `port ${port} ${
      stillAccepts ? "still accepts connections" : "refuses connections now"
    }`,
  ].join("; ");
}

/** One server of a paired measurement, and how each of its runs is made. */
export interface Side {
  readonly label: string;
  readonly server: ServerProcess;
  readonly load: Load;
  /** Wraps each measured run, e.g. to hold idle connections during it. */
  readonly around?: (run: () => Promise<Measured>) => Promise<Measured>;
}

/** True when a run got answers and no errors (its CPU figure aside: `cpuProblems`). */
export function clean(r: Measured): boolean {
  return r.requests > 0 && r.errorStatuses === 0 && r.socketErrors === 0;
}

/**
 * Server cores busy over a run (1.0: one core saturated), over the bench's
 * own window: the load generator's duration leaves out its start and end.
 */
export function cores(r: Measured): number {
  return r.serverCpuSeconds / (r.windowMs / 1000);
}

/** Server CPU per request, or per MiB for byte-rate cases, in µs. */
export function cpuPerUnit(r: Measured, perMiB: boolean): number {
  return cpuMicrosPerUnit(
    r.serverCpuSeconds,
    perMiB ? r.bytes / MIB : r.requests,
  );
}

/** Median server CPU per unit over a side's runs. */
export function medianCpu(runs: readonly Measured[], perMiB: boolean): number {
  return median(runs.map((r) => cpuPerUnit(r, perMiB)));
}

/** The "Every run" line for one measured run. */
export function describeMeasured(r: Measured, perMiB = false): string {
  if (r.requests === 0) {
    // No figure per request to give: the window's CPU, and why.
    return [
      "no request answered",
      `server CPU ${cores(r).toFixed(2)} cores`,
      r.firstError ?? "no reason given",
      ...r.cpuProblems,
    ].join("; ");
  }
  const parts = [
    `${Math.round(r.requestsPerSec).toLocaleString("en-US")} req/s`,
    `${(r.bytesPerSec / MIB).toFixed(1)} MiB/s`,
    `server CPU ${cores(r).toFixed(2)} cores, ${
      cpuPerUnit(r, perMiB).toFixed(perMiB ? 0 : 2)
    } µs/${perMiB ? "MiB" : "req"}`,
  ];
  if (!Number.isNaN(r.latencyP99Us)) {
    parts.push(
      `latency p50 ${(r.latencyP50Us / 1000).toFixed(2)} ms, p99 ${
        (r.latencyP99Us / 1000).toFixed(2)
      } ms`,
    );
  }
  if (r.logBytes > 0) {
    parts.push(`access log ${(r.logBytes / r.requests).toFixed(0)} B/req`);
  }
  if (r.errorStatuses + r.socketErrors > 0) {
    parts.push(
      `${r.errorStatuses} bad statuses, ${r.socketErrors} socket errors${
        r.firstError ? ` (${r.firstError})` : ""
      }`,
    );
  }
  parts.push(...r.cpuProblems);
  return parts.join("; ");
}

/**
 * Warms every side, then measures them `settings.rounds` times, round i in
 * the order {@link roundOrder} gives, so no side always goes first. Returns
 * each side's runs, round by round (`[side][round]`).
 */
export async function measureSides(
  bench: Bench,
  caseLabel: string,
  sides: readonly Side[],
  placement: Placement,
  perMiB = false,
): Promise<Measured[][]> {
  const { settings } = bench;
  for (const side of sides) {
    await measureOnce(
      bench,
      side.server,
      side.load,
      placement,
      settings.warmupMs,
    );
  }
  const runs: Measured[][] = sides.map(() => []);
  for (let round = 0; round < settings.rounds; round++) {
    for (const i of roundOrder(sides.length, round)) {
      const side = sides[i];
      const run = () =>
        measureOnce(
          bench,
          side.server,
          side.load,
          placement,
          settings.measureMs,
        );
      const result = side.around ? await side.around(run) : await run();
      runs[i][round] = result;
      const line = `${caseLabel}, round ${round + 1}, ${side.label}: ${
        describeMeasured(result, perMiB)
      }`;
      bench.details.push(`- ${line}`);
      console.error(`  ${line}`);
    }
  }
  return runs;
}

/** A short pause, e.g. for a server to notice closed connections. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
