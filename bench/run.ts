/**
 * `deno task bench`: measures Spindle as users run it (`deno task serve`,
 * access log on) and its engine alone, side by side with Deno.serve, the
 * bare Deno.listen floor and nginx, in alternating rounds of one run. Each
 * figure is the median of per-round paired ratios, with the servers' CPU
 * per request beside it. Writes bench/results.md and its chart,
 * bench/results.svg. A report, not a test: it exits 0 when a target is
 * missed, and says so.
 *
 * Flags: --quick (a minute or two), --only 1,3 or --only app,engine,
 * --loadgen wrk|deno, --no-pin, --cpu-prof (extra profiled Spindle runs),
 * --out <file> (default bench/results.md; the chart goes beside it).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { renderChart } from "./chart.ts";
import { type BenchCase, CASES, FILES } from "./cases.ts";
import { denoGenerator, wrkGenerator, wrkVersion } from "./generators.ts";
import { type Bench, type Settings, stopServer } from "./measure.ts";
import { bash, nginxVersion, placements } from "./procs.ts";
import {
  chartBars,
  cpuLadder,
  failedRow,
  renderTable,
  type Row,
  verdictOf,
} from "./report.ts";

const FULL: Settings = {
  warmupMs: 2000,
  measureMs: 5000,
  rounds: 5, // this machine's noise is +-10%: the median of five steps over it
  idleConns: 5000,
  memRounds: 2,
  startRuns: 10,
  slowClients: 10,
  slowMs: 10_000,
  slowBytesPerSec: 4 * 1024 * 1024,
};

const QUICK: Settings = {
  warmupMs: 1000,
  measureMs: 1000,
  rounds: 3,
  idleConns: 5000,
  memRounds: 1,
  startRuns: 3,
  slowClients: 10,
  slowMs: 3000,
  slowBytesPerSec: 4 * 1024 * 1024,
};

/** Servers' fd limit: 5000 held connections, wrk's 1000 and the engine's own. */
const WANTED_FD_LIMIT = 65_536;
const BENCH_DIR = new URL(".", import.meta.url).pathname;

function usage(): string {
  return `Usage: deno task bench [--quick] [--only N,name,...] [--loadgen wrk|deno] [--no-pin] [--cpu-prof] [--out file]
Cases:
${
    CASES.map((c) =>
      `  ${String(c.id).padStart(2)} ${c.name.padEnd(15)} ${c.title}${
        c.pending ? " (not measured yet)" : ""
      }`
    ).join("\n")
  }`;
}

/** Cases named by `--only` (numbers or names); every case when absent. */
export function selectCases(
  cases: readonly BenchCase[],
  only: string | undefined,
): BenchCase[] {
  if (!only) return [...cases];
  const wanted = only.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((w) =>
    !cases.some((c) => `${c.id}` === w || c.name === w)
  );
  if (unknown.length) {
    throw new Error(`Unknown case: ${unknown.join(", ")}\n${usage()}`);
  }
  return cases.filter((c) =>
    wanted.includes(`${c.id}`) || wanted.includes(c.name)
  );
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
  await Deno.writeFile(join(root, FILES.small.name), random(FILES.small.bytes));
  await Deno.writeFile(join(root, FILES.big.name), random(FILES.big.bytes));
  using huge = await Deno.open(join(root, FILES.huge.name), {
    create: true,
    write: true,
    truncate: true,
  });
  await huge.truncate(FILES.huge.bytes);
}

function fmtLoad(load: number[]): string {
  return load.map((n) => n.toFixed(2)).join(" ");
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
  const selected = selectCases(CASES, values.only);
  const settings = values.quick ? QUICK : FULL;

  const [cpus, cpuModel, kernel, fdHard, wrk, nginx, task] = await Promise
    .all([
      bash("nproc"),
      bash("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
      bash("uname -r"),
      bash("ulimit -Hn"),
      wrkVersion(),
      nginxVersion(),
      Deno.readTextFile(new URL("../deno.json", import.meta.url)).then((t) =>
        (JSON.parse(t) as { tasks: Record<string, string> }).tasks.serve
      ),
    ]).then((a) => a.map((v) => typeof v === "string" ? v.trim() : v));
  const hasTaskset = (await bash("command -v taskset")).trim() !== "";
  const pin = !values["no-pin"] && hasTaskset && Number(cpus) >= 2;
  const fdLimit = fdHard === "unlimited"
    ? WANTED_FD_LIMIT
    : Math.min(WANTED_FD_LIMIT, Number(fdHard));
  const { pinned, spread } = placements(Number(cpus), pin, fdLimit);
  if (pin) {
    // The runner is a client too (idle and slow-reader cases): off core 0.
    await bash(`taskset -a -p -c 1 ${Deno.pid} >/dev/null`);
  }
  const loadgen = values.loadgen ?? (wrk ? "wrk" : "deno");
  if (loadgen === "wrk" && !wrk) {
    throw new Error("--loadgen wrk, but wrk is not installed");
  }
  const tempDir = await Deno.makeTempDir({ prefix: "spindle_bench_" });
  const bench: Bench = {
    settings,
    pinned,
    spread,
    generate: loadgen === "wrk" ? wrkGenerator(tempDir) : denoGenerator(),
    tempDir,
    root: join(tempDir, "root"),
    tools: {
      wrk: loadgen === "wrk",
      nginx: nginx !== null,
      h2load: (await bash("command -v h2load")).trim() !== "",
    },
    details: [],
    notes: [],
    running: new Set(),
    cpuProf: values["cpu-prof"],
    profiles: [],
  };
  if (!pin) {
    bench.notes.push(
      "Servers and load generator were not pinned to separate cores.",
    );
  }

  const stopAll = async () => {
    for (const server of [...bench.running]) {
      await stopServer(bench, server).catch(() => {});
    }
  };
  const onSignal = () => {
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const started = Date.now();
  const loadBefore = Deno.loadavg();
  if (loadBefore[0] > 0.5) {
    bench.notes.push(
      `Other work was running: load average ${
        fmtLoad(loadBefore)
      } before the bench started. Figures are noisy; CPU per request is steadier.`,
    );
  }
  const rows: Row[] = [];
  const pending: BenchCase[] = [];
  try {
    await makeFiles(bench.root);
    for (const c of selected) {
      if (c.pending || !c.run) {
        pending.push(c);
        continue;
      }
      const missing = (c.needs ?? []).filter((t) => !bench.tools[t]);
      if (missing.length) {
        rows.push(
          failedRow(`${c.id}`, c.title, `needs ${missing.join(", ")}`),
        );
        continue;
      }
      console.error(`${c.id}. ${c.title}`);
      try {
        rows.push(...await c.run(bench));
      } catch (err) {
        // A case that cannot run becomes a FAIL row; the others still run.
        console.error(`  error: ${(err as Error).message}`);
        rows.push(
          failedRow(
            `${c.id}`,
            c.title,
            `did not run: ${(err as Error).message.split("\n")[0]}`,
          ),
        );
      }
    }
  } finally {
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }

  const ladder = cpuLadder(rows);
  if (ladder) bench.notes.push(ladder);
  const command = ["deno task bench", ...Deno.args].join(" ");
  const chartFile = values.out.replace(/(\.md)?$/, ".svg");
  const chartName = chartFile.slice(chartFile.lastIndexOf("/") + 1);
  const table = renderTable(rows);
  const passed = rows.filter((r) => verdictOf(r) === "pass").length;
  const report = [
    "# Spindle benchmark results",
    "",
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus} cores (${cpuModel || "unknown CPU"}), Linux ${kernel}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); wrk ${
      wrk ?? "not installed"
    }; nginx ${nginx ?? "not installed"}`,
    `- Spindle as users run it: \`deno task serve\`, which runs \`${task}\`; its stdout (the access log) appended to a file`,
    `- Load generator: ${
      loadgen === "wrk"
        ? "wrk (Lua script: pipelining, exact totals, latency percentiles)"
        : "bench/load.ts (no latency figures)"
    }; ${
      pin
        ? "each server tree pinned to core 0, load generator and runner to core 1 (unless a case says nothing is pinned)"
        : "no core pinning"
    }`,
    `- Method: warm-up ${
      settings.warmupMs / 1000
    } s per server, then ${settings.rounds} rounds of ${
      settings.measureMs / 1000
    } s per server, the order alternating each round; a figure is the median of the per-round ratios (range in brackets). Server CPU: user + system time of the engine process (every thread) from /proc/<pid>/stat over the same window, per request or per MiB, median of the rounds.`,
    `- Load average: ${fmtLoad(loadBefore)} before, ${
      fmtLoad(Deno.loadavg())
    } after (1, 5, 15 min)`,
    `- Command: \`${command}\` (${values.quick ? "quick" : "full"}; took ${
      Math.round((Date.now() - started) / 1000)
    } s); ${passed} of ${rows.length} rows meet their target`,
    "",
    table,
    "",
    `![Share of each target reached](${chartName})`,
    "",
    ...(bench.notes.length
      ? ["## Notes", "", ...bench.notes.map((n) => `- ${n}`), ""]
      : []),
    ...(pending.length
      ? [
        "## Not measured yet",
        "",
        ...pending.map((c) => `- ${c.id} ${c.title}: ${c.pending}`),
        "",
      ]
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
    await Deno.writeTextFile(
      chartFile,
      renderChart(
        `Spindle: share of each target reached (${
          new Date().toISOString().slice(0, 10)
        }, ${values.quick ? "quick" : "full"} run)`,
        chartBars(rows),
      ),
    );
    // Format both as `deno fmt` would, so `deno task ok` stays clean.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", values.out, chartFile],
      stdout: "null",
      stderr: "null",
    }).output();
    console.log(`\nWritten to ${values.out} and ${chartFile}`);
  } catch (err) {
    console.log(
      `\nCould not write ${values.out} (${(err as Error).message}):\n`,
    );
    console.log(report);
  }
}

if (import.meta.main) await main();
