/**
 * Clients for the bench's connection and memory cases: many idle keep-alive
 * connections (held in a subprocess with its own fd limit, so thousands fit
 * whatever the runner's limit), and slow readers of a large file.
 *
 * CLI (the holder): `deno run --allow-net bench/clients.ts hold HOST PORT
 * PATH COUNT` prints `{"held":N}` once every connection got its answer,
 * then answers each `check` line on stdin with `{"alive":N}`, and closes
 * everything at the end of stdin. `hold-ws` holds WebSockets instead (a
 * check sends each one message).
 */
import { buildRequests, ResponseScanner } from "./load.ts";
import { pinned, withFdLimit } from "./procs.ts";
import { wsIdle } from "./ws_load.ts";

const IDLE_BUFFER_BYTES = 4096;
const CONNECT_BATCH = 100;

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Reads until one whole response arrived; false if the server closed first. */
async function readOneResponse(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(IDLE_BUFFER_BYTES);
  const scanner = new ResponseScanner();
  let end = 0;
  while (scanner.responses === 0) {
    const n = await conn.read(buf.subarray(end));
    if (n === null) return false;
    const used = scanner.scan(buf, 0, end + n);
    buf.copyWithin(0, used, end + n);
    end = end + n - used;
    if (end === buf.length) throw new Error("Response head too large");
  }
  return scanner.errorStatuses === 0;
}

/** How an idle connection of one kind is opened and checked. */
export interface IdleKind {
  /** Connects and gets one answer (a response, a handshake); throws if none comes. */
  open(hostname: string, port: number, path: string): Promise<Deno.Conn>;
  /** Asks once more; true when the answer came. */
  check(conn: Deno.Conn): Promise<boolean>;
}

/** Keep-alive connections that each got one response. */
export function httpIdle(hostname: string, port: number, path: string) {
  const request = buildRequests(hostname, port, path, 1);
  const ask = async (conn: Deno.Conn) => {
    await writeAll(conn, request);
    return await readOneResponse(conn);
  };
  return {
    async open(): Promise<Deno.Conn> {
      const conn = await Deno.connect({ hostname, port });
      try {
        if (!(await ask(conn))) {
          throw new Error("Server refused or closed a fresh connection");
        }
        return conn;
      } catch (err) {
        conn.close();
        throw err;
      }
    },
    check: ask,
  } satisfies IdleKind;
}

/** Connections that each got one answer and now sit idle. */
export class IdleConnections implements AsyncDisposable {
  readonly #conns: Deno.Conn[] = [];
  readonly #kind: IdleKind;

  private constructor(kind: IdleKind) {
    this.#kind = kind;
  }

  /** Opens `count` connections of `kind`, in batches. */
  static async open(
    kind: IdleKind,
    hostname: string,
    port: number,
    path: string,
    count: number,
  ): Promise<IdleConnections> {
    const idle = new IdleConnections(kind);
    try {
      for (let done = 0; done < count; done += CONNECT_BATCH) {
        const conns = await Promise.all(
          Array.from(
            { length: Math.min(CONNECT_BATCH, count - done) },
            () => kind.open(hostname, port, path),
          ),
        );
        idle.#conns.push(...conns);
      }
    } catch (err) {
      await idle[Symbol.asyncDispose]();
      throw err;
    }
    return idle;
  }

  get count(): number {
    return this.#conns.length;
  }

  /** Asks once more on every connection; returns how many answered. */
  async countAlive(): Promise<number> {
    let alive = 0;
    for (let i = 0; i < this.#conns.length; i += CONNECT_BATCH) {
      const batch = this.#conns.slice(i, i + CONNECT_BATCH);
      const answers = await Promise.all(
        batch.map((conn) => this.#kind.check(conn).catch(() => false)),
      );
      alive += answers.filter(Boolean).length;
    }
    return alive;
  }

  [Symbol.asyncDispose](): Promise<void> {
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    this.#conns.length = 0;
    return Promise.resolve();
  }
}

/** How a slow reader behaves. */
export interface SlowReadOptions {
  readonly hostname: string;
  readonly port: number;
  readonly path: string;
  /** Reading speed while not pausing, in bytes per second. */
  readonly bytesPerSec: number;
  /** Total time before the client closes, in milliseconds. */
  readonly durationMs: number;
  /** After each `readMs` of reading, the client stops reading for `pauseMs`. */
  readonly readMs: number;
  readonly pauseMs: number;
}

/** What one slow reader saw. */
export interface SlowReadResult {
  readonly bytes: number;
  /** Status code from the response head, or 0 if no head arrived. */
  readonly status: number;
  readonly error?: string;
}

const SLOW_CHUNK_BYTES = 64 * 1024;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3}) /;

/** Downloads slowly for a while, then closes mid-body. */
export async function slowRead(opts: SlowReadOptions): Promise<SlowReadResult> {
  const buf = new Uint8Array(SLOW_CHUNK_BYTES);
  let bytes = 0;
  let status = 0;
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: opts.hostname, port: opts.port });
    await writeAll(conn, buildRequests(opts.hostname, opts.port, opts.path, 1));
    const started = performance.now();
    let readTimeMs = 0; // time spent in reading phases, for the rate limit
    let phaseStart = started;
    while (true) {
      const now = performance.now();
      if (now - started >= opts.durationMs) break;
      if (now - phaseStart >= opts.readMs) {
        readTimeMs += now - phaseStart;
        await sleep(Math.min(opts.pauseMs, opts.durationMs - (now - started)));
        phaseStart = performance.now();
        continue;
      }
      // Ahead of the allowed rate: wait until we are not.
      const allowed = (readTimeMs + (now - phaseStart)) / 1000 *
        opts.bytesPerSec;
      if (bytes >= allowed) {
        await sleep(Math.max(1, (bytes - allowed) / opts.bytesPerSec * 1000));
        continue;
      }
      const n = await conn.read(buf);
      if (n === null) break;
      if (status === 0) {
        const head = new TextDecoder().decode(buf.subarray(0, Math.min(n, 16)));
        status = Number(STATUS_LINE.exec(head)?.[1] ?? -1);
      }
      bytes += n;
    }
    return { bytes, status };
  } catch (err) {
    return { bytes, status, error: (err as Error).message };
  } finally {
    try {
      conn?.close();
    } catch { /* already closed */ }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Where and how many idle connections an {@link IdleHolder} opens. */
export interface HoldOptions {
  readonly hostname: string;
  readonly port: number;
  readonly path: string;
  readonly count: number;
  /** Hold WebSockets (upgraded on `path`) rather than keep-alive connections. */
  readonly websocket?: boolean;
  /** Cores for the holder process (taskset syntax), or null for any. */
  readonly cpus: string | null;
  readonly fdLimit: number;
}

const HOLDER_SCRIPT = new URL(import.meta.url).pathname;

/** Idle keep-alive connections held open by a subprocess, for the runner. */
export class IdleHolder implements AsyncDisposable {
  #count = 0;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  private constructor(
    child: Deno.ChildProcess,
    lines: AsyncIterator<string>,
  ) {
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#lines = lines;
  }

  /** Opens the connections; throws if any could not be opened and answered. */
  static async open(opts: HoldOptions): Promise<IdleHolder> {
    const argv = withFdLimit(opts.fdLimit, [
      ...pinned(opts.cpus),
      Deno.execPath(),
      "run",
      "--allow-net",
      HOLDER_SCRIPT,
      opts.websocket ? "hold-ws" : "hold",
      opts.hostname,
      `${opts.port}`,
      opts.path,
      `${opts.count}`,
    ]);
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .pipeThrough(new LineStream())[Symbol.asyncIterator]();
    const holder = new IdleHolder(child, lines);
    const first = await holder.#reply();
    if (typeof first.held !== "number") {
      await holder[Symbol.asyncDispose]();
      throw new Error(
        `Cannot hold idle connections: ${first.error ?? "no answer"}`,
      );
    }
    holder.#count = first.held;
    return holder;
  }

  /** Connections held. */
  get count(): number {
    return this.#count;
  }

  async #reply(): Promise<{ held?: number; alive?: number; error?: string }> {
    const next = await this.#lines.next();
    return next.done ? {} : JSON.parse(next.value);
  }

  /** Sends one more request on every connection; returns how many answered. */
  async alive(): Promise<number> {
    await this.#stdin.write(new TextEncoder().encode("check\n"));
    return (await this.#reply()).alive ?? 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#stdin.close().catch(() => {});
    // Read to the end, so the pipe closes with the child.
    while (!(await this.#lines.next()).done) { /* discard */ }
    await this.#child.status;
  }
}

/** Splits a text stream into lines. */
class LineStream extends TransformStream<string, string> {
  constructor() {
    let rest = "";
    super({
      transform(chunk, out) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        for (const line of parts) out.enqueue(line);
      },
      flush(out) {
        if (rest) out.enqueue(rest);
      },
    });
  }
}

async function holdCli(args: string[], websocket: boolean): Promise<void> {
  const [hostname, port, path, count] = args;
  let idle: IdleConnections;
  try {
    const at = Number(port);
    idle = await IdleConnections.open(
      websocket ? wsIdle : httpIdle(hostname, at, path),
      hostname,
      at,
      path,
      Number(count),
    );
  } catch (err) {
    console.log(JSON.stringify({ error: (err as Error).message }));
    Deno.exit(1);
  }
  console.log(JSON.stringify({ held: idle.count }));
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream())
    .pipeThrough(new LineStream());
  for await (const line of lines) {
    if (line.trim() === "check") {
      console.log(JSON.stringify({ alive: await idle.countAlive() }));
    }
  }
  await idle[Symbol.asyncDispose]();
}

if (import.meta.main) {
  const mode = Deno.args[0];
  if ((mode !== "hold" && mode !== "hold-ws") || Deno.args.length !== 5) {
    console.error("Usage: clients.ts hold|hold-ws HOST PORT PATH COUNT");
    Deno.exit(2);
  }
  await holdCli(Deno.args.slice(1), mode === "hold-ws");
}
