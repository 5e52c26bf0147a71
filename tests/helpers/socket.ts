/**
 * Raw-socket helpers for tests over real connections: send bytes as they
 * are, read replies back with their framing (Content-Length, chunked, or
 * up to the close), and wait for a close. Every wait is bounded, so a
 * server that hangs fails the test instead of hanging it.
 */

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

/** How long a helper waits before it fails the test. */
export const WAIT_MS = 5000;

const CRLF_CRLF = encoder.encode("\r\n\r\n");

/** One reply as read off the wire. */
export interface RawReply {
  /** "HTTP/1.1" or "HTTP/1.0". */
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** Lower-case names; repeated names joined with ", ". */
  readonly headers: Map<string, string>;
  /** Header lines in order, as sent: [name, value]. */
  readonly fields: readonly (readonly [string, string])[];
  /** The body after de-chunking. */
  readonly body: Uint8Array;
  /** The body as UTF-8. */
  readonly text: string;
  /** The status line and headers as sent, with the final CRLF CRLF. */
  readonly head: string;
  /** True when the body was framed by `Transfer-Encoding: chunked`. */
  readonly chunked: boolean;
}

export interface ReadReplyOptions {
  /** The request was HEAD: the reply has no body whatever its headers say. */
  readonly head?: boolean;
  /** Fail after this long; default {@link WAIT_MS}. */
  readonly timeoutMs?: number;
}

/** Rejects with a clear message if `promise` takes longer than `ms`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms: ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 10 ms until it holds; fails after `ms` with `what`. */
export async function waitFor(
  check: () => boolean,
  what: string,
  ms = WAIT_MS,
): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Connects to 127.0.0.1:`port`. */
export function connect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

/** Writes every byte of `data` (strings as UTF-8). */
export async function send(
  conn: Deno.Conn,
  data: string | Uint8Array,
): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Sends `text` one byte at a time, `gapMs` apart (slowloris). */
export async function trickle(
  conn: Deno.Conn,
  text: string,
  gapMs: number,
): Promise<void> {
  for (const byte of encoder.encode(text)) {
    await conn.write(Uint8Array.of(byte));
    await sleep(gapMs);
  }
}

/** A GET request with Host and any extra header lines. */
export function get(path = "/", extra = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * Reads replies off one connection. Bytes past one reply stay buffered for
 * the next, so pipelined replies can be read one by one.
 */
export class ReplyReader {
  readonly conn: Deno.Conn;
  #store = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #eof = false;
  /** Sizes of the socket reads so far (to see how the server wrote). */
  readonly reads: number[] = [];

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Bytes received and not yet taken by a read. */
  get buffered(): Uint8Array {
    return this.#buf;
  }

  /** Reads once more from the socket; false at end of stream. */
  async fill(deadline: number): Promise<boolean> {
    if (this.#eof) return false;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("Timed out reading a reply");
    // Room for 64 KiB more, growing by doubling: no copy per read.
    if (this.#store.length - this.#end < 64 * 1024) {
      const size = Math.max(
        this.#store.length * 2,
        this.#end - this.#start + 64 * 1024,
      );
      const bigger = new Uint8Array(size);
      bigger.set(this.#store.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#store = bigger;
    }
    let n: number | null;
    try {
      n = await withTimeout(
        this.conn.read(this.#store.subarray(this.#end, this.#end + 64 * 1024)),
        left,
        "reading a reply",
      );
    } catch (err) {
      // A reset after the server's close counts as the end of the stream.
      if (err instanceof Deno.errors.ConnectionReset) n = null;
      else throw err;
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.reads.push(n);
    this.#end += n;
    return true;
  }

  get #buf(): Uint8Array {
    return this.#store.subarray(this.#start, this.#end);
  }

  #take(n: number): Uint8Array {
    const out = this.#store.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  async #need(n: number, deadline: number, what: string): Promise<void> {
    while (this.#buf.length < n) {
      if (!(await this.fill(deadline))) {
        throw new Error(`Connection closed in ${what}`);
      }
    }
  }

  async #line(deadline: number, what: string): Promise<string> {
    for (;;) {
      const i = indexOfBytes(this.#buf, encoder.encode("\r\n"));
      if (i !== -1) return decoder.decode(this.#take(i + 2)).slice(0, -2);
      if (!(await this.fill(deadline))) {
        throw new Error(`Connection closed in ${what}`);
      }
    }
  }

  /** The next whole reply, 1xx included. Fails if the connection closes first. */
  async readReply(opts: ReadReplyOptions = {}): Promise<RawReply> {
    const deadline = Date.now() + (opts.timeoutMs ?? WAIT_MS);
    let end: number;
    while ((end = indexOfBytes(this.#buf, CRLF_CRLF)) === -1) {
      if (!(await this.fill(deadline))) {
        throw new Error(
          this.#buf.length === 0
            ? "Connection closed before a reply"
            : `Connection closed mid-head: ${decoder.decode(this.#buf)}`,
        );
      }
    }
    const head = decoder.decode(this.#take(end + 4));
    const lines = head.slice(0, -4).split("\r\n");
    const m = /^(HTTP\/1\.[01]) (\d{3}) ?(.*)$/.exec(lines[0]);
    if (m === null) throw new Error(`Bad status line: ${lines[0]}`);
    const status = Number(m[2]);
    const headers = new Map<string, string>();
    const fields: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`Bad header line: ${line}`);
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      fields.push([name, value]);
      const lower = name.toLowerCase();
      const prev = headers.get(lower);
      headers.set(lower, prev === undefined ? value : `${prev}, ${value}`);
    }
    const chunked = /chunked/i.test(headers.get("transfer-encoding") ?? "");
    let body: Uint8Array;
    if (opts.head || status < 200 || status === 204 || status === 304) {
      body = new Uint8Array(0);
    } else if (chunked) {
      body = await this.#readChunked(deadline);
    } else if (headers.has("content-length")) {
      const n = Number(headers.get("content-length"));
      await this.#need(n, deadline, "a body");
      body = this.#take(n);
    } else {
      while (await this.fill(deadline)) { /* to the close */ }
      body = this.#take(this.#buf.length);
    }
    return {
      version: m[1],
      status,
      reason: m[3],
      headers,
      fields,
      body,
      text: decoder.decode(body),
      head,
      chunked,
    };
  }

  async #readChunked(deadline: number): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    for (;;) {
      const line = await this.#line(deadline, "a chunk size");
      const size = parseInt(line.split(";")[0], 16);
      if (!Number.isFinite(size)) throw new Error(`Bad chunk size: ${line}`);
      if (size === 0) break;
      await this.#need(size + 2, deadline, "a chunk");
      pieces.push(this.#take(size));
      if (decoder.decode(this.#take(2)) !== "\r\n") {
        throw new Error("Chunk not followed by CRLF");
      }
    }
    while ((await this.#line(deadline, "trailers")) !== "") { /* dropped */ }
    return concat(pieces);
  }

  /** Everything until the peer closes (or resets). */
  async readUntilClose(timeoutMs = WAIT_MS): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (await this.fill(deadline)) { /* more */ }
    return this.#take(this.#buf.length);
  }

  /** True once the peer has closed with nothing more to read. */
  async closed(timeoutMs = WAIT_MS): Promise<boolean> {
    const rest = await this.readUntilClose(timeoutMs);
    return rest.length === 0;
  }
}

/** Joins byte arrays. */
export function concat(pieces: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of pieces) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of pieces) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Reads one reply from `conn` (bytes past it are lost: use ReplyReader to pipeline). */
export function readReply(
  conn: Deno.Conn,
  opts?: ReadReplyOptions,
): Promise<RawReply> {
  return new ReplyReader(conn).readReply(opts);
}

/** Reads everything until `conn` closes; fails after `timeoutMs`. */
export function readUntilClose(
  conn: Deno.Conn,
  timeoutMs = WAIT_MS,
): Promise<Uint8Array> {
  return new ReplyReader(conn).readUntilClose(timeoutMs);
}

/** Connects, sends `raw`, reads one reply, closes. */
export async function exchange(
  port: number,
  raw: string | Uint8Array,
  opts?: ReadReplyOptions,
): Promise<RawReply> {
  using conn = await connect(port);
  await send(conn, raw);
  return await readReply(conn, opts);
}

/** Starts `cmd` and collects its output; fails after `timeoutMs`. */
export async function run(
  cmd: string,
  args: readonly string[],
  timeoutMs = WAIT_MS,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Why a test that runs the tool at `path` cannot run ("... not found"), or
 * undefined. Without read permission it throws: say so, do not skip.
 */
export function missingTool(path: string): string | undefined {
  try {
    Deno.statSync(path);
    return undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return `${path} not found`;
    throw err;
  }
}

/** True when `cmd` runs (`cmd --version` or `-V` exits). */
export async function hasTool(
  cmd: string,
  arg = "--version",
): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args: [arg], stdout: "null", stderr: "null" })
      .output();
    return true;
  } catch {
    return false;
  }
}
