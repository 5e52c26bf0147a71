/**
 * The access log: one line per request, built by hand from the request's
 * fields into one reusable buffer and written in batches, as nginx's
 * `access_log ... buffer=` does. No record object, no template, no stream
 * write per line: a line costs well under a microsecond. Everything else
 * the server logs goes through LogTape (lib/log.ts).
 */
import { fstatSync } from "node:fs";
import type { HeaderFields } from "./headers.ts";

/** What a line shows of a parsed request: an HTTP/1.x head, or an HTTP/2 stream's. */
export interface LoggedRequest {
  readonly method: string;
  readonly target: string;
  readonly headers: HeaderFields;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (and 0 for HTTP/2.0). */
  readonly minor: number;
  /** 2 for HTTP/2; absent for HTTP/1.x. */
  readonly major?: number;
}

/** `text` and `json` match the LogTape lines; `common` and `combined` are nginx's and Apache's. */
export type AccessFormat = "text" | "json" | "common" | "combined";

/** Where lines go: stdout, a file, or anything else with a synchronous write. */
export interface AccessOutput {
  writeSync(bytes: Uint8Array): number;
}

/**
 * Something that holds lines until the write of their replies ends (a
 * connection's gathered replies): {@link AccessLog.close} and the exit
 * have it append them first, cut short, so that no line is lost.
 */
export interface LineHolder {
  appendHeld(): void;
}

/** Options for {@link AccessLog}. */
export interface AccessLogOptions {
  readonly format: AccessFormat;
  /** Default: stdout. */
  readonly output?: AccessOutput;
  /** Longest time a line waits in the buffer, in ms. */
  readonly flushMs?: number;
  /** The buffer is written once it holds this many bytes. */
  readonly bufferBytes?: number;
  /**
   * Each write is cut at a line end to at most this many bytes (a longer
   * line goes whole). Default: a batch in one write when the output is
   * stdout and stdout is a regular file, else {@link PIPE_BUF}.
   */
  readonly writeBytes?: number;
}

/**
 * A line is written within 10 ms: about 100 writes a second at most. The
 * clock is one interval that runs while lines come and stops at the first
 * tick with none, not a timeout armed per batch: arming a Deno timer costs
 * microseconds when cold, ~0.09 µs a request at 100 batches a second
 * (`perf`, `--workers 2` under wrk).
 */
const FLUSH_MS = 10;
/** Writes of up to 64 KiB: a few hundred lines per system call under load. */
const BUFFER_BYTES = 64 * 1024;
/**
 * Each write is cut at a line end to at most this size: POSIX keeps writes
 * of up to PIPE_BUF bytes to a pipe whole, so lines from `--workers` threads
 * sharing one stdout (and LogTape's lines) never interleave mid-line.
 */
const PIPE_BUF = 4096;

/**
 * True when stdout is a regular file. A write to one is never interleaved
 * with another (the kernel holds the file's lock for the whole write, and
 * moves a shared offset atomically; Linux), so a batch goes in one system
 * call: 16 writes of 4 KiB through `Deno.stdout` cost ~3x one of 64 KiB
 * (~74 against ~24 µs), ~75 ns a line of ~99 bytes. A pipe, socket or
 * terminal keeps the PIPE_BUF cut. `fstat` of an open descriptor asks no
 * permission.
 */
export function stdoutIsFile(): boolean {
  try {
    return fstatSync(1).isFile();
  } catch {
    return false; // no descriptor 1 to ask about: stay on the safe side
  }
}

// Client-chosen text is cut to these lengths (in characters, before escaping)
// so one request cannot write a line of megabytes.
const MAX_METHOD_CHARS = 32; // PROPFIND and friends fit; a 501 junk method does not
const MAX_FIELD_CHARS = 2048; // target, user agent, referer, an unparsed request line
const MAX_REASON_CHARS = 256; // an error's message may quote the request
const MAX_USER_CHARS = 64; // a name from the server's own auth file; bounded all the same
/** An escaped character takes at most 6 bytes (`\u00ff`). */
const MAX_LINE_BYTES = 6 * (MAX_METHOD_CHARS + 3 * MAX_FIELD_CHARS +
      2 * MAX_REASON_CHARS + MAX_USER_CHARS) + 512;

/** Status logged for a request whose client or server closed before any reply (nginx's 499). */
export const NO_REPLY_STATUS = 499;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SP = 0x20;
const LF = 0x0a;
const LBRACE = 0x7b;
const HEX = "0123456789abcdef";
/** 1 for the ASCII characters a line shows as they are: printable, not `"` or `\\`. */
const PLAIN = new Uint8Array(0x80).map((_, c) =>
  c >= SP && c < 0x7f && c !== QUOTE && c !== BACKSLASH ? 1 : 0
);
const MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];

const encoder = new TextEncoder();
const TEXT_LEVEL = " +00 [INF] spindle.access: ";
const JSON_HEAD = '{"@timestamp":"';
const JSON_LEVEL = 'Z","level":"INFO","message":"';
const JSON_LOGGER = encoder.encode(
  '","logger":"spindle.access","properties":{"client":"',
);
const K_USER = encoder.encode('","user":');
const K_METHOD = encoder.encode(',"method":');
const K_TARGET = encoder.encode(',"target":');
const K_VERSION = encoder.encode(',"version":');
const K_STATUS = encoder.encode(',"status":');
const K_BYTES = encoder.encode(',"bytes":');
const K_MS = encoder.encode(',"ms":');
const K_ABORTED = encoder.encode(',"aborted":');
const K_USERAGENT = encoder.encode(',"userAgent":');
const K_REFERER = encoder.encode(',"referer":');
const K_ERROR = encoder.encode(',"error":');
const K_REQUEST = encoder.encode(',"request":');
const JSON_NULL = encoder.encode("null");
const JSON_TRUE = encoder.encode("true");
const JSON_FALSE = encoder.encode("false");

/**
 * One access log: formats lines into a buffer and writes it every
 * `flushMs` or `bufferBytes`, whichever comes first. The timer is unref'd:
 * it never keeps a process alive, so call {@link flush} (or {@link close})
 * before exit; {@link setAccessLog} also flushes on the `unload` event.
 */
export class AccessLog {
  readonly format: AccessFormat;
  /** The format shows the User-Agent and Referer (read only then). */
  readonly wantsAgent: boolean;
  readonly #output: AccessOutput;
  readonly #flushMs: number;
  readonly #bufferBytes: number;
  /** At most this many bytes a write, cut at a line end. */
  readonly writeBytes: number;
  readonly #buf: Uint8Array;
  #len = 0;
  #clock: ReturnType<typeof setInterval> | undefined;
  /**
   * Buffered bytes from which an append calls {@link #settle}: the buffer's
   * size while the clock runs, 0 while it is stopped (the next line starts it).
   */
  #settleAt = 0;
  #closed = false;
  /** Who holds lines now: one add and one delete a gathered write. */
  readonly #holders = new Set<LineHolder>();
  /**
   * The current second's timestamp as bytes, and which second it is. In
   * the text and JSON formats it is the whole start of a line, with "000"
   * for the milliseconds at {@link MILLI_AT}: one copy and three digits.
   */
  #second = -1;
  #stamp: Uint8Array = new Uint8Array(0);

  constructor(opts: AccessLogOptions) {
    this.format = opts.format;
    this.wantsAgent = opts.format === "combined" || opts.format === "json";
    this.#output = opts.output ?? Deno.stdout;
    this.#flushMs = opts.flushMs ?? FLUSH_MS;
    this.#bufferBytes = opts.bufferBytes ?? BUFFER_BYTES;
    this.writeBytes = opts.writeBytes ??
      (opts.output === undefined && stdoutIsFile() ? Infinity : PIPE_BUF);
    this.#buf = new Uint8Array(this.#bufferBytes + MAX_LINE_BYTES);
  }

  /**
   * Appends one line. `request` is the parsed head, or for a request that
   * could not be parsed its first line as sent. `bytes` is what the client
   * received (head and body); `aborted` marks a reply cut short.
   * `reason` is the error behind a rejection, if the engine saw one;
   * `user` the name an auth layer signed the request in with. `now`:
   * when the reply ended, if the caller read the clock already (the lines
   * of one gathered write share one read).
   */
  append(
    client: string,
    request: LoggedRequest | string,
    status: number,
    bytes: number,
    startTime: number,
    aborted: boolean,
    reason: string | undefined,
    user?: string,
    now: number = Date.now(),
  ): void {
    if (this.#closed) return;
    const ms = now > startTime ? now - startTime : 0;
    const second = Math.floor(now / 1000);
    // The milliseconds within the second: a subtraction, where `now % 1000`
    // on a number this large is a floating-point remainder (~20 ns).
    const milli = now - second * 1000;
    if (second !== this.#second) this.#stampSecond(second);
    const head = typeof request === "string" ? undefined : request;
    const raw = typeof request === "string" ? request : "";
    let userAgent: string | undefined;
    let referer: string | undefined;
    if (this.wantsAgent && head !== undefined) {
      userAgent = head.headers.get("user-agent");
      referer = head.headers.get("referer");
    }
    const b = this.#buf;
    let at = this.#len;
    switch (this.format) {
      case "text":
        at = putStamp(b, at, this.#stamp, milli);
        at = putRequestLine(b, at, client, user, head, raw);
        at = putStatusBytes(b, at, status, bytes);
        b[at++] = SP;
        at = putInt(b, at, ms);
        b[at++] = 0x6d; // m
        b[at++] = 0x73; // s
        if (aborted) at = putAscii(b, at, " aborted");
        if (reason !== undefined) {
          at = putAscii(b, at, " (");
          at = putEscaped(b, at, reason, MAX_REASON_CHARS, false);
          b[at++] = 0x29; // )
        }
        break;
      case "json":
        at = putJson(
          b,
          at,
          this.#stamp,
          milli,
          client,
          user,
          head,
          raw,
          status,
          bytes,
          ms,
          aborted,
          userAgent,
          referer,
          reason,
        );
        break;
      default: // common, combined
        at = putRequestLine(b, at, client, user ?? "-", head, raw, this.#stamp);
        at = putStatusBytes(b, at, status, bytes);
        if (this.format === "combined") {
          b[at++] = SP;
          at = putQuoted(b, at, referer);
          b[at++] = SP;
          at = putQuoted(b, at, userAgent);
        }
    }
    b[at++] = LF;
    this.#len = at;
    // One compare, and both rare paths behind one call, which full buffers
    // make often: V8 otherwise deoptimizes this function the first time its
    // optimized code starts the clock again (after a tick with no lines).
    if (at >= this.#settleAt) this.#settle();
  }

  /** After an append: a full buffer is written, else the clock started. */
  #settle(): void {
    if (this.#len >= this.#bufferBytes) this.#write();
    else if (this.#clock === undefined) {
      const clock = this.#clock = setInterval(this.#tick, this.#flushMs);
      Deno.unrefTimer(clock);
      this.#settleAt = this.#bufferBytes;
    }
  }

  /** Every flushMs while lines come: writes them; a tick with none stops the clock. */
  #tick = (): void => {
    if (this.#len > 0) this.#write();
    else this.#stopClock();
  };

  #stopClock(): void {
    clearInterval(this.#clock);
    this.#clock = undefined;
    this.#settleAt = 0;
  }

  /** Writes every buffered line now. A failed write drops the batch, never throws. */
  flush(): void {
    this.#stopClock();
    this.#write();
  }

  #write(): void {
    const len = this.#len;
    if (len === 0) return;
    this.#len = 0;
    const b = this.#buf;
    const most = this.writeBytes;
    try {
      for (let off = 0; off < len;) {
        let end = len;
        if (len - off > most) {
          // The last line end within `most`; a longer line goes whole.
          end = b.lastIndexOf(LF, off + most - 1) + 1;
          if (end <= off) end = b.indexOf(LF, off) + 1;
        }
        while (off < end) off += this.#output.writeSync(b.subarray(off, end));
      }
    } catch {
      // stdout closed (`| head`) or a full disk: the server keeps serving
    }
  }

  /** `holder` has lines waiting for a write; {@link release} once they are appended. */
  hold(holder: LineHolder): void {
    this.#holders.add(holder);
  }

  /** `holder` appended what it held. */
  release(holder: LineHolder): void {
    this.#holders.delete(holder);
  }

  /** Has every holder append its lines now (each releases itself), then writes them all. */
  flushAll(): void {
    for (const holder of [...this.#holders]) holder.appendHeld();
    this.#holders.clear();
    this.flush();
  }

  /** Flushes (held lines too) and stops: later lines are dropped. Idempotent. */
  close(): void {
    this.flushAll();
    this.#closed = true;
  }

  /** Builds the timestamp bytes that stay the same for one second. */
  #stampSecond(second: number): void {
    this.#second = second;
    const d = new Date(second * 1000);
    const date = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${
      pad2(d.getUTCDate())
    }`;
    const time = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${
      pad2(d.getUTCSeconds())
    }`;
    let stamp: string;
    if (this.format === "text") stamp = `${date} ${time}.000${TEXT_LEVEL}`;
    else if (this.format === "json") {
      stamp = `${JSON_HEAD}${date}T${time}.000${JSON_LEVEL}`;
    } else {
      // CLF: [10/Oct/2000:13:55:36 +0000], in UTC like every other line.
      stamp = ` [${pad2(d.getUTCDate())}/${
        MONTHS[d.getUTCMonth()]
      }/${d.getUTCFullYear()}:${time} +0000] "`;
    }
    this.#stamp = encoder.encode(stamp);
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

function putBytes(b: Uint8Array, at: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) b[at++] = bytes[i];
  return at;
}

/** ASCII text the server chose itself: copied as is. */
function putAscii(b: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
  return at;
}

/** A non-negative integer in decimal. */
function putInt(b: Uint8Array, at: number, n: number): number {
  if (n < 10) {
    b[at++] = 0x30 + n;
    return at;
  }
  if (n > 0x7fffffff) return putBigInt(b, at, n);
  // Small integers (status, most sizes, ms): int32 arithmetic throughout.
  // `n | 0` matters: a duration (a difference of two Date.now()) is a
  // double, and `%` on a double is a call to fmod (~20 ns a digit).
  const int = n | 0;
  if (int < 1000) {
    // A status, a small reply's size: the digits without counting them first.
    const q = (int / 10) | 0;
    if (int >= 100) b[at++] = 0x30 + ((q / 10) | 0);
    if (int >= 10) b[at++] = 0x30 + q % 10;
    b[at++] = 0x30 + int - q * 10;
    return at;
  }
  let digits = 0;
  for (let m = int; m > 0; m = (m / 10) | 0) digits++;
  let i = at + digits;
  for (let m = int; i > at; m = (m / 10) | 0) b[--i] = 0x30 + m % 10;
  return at + digits;
}

/** {@link putInt} for integers past 2^31 (a byte count of a big file). */
function putBigInt(b: Uint8Array, at: number, n: number): number {
  let digits = 0;
  for (let m = n; m >= 1; m = Math.floor(m / 10)) digits++;
  let i = at + digits;
  for (let m = n; i > at; m = Math.floor(m / 10)) b[--i] = 0x30 + m % 10;
  return at + digits;
}

/** Where the milliseconds go in a text or JSON line's stamp: after "YYYY-MM-DD hh:mm:ss.". */
const MILLI_AT = 20;

/**
 * A text or JSON line's start: `stamp` (the second's, with the level and
 * logger), copied whole, with the milliseconds within the second (0 to
 * 999) written over its "000". `set()` copies the ~50 bytes in one go,
 * where a loop takes ~1 ns a byte.
 */
function putStamp(
  b: Uint8Array,
  at: number,
  stamp: Uint8Array,
  milli: number,
): number {
  b.set(stamp, at);
  const m = at + (stamp[0] === LBRACE ? JSON_HEAD.length : 0) + MILLI_AT;
  b[m] = 0x30 + ((milli / 100) | 0);
  b[m + 1] = 0x30 + ((milli / 10) | 0) % 10;
  b[m + 2] = 0x30 + milli % 10;
  return at + stamp.length;
}

/**
 * Client-chosen text, cut to `max` characters (then "..."), escaped so it
 * cannot end a line, fake a field or hide in a terminal. Text: `"`, `\`,
 * control bytes and all but printable ASCII as `\xHH` (nginx's escaping);
 * JSON: as `\u00HH`, which keeps the line ASCII.
 */
function putEscaped(
  b: Uint8Array,
  at: number,
  s: string,
  max: number,
  json: boolean,
): number {
  const n = s.length > max ? max : s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80 && PLAIN[c] === 1) {
      b[at++] = c;
    } else if (json && (c === QUOTE || c === BACKSLASH)) {
      b[at++] = BACKSLASH;
      b[at++] = c;
    } else if (json || c > 0xff) {
      b[at++] = BACKSLASH;
      b[at++] = 0x75; // u
      b[at++] = HEX.charCodeAt(c >> 12);
      b[at++] = HEX.charCodeAt((c >> 8) & 15);
      b[at++] = HEX.charCodeAt((c >> 4) & 15);
      b[at++] = HEX.charCodeAt(c & 15);
    } else {
      b[at++] = BACKSLASH;
      b[at++] = 0x78; // x
      b[at++] = HEX.charCodeAt(c >> 4);
      b[at++] = HEX.charCodeAt(c & 15);
    }
  }
  if (n < s.length) at = putAscii(b, at, "...");
  return at;
}

/** `"value"`, escaped, or `"-"` when absent (CLF). */
function putQuoted(b: Uint8Array, at: number, s: string | undefined): number {
  b[at++] = QUOTE;
  if (s === undefined || s === "") b[at++] = 0x2d;
  else at = putEscaped(b, at, s, MAX_FIELD_CHARS, false);
  b[at++] = QUOTE;
  return at;
}

/**
 * `client "METHOD target HTTP/1.x"`, or `client "<line as sent>"` for a
 * request that could not be parsed; `client user "..."` when signed in.
 * `stamp` goes between user and the quote (CLF, where `user` is `-` when
 * none and CLF's ident `-` comes before it); without it a space and the
 * quote do.
 */
function putRequestLine(
  b: Uint8Array,
  at: number,
  client: string,
  user: string | undefined,
  head: LoggedRequest | undefined,
  raw: string,
  stamp?: Uint8Array,
): number {
  at = putAscii(b, at, client);
  if (stamp !== undefined) at = putAscii(b, at, " -"); // CLF's ident
  if (user !== undefined) {
    b[at++] = SP;
    at = putEscaped(b, at, user, MAX_USER_CHARS, false);
  }
  if (stamp === undefined) {
    b[at++] = SP;
    b[at++] = QUOTE;
  } else at = putBytes(b, at, stamp);
  if (head === undefined) {
    at = raw === ""
      ? putAscii(b, at, "-")
      : putEscaped(b, at, raw, MAX_FIELD_CHARS, false);
  } else {
    const method = head.method;
    if (method === "GET") {
      b[at++] = 0x47; // G
      b[at++] = 0x45; // E
      b[at++] = 0x54; // T
    } else at = putEscaped(b, at, method, MAX_METHOD_CHARS, false);
    b[at++] = SP;
    at = putEscaped(b, at, head.target, MAX_FIELD_CHARS, false);
    at = putBytes(b, at, VERSION[versionOf(head)]);
  }
  b[at++] = QUOTE;
  return at;
}

// As bytes: copying them is ~1 ns a byte, reading a string's ~2.
const VERSION = [" HTTP/1.0", " HTTP/1.1", " HTTP/2.0"].map((v) =>
  encoder.encode(v)
);
const JSON_VERSION = ['"HTTP/1.0"', '"HTTP/1.1"', '"HTTP/2.0"'].map((v) =>
  encoder.encode(v)
);

/** 0, 1 or 2: the index of the request's version in {@link VERSION}. */
function versionOf(head: LoggedRequest): number {
  return head.major === 2 ? 2 : head.minor === 1 ? 1 : 0;
}

/** ` status bytes`. */
function putStatusBytes(
  b: Uint8Array,
  at: number,
  status: number,
  bytes: number,
): number {
  b[at++] = SP;
  at = putInt(b, at, status);
  b[at++] = SP;
  at = putInt(b, at, bytes);
  return at;
}

function putJsonString(
  b: Uint8Array,
  at: number,
  s: string | undefined,
  max: number,
): number {
  if (s === undefined) return putBytes(b, at, JSON_NULL);
  b[at++] = QUOTE;
  at = putEscaped(b, at, s, max, true);
  b[at++] = QUOTE;
  return at;
}

/** One JSON line in LogTape's shape: the fields as JSON values under `properties`. */
function putJson(
  b: Uint8Array,
  at: number,
  stamp: Uint8Array,
  milli: number,
  client: string,
  user: string | undefined,
  head: LoggedRequest | undefined,
  raw: string,
  status: number,
  bytes: number,
  ms: number,
  aborted: boolean,
  userAgent: string | undefined,
  referer: string | undefined,
  reason: string | undefined,
): number {
  at = putStamp(b, at, stamp, milli);
  // message: "GET /a 200", short; the fields follow as fields.
  if (head === undefined) b[at++] = 0x2d;
  else {
    at = putEscaped(b, at, head.method, MAX_METHOD_CHARS, true);
    b[at++] = SP;
    at = putEscaped(b, at, head.target, MAX_FIELD_CHARS, true);
  }
  b[at++] = SP;
  at = putInt(b, at, status);
  at = putBytes(b, at, JSON_LOGGER);
  at = putEscaped(b, at, client, MAX_FIELD_CHARS, true);
  at = putBytes(b, at, K_USER);
  at = putJsonString(b, at, user, MAX_USER_CHARS);
  at = putBytes(b, at, K_METHOD);
  at = putJsonString(b, at, head?.method, MAX_METHOD_CHARS);
  at = putBytes(b, at, K_TARGET);
  at = putJsonString(b, at, head?.target, MAX_FIELD_CHARS);
  at = putBytes(b, at, K_VERSION);
  if (head === undefined) at = putBytes(b, at, JSON_NULL);
  else at = putBytes(b, at, JSON_VERSION[versionOf(head)]);
  at = putBytes(b, at, K_STATUS);
  at = putInt(b, at, status);
  at = putBytes(b, at, K_BYTES);
  at = putInt(b, at, bytes);
  at = putBytes(b, at, K_MS);
  at = putInt(b, at, ms);
  at = putBytes(b, at, K_ABORTED);
  at = putBytes(b, at, aborted ? JSON_TRUE : JSON_FALSE);
  at = putBytes(b, at, K_USERAGENT);
  at = putJsonString(b, at, userAgent, MAX_FIELD_CHARS);
  at = putBytes(b, at, K_REFERER);
  at = putJsonString(b, at, referer, MAX_FIELD_CHARS);
  at = putBytes(b, at, K_ERROR);
  at = putJsonString(b, at, reason, MAX_REASON_CHARS);
  if (head === undefined) {
    at = putBytes(b, at, K_REQUEST);
    at = putJsonString(b, at, raw, MAX_FIELD_CHARS);
  }
  b[at++] = 0x7d; // }
  b[at++] = 0x7d;
  return at;
}

/**
 * Client-chosen text for a LogTape record, cut to `max` characters then
 * "...". LogTape escapes control bytes itself; the length is ours to bound.
 */
export function clipForLog(text: string, max = MAX_REASON_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/**
 * The first line of an unparsable request as sent, for the log: Latin-1,
 * cut at CR, LF or `max` bytes.
 */
export function rawRequestLine(
  buf: Uint8Array,
  start: number,
  end: number,
): string {
  let s = "";
  const stop = Math.min(end, start + MAX_FIELD_CHARS + 1);
  for (let i = start; i < stop; i++) {
    const c = buf[i];
    if (c === LF || c === 0x0d) break;
    s += String.fromCharCode(c);
  }
  return s;
}

let current: AccessLog | undefined;
let unloadHooked = false;

/** The access log the engine writes to, or undefined for none. */
export function accessLog(): AccessLog | undefined {
  return current;
}

/**
 * Makes `log` the process's access log (undefined: none). The one it
 * replaces is closed, so its lines are written first. The new one is also
 * flushed on the `unload` event (`Deno.exit()` included), held lines too.
 */
export function setAccessLog(log: AccessLog | undefined): void {
  if (log === current) return;
  current?.close();
  current = log;
  if (log !== undefined && !unloadHooked) {
    unloadHooked = true;
    globalThis.addEventListener("unload", () => current?.flushAll());
  }
}
