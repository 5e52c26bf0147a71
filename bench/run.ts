/**
 * `deno task bench`: measures Spindle side by side with reference servers
 * (Deno.serve, nginx) in the same run and reports ratios against targets.
 * A report, not a test: it exits 0 when a target is missed, and says so.
 *
 * Flags: --quick (about a minute), --only 1,3 (cases by number),
 * --loadgen wrk|deno, --no-pin, --cpu-prof (extra profiled Spindle runs),
 * --out <file> (default bench/results.md).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { IdleConnections, slowRead, type SlowReadResult } from "./clients.ts";
import { hotSpots, newestProfile } from "./cpu_profile.ts";
import {
  denoGenerator,
  type Generator,
  wrkGenerator,
  wrkVersion,
} from "./generators.ts";
import type { LoadOptions, LoadResult } from "./load.ts";
import {
  nginxVersion,
  type Placement,
  type ServerProcess,
  startDenoServer,
  startNginx,
  treeCpuSeconds,
  treeRssBytes,
} from "./procs.ts";

/** Durations and counts for one bench run. */
interface Settings {
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Measurements per server per case; the best counts (alternating order). */
  readonly rounds: number;
  readonly idleConns: number;
  readonly memRounds: number;
  readonly slowClients: number;
  readonly slowMs: number;
  readonly slowBytesPerSec: number;
}

const FULL: Settings = {
  warmupMs: 2000,
  measureMs: 5000,
  rounds: 5, // this machine's noise is +-10%: more rounds, less luck
  idleConns: 2000,
  memRounds: 2,
  slowClients: 10,
  slowMs: 10_000,
  slowBytesPerSec: 4 * 1024 * 1024,
};

const QUICK: Settings = {
  warmupMs: 1000,
  measureMs: 2000,
  rounds: 1,
  idleConns: 1000,
  memRounds: 1,
  slowClients: 10,
  slowMs: 5000,
  slowBytesPerSec: 4 * 1024 * 1024,
};

const HOST = "127.0.0.1";
const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const FILES = { small: "1k.bin", medium: "1m.bin", large: "1g.bin" } as const;
/** Idle timeout given to Spindle in the idle-memory case: longer than the case. */
const IDLE_KEEP_ALIVE_MS = 120_000;
/** Server fd limit: 2000 idle connections plus the engine's maxConns fit. */
const WANTED_FD_LIMIT = 65_536;
const LARGE_FILE_TARGET_BYTES = 100 * MIB;
/** A server using less CPU than this was not the bottleneck of its run. */
const SATURATED_CORES = 0.8;

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const REPO_DIR = new URL("..", import.meta.url).pathname;
const SERVERS = join(BENCH_DIR, "servers");

type Verdict = "pass" | "FAIL" | "skip";

/** One line of the results table. */
interface Row {
  readonly id: number;
  readonly what: string;
  readonly spindle: string;
  readonly reference: string;
  readonly ratio: string;
  readonly target: string;
  readonly verdict: Verdict;
  /** Why the verdict may not hold, e.g. a run limited by something else. */
  readonly caveat?: string;
}

/** One line of the CPU-cost table: lower is better. */
interface CpuRow {
  readonly id: number;
  readonly what: string;
  readonly spindle: string;
  readonly reference: string;
  readonly ratio: string;
}

/** The runner's state shared by every case. */
interface Bench {
  readonly settings: Settings;
  readonly placement: Placement;
  readonly generate: Generator;
  readonly tempDir: string;
  readonly root: string;
  readonly hasNginx: boolean;
  /** Spindle's engine (and static handler) exist, rather than stand-ins. */
  readonly spindleEngine: boolean;
  readonly spindleStatic: boolean;
  readonly cpuProf: boolean;
  readonly rows: Row[];
  /** Server CPU per unit of work, cases 1, 2, 4, 5. */
  readonly cpuRows: CpuRow[];
  readonly details: string[];
  readonly notes: string[];
  readonly profiles: string[];
}

const running = new Set<ServerProcess>();

async function start(
  make: () => Promise<ServerProcess>,
): Promise<ServerProcess> {
  const server = await make();
  running.add(server);
  return server;
}

async function stop(server: ServerProcess): Promise<void> {
  running.delete(server);
  await server.stop();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- formatting -------------------------------------------------------

function fmtRps(n: number): string {
  return `${Math.round(n).toLocaleString("en-US")} req/s`;
}

function fmtBytes(n: number): string {
  if (Math.abs(n) >= GIB) return `${(n / GIB).toFixed(2)} GiB`;
  if (Math.abs(n) >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  if (Math.abs(n) >= KIB) return `${(n / KIB).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

function fmtRatio(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(2)}x` : "n/a";
}

function describeRun(r: LoadResult): string {
  const errors = r.errorStatuses + r.socketErrors > 0
    ? `, ${r.errorStatuses} bad statuses, ${r.socketErrors} socket errors${
      r.firstError ? ` (${r.firstError})` : ""
    }`
    : "";
  return `${fmtRps(r.requestsPerSec)}, ${fmtBytes(r.bytesPerSec)}/s${errors}`;
}

function clean(r: LoadResult): boolean {
  return r.requests > 0 && r.errorStatuses === 0 && r.socketErrors === 0;
}

// ---- servers ----------------------------------------------------------

function helloServer(
  bench: Bench,
  spindle: boolean,
  args: string[] = [],
  denoFlags: string[] = [],
) {
  const useSpindle = spindle && bench.spindleEngine;
  const script = useSpindle ? "spindle_hello.ts" : "deno_serve_hello.ts";
  return () =>
    startDenoServer(
      spindle ? "Spindle" : "Deno.serve",
      join(SERVERS, script),
      useSpindle ? args : [],
      bench.placement,
      denoFlags,
    );
}

function bareLoopServer(bench: Bench) {
  return () =>
    startDenoServer(
      "bare loop",
      join(SERVERS, "bare_loop.ts"),
      [],
      bench.placement,
      [],
    );
}

/**
 * Case 1's floor: a loop of `conn.read()` and `conn.write()` with no HTTP
 * work, against Deno.serve in the same run. Reported as a note and a CPU
 * row, not a verdict: it shows what any engine on Deno.listen starts from.
 */
async function floorCase(bench: Bench): Promise<void> {
  const c = ENGINE_CASES[0];
  const reference = await start(helloServer(bench, false));
  try {
    const bare = await start(bareLoopServer(bench));
    try {
      console.error("1. floor: a bare Deno.listen loop");
      const pair = await comparePair(
        bench,
        c.id,
        "Bare Deno.listen read/write loop, no HTTP (floor, vs Deno.serve)",
        reference,
        bare,
        c.load,
        (r) => r.requestsPerSec,
      );
      bench.notes.push(
        `Case 1's floor, same run: a bare Deno.listen loop (one fixed reply per read, no parsing, no limits, no deadlines; bench/servers/bare_loop.ts) reached ${
          fmtRps(pair.spindle.requestsPerSec)
        }, ${
          fmtRatio(
            pair.spindle.requestsPerSec / pair.reference.requestsPerSec,
          )
        } Deno.serve's ${
          fmtRps(pair.reference.requestsPerSec)
        }. Spindle pays two async ops per request (read and write), as this loop does; Deno.serve pays one, with hyper parsing in Rust.`,
      );
    } finally {
      await stop(bare);
    }
  } finally {
    await stop(reference);
  }
}

function staticServer(bench: Bench, denoFlags: string[] = []) {
  const script = bench.spindleStatic
    ? "spindle_static.ts"
    : "deno_serve_static.ts";
  return () =>
    startDenoServer(
      "Spindle",
      join(SERVERS, script),
      [bench.root],
      bench.placement,
      denoFlags,
    );
}

function nginxServer(bench: Bench) {
  return () =>
    startNginx(
      join(bench.tempDir, `nginx_${crypto.randomUUID().slice(0, 8)}`),
      bench.root,
      bench.placement,
    );
}

// ---- throughput cases -------------------------------------------------

type Load = Pick<LoadOptions, "path" | "connections" | "pipeline">;

/** A load run plus the CPU time the server used during it. */
interface Measured extends LoadResult {
  readonly serverCpuSeconds: number;
}

/** Server CPU per unit of work: microseconds per request or per MiB. */
function cpuPerUnit(r: Measured, perMiB: boolean): number {
  const units = perMiB ? r.bytes / MIB : r.requests;
  return r.serverCpuSeconds * 1e6 / units;
}

/** Warms both servers, then measures them alternately; the best run counts. */
async function comparePair(
  bench: Bench,
  id: number,
  what: string,
  reference: ServerProcess,
  spindle: ServerProcess,
  load: Load,
  metric: (r: LoadResult) => number,
  perMiB = false,
): Promise<{ reference: Measured; spindle: Measured }> {
  const { settings, generate } = bench;
  const run = async (
    server: ServerProcess,
    durationMs: number,
  ): Promise<Measured> => {
    const cpuBefore = await treeCpuSeconds(server.pid);
    const result = await generate({
      ...load,
      hostname: HOST,
      port: server.port,
      durationMs,
    });
    const cpuAfter = await treeCpuSeconds(server.pid);
    return { ...result, serverCpuSeconds: cpuAfter - cpuBefore };
  };
  for (const server of [reference, spindle]) {
    await run(server, settings.warmupMs);
  }
  const runs = new Map<ServerProcess, Measured[]>([
    [reference, []],
    [spindle, []],
  ]);
  for (let round = 0; round < settings.rounds; round++) {
    const order = round % 2 === 0 ? [reference, spindle] : [spindle, reference];
    for (const server of order) {
      const result = await run(server, settings.measureMs);
      runs.get(server)!.push(result);
      const cpu = `server CPU ${
        (result.serverCpuSeconds / (result.durationMs / 1000)).toFixed(2)
      } cores, ${cpuPerUnit(result, perMiB).toFixed(1)} µs/${
        perMiB ? "MiB" : "req"
      }`;
      const line = `${describeRun(result)}; ${cpu}`;
      bench.details.push(
        `- ${id}, ${server.name}, round ${round + 1}: ${line}`,
      );
      console.error(`  ${server.name}: ${line}`);
    }
  }
  const best = (list: Measured[]) =>
    list.reduce((a, b) =>
      (clean(b) && (!clean(a) || metric(b) > metric(a))) ? b : a
    );
  const leastCpu = (list: Measured[]) =>
    Math.min(...list.filter(clean).map((r) => cpuPerUnit(r, perMiB)));
  const cpuSpindle = leastCpu(runs.get(spindle)!);
  const cpuReference = leastCpu(runs.get(reference)!);
  const unit = perMiB ? "µs/MiB" : "µs/req";
  bench.cpuRows.push({
    id,
    what,
    spindle: `${cpuSpindle.toFixed(1)} ${unit}`,
    reference: `${cpuReference.toFixed(1)} ${unit}`,
    ratio: fmtRatio(cpuSpindle / cpuReference),
  });
  const pair = {
    reference: best(runs.get(reference)!),
    spindle: best(runs.get(spindle)!),
  };
  for (
    const [server, r] of [[reference, pair.reference], [
      spindle,
      pair.spindle,
    ]] as const
  ) {
    const cores = r.serverCpuSeconds / (r.durationMs / 1000);
    if (cores < SATURATED_CORES) {
      bench.notes.push(
        `Case ${id}: ${server.name} used only ${
          cores.toFixed(2)
        } cores in its best run, so the load generator or other processes limited its figure, not the server.`,
      );
    }
  }
  return pair;
}

function throughputRow(
  id: number,
  what: string,
  pair: { reference: Measured; spindle: Measured },
  metric: (r: LoadResult) => number,
  fmt: (n: number) => string,
  minRatio: number,
): Row {
  const ratio = metric(pair.spindle) / metric(pair.reference);
  const valid = clean(pair.spindle) && clean(pair.reference);
  const note = (r: LoadResult) => clean(r) ? "" : " (errors)";
  const cores = (r: Measured) => r.serverCpuSeconds / (r.durationMs / 1000);
  const saturated = cores(pair.spindle) >= SATURATED_CORES &&
    cores(pair.reference) >= SATURATED_CORES;
  return {
    id,
    what,
    spindle: fmt(metric(pair.spindle)) + note(pair.spindle),
    reference: fmt(metric(pair.reference)) + note(pair.reference),
    ratio: fmtRatio(ratio),
    target: `>= ${minRatio.toFixed(1)}x`,
    verdict: valid && ratio >= minRatio ? "pass" : "FAIL",
    caveat: saturated ? undefined : "a server was not saturated, see notes",
  };
}

/** A throughput case: one load against a Spindle server and its reference. */
interface ThroughputCase {
  readonly id: number;
  readonly what: string;
  readonly load: Load;
  /** Compare bytes/s rather than requests/s. */
  readonly bytesPerSec: boolean;
  readonly minRatio: number;
}

const ENGINE_CASES: readonly ThroughputCase[] = [
  {
    id: 1,
    what: 'Engine "hello", 64 keep-alive conns (vs Deno.serve)',
    load: { path: "/", connections: 64, pipeline: 1 },
    bytesPerSec: false,
    minRatio: 1.0,
  },
  {
    id: 2,
    what: 'Engine "hello", 16 conns x 16 pipelined (vs Deno.serve)',
    load: { path: "/", connections: 16, pipeline: 16 },
    bytesPerSec: false,
    minRatio: 1.0,
  },
];

const STATIC_CASES: readonly ThroughputCase[] = [
  {
    id: 4,
    what: "Static 1 KiB file, 64 keep-alive conns (vs nginx)",
    load: { path: `/${FILES.small}`, connections: 64, pipeline: 1 },
    bytesPerSec: false,
    minRatio: 0.9,
  },
  {
    id: 5,
    what: "Static 1 MiB file, 16 conns, bytes/s (vs nginx)",
    load: { path: `/${FILES.medium}`, connections: 16, pipeline: 1 },
    bytesPerSec: true,
    minRatio: 0.8,
  },
];

async function throughputCases(
  bench: Bench,
  cases: ThroughputCase[],
  makeReference: () => Promise<ServerProcess>,
  makeSpindle: () => Promise<ServerProcess>,
): Promise<void> {
  if (cases.length === 0) return;
  const reference = await start(makeReference);
  try {
    const spindle = await start(makeSpindle);
    try {
      for (const c of cases) {
        console.error(`${c.id}. ${c.what}`);
        const metric = c.bytesPerSec
          ? (r: LoadResult) => r.bytesPerSec
          : (r: LoadResult) => r.requestsPerSec;
        const pair = await comparePair(
          bench,
          c.id,
          c.what,
          reference,
          spindle,
          c.load,
          metric,
          c.bytesPerSec,
        );
        bench.rows.push(throughputRow(
          c.id,
          c.what,
          pair,
          metric,
          c.bytesPerSec ? (n) => `${fmtBytes(n)}/s` : fmtRps,
          c.minRatio,
        ));
      }
    } finally {
      await stop(spindle);
    }
  } finally {
    await stop(reference);
  }
}

function skipRow(id: number, what: string, why: string): Row {
  return {
    id,
    what,
    spindle: "-",
    reference: "-",
    ratio: "-",
    target: why,
    verdict: "skip",
  };
}

// ---- memory cases -----------------------------------------------------

/** RSS of a server tree: median of three samples, to step over a GC blip. */
async function steadyRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    samples.push(await treeRssBytes(pid));
    await sleep(100);
  }
  return samples.sort((a, b) => a - b)[1];
}

interface IdleMemory {
  readonly perConn: number;
  readonly before: number;
  readonly after: number;
  readonly opened: number;
  readonly alive: number;
}

async function idleMemory(
  bench: Bench,
  make: () => Promise<ServerProcess>,
  count: number,
): Promise<IdleMemory> {
  const server = await start(make);
  try {
    await bench.generate({
      hostname: HOST,
      port: server.port,
      path: "/",
      connections: 64,
      pipeline: 1,
      durationMs: Math.min(bench.settings.warmupMs, 1000),
    });
    await sleep(500);
    const before = await steadyRss(server.pid);
    await using idle = await IdleConnections.open(
      HOST,
      server.port,
      "/",
      count,
    );
    await sleep(1000);
    const after = await steadyRss(server.pid);
    const alive = await idle.countAlive();
    return {
      perConn: (after - before) / idle.count,
      before,
      after,
      opened: idle.count,
      alive,
    };
  } finally {
    await stop(server);
  }
}

async function idleMemoryCase(bench: Bench, fdLimit: number): Promise<void> {
  // The runner holds the client ends, so its own fd limit caps the count.
  const count = Math.min(bench.settings.idleConns, fdLimit - 256);
  if (count < bench.settings.idleConns) {
    bench.notes.push(
      `Case 3 opened ${count} connections, not ${bench.settings.idleConns}: the runner's fd limit is ${fdLimit}.`,
    );
  }
  console.error(`3. memory per idle keep-alive connection (${count} conns)`);
  const results = {
    reference: [] as IdleMemory[],
    spindle: [] as IdleMemory[],
  };
  for (let round = 0; round < bench.settings.memRounds; round++) {
    const order = round % 2 === 0
      ? ["reference", "spindle"] as const
      : ["spindle", "reference"] as const;
    for (const side of order) {
      const make = side === "spindle"
        ? helloServer(bench, true, ["--keep-alive-ms", `${IDLE_KEEP_ALIVE_MS}`])
        : helloServer(bench, false);
      const m = await idleMemory(bench, make, count);
      results[side].push(m);
      const name = side === "spindle" ? "Spindle" : "Deno.serve";
      const line = `${fmtBytes(m.perConn)}/conn (RSS ${fmtBytes(m.before)} -> ${
        fmtBytes(m.after)
      }, ${m.alive}/${m.opened} still open at the end)`;
      bench.details.push(`- 3, ${name}, round ${round + 1}: ${line}`);
      console.error(`  ${name}: ${line}`);
    }
  }
  const best = (list: IdleMemory[]) =>
    list.reduce((a, b) => b.perConn < a.perConn ? b : a);
  const spindle = best(results.spindle);
  const reference = best(results.reference);
  const allAlive = spindle.alive === spindle.opened &&
    reference.alive === reference.opened;
  if (!allAlive) {
    bench.notes.push(
      "Case 3: some idle connections were closed before the end, so the figure undercounts them.",
    );
  }
  bench.rows.push({
    id: 3,
    what: `Memory per idle keep-alive conn, ${count} conns (vs Deno.serve)`,
    spindle: `${fmtBytes(spindle.perConn)}/conn`,
    reference: `${fmtBytes(reference.perConn)}/conn`,
    ratio: fmtRatio(spindle.perConn / reference.perConn),
    target: "<= Deno.serve",
    verdict: allAlive && spindle.perConn <= reference.perConn ? "pass" : "FAIL",
  });
}

interface LargeFileMemory {
  readonly added: number;
  readonly baseline: number;
  readonly peak: number;
  readonly clients: SlowReadResult[];
  readonly aliveAfter: boolean;
}

async function largeFileMemory(
  bench: Bench,
  make: () => Promise<ServerProcess>,
): Promise<LargeFileMemory> {
  const { settings } = bench;
  const server = await start(make);
  try {
    await bench.generate({
      hostname: HOST,
      port: server.port,
      path: `/${FILES.small}`,
      connections: 8,
      pipeline: 1,
      durationMs: 1000,
    });
    await sleep(500);
    const baseline = await steadyRss(server.pid);
    let peak = baseline;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await treeRssBytes(server.pid));
        await sleep(100);
      }
    })();
    const clients = await Promise.all(
      Array.from({ length: settings.slowClients }, () =>
        slowRead({
          hostname: HOST,
          port: server.port,
          path: `/${FILES.large}`,
          bytesPerSec: settings.slowBytesPerSec,
          durationMs: settings.slowMs,
          readMs: 2000,
          pauseMs: 1000,
        })),
    );
    await sleep(500); // the server notices the closes
    sampling = false;
    await sampler;
    let aliveAfter = false;
    try {
      await using probe = await IdleConnections.open(
        HOST,
        server.port,
        `/${FILES.small}`,
        1,
      );
      aliveAfter = probe.count === 1;
    } catch { /* reported as not alive */ }
    return { added: peak - baseline, baseline, peak, clients, aliveAfter };
  } finally {
    await stop(server);
  }
}

async function largeFileCase(bench: Bench): Promise<void> {
  const { settings } = bench;
  console.error(
    `6. memory with ${settings.slowClients} slow clients on a 1 GiB file`,
  );
  const measure = async (name: string, make: () => Promise<ServerProcess>) => {
    const m = await largeFileMemory(bench, make);
    const got = m.clients.reduce((n, c) => n + c.bytes, 0);
    const bad = m.clients.filter((c) => c.status !== 200 || c.error);
    const line = `+${fmtBytes(m.added)} RSS (baseline ${
      fmtBytes(m.baseline)
    }, peak ${fmtBytes(m.peak)}); clients read ${
      fmtBytes(got)
    } in total; ${bad.length} clients failed${
      bad[0]
        ? ` (status ${bad[0].status}${bad[0].error ? `, ${bad[0].error}` : ""})`
        : ""
    }; server ${m.aliveAfter ? "answered" : "did NOT answer"} afterwards`;
    bench.details.push(`- 6, ${name}: ${line}`);
    console.error(`  ${name}: ${line}`);
    return { ...m, ok: bad.length === 0 && m.aliveAfter };
  };
  const spindle = await measure("Spindle", staticServer(bench));
  const reference = bench.hasNginx
    ? await measure("nginx", nginxServer(bench))
    : null;
  bench.rows.push({
    id: 6,
    what:
      `RSS added by ${settings.slowClients} slow clients on a 1 GiB file (nginx shown)`,
    spindle: `+${fmtBytes(spindle.added)}${spindle.ok ? "" : " (errors)"}`,
    reference: reference ? `+${fmtBytes(reference.added)}` : "nginx missing",
    ratio: "-",
    target: `< ${fmtBytes(LARGE_FILE_TARGET_BYTES)} added`,
    verdict: spindle.ok && spindle.added < LARGE_FILE_TARGET_BYTES
      ? "pass"
      : "FAIL",
  });
}

// ---- profiles ---------------------------------------------------------

/** Extra runs of Spindle under --cpu-prof; the table's figures stay unprofiled. */
async function profileCases(bench: Bench, ids: Set<number>): Promise<void> {
  const cases = [
    ...ENGINE_CASES.map((c) => ({ ...c, static: false })),
    ...STATIC_CASES.map((c) => ({ ...c, static: true })),
  ].filter((c) => ids.has(c.id));
  for (const c of cases) {
    const dir = join(bench.tempDir, `prof_${c.id}`);
    await Deno.mkdir(dir, { recursive: true });
    const flags = ["--cpu-prof", `--cpu-prof-dir=${dir}`];
    console.error(`profiling Spindle: ${c.id}. ${c.what}`);
    const server = await start(
      c.static
        ? staticServer(bench, flags)
        : helloServer(bench, true, [], flags),
    );
    let result: LoadResult;
    try {
      result = await bench.generate({
        ...c.load,
        hostname: HOST,
        port: server.port,
        durationMs: bench.settings.measureMs,
      });
    } finally {
      await stop(server);
    }
    const profile = await newestProfile(dir);
    const lines = [
      `### ${c.id}. ${c.what}`,
      "",
      `Profiled run: ${describeRun(result)}.`,
      "",
    ];
    if (!profile) lines.push("No profile was written.");
    else {
      lines.push(
        "| Self time | Share of busy time | Function |",
        "|---:|---:|---|",
      );
      for (const spot of hotSpots(profile, 15)) {
        lines.push(
          `| ${spot.selfMs.toFixed(0)} ms | ${
            (spot.share * 100).toFixed(1)
          }% | \`${spot.where}\` |`,
        );
      }
    }
    bench.profiles.push(lines.join("\n"));
  }
}

// ---- environment and report -------------------------------------------

async function shell(script: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  return new TextDecoder().decode(out.stdout).trim();
}

async function makeFiles(root: string): Promise<void> {
  await Deno.mkdir(root, { recursive: true });
  const random = (n: number) => {
    const bytes = new Uint8Array(n);
    for (let off = 0; off < n; off += 65_536) {
      crypto.getRandomValues(bytes.subarray(off, Math.min(n, off + 65_536)));
    }
    return bytes;
  };
  await Deno.writeFile(join(root, FILES.small), random(KIB));
  await Deno.writeFile(join(root, FILES.medium), random(MIB));
  // Sparse: 1 GiB of zeros that costs no disk and reads from no disk.
  using large = await Deno.open(join(root, FILES.large), {
    create: true,
    write: true,
    truncate: true,
  });
  await large.truncate(GIB);
}

function renderTable(rows: Row[]): string {
  const lines = [
    "| # | What | Spindle | Reference | Ratio | Target | Result |",
    "|---|---|---:|---:|---:|---|---|",
  ];
  for (const r of [...rows].sort((a, b) => a.id - b.id)) {
    const verdict = (r.verdict === "FAIL" ? "**FAIL**" : r.verdict) +
      (r.caveat ? ` (${r.caveat})` : "");
    lines.push(
      `| ${r.id} | ${r.what} | ${r.spindle} | ${r.reference} | ${r.ratio} | ${r.target} | ${verdict} |`,
    );
  }
  return lines.join("\n");
}

function renderCpuTable(rows: CpuRow[]): string {
  const lines = [
    "| # | What | Spindle | Reference | Spindle / reference |",
    "|---|---|---:|---:|---:|",
  ];
  for (const r of [...rows].sort((a, b) => a.id - b.id)) {
    lines.push(
      `| ${r.id} | ${r.what} | ${r.spindle} | ${r.reference} | ${r.ratio} |`,
    );
  }
  return lines.join("\n");
}

function fmtLoad(load: number[]): string {
  return load.map((n) => n.toFixed(2)).join(" ");
}

function usage(): string {
  return `Usage: deno task bench [--quick] [--only 1,2,...] [--loadgen wrk|deno] [--no-pin] [--cpu-prof] [--out file]
Cases: 1 engine hello, 2 engine pipelined, 3 idle-connection memory,
       4 static 1 KiB, 5 static 1 MiB, 6 slow clients on a 1 GiB file`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      loadgen: { type: "string" },
      "no-pin": { type: "boolean", default: false },
      "cpu-prof": { type: "boolean", default: false },
      out: { type: "string", default: join(BENCH_DIR, "results.md") },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    return;
  }
  const ids = new Set(
    values.only ? values.only.split(",").map(Number) : [1, 2, 3, 4, 5, 6],
  );
  const settings = values.quick ? QUICK : FULL;

  const [cpus, cpuModel, kernel, fdSoft, fdHard, wrk, nginx] = await Promise
    .all([
      shell("nproc"),
      shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
      shell("uname -r"),
      shell("ulimit -n"),
      shell("ulimit -Hn"),
      wrkVersion(),
      nginxVersion(),
    ]);
  const hasTaskset = (await shell("command -v taskset")) !== "";
  const pin = !values["no-pin"] && hasTaskset && Number(cpus) >= 2;
  const hardLimit = fdHard === "unlimited" ? WANTED_FD_LIMIT : Number(fdHard);
  const placement: Placement = {
    serverCpus: pin ? "0" : null,
    loadCpus: pin ? "1" : null,
    fdLimit: Math.min(WANTED_FD_LIMIT, hardLimit),
  };
  if (pin) {
    // The runner is a load generator too (cases 3 and 6): keep it off core 0.
    await shell(`taskset -a -p -c 1 ${Deno.pid} >/dev/null`);
  }

  const loadgen = values.loadgen ?? (wrk ? "wrk" : "deno");
  if (loadgen === "wrk" && !wrk) {
    throw new Error("--loadgen wrk, but wrk is not installed");
  }
  const tempDir = await Deno.makeTempDir({ prefix: "spindle_bench_" });
  const exists = async (path: string) => {
    try {
      await Deno.stat(join(REPO_DIR, path));
      return true;
    } catch {
      return false;
    }
  };
  const spindleEngine = await exists("lib/http/server.ts");
  const spindleStatic = spindleEngine &&
    await exists("lib/app/static_files.ts");
  const bench: Bench = {
    settings,
    placement,
    generate: loadgen === "wrk"
      ? wrkGenerator(tempDir, placement.loadCpus)
      : denoGenerator(placement.loadCpus),
    tempDir,
    root: join(tempDir, "root"),
    hasNginx: nginx !== null,
    spindleEngine,
    spindleStatic,
    cpuProf: values["cpu-prof"],
    rows: [],
    cpuRows: [],
    details: [],
    notes: [],
    profiles: [],
  };
  if (!spindleEngine) {
    bench.notes.push(
      "lib/http/server.ts is missing: the Spindle column ran Deno.serve stand-ins. These figures say nothing about Spindle.",
    );
  } else if (!spindleStatic) {
    bench.notes.push(
      "lib/app/static_files.ts is missing: Spindle's static cases ran a Deno.serve stand-in.",
    );
  }
  if (!nginx) {
    bench.notes.push(
      "nginx is not installed: cases 4 and 5 are skipped, case 6 has no reference.",
    );
  }
  if (!pin) {
    bench.notes.push(
      "Servers and load generator were not pinned to separate cores.",
    );
  }

  const stopAll = async () => {
    for (const server of [...running]) await stop(server).catch(() => {});
  };
  const onSignal = () => {
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  const started = Date.now();
  const loadBefore = Deno.loadavg();
  if (loadBefore[0] > 0.5) {
    bench.notes.push(
      `Other work was running: load average ${
        fmtLoad(loadBefore)
      } before the bench started. Throughput figures are noisy; the CPU-per-request table is steadier.`,
    );
  }
  // A case that cannot run becomes a FAIL row; the others still run.
  const attempt = async (
    cases: { id: number; what: string }[],
    body: () => Promise<void>,
  ) => {
    if (cases.length === 0) return;
    try {
      await body();
    } catch (err) {
      const message = (err as Error).message.split("\n")[0];
      console.error(`  error: ${(err as Error).message}`);
      for (const c of cases) {
        if (bench.rows.some((r) => r.id === c.id)) continue;
        bench.rows.push({ ...skipRow(c.id, c.what, "-"), verdict: "FAIL" });
        bench.notes.push(`Case ${c.id} did not run: ${message}`);
      }
    }
  };
  try {
    await makeFiles(bench.root);
    const engineCases = ENGINE_CASES.filter((c) => ids.has(c.id));
    await attempt(engineCases, () =>
      throughputCases(
        bench,
        engineCases,
        helloServer(bench, false),
        helloServer(bench, true),
      ));
    if (ids.has(1)) {
      await floorCase(bench).catch((err) =>
        bench.notes.push(
          `Case 1's floor did not run: ${(err as Error).message}`,
        )
      );
    }
    await attempt(
      ids.has(3) ? [{ id: 3, what: "Memory per idle keep-alive conn" }] : [],
      () => idleMemoryCase(bench, Number(fdSoft) || 1024),
    );
    const staticCases = STATIC_CASES.filter((c) => ids.has(c.id));
    if (!bench.hasNginx) {
      for (const c of staticCases) {
        bench.rows.push(skipRow(c.id, c.what, "nginx is not installed"));
      }
    } else {
      await attempt(staticCases, () =>
        throughputCases(
          bench,
          staticCases,
          nginxServer(bench),
          staticServer(bench),
        ));
    }
    await attempt(
      ids.has(6)
        ? [{ id: 6, what: "RSS added by slow clients on a 1 GiB file" }]
        : [],
      () => largeFileCase(bench),
    );
    if (bench.cpuProf) {
      await profileCases(bench, ids).catch((err) =>
        bench.notes.push(`Profiling failed: ${(err as Error).message}`)
      );
    }
  } finally {
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }

  const deno = `${Deno.version.deno} (V8 ${Deno.version.v8})`;
  const command = ["deno task bench", ...Deno.args].join(" ");
  const table = renderTable(bench.rows);
  const report = [
    "# Spindle benchmark results",
    "",
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus} cores (${cpuModel || "unknown CPU"}), Linux ${kernel}`,
    `- Deno ${deno}; wrk ${wrk ?? "not installed"}; nginx ${
      nginx ?? "not installed"
    }`,
    `- Load generator: ${
      loadgen === "wrk"
        ? "wrk -t1 (Lua script: pipelining, exact totals)"
        : "bench/load.ts"
    }; ${
      pin
        ? "servers pinned to core 0, load generator and runner to core 1"
        : "no core pinning"
    }`,
    `- Load average: ${fmtLoad(loadBefore)} before, ${
      fmtLoad(Deno.loadavg())
    } after (1, 5, 15 min)`,
    `- Command: \`${command}\` (${values.quick ? "quick" : "full"}: warm-up ${
      settings.warmupMs / 1000
    } s, ${settings.rounds} x ${
      settings.measureMs / 1000
    } s per server per case, alternating, best counts; took ${
      Math.round((Date.now() - started) / 1000)
    } s)`,
    "",
    table,
    "",
    ...(bench.cpuRows.length
      ? [
        "## Server CPU per unit of work (lower is better)",
        "",
        "CPU time (user + system, from /proc/<pid>/stat) the server used during the least costly measured run, divided by the requests or MiB it served. Other load on the machine disturbs this much less than requests per second.",
        "",
        renderCpuTable(bench.cpuRows),
        "",
      ]
      : []),
    ...(bench.notes.length
      ? ["## Notes", "", ...bench.notes.map((n) => `- ${n}`), ""]
      : []),
    "## Every run",
    "",
    ...bench.details,
    "",
    ...(bench.profiles.length
      ? [
        "## CPU profiles (Spindle, self time)",
        "",
        ...bench.profiles.flatMap((p) => [p, ""]),
      ]
      : []),
  ].join("\n");
  console.log(`\n${table}\n`);
  for (const note of bench.notes) console.log(`Note: ${note}`);
  try {
    await Deno.writeTextFile(values.out, report);
    // Align the tables as `deno fmt` would, so `deno task ok` stays clean.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", values.out],
      stdout: "null",
      stderr: "null",
    }).output();
    console.log(`\nWritten to ${values.out}`);
  } catch (err) {
    console.log(
      `\nCould not write ${values.out} (${(err as Error).message}):\n`,
    );
    console.log(report);
  }
}

if (import.meta.main) await main();
