/**
 * Case 15b (by default) or 15a (`--case 15a`) over real sockets, paired:
 * each server is started once (pinned to core 0), then `ws_load.ts` (pinned
 * to core 1) runs against each in turn, round by round, and the server's
 * CPU time (utime + stime from /proc) and minor page faults over the round
 * are divided by the MiB (15b: `-c 1 -s 262144 --binary`) or the messages
 * (15a: `-c 256 -s 32`, text) it echoed. Prints each round and the medians
 * of the per-round ratios of every server to every other.
 *
 *   deno run -A bench/ws_pair.ts --rounds 12 --seconds 3 \
 *     --server ours=/work/main --server deno [--server new=/path/to/clone]
 *   deno run -A bench/ws_pair.ts --case 15a --rounds 12 --seconds 3 \
 *     --server ours=task:/work/main --server floor --server deno
 *
 * `--connections N`, `--size BYTES` and `--text` / `--binary` set the load
 * by hand (after `--case`). `name=DIR` starts DIR's main.ts (the default
 * app, `/echo`); `name=task:DIR` starts it as `deno task serve` in DIR
 * does (the launcher, then the engine: the engine's CPU is counted); `deno`
 * starts bench/servers/deno_serve_ws.ts, `floor` bench/servers/ws_floor.ts
 * (the bare WebSocket floor), `webfloor` bench/servers/ws_floor_web.ts (the
 * web API's floor; `webfloor,WEBFLOOR_PLAIN=1` without the `MessageEvent`);
 * `name=deno`, `name=floor` and `name=webfloor` start those
 * under another name (e.g. `floor32=floor,DENO_V8_FLAGS=...`). `name=DIR,ENV=VALUE` sets environment
 * variables for that server. `--v8 FLAGS` passes V8 flags to every
 * server but a `task:` one (e.g. `--trace-gc`, whose lines are counted per
 * round).
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DENO_PERMISSIONS } from "./specs.ts";
import { freePort } from "./procs.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "10" },
    seconds: { type: "string", default: "3" },
    case: { type: "string", default: "15b" },
    size: { type: "string" },
    connections: { type: "string" },
    text: { type: "boolean" },
    binary: { type: "boolean" },
    server: { type: "string", multiple: true, default: [] },
    v8: { type: "string", default: "" },
  },
});

/** The load of each case; `--connections`, `--size`, `--text` override. */
const CASES: Record<
  string,
  { connections: number; size: number; binary: boolean }
> = {
  "15a": { connections: 256, size: 32, binary: false },
  "15b": { connections: 1, size: 262144, binary: true },
};
const base = CASES[values.case];
if (base === undefined) throw new Error(`--case is 15a or 15b`);
const LOAD = {
  connections: Number(values.connections ?? base.connections),
  size: Number(values.size ?? base.size),
  binary: values.text ? false : values.binary ?? base.binary,
};
/** CPU and rate per MiB for big messages, per message for small ones. */
const PER_MIB = LOAD.size >= 65536;
const UNIT = PER_MIB ? "MiB" : "msg";

interface Server {
  name: string;
  proc: Deno.ChildProcess;
  /** The process whose CPU is counted: the engine under a launcher. */
  pid: number;
  port: number;
  path: string;
  gcLines: number;
  scavenges: number;
  markCompacts: number;
}

const CLK_TCK = 100;

/** DIR's `serve` task after its `deno` (run in DIR, as `deno task serve` runs it). */
function serveTask(dir: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(join(dir, "deno.json")));
  const [deno, ...rest] = String(config.tasks.serve).split(/\s+/);
  if (deno !== "deno") throw new Error(`${dir}'s serve task starts ${deno}`);
  return rest;
}

function procStat(pid: number): { cpuMs: number; minflt: number } {
  const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Fields from 3 (state): minflt is 10, utime 14, stime 15.
  const minflt = Number(f[10 - 3]);
  const ticks = Number(f[14 - 3]) + Number(f[15 - 3]);
  return { cpuMs: ticks * 1000 / CLK_TCK, minflt };
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`port ${port} never opened`);
}

async function start(spec: string): Promise<Server> {
  const port = freePort();
  // name=DIR[,ENV=VALUE...]: environment variables for that server only.
  const [head, ...envs] = spec.split(",");
  const [name, where] = head.includes("=") ? head.split("=") : [head, head];
  // `deno`, `floor` and `webfloor` (as a name or after `=`) are the bench's
  // own servers (with --allow-env, for the web floor's variant).
  const script = where === "floor"
    ? "ws_floor.ts"
    : where === "webfloor"
    ? "ws_floor_web.ts"
    : where === "deno"
    ? "deno_serve_ws.ts"
    : undefined;
  const dir = script === undefined ? where : "";
  const env = Object.fromEntries(
    envs.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
  );
  const v8 = values.v8 ? [`--v8-flags=${values.v8}`] : [];
  const task = dir.startsWith("task:") ? dir.slice(5) : undefined;
  const argv = task !== undefined
    ? [...serveTask(task), "--port", `${port}`, "--quiet"]
    : dir === ""
    ? [
      "run",
      ...v8,
      "--allow-net",
      "--allow-env",
      join(HERE, "servers", script!),
      `${port}`,
    ]
    : [
      "run",
      ...v8,
      "--no-prompt",
      `--config=${join(dir, "deno.json")}`,
      `--lock=${join(dir, "deno.lock")}`,
      "--frozen",
      ...DENO_PERMISSIONS,
      join(dir, "main.ts"),
      "--port",
      `${port}`,
      "--quiet",
    ];
  const proc = new Deno.Command("taskset", {
    args: ["-c", "0", Deno.execPath(), ...argv],
    env,
    cwd: task ?? (dir || undefined),
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).spawn();
  const server: Server = {
    name,
    proc,
    pid: proc.pid,
    port,
    path: script === "deno_serve_ws.ts" ? "/" : "/echo",
    gcLines: 0,
    scavenges: 0,
    markCompacts: 0,
  };
  // Count GC trace lines as they come (--trace-gc writes to stdout).
  (async () => {
    const dec = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stdout) {
      rest += dec.decode(chunk, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (line.includes("Scavenge")) server.scavenges++;
        else if (line.includes("Mark-Compact")) server.markCompacts++;
      }
    }
  })();
  await waitPort(port);
  if (task !== undefined) {
    const children = Deno.readTextFileSync(
      `/proc/${proc.pid}/task/${proc.pid}/children`,
    ).trim().split(/\s+/);
    server.pid = Number(children[0]);
  }
  return server;
}

async function load(
  server: Server,
): Promise<{ bytes: number; messages: number }> {
  const out = await new Deno.Command("taskset", {
    args: [
      "-c",
      "1",
      Deno.execPath(),
      "run",
      "--allow-net",
      join(HERE, "ws_load.ts"),
      `ws://127.0.0.1:${server.port}${server.path}`,
      "-c",
      `${LOAD.connections}`,
      "-d",
      values.seconds,
      "-s",
      `${LOAD.size}`,
      ...(LOAD.binary ? ["--binary"] : []),
      "--json",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  return { bytes: r.bytes, messages: r.requests };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const specs = values.server.length > 0 ? values.server : ["deno"];
const servers: Server[] = [];
try {
  for (const s of specs) servers.push(await start(s));
} catch (err) {
  // One did not start: stop the others before giving up.
  for (const s of servers) s.proc.kill("SIGTERM");
  throw err;
}
for (const s of servers) {
  const cmd = Deno.readTextFileSync(`/proc/${s.pid}/cmdline`).split("\0");
  console.log(`${s.name}: process ${s.pid}, ${cmd.slice(-4).join(" ")}`);
}
const rounds = Number(values.rounds);
const rows: Record<
  string,
  { cpu: number[]; rate: number[]; flt: number[]; gc: number[] }
> = {};
for (const s of servers) {
  rows[s.name] = { cpu: [], rate: [], flt: [], gc: [] };
}
const load0 = Deno.loadavg();
try {
  // One warm-up round each, not counted.
  for (const s of servers) await load(s);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? servers : [...servers].reverse();
    const line: string[] = [];
    for (const s of order) {
      const pid = s.pid;
      const a = procStat(pid);
      const gc0 = s.scavenges + s.markCompacts;
      const t0 = performance.now();
      const { bytes, messages } = await load(s);
      const secs = (performance.now() - t0) / 1000;
      const b = procStat(pid);
      const units = PER_MIB ? bytes / (1024 * 1024) : messages;
      const cpu = (b.cpuMs - a.cpuMs) * 1000 / units;
      const row = rows[s.name];
      row.cpu.push(cpu);
      row.rate.push(units / secs);
      row.flt.push((b.minflt - a.minflt) / messages);
      row.gc.push((s.scavenges + s.markCompacts - gc0) / messages);
      line.push(
        `${s.name} ${(units / secs).toFixed(0)} ${UNIT}/s ${
          cpu.toFixed(PER_MIB ? 0 : 2)
        } us/${UNIT} ${((b.minflt - a.minflt) / messages).toFixed(1)} flt/msg`,
      );
    }
    console.log(`round ${r + 1}: ${line.join(" | ")}`);
  }
} finally {
  for (const s of servers) {
    try {
      s.proc.kill("SIGTERM");
    } catch { /* gone */ }
    await s.proc.status;
  }
}
console.log(
  `load average before ${load0.join(" ")}, after ${Deno.loadavg().join(" ")}`,
);
for (const s of servers) {
  const row = rows[s.name];
  console.log(
    `${s.name}: median ${
      median(row.cpu).toFixed(PER_MIB ? 0 : 2)
    } µs/${UNIT}, ${median(row.rate).toFixed(0)} ${UNIT}/s, ${
      median(row.flt).toFixed(1)
    } minor faults a message${
      values.v8.includes("trace-gc")
        ? `, ${median(row.gc).toFixed(4)} GCs a message`
        : ""
    }`,
  );
}
// Medians of per-round ratios (with their range), every server to every other.
function ratios(a: number[], b: number[]): string {
  const r = a.map((v, i) => v / b[i]);
  return `${median(r).toFixed(3)} (${Math.min(...r).toFixed(2)}-${
    Math.max(...r).toFixed(2)
  })`;
}
for (const a of servers) {
  for (const b of servers) {
    if (a === b) continue;
    const ra = rows[a.name], rb = rows[b.name];
    console.log(
      `${a.name} / ${b.name}: CPU per ${UNIT} ${
        ratios(ra.cpu, rb.cpu)
      }, ${UNIT}/s ${ratios(ra.rate, rb.rate)} (medians of per-round ratios)`,
    );
  }
}
