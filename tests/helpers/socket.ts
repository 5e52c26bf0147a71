/**
 * The raw HTTP/1.1 test client, for tests over real connections: send bytes
 * as they are (strings as Latin-1 where any octet must go through), read
 * replies back with their framing (Content-Length, chunked, or up to a
 * close the reply announced), and wait for a close. Replies are checked
 * strictly, so a malformed one fails the test. Every wait is bounded, so a
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
  /**
   * The request was HEAD: the reply has no body whatever its headers say.
   * A function decides from the reply's headers.
   */
  readonly head?: boolean | ((headers: Map<string, string>) => boolean);
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

/** Opens Deno's WebSocket client (binary as ArrayBuffer) and resolves once it is open. */
export async function openWebSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  await withTimeout(
    new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("WebSocket error"));
    }),
    10_000,
    "open",
  );
  return ws;
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

/** Bytes of `text`, one byte per char (Latin-1), so tests can send any octet. */
export function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** Text of `bytes`, one char per byte. */
export function latin1Text(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
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

/** Where a {@link ReplyReader} reads from: a connection, or bytes already read. */
export interface ByteSource {
  read(into: Uint8Array): Promise<number | null>;
}

/** A control byte other than HTAB (never allowed in a field value). */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^(HTTP\/1\.[01]) ([1-5]\d\d) ([\t -~]*)$/;

/**
 * Reads replies off one connection. Bytes past one reply stay buffered for
 * the next, so pipelined replies can be read one by one. Strict: a status
 * line `HTTP/1.x NNN reason`, token field names, no control bytes in
 * values, one framing (Content-Length or chunked, never both; no chunk
 * extensions or trailers), and a body up to the close only when the reply
 * says `Connection: close`. Anything else throws.
 */
export class ReplyReader {
  readonly #source: ByteSource;
  #store = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #eof = false;
  /** Sizes of the socket reads so far (to see how the server wrote). */
  readonly reads: number[] = [];

  constructor(source: ByteSource) {
    this.#source = source;
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
        this.#source.read(
          this.#store.subarray(this.#end, this.#end + 64 * 1024),
        ),
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
    const m = STATUS_LINE.exec(lines[0]);
    if (m === null) {
      throw new Error(`Bad status line: ${JSON.stringify(lines[0])}`);
    }
    const status = Number(m[2]);
    const headers = new Map<string, string>();
    const fields: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, Math.max(colon, 0));
      const value = line.slice(colon + 1).trim();
      if (!TOKEN.test(name) || CONTROL.test(value)) {
        throw new Error(`Bad header line: ${JSON.stringify(line)}`);
      }
      fields.push([name, value]);
      const lower = name.toLowerCase();
      const prev = headers.get(lower);
      headers.set(lower, prev === undefined ? value : `${prev}, ${value}`);
    }
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (te !== undefined && cl !== undefined) {
      throw new Error("Both Content-Length and Transfer-Encoding");
    }
    if (te !== undefined && te.toLowerCase() !== "chunked") {
      throw new Error(`Transfer-Encoding ${te}`);
    }
    if (cl !== undefined && !/^\d+$/.test(cl)) {
      throw new Error(`Content-Length ${cl}`);
    }
    const chunked = te !== undefined;
    const head_ = typeof opts.head === "function"
      ? opts.head(headers)
      : opts.head;
    let body: Uint8Array;
    if (head_ || status < 200 || status === 204 || status === 304) {
      body = new Uint8Array(0);
    } else if (chunked) {
      body = await this.#readChunked(deadline);
    } else if (cl !== undefined) {
      const n = Number(cl);
      await this.#need(n, deadline, "a body");
      body = this.#take(n);
    } else if (headers.get("connection")?.toLowerCase() === "close") {
      while (await this.fill(deadline)) { /* to the close */ }
      body = this.#take(this.#buf.length);
    } else {
      throw new Error(`No framing for status ${status}: ${head}`);
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
      if (!/^[0-9a-f]+$/i.test(line)) {
        throw new Error(`Bad chunk size: ${line}`);
      }
      const size = parseInt(line, 16);
      if (size === 0) break;
      await this.#need(size + 2, deadline, "a chunk");
      pieces.push(this.#take(size));
      if (decoder.decode(this.#take(2)) !== "\r\n") {
        throw new Error("Chunk not followed by CRLF");
      }
    }
    const after = await this.#line(deadline, "the end of a chunked body");
    if (after !== "") throw new Error(`Trailer after the last chunk: ${after}`);
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

/** Splits `bytes` into the replies in them, checked as {@link ReplyReader} does; nothing may be left over. */
export async function parseReplies(
  bytes: Uint8Array,
  head?: ReadReplyOptions["head"],
): Promise<RawReply[]> {
  let rest: Uint8Array | null = bytes;
  const reader = new ReplyReader({
    read(into) {
      if (rest === null || rest.length === 0) return Promise.resolve(null);
      const n = Math.min(into.length, rest.length);
      into.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return Promise.resolve(n);
    },
  });
  const replies: RawReply[] = [];
  while (
    reader.buffered.length > 0 || await reader.fill(Date.now() + WAIT_MS)
  ) {
    replies.push(await reader.readReply({ head }));
  }
  return replies;
}

export interface ExchangeBytesOptions {
  /** Pause between pieces, in ms; 0 writes them back to back. */
  readonly pauseMs?: number;
  /** Fail if the server has not closed by then; default {@link WAIT_MS}. */
  readonly timeoutMs?: number;
  /** Close our sending side after the last piece (default true). */
  readonly halfClose?: boolean;
}

/** A peer that went away: the end of what a write can do, not a failure. */
function isGone(err: unknown): boolean {
  return err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.NotConnected;
}

/**
 * Connects, writes `pieces` in order (strings as Latin-1), and reads until
 * the server closes; returns every byte it sent. A write the server refused
 * (it had closed already) stops the writing, not the reading. Fails if the
 * server has not closed within `timeoutMs`.
 */
export async function exchangeBytes(
  port: number,
  pieces: readonly (string | Uint8Array)[],
  opts: ExchangeBytesOptions = {},
): Promise<Uint8Array> {
  const { pauseMs = 0, timeoutMs = WAIT_MS, halfClose = true } = opts;
  using conn = await connect(port);
  conn.setNoDelay(true);
  const reading = new ReplyReader(conn).readUntilClose(timeoutMs);
  // A stuck write must not outlive a failed read: closing ends it.
  let failed = false;
  reading.catch(() => {
    failed = true;
    conn.close();
  });
  try {
    for (let k = 0; k < pieces.length; k++) {
      const piece = pieces[k];
      await send(conn, typeof piece === "string" ? latin1Bytes(piece) : piece);
      if (pauseMs > 0 && k < pieces.length - 1) await sleep(pauseMs);
    }
    if (halfClose) await conn.closeWrite();
  } catch (err) {
    if (!failed && !isGone(err)) throw err;
  }
  return await reading;
}

/** {@link exchangeBytes}, then {@link parseReplies}. */
export async function exchangeReplies(
  port: number,
  pieces: readonly (string | Uint8Array)[],
  opts: ExchangeBytesOptions = {},
): Promise<RawReply[]> {
  return await parseReplies(await exchangeBytes(port, pieces, opts));
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

/** True when `cmd` runs (`cmd --version`, or `cmd arg`, exits). */
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

const lacking = new Map<string, Promise<boolean>>();

/**
 * For `Deno.test({ ignore })`: true when `cmd` does not run here, and then
 * prints once why, so the test shows as ignored with its reason.
 */
export function lacks(cmd: string, arg = "--version"): Promise<boolean> {
  let known = lacking.get(cmd);
  if (known === undefined) {
    known = hasTool(cmd, arg).then((has) => {
      if (!has) console.log(`skipped: ${cmd} is not installed`);
      return !has;
    });
    lacking.set(cmd, known);
  }
  return known;
}
