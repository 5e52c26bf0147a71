/**
 * Load generators behind one signature: wrk (preferred, with a Lua script
 * for pipelining, exact totals and latency percentiles) or bench/load.ts in
 * its own process. Both run pinned to the load cores, when given, with the
 * fd limit raised so a thousand connections fit.
 */
import { join } from "node:path";
import type { LoadOptions, LoadResult } from "./load.ts";
import { pinned, withFdLimit } from "./procs.ts";

/** One load run: what to send, and where the generator runs. */
export interface GeneratorOptions extends LoadOptions {
  /** Generator threads (wrk -t); bench/load.ts runs one. */
  readonly threads: number;
  /** Cores for the generator (taskset syntax), or null for any. */
  readonly cpus: string | null;
  readonly fdLimit: number;
}

/** A load run's totals plus latency, where the generator measures it. */
export interface GeneratorResult extends LoadResult {
  /** Response time percentiles over the run, in microseconds; NaN if unknown. */
  readonly latencyP50Us: number;
  readonly latencyP99Us: number;
  readonly latencyMaxUs: number;
}

/** Runs one fixed-duration load against a server. */
export type Generator = (opts: GeneratorOptions) => Promise<GeneratorResult>;

const LOAD_TS = new URL("./load.ts", import.meta.url).pathname;
const WRK_MARK = "BENCH_JSON ";

/** `wrk --version` first line, or null when wrk is not installed. */
export async function wrkVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("wrk", { args: ["--version"] })
      .output();
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    return /^wrk\s+(\S+)/m.exec(text)?.[1] ?? text.split("\n")[0];
  } catch {
    return null;
  }
}

/**
 * The Lua script wrk runs: `pipeline` requests per write (wrk counts the
 * requests in the buffer and waits for as many responses), and a `done`
 * hook that prints exact totals instead of wrk's rounded "1.23MB".
 */
export function wrkScript(path: string, pipeline: number): string {
  return `local path = ${JSON.stringify(path)}
local depth = ${pipeline}
init = function(args)
  local r = {}
  for i = 1, depth do r[i] = wrk.format("GET", path) end
  req = table.concat(r)
end
request = function() return req end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${WRK_MARK}{"requests":%d,"bytes":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`;
}

interface WrkTotals {
  requests: number;
  bytes: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50?: number;
  p99?: number;
  max?: number;
}

/**
 * A latency from wrk's `done` hook, or NaN where wrk has none: no responses,
 * or 0, which its percentile lookup returns when the histogram misses the
 * rank (it keeps no sample past --timeout).
 */
function latency(t: WrkTotals, us: number | undefined): number {
  return t.requests > 0 && us !== undefined && us > 0 ? us : Number.NaN;
}

/** Parses wrk's output: the `done` hook's JSON, else "Requests/sec". */
export function parseWrkOutput(text: string): GeneratorResult {
  const mark = text.split("\n").find((l) => l.startsWith(WRK_MARK));
  if (mark) {
    const t = JSON.parse(mark.slice(WRK_MARK.length)) as WrkTotals;
    const seconds = t.durationUs / 1e6;
    return {
      requests: t.requests,
      bytes: t.bytes,
      durationMs: t.durationUs / 1000,
      requestsPerSec: t.requests / seconds,
      bytesPerSec: t.bytes / seconds,
      errorStatuses: t.status,
      socketErrors: t.connect + t.read + t.write + t.timeout,
      connects: Number.NaN,
      firstError: t.connect + t.read + t.write + t.timeout > 0
        ? `connect ${t.connect}, read ${t.read}, write ${t.write}, timeout ${t.timeout}`
        : t.requests === 0
        ? "wrk got no response and counted no error"
        : undefined,
      latencyP50Us: latency(t, t.p50),
      latencyP99Us: latency(t, t.p99),
      latencyMaxUs: latency(t, t.max),
    };
  }
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const transfer = /Transfer\/sec:\s+([\d.]+)([KMGT]?B)/.exec(text);
  if (!rps) throw new Error(`Cannot parse wrk output:\n${text}`);
  const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
  const bytesPerSec = transfer
    ? Number(transfer[1]) * unit[transfer[2] as keyof typeof unit]
    : Number.NaN;
  const requestsPerSec = Number(rps[1]);
  return {
    requests: Number.NaN,
    bytes: Number.NaN,
    durationMs: Number.NaN,
    requestsPerSec,
    bytesPerSec,
    errorStatuses: Number(
      /Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0,
    ),
    socketErrors: 0,
    connects: Number.NaN,
    latencyP50Us: Number.NaN,
    latencyP99Us: Number.NaN,
    latencyMaxUs: Number.NaN,
  };
}

/** A generator running wrk on the given cores. */
export function wrkGenerator(tempDir: string): Generator {
  let scripts = 0;
  return async (opts) => {
    const script = join(tempDir, `wrk_${scripts++}.lua`);
    await Deno.writeTextFile(script, wrkScript(opts.path, opts.pipeline));
    const seconds = Math.max(1, Math.round(opts.durationMs / 1000));
    const argv = withFdLimit(opts.fdLimit, [
      ...pinned(opts.cpus),
      "wrk",
      `-t${opts.threads}`,
      `-c${opts.connections}`,
      `-d${seconds}s`,
      "--timeout",
      "5s",
      "-s",
      script,
      `http://${opts.hostname}:${opts.port}${opts.path}`,
    ]);
    const run = await runTool(argv);
    return run.code === 0
      ? parseWrkOutput(run.stdout)
      : toolFailed("wrk", run, opts.durationMs);
  };
}

/** A generator running bench/load.ts in its own process (no latency figures). */
export function denoGenerator(): Generator {
  return scriptGenerator(LOAD_TS, "http", () => []);
}

const WS_LOAD_TS = new URL("./ws_load.ts", import.meta.url).pathname;

/**
 * A generator running bench/ws_load.ts in its own process: WebSocket
 * messages of `messageBytes` echoed, `pipeline` in flight per socket;
 * "requests" are messages. No latency figures.
 */
export function wsGenerator(messageBytes: number, binary: boolean): Generator {
  return scriptGenerator(WS_LOAD_TS, "ws", () => [
    "-s",
    `${messageBytes}`,
    ...(binary ? ["--binary"] : []),
  ]);
}

/**
 * Runs one of our load scripts (`-c`, `-d`, `-p`, `--json` and `extra`
 * flags) pinned to the load cores; its last line is the LoadResult.
 */
function scriptGenerator(
  script: string,
  scheme: "http" | "ws",
  extra: () => string[],
): Generator {
  return async (opts) => {
    const argv = withFdLimit(opts.fdLimit, [
      ...pinned(opts.cpus),
      Deno.execPath(),
      "run",
      "--allow-net",
      script,
      `${scheme}://${opts.hostname}:${opts.port}${opts.path}`,
      "-c",
      `${opts.connections}`,
      "-d",
      `${opts.durationMs / 1000}`,
      "-p",
      `${opts.pipeline}`,
      ...extra(),
      "--json",
    ]);
    const name = script.slice(script.lastIndexOf("/") + 1);
    const text = await runForStdout(name, argv);
    const result = JSON.parse(text.trim().split("\n").at(-1)!) as LoadResult;
    return {
      ...result,
      latencyP50Us: Number.NaN,
      latencyP99Us: Number.NaN,
      latencyMaxUs: Number.NaN,
    };
  };
}

/**
 * Parses h2load's summary and, when given, its per-request log (start µs,
 * status, µs to the end of the response; status -1 for a failed stream)
 * for the latency percentiles h2load itself does not print.
 */
export function parseH2loadOutput(
  text: string,
  log = "",
): GeneratorResult {
  const finished = /finished in ([\d.]+)(us|ms|s),/.exec(text);
  const counts =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/
      .exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/
    .exec(text);
  const traffic = /traffic: \S+ \((\d+)\) total/.exec(text);
  if (!finished || !counts || !codes) {
    throw new Error(`Cannot parse h2load output:\n${text}`);
  }
  const durationMs = Number(finished[1]) *
    { us: 0.001, ms: 1, s: 1000 }[finished[2] as "us" | "ms" | "s"];
  const started = Number(counts[2]);
  const done = Number(counts[3]);
  const failed = Number(counts[5]) + Number(counts[6]) + Number(counts[7]);
  // A timed run (-D) counts no failure for a client that never connected.
  const nothing = started === 0
    ? "h2load started no request: no client got through its connect and TLS handshake (refused, reset or failed: h2load -D does not say which)"
    : `h2load started ${started} requests and none was done`;
  const bytes = traffic ? Number(traffic[1]) : Number.NaN;
  const latencies = log.split("\n").flatMap((line) => {
    const [, status, us] = line.split("\t");
    return status !== undefined && Number(status) > 0 ? [Number(us)] : [];
  }).sort((a, b) => a - b);
  const rank = (p: number) =>
    latencies.length === 0 ? Number.NaN : latencies[
      Math.min(latencies.length - 1, Math.floor(p * latencies.length))
    ];
  return {
    requests: done,
    bytes,
    durationMs,
    requestsPerSec: done / (durationMs / 1000),
    bytesPerSec: bytes / (durationMs / 1000),
    errorStatuses: Number(codes[3]) + Number(codes[4]),
    socketErrors: failed,
    connects: Number.NaN,
    firstError: failed > 0
      ? `${counts[5]} failed, ${counts[6]} errored, ${counts[7]} timeout${
        done === 0 ? `; ${nothing}` : ""
      }`
      : done === 0
      ? nothing
      : undefined,
    latencyP50Us: rank(0.5),
    latencyP99Us: rank(0.99),
    latencyMaxUs: latencies.length === 0 ? Number.NaN : latencies.at(-1)!,
  };
}

/**
 * A generator running h2load (HTTP/2, TLS with ALPN h2 for https): each
 * of `connections` carries `pipeline` concurrent streams (`-m`), for the
 * run's duration (`-D`), asking for no compression.
 */
export function h2loadGenerator(
  scheme: "https" | "http" = "https",
): Generator {
  return async (opts) => {
    const log = await Deno.makeTempFile({ prefix: "h2load_", suffix: ".tsv" });
    const seconds = Math.max(1, Math.round(opts.durationMs / 1000));
    const argv = withFdLimit(opts.fdLimit, [
      ...pinned(opts.cpus),
      "h2load",
      `-t${opts.threads}`,
      `-c${opts.connections}`,
      `-m${opts.pipeline}`,
      `-D${seconds}`,
      `--log-file=${log}`,
      // h2load asks for gzip by default; wrk asks for nothing. Neither
      // reference compresses, and the HTTP/1.1 cases do not either.
      "-H",
      "accept-encoding: identity",
      `${scheme}://${opts.hostname}:${opts.port}${opts.path}`,
    ]);
    try {
      const run = await runTool(argv);
      return run.code === 0
        ? parseH2loadOutput(run.stdout, await Deno.readTextFile(log))
        : toolFailed("h2load", run, opts.durationMs);
    } finally {
      await Deno.remove(log).catch(() => {});
    }
  };
}

/** What a load tool printed, and its exit status. */
export interface ToolRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Lines of a failed tool's output kept in its run's reason. */
const TAIL_LINES = 3;

/**
 * A run whose tool exited with an error: nothing measured, and why (its
 * status and its last lines, errors first), so the round's line and the
 * row say it instead of a bare 0.
 */
export function toolFailed(
  what: string,
  run: ToolRun,
  durationMs: number,
): GeneratorResult {
  const tail = (text: string) =>
    text.split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(
      -TAIL_LINES,
    );
  const lines = [...tail(run.stderr), ...tail(run.stdout)].slice(0, TAIL_LINES);
  return {
    requests: 0,
    bytes: 0,
    durationMs,
    requestsPerSec: 0,
    bytesPerSec: 0,
    errorStatuses: 0,
    socketErrors: 0,
    connects: Number.NaN,
    firstError: `${what} exited with status ${run.code}${
      lines.length ? `: ${lines.join(" / ")}` : ", printing nothing"
    }`,
    latencyP50Us: Number.NaN,
    latencyP99Us: Number.NaN,
    latencyMaxUs: Number.NaN,
  };
}

/** Runs `argv` to its end. */
async function runTool(argv: string[]): Promise<ToolRun> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Runs `argv` and returns its stdout; throws with both outputs if it fails. */
async function runForStdout(what: string, argv: string[]): Promise<string> {
  const run = await runTool(argv);
  if (run.code !== 0) {
    throw new Error(`${what} failed: ${run.stdout}${run.stderr}`);
  }
  return run.stdout;
}
