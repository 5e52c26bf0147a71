/**
 * The processes of a fleet on loopback: redis-server, Spindle instances
 * (`main.ts`), HAProxy. Each one's output lines are kept, and every wait is
 * for a line or a state, bounded, never a sleep. Used by `deno task fleet`
 * (deploy/fleet.ts) and by the tests.
 */
import { fileURLToPath } from "node:url";

/** The repository's main.ts. */
export const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
/** The repository's folder. */
export const REPO = fileURLToPath(new URL("../", import.meta.url));

/** How long a process gets to start or stop before it is killed. */
const WAIT_MS = 30_000;

/**
 * A loopback port free right now, below Linux's ephemeral range (32768-60999):
 * client sockets (load generators, proxies, other tests) take their ports
 * from that range, so a server port chosen there can be taken by one of them
 * while its server restarts. Another process may still take it first.
 */
export function freePort(): number {
  for (let tries = 0; tries < 1000; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    }
  }
  throw new Error("no free port found in 20000-31999");
}

/** True when `cmd` can be run. */
export async function hasCommand(cmd: string, arg = "-v"): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args: [arg], stdout: "null", stderr: "null" })
      .output();
    return true;
  } catch {
    return false;
  }
}

/** Resolves after `ms`. */
function wait(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A child process whose stdout and stderr lines are kept, in order. */
export class Proc {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #done: Promise<void>;
  #exited = false;

  constructor(
    name: string,
    cmd: string,
    args: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ) {
    this.name = name;
    this.child = new Deno.Command(cmd, {
      args,
      cwd: options.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
    }).spawn();
    this.#done = Promise.all([
      this.#collect(this.child.stdout),
      this.#collect(this.child.stderr),
      this.child.status,
    ]).then(() => {
      this.#exited = true;
      this.#wake();
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      rest += text;
      let nl;
      while ((nl = rest.indexOf("\n")) !== -1) {
        this.lines.push(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
      this.#wake();
    }
    if (rest !== "") this.lines.push(rest);
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /**
   * Waits for a line matching `pattern`, from line `from` on; returns it.
   * Fails if the process exits first or after `ms`.
   */
  async waitForLine(pattern: RegExp, from = 0, ms = WAIT_MS): Promise<string> {
    const until = Date.now() + ms;
    for (let seen = from;;) {
      for (; seen < this.lines.length; seen++) {
        if (pattern.test(this.lines[seen])) return this.lines[seen];
      }
      if (this.#exited) {
        throw new Error(
          `${this.name} exited before printing ${pattern}:\n${this.tail()}`,
        );
      }
      const left = until - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.name} did not print ${pattern} in ${ms} ms:\n${this.tail()}`,
        );
      }
      let wake!: () => void;
      const woken = new Promise<void>((r) => wake = r);
      this.#waiters.add(wake);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        woken,
        new Promise((r) => timer = setTimeout(r, left)),
      ]);
      clearTimeout(timer);
      this.#waiters.delete(wake);
    }
  }

  /** The last lines, for error messages. */
  tail(n = 20): string {
    return this.lines.slice(-n).join("\n");
  }

  /** Sends `signal` (if still running). */
  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch { /* exited */ }
  }

  /** Waits for the process to end on its own; SIGKILL after `ms`. Returns the exit code. */
  async exited(ms = WAIT_MS): Promise<number> {
    const timer = setTimeout(() => this.signal("SIGKILL"), ms);
    try {
      const { code } = await this.child.status;
      await this.#done;
      return code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `ms`. Returns the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM", ms = WAIT_MS): Promise<number> {
    this.signal(signal);
    return await this.exited(ms);
  }
}

/** A redis-server on loopback with nothing kept on disk. */
export class RedisServer {
  readonly port: number;
  #proc: Proc;

  private constructor(port: number, proc: Proc) {
    this.port = port;
    this.#proc = proc;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(port = freePort()): Promise<RedisServer> {
    const server = new RedisServer(port, RedisServer.#spawn(port));
    await server.#ready();
    return server;
  }

  static #spawn(port: number): Proc {
    return new Proc("redis-server", "redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ]);
  }

  async #ready(): Promise<void> {
    await this.#proc.waitForLine(/Ready to accept connections/);
  }

  /** Stops answering without closing connections (SIGSTOP): a stalled store. */
  pause(): void {
    this.#proc.signal("SIGSTOP");
  }

  resume(): void {
    this.#proc.signal("SIGCONT");
  }

  /** Stops the server; its connections are closed. */
  async stop(): Promise<void> {
    this.resume();
    await this.#proc.stop("SIGTERM");
  }

  /** Starts it again on the same port, empty. */
  async restart(): Promise<void> {
    this.#proc = RedisServer.#spawn(this.port);
    await this.#ready();
  }

  /** Runs one redis-cli command; returns its output. */
  async cli(...args: string[]): Promise<string> {
    const out = await new Deno.Command("redis-cli", {
      args: ["-p", String(this.port), ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  }
}

/** The permissions a Spindle instance runs with: the serve task's, with its root and uploads. */
export function spindleArgs(root: string, uploads: string): string[] {
  return [
    "run",
    "--unstable-net",
    "--allow-net",
    `--allow-read=${root},${uploads}`,
    `--allow-write=${uploads}`,
    MAIN,
    "--root",
    root,
    "--uploads",
    uploads,
  ];
}

/** One `main.ts` process, started and waited for until it listens. */
export async function startSpindle(
  name: string,
  args: string[],
): Promise<Proc> {
  const proc = new Proc(name, Deno.execPath(), args, { cwd: REPO });
  await proc.waitForLine(/Listening on|"event":"listening"/);
  return proc;
}

/** Polls `check` every `everyMs` until it holds; fails with `what` after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = WAIT_MS,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await wait(everyMs);
  }
}
