/**
 * Server subprocesses for the bench: start one pinned to a core, learn its
 * port, read its RSS, stop it. Deno servers print `{"port":N}` and exit when
 * their stdin closes; nginx gets a config written to a temp dir.
 */
import { join } from "node:path";

/** A running server, as the runner sees it. */
export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** Last lines the server wrote to stderr, for error reports. */
  stderrTail(): string;
  /** Stops the server and waits for it; kills it if it lingers. */
  stop(): Promise<void>;
}

/** How servers and load generators are placed on the machine. */
export interface Placement {
  /** Core list for servers (taskset syntax), or null for no pinning. */
  readonly serverCpus: string | null;
  /** Core list for load generators, or null for no pinning. */
  readonly loadCpus: string | null;
  /** File descriptor limit set for servers before exec. */
  readonly fdLimit: number;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const STDERR_TAIL_BYTES = 4096;

/** The argv prefix that pins a command to `cpus` (empty when not pinning). */
export function pinned(cpus: string | null): string[] {
  return cpus === null ? [] : ["taskset", "-c", cpus];
}

/** Wraps argv so the process gets `fdLimit` descriptors; exec keeps the pid. */
function withFdLimit(fdLimit: number, argv: string[]): string[] {
  return ["bash", "-c", `ulimit -n ${fdLimit} && exec "$@"`, "bash", ...argv];
}

/** Keeps the last few KiB of a stream; reading it stops the pipe filling up. */
function tailOf(stream: ReadableStream<Uint8Array>): () => string {
  let tail = "";
  const decoder = new TextDecoder();
  (async () => {
    for await (const chunk of stream) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(
        -STDERR_TAIL_BYTES,
      );
    }
  })().catch(() => {});
  return () => tail;
}

/** Reads stdout until the `{"port":N}` line, then drains the rest. */
async function readPort(
  stream: ReadableStream<Uint8Array>,
  status: Promise<Deno.CommandStatus>,
): Promise<number> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const giveUp = new Promise<null>((r) => {
    timer = setTimeout(() => r(null), START_TIMEOUT_MS);
  });
  const exited = status.then(() => null);
  try {
    while (true) {
      const read = await Promise.race([reader.read(), giveUp, exited]);
      if (read === null || read.done) break;
      text += read.value;
      const line = text.split("\n").find((l) => l.startsWith('{"port":'));
      if (line) return (JSON.parse(line) as { port: number }).port;
    }
  } finally {
    clearTimeout(timer);
    // Keep draining so a chatty server never blocks on a full pipe.
    (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })().catch(() => {});
  }
  throw new Error(`no port line on stdout: ${text.slice(-500)}`);
}

/** Starts a Deno server script pinned to the server cores. */
export async function startDenoServer(
  name: string,
  script: string,
  args: string[],
  placement: Placement,
  denoFlags: string[] = [],
): Promise<ServerProcess> {
  const argv = withFdLimit(placement.fdLimit, [
    ...pinned(placement.serverCpus),
    Deno.execPath(),
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    "--unstable-net",
    ...denoFlags,
    script,
    ...args,
  ]);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderrTail = tailOf(child.stderr);
  const stdin = child.stdin.getWriter();
  let port: number;
  try {
    port = await readPort(child.stdout, child.status);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    throw new Error(
      `${name} failed to start: ${(err as Error).message}\n${stderrTail()}`,
    );
  }
  return {
    name,
    pid: child.pid,
    port,
    stderrTail,
    async stop() {
      await stdin.close().catch(() => {});
      await stopChild(child, null);
    },
  };
}

async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal | null,
): Promise<void> {
  if (signal !== null) {
    try {
      child.kill(signal);
    } catch { /* already gone */ }
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => {
    timer = setTimeout(() => r("late"), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([child.status, late]);
  clearTimeout(timer);
  if (outcome === "late") {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  }
}

/** Asks the kernel for a free loopback port (nginx needs one in its config). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
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

/** The nginx config the static cases use: 1 worker, sendfile, no access log. */
export function nginxConfig(
  dir: string,
  root: string,
  port: number,
  runAsRoot: boolean,
): string {
  const temp = (what: string) => `${what}_temp_path ${join(dir, what)};`;
  return `${runAsRoot ? "user root root;\n" : ""}worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 8192; }
http {
  access_log off;
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
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
}

/** Starts nginx with a fresh config in `dir` serving `root`. */
export async function startNginx(
  dir: string,
  root: string,
  placement: Placement,
): Promise<ServerProcess> {
  await Deno.mkdir(dir, { recursive: true });
  const port = freePort();
  const conf = join(dir, "nginx.conf");
  await Deno.writeTextFile(
    conf,
    nginxConfig(dir, root, port, Deno.uid() === 0),
  );
  const argv = withFdLimit(placement.fdLimit, [
    ...pinned(placement.serverCpus),
    "nginx",
    "-p",
    dir,
    "-e",
    join(dir, "error.log"),
    "-c",
    conf,
    "-g",
    "daemon off;",
  ]);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderrTail = tailOf(child.stderr);
  const server: ServerProcess = {
    name: "nginx",
    pid: child.pid,
    port,
    stderrTail,
    stop: () => stopChild(child, "SIGQUIT"),
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return server;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await server.stop();
  let log = "";
  try {
    log = await Deno.readTextFile(join(dir, "error.log"));
  } catch { /* no log written */ }
  throw new Error(`nginx did not start: ${stderrTail()}\n${log}`);
}

/**
 * Resident set size of a process and its children (nginx: master and
 * workers), in bytes, summed from VmRSS in /proc/<pid>/status. Read through
 * `bash`, since Deno 2 wants --allow-all to read another process's /proc.
 */
export async function treeRssBytes(pid: number): Promise<number> {
  const script =
    `for p in ${pid} $(cat /proc/${pid}/task/*/children 2>/dev/null); do
    grep -h '^VmRSS:' /proc/$p/status 2>/dev/null
  done`;
  const text = await bashOutput(script);
  const kib = [...text.matchAll(/^VmRSS:\s+(\d+)\s+kB$/gm)].map((m) =>
    Number(m[1])
  );
  if (kib.length === 0) throw new Error(`No VmRSS for pid ${pid}`);
  return kib.reduce((a, b) => a + b, 0) * 1024;
}

/**
 * CPU time (user + system) used so far by a process and its children, in
 * seconds, from /proc/<pid>/stat. Per request, it is a figure that other
 * load on the machine disturbs far less than requests per second.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const script = `echo "tck $(getconf CLK_TCK)"
  for p in ${pid} $(cat /proc/${pid}/task/*/children 2>/dev/null); do
    cat /proc/$p/stat 2>/dev/null; echo
  done`;
  const lines = (await bashOutput(script)).split("\n");
  const ticksPerSec = Number(lines[0].split(" ")[1]) || 100;
  let ticks = 0;
  for (const line of lines.slice(1)) {
    // Fields after "(comm)": state is 3rd, utime 14th and stime 15th overall.
    const rest = line.slice(line.lastIndexOf(")") + 2).split(" ");
    if (rest.length > 13) ticks += Number(rest[11]) + Number(rest[12]);
  }
  return ticks / ticksPerSec;
}

/** What a bash script prints on stdout (stderr dropped). */
async function bashOutput(script: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}
