/**
 * Server processes for the bench. Each server runs as a whole process tree
 * (`deno task serve` starts a launcher that starts the engine) in its own
 * process group, pinned with `taskset` (children inherit it), with a raised
 * fd limit and its stdout appended to a log file, as a user redirects it.
 * A small bash wrapper holds the group: when the runner closes the
 * wrapper's stdin, or dies, the whole group gets SIGTERM.
 *
 * The engine is the process in the tree that holds the listening socket;
 * its CPU time and RSS are what the bench reports.
 */
import { type CpuReading, listeningInodes, parseStat } from "./stats.ts";
export { freePort } from "../deploy/procs.ts";

/** How servers and load generators are placed on the machine. */
export interface Placement {
  /** Core list for servers (taskset syntax), or null for no pinning. */
  readonly serverCpus: string | null;
  /** Core list for load generators, or null for no pinning. */
  readonly loadCpus: string | null;
  /** File descriptor limit set for servers and load generators. */
  readonly fdLimit: number;
}

/**
 * Where the bench puts things on a machine of `cores` cores: `pinned`, each
 * server on core 0 and the load on the others' first (core 1); `spread`,
 * every process free to use every core. When pinning, the runner pins itself
 * to core 1 and its children inherit that, so a spread process is given the
 * whole core list explicitly rather than nothing (which would leave it on
 * core 1 with the load generator). Without pinning both are null.
 */
export function placements(
  cores: number,
  pin: boolean,
  fdLimit: number,
): { pinned: Placement; spread: Placement } {
  if (!pin) {
    const none = { serverCpus: null, loadCpus: null, fdLimit };
    return { pinned: none, spread: none };
  }
  const all = `0-${cores - 1}`;
  return {
    pinned: { serverCpus: "0", loadCpus: "1", fdLimit },
    spread: { serverCpus: all, loadCpus: all, fdLimit },
  };
}

/** What to run for one server. */
export interface Launch {
  readonly name: string;
  /** Command and arguments; the port is already in them. */
  readonly argv: readonly string[];
  readonly port: number;
  /** Where the tree's stdout is appended (the access log of Spindle). */
  readonly logFile: string;
  /** Where access lines go, when not to stdout (nginx's access.log). */
  readonly accessLog?: string;
  readonly cwd?: string;
  readonly env?: Record<string, string>;
}

/** A running server, as the runner sees it. */
export interface ServerProcess {
  readonly name: string;
  /** Root of the tree: the command that was started (also its group id). */
  readonly pid: number;
  /** The process listening on the port: the engine, nginx's master. */
  readonly enginePid: number;
  readonly port: number;
  /** The file access lines go to. */
  readonly accessLog: string;
  /** Cores the engine may run on, from /proc (shows the pinning held). */
  readonly cpusAllowed: string;
  /** Last lines the tree wrote to stderr, for error reports. */
  stderrTail(): Promise<string>;
  /** Stops the whole tree and waits for it; kills it if it lingers. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const STDERR_TAIL_BYTES = 4096;
const POLL_MS = 20;

/** The argv prefix that pins a command to `cpus` (empty when not pinning). */
export function pinned(cpus: string | null): string[] {
  return cpus === null ? [] : ["taskset", "-c", cpus];
}

/** Wraps argv so the process gets `fdLimit` descriptors; exec keeps the pid. */
export function withFdLimit(
  fdLimit: number,
  argv: readonly string[],
): string[] {
  return ["bash", "-c", `ulimit -n ${fdLimit} && exec "$@"`, "bash", ...argv];
}

/**
 * The group holder: starts "$@" in a new session (so its pid is its group
 * id), stdout appended to $2 (O_APPEND: the runner may truncate it between
 * rounds), stderr to $2.err, and prints the pid. On EOF of its stdin (the
 * runner closed it, or died) it sends SIGTERM to the group, as it does when
 * a signal ends it (Ctrl-C reaches the holder, not the group). It exits
 * when the tree's root does.
 */
const HOLDER = `ulimit -n "$1" || exit 1
exec 3<&0
log="$2"
shift 2
setsid "$@" >>"$log" 2>>"$log.err" </dev/null &
child=$!
trap 'kill -TERM -- "-$child" 2>/dev/null; exit 143' INT TERM HUP
echo "$child"
# A background job's stdin is /dev/null unless redirected: read fd 3.
(read -r _ <&3; kill -TERM -- "-$child" 2>/dev/null) &
wait "$child"
`;

/** A process tree started by {@link spawnTree}. */
export interface Tree {
  /** Pid of the tree's root, which is also its process group id. */
  readonly pid: Promise<number>;
  /** True once the root has exited. */
  exited(): boolean;
  /** Last lines the tree wrote to stderr. */
  stderrTail(): Promise<string>;
  /** SIGTERM to the group; SIGKILL to what is left after a while. */
  stop(): Promise<void>;
}

/** Starts `launch` in its own process group, pinned when `pin`, and returns at once. */
export function spawnTree(
  launch: Launch,
  placement: Placement,
  pin: boolean,
): Tree {
  const argv = [
    ...(pin ? pinned(placement.serverCpus) : []),
    ...launch.argv,
  ];
  const holder = new Deno.Command("bash", {
    args: [
      "-c",
      HOLDER,
      "holder",
      `${placement.fdLimit}`,
      launch.logFile,
      ...argv,
    ],
    cwd: launch.cwd,
    env: { NO_COLOR: "1", ...launch.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = holder.stdin.getWriter();
  const pid = firstLine(holder.stdout).then(Number);
  let exited = false;
  holder.status.then(() => exited = true);
  const errFile = `${launch.logFile}.err`;
  return {
    pid,
    exited: () => exited,
    async stderrTail() {
      try {
        return (await Deno.readTextFile(errFile)).slice(-STDERR_TAIL_BYTES);
      } catch {
        return "";
      }
    },
    async stop() {
      await stdin.close().catch(() => {});
      const group = await pid;
      if (!(group > 0)) return void await holder.status;
      // The holder sent SIGTERM: wait for every process of the group.
      if (!(await groupGone(group, STOP_TIMEOUT_MS))) {
        await bash(`kill -KILL -- -${group} 2>/dev/null`);
        await groupGone(group, STOP_TIMEOUT_MS);
      }
      await holder.status;
    },
  };
}

/** Starts a server tree, waits until its port accepts, finds the engine. */
export async function startServer(
  launch: Launch,
  placement: Placement,
  pin = true,
): Promise<ServerProcess> {
  const tree = spawnTree(launch, placement, pin);
  const pid = await tree.pid;
  const fail = async (why: string): Promise<never> => {
    const tail = await tree.stderrTail();
    await tree.stop();
    throw new Error(`${launch.name} failed to start: ${why}\n${tail}`);
  };
  if (!Number.isInteger(pid) || pid <= 0) {
    return fail("no pid from the holder");
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  // A connect that succeeds is not proof on its own: without a listener, a
  // connect from an ephemeral port equal to the target port connects to
  // itself (TCP simultaneous open). The tree has started once one of its
  // processes holds the listening socket.
  let enginePid: number | null = null;
  while (enginePid === null) {
    if (await accepts(launch.port)) {
      enginePid = await listenerPid(pid, launch.port);
      if (enginePid !== null) break;
    }
    if (tree.exited()) return fail("it exited");
    if (Date.now() > deadline) {
      return fail(
        `no process of the tree listened on port ${launch.port} within ${START_TIMEOUT_MS} ms`,
      );
    }
    await sleep(POLL_MS);
  }
  const cpusAllowed = (await bash(
    `grep '^Cpus_allowed_list:' /proc/${enginePid}/status | cut -f2`,
  )).trim();
  return {
    name: launch.name,
    pid,
    enginePid,
    port: launch.port,
    accessLog: launch.accessLog ?? launch.logFile,
    cpusAllowed,
    stderrTail: () => tree.stderrTail(),
    stop: () => tree.stop(),
  };
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    if (text.includes("\n")) break;
  }
  return text.split("\n")[0].trim();
}

/** True when a TCP connect to 127.0.0.1:`port` succeeds. */
export async function accepts(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until no process is left in group `pgid`; false if some outlived `ms`. */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (true) {
    const alive = (await bash(`kill -0 -- -${pgid} 2>/dev/null && echo yes`))
      .trim() === "yes";
    if (!alive) return true;
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
}

/** The pid and every descendant of it, parents first. */
export async function treePids(pid: number): Promise<number[]> {
  const text = await bash(`set -- ${pid}
  while [ $# -gt 0 ]; do
    p=$1; shift
    echo "$p"
    set -- "$@" $(cat /proc/$p/task/*/children 2>/dev/null)
  done`);
  return text.split("\n").filter((l) => l.trim()).map(Number);
}

/** The first process of the tree under `root` holding a socket listening on `port`. */
export async function listenerPid(
  root: number,
  port: number,
): Promise<number | null> {
  const inodes = listeningInodes(
    await bash("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"),
    port,
  );
  if (inodes.length === 0) return null;
  for (const pid of await treePids(root)) {
    const fds = await bash(`ls -l /proc/${pid}/fd 2>/dev/null`);
    if (inodes.some((inode) => fds.includes(`socket:[${inode}]`))) return pid;
  }
  return null;
}

/**
 * Resident set size of a process and its descendants, in bytes, summed from
 * VmRSS in /proc/<pid>/status. Read through `bash`, since Deno 2 wants
 * --allow-all to read another process's /proc.
 */
export async function treeRssBytes(pid: number): Promise<number> {
  const pids = await treePids(pid);
  const text = await bash(
    pids.map((p) => `grep -h '^VmRSS:' /proc/${p}/status 2>/dev/null`).join(
      "\n",
    ),
  );
  const kib = [...text.matchAll(/^VmRSS:\s+(\d+)\s+kB$/gm)].map((m) =>
    Number(m[1])
  );
  if (kib.length === 0) throw new Error(`No VmRSS for pid ${pid}`);
  return kib.reduce((a, b) => a + b, 0) * 1024;
}

/**
 * CPU time (user + system, every thread) used so far by a process and its
 * descendants, in seconds, from /proc/<pid>/stat.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const reading = await treeCpuReading(pid);
  return reading.procs.reduce((n, p) => n + p.ticks, 0) / reading.ticksPerSec;
}

/**
 * The CPU ticks of a process and its descendants, each with its start time,
 * and the time the reading began: two readings give the CPU spent between
 * them ({@link cpuBetween}), counting no process's past.
 */
export async function treeCpuReading(pid: number): Promise<CpuReading> {
  const pids = await treePids(pid);
  const lines = (await bash(
    `getconf CLK_TCK
cut -d' ' -f1 /proc/uptime
${pids.map((p) => `cat /proc/${p}/stat 2>/dev/null; echo`).join("\n")}`,
  )).split("\n");
  const ticksPerSec = Number(lines[0]) || 100;
  const procs = lines.slice(2).map(parseStat).filter((p) => p !== null);
  return {
    root: pid,
    atTicks: Number(lines[1]) * ticksPerSec,
    ticksPerSec,
    procs,
  };
}

/** `nginx -v` output, or null when nginx is not installed. */
export async function nginxVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("nginx", { args: ["-v"] }).output();
    return new TextDecoder().decode(out.stderr).trim().replace(
      /^nginx version: /,
      "",
    );
  } catch {
    return null;
  }
}

/**
 * nginx as it is shipped for a static site: 1 worker (the bench gives each
 * server one core), sendfile, the access log on but buffered (64 KiB), and
 * open_file_cache on, so it does not open and stat a file per request.
 */
export function nginxConfig(
  dir: string,
  root: string,
  port: number,
  runAsRoot: boolean,
  tls?: NginxTls,
): string {
  const temp = (what: string) => `${what}_temp_path ${dir}/${what};`;
  return `${runAsRoot ? "user root root;\n" : ""}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16384; }
http {
  access_log ${dir}/access.log combined buffer=64k;
  open_file_cache max=10000 inactive=60s;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  ${temp("client_body")}
  ${temp("proxy")}
  ${temp("fastcgi")}
  ${temp("uwsgi")}
  ${temp("scgi")}
  types { text/plain txt; application/octet-stream bin; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port}${tls === undefined ? "" : tlsListen(tls)};
    root ${root};
  }
}
`;
}

/** HTTPS with HTTP/2 for {@link nginxConfig}. */
export interface NginxTls {
  readonly cert: string;
  readonly key: string;
  /** `nginx -v`'s version: `http2 on;` exists from 1.25.1, before it `listen ... http2`. */
  readonly version: string;
}

/** The rest of the listen line, and the TLS directives after it. */
function tlsListen(tls: NginxTls): string {
  const [major, minor, patch] = tls.version.replace(/^nginx\//, "").split(".")
    .map(Number);
  const modern = major > 1 || minor > 25 || (minor === 25 && patch >= 1);
  return `${modern ? " ssl;\n    http2 on" : " ssl http2"};
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_session_cache shared:SSL:1m`;
}

/** What a bash script prints on stdout (stderr dropped). */
export async function bash(script: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}
