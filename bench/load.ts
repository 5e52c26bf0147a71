/**
 * The project's own HTTP/1.1 load generator, used by `bench/run.ts` when wrk
 * is missing: N keep-alive connections, optional pipelining, fixed duration.
 * Responses are counted by finding the end of each head and skipping
 * Content-Length body bytes, so no body is ever copied or decoded.
 *
 * CLI: `deno run --allow-net bench/load.ts http://127.0.0.1:8080/ -c 64 -d 5
 * [-p 16] [--json]`
 */
import { parseArgs } from "node:util";

const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const SP = 0x20;
const HTAB = 0x09;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const LOWER = 0x20; // OR-ing it folds A-Z to a-z

const CONTENT_LENGTH = bytesOf("content-length");
const TRANSFER_ENCODING = bytesOf("transfer-encoding");
const CONNECTION = bytesOf("connection");
const CLOSE = bytesOf("close");

/** Read buffer per connection; a response head must fit in it. */
const READ_BUFFER_BYTES = 256 * 1024;

function bytesOf(ascii: string): Uint8Array {
  return new TextEncoder().encode(ascii);
}

/** Raised for a response this generator cannot count (chunked, no length). */
export class UncountableResponseError extends Error {
  override name = "UncountableResponseError";
}

/**
 * Counts complete responses in a byte stream fed piece by piece. Keeps only
 * a little state between pieces: how many body bytes are still to skip.
 */
export class ResponseScanner {
  /** Complete responses seen so far. */
  responses = 0;
  /** Complete responses whose status was not 2xx or 3xx. */
  errorStatuses = 0;
  /** True once a complete response carried `Connection: close`. */
  closeSeen = false;
  #bodyLeft = 0;
  #inBody = false;
  #pendingStatus = 0;
  #pendingClose = false;

  /**
   * Consumes what it can of `buf[start, end)` and returns the index of the
   * first byte not consumed: the start of an unfinished head, which the
   * caller must present again (with more bytes after it) on the next call.
   * Throws {@link UncountableResponseError} for chunked or unbounded bodies.
   */
  scan(buf: Uint8Array, start: number, end: number): number {
    let i = start;
    while (true) {
      if (this.#inBody) {
        const take = Math.min(this.#bodyLeft, end - i);
        this.#bodyLeft -= take;
        i += take;
        if (this.#bodyLeft > 0) return i;
        this.#finish();
      }
      if (i >= end) return i;
      const headEnd = findHeadEnd(buf, i, end);
      if (headEnd < 0) return i;
      this.#readHead(buf, i, headEnd);
      i = headEnd;
    }
  }

  #finish(): void {
    this.#inBody = false;
    this.responses++;
    if (this.#pendingStatus < 200 || this.#pendingStatus >= 400) {
      this.errorStatuses++;
    }
    if (this.#pendingClose) this.closeSeen = true;
  }

  #readHead(buf: Uint8Array, start: number, end: number): void {
    // "HTTP/1.1 200 " : the status is always bytes 9..11 of the status line.
    const status = (buf[start + 9] - DIGIT_0) * 100 +
      (buf[start + 10] - DIGIT_0) * 10 + (buf[start + 11] - DIGIT_0);
    let length = -1;
    let close = false;
    // Walk header lines: each starts just after an LF.
    for (let line = indexOfLf(buf, start, end) + 1; line < end - 2;) {
      const lineEnd = indexOfLf(buf, line, end);
      const first = buf[line] | LOWER;
      if (first === 0x63 /* c */) {
        const value = fieldValueStart(buf, line, lineEnd, CONTENT_LENGTH);
        if (value >= 0) length = parseDecimal(buf, value, lineEnd);
        else {
          const conn = fieldValueStart(buf, line, lineEnd, CONNECTION);
          if (conn >= 0 && startsWithFolded(buf, conn, lineEnd, CLOSE)) {
            close = true;
          }
        }
      } else if (
        first === 0x74 /* t */ &&
        fieldValueStart(buf, line, lineEnd, TRANSFER_ENCODING) >= 0
      ) {
        throw new UncountableResponseError(
          "Cannot count response: Transfer-Encoding is not supported",
        );
      }
      line = lineEnd + 1;
    }
    // RFC 9112 §6.3: 1xx, 204 and 304 never have a body.
    const bodiless = status < 200 || status === 204 || status === 304;
    if (bodiless) length = 0;
    if (length < 0) {
      throw new UncountableResponseError(
        `Cannot count response: status ${status} without Content-Length`,
      );
    }
    this.#pendingStatus = status;
    this.#pendingClose = close;
    this.#bodyLeft = length;
    this.#inBody = true;
  }
}

/** Index just past CRLF CRLF at or after `from`, or -1 before `end`. */
export function findHeadEnd(
  buf: Uint8Array,
  from: number,
  end: number,
): number {
  for (let i = from + 3; i < end; i++) {
    if (
      buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF &&
      buf[i - 3] === CR
    ) return i + 1;
  }
  return -1;
}

function indexOfLf(buf: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === LF) return i;
  return end;
}

/** Start of the value when the line is `name:`, matched case-insensitively; else -1. */
function fieldValueStart(
  buf: Uint8Array,
  line: number,
  lineEnd: number,
  name: Uint8Array,
): number {
  if (lineEnd - line <= name.length || buf[line + name.length] !== COLON) {
    return -1;
  }
  for (let k = 0; k < name.length; k++) {
    if ((buf[line + k] | LOWER) !== name[k]) return -1;
  }
  let v = line + name.length + 1;
  while (v < lineEnd && (buf[v] === SP || buf[v] === HTAB)) v++;
  return v;
}

function startsWithFolded(
  buf: Uint8Array,
  at: number,
  end: number,
  word: Uint8Array,
): boolean {
  if (end - at < word.length) return false;
  for (let k = 0; k < word.length; k++) {
    if ((buf[at + k] | LOWER) !== word[k]) return false;
  }
  return true;
}

function parseDecimal(buf: Uint8Array, from: number, end: number): number {
  let n = 0;
  let i = from;
  for (; i < end && buf[i] >= DIGIT_0 && buf[i] <= DIGIT_9; i++) {
    n = n * 10 + buf[i] - DIGIT_0;
  }
  return i === from ? -1 : n;
}

/** What one load run asks for. */
export interface LoadOptions {
  readonly hostname: string;
  readonly port: number;
  /** Request target, e.g. "/" or "/1k.txt". */
  readonly path: string;
  /** Keep-alive connections, each with its own request loop. */
  readonly connections: number;
  /** How long to send, in milliseconds; responses after it are not counted. */
  readonly durationMs: number;
  /** Requests written at once per connection (1: no pipelining). */
  readonly pipeline: number;
}

/** What one load run measured. */
export interface LoadResult {
  /** Complete responses received within the duration. */
  readonly requests: number;
  /** Bytes read from the server, heads and bodies. */
  readonly bytes: number;
  /** Measured wall time, in milliseconds. */
  readonly durationMs: number;
  readonly requestsPerSec: number;
  readonly bytesPerSec: number;
  /** Responses with a status outside 2xx/3xx. */
  readonly errorStatuses: number;
  /** Failed connects, resets, early closes and uncountable responses. */
  readonly socketErrors: number;
  /** Connections opened, including reconnects after the server closed one. */
  readonly connects: number;
  /** First socket error seen, for the report. */
  readonly firstError?: string;
}

/** The request bytes for one write: `pipeline` identical GETs. */
export function buildRequests(
  hostname: string,
  port: number,
  path: string,
  pipeline: number,
): Uint8Array {
  const one = `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`;
  return new TextEncoder().encode(one.repeat(pipeline));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Runs load for `durationMs` and counts what came back. Needs --allow-net. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.connections < 1 || opts.pipeline < 1 || opts.durationMs <= 0) {
    throw new RangeError(
      "connections and pipeline must be >= 1, durationMs > 0",
    );
  }
  const request = buildRequests(
    opts.hostname,
    opts.port,
    opts.path,
    opts.pipeline,
  );
  const open = new Set<Deno.Conn>();
  let stopped = false;
  let requests = 0;
  let bytes = 0;
  let errorStatuses = 0;
  let socketErrors = 0;
  let connects = 0;
  let firstError: string | undefined;
  const fail = (err: unknown) => {
    socketErrors++;
    firstError ??= err instanceof Error
      ? `${err.name}: ${err.message}`
      : `${err}`;
  };

  async function drive(): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    while (!stopped) {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname: opts.hostname, port: opts.port });
      } catch (err) {
        if (stopped) return;
        fail(err);
        await new Promise((r) => setTimeout(r, 10)); // do not spin on refusal
        continue;
      }
      if (stopped) {
        conn.close();
        return;
      }
      connects++;
      conn.setNoDelay(true);
      open.add(conn);
      const scanner = new ResponseScanner();
      let end = 0;
      try {
        while (!stopped && !scanner.closeSeen) {
          await writeAll(conn, request);
          const target = scanner.responses + opts.pipeline;
          while (scanner.responses < target) {
            const n = await conn.read(buf.subarray(end));
            if (n === null) throw new Error("Server closed the connection");
            if (stopped) return; // counted nothing after the deadline
            bytes += n;
            const before = scanner.responses;
            const beforeErrors = scanner.errorStatuses;
            const used = scanner.scan(buf, 0, end + n);
            requests += scanner.responses - before;
            errorStatuses += scanner.errorStatuses - beforeErrors;
            // Keep an unfinished head at the front for the next read.
            buf.copyWithin(0, used, end + n);
            end = end + n - used;
            if (end === buf.length) {
              throw new UncountableResponseError(
                "Cannot count response: head larger than the read buffer",
              );
            }
            if (scanner.closeSeen) break;
          }
        }
      } catch (err) {
        if (stopped) return; // the close at the deadline interrupted a read
        fail(err);
      } finally {
        if (open.delete(conn)) conn.close();
      }
    }
  }

  const started = performance.now();
  const loops = Array.from({ length: opts.connections }, () => drive());
  await new Promise((r) => setTimeout(r, opts.durationMs));
  stopped = true;
  const durationMs = performance.now() - started;
  for (const conn of open) conn.close();
  open.clear();
  await Promise.all(loops);
  return {
    requests,
    bytes,
    durationMs,
    requestsPerSec: requests / (durationMs / 1000),
    bytesPerSec: bytes / (durationMs / 1000),
    errorStatuses,
    socketErrors,
    connects,
    firstError,
  };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      connections: { type: "string", short: "c", default: "64" },
      duration: { type: "string", short: "d", default: "5" },
      pipeline: { type: "string", short: "p", default: "1" },
      json: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1) {
    console.error(
      "Usage: load.ts <http://host:port/path> [-c conns] [-d seconds] [-p depth] [--json]",
    );
    Deno.exit(2);
  }
  const url = new URL(positionals[0]);
  const result = await runLoad({
    hostname: url.hostname,
    port: Number(url.port || 80),
    path: url.pathname + url.search,
    connections: Number(values.connections),
    durationMs: Number(values.duration) * 1000,
    pipeline: Number(values.pipeline),
  });
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `${result.requests} responses in ${
        (result.durationMs / 1000).toFixed(2)
      } s: ${result.requestsPerSec.toFixed(0)} req/s, ${
        (result.bytesPerSec / 1048576).toFixed(2)
      } MiB/s, ${result.errorStatuses} non-2xx/3xx, ${result.socketErrors} socket errors`,
    );
  }
}
