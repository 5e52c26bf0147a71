/**
 * Status line and header fields -> bytes, straight into an {@link OutBuffer}:
 * no intermediate string, no TextEncoder call for the ASCII that heads are
 * made of. The connection decides framing; this module only spells it.
 */
import { Pool } from "./buffers.ts";
import { reasonPhrase } from "./errors.ts";
import type { ReplyHeaders } from "./handler.ts";
import { TOKEN } from "./parser.ts";

const encoder = new TextEncoder();
const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

const EMPTY: Uint8Array = new Uint8Array(0);
const MIN_OUT_BYTES = 2048;

/**
 * A pooled output buffer, with the last view a write took of it. Busy
 * connections take whichever buffer is free, so the view travels with the
 * buffer: kept by the connection, it missed on nearly every reply at 64
 * connections, and a new view per reply cost ~80 ns (bench/conns_layers.ts).
 */
class Slab {
  view: Uint8Array = EMPTY;
  constructor(readonly buf: Uint8Array) {}
}

/**
 * First buffers of idle connections: 512 of them (1 MiB) cover the replies
 * being written at once; more waiting connections hold none.
 */
const outPool = new Pool(() => new Slab(new Uint8Array(MIN_OUT_BYTES)), 512);
/**
 * The first size a buffer grows to: the replies to 16 pipelined small
 * requests (wrk's pipeline) take ~3 KiB. Pooled too, or each such batch
 * allocates one and drops it. 128 of them: 512 KiB.
 */
const GROWN_OUT_BYTES = 2 * MIN_OUT_BYTES;
const grownPool = new Pool(
  () => new Slab(new Uint8Array(GROWN_OUT_BYTES)),
  128,
);

/** Bytes queued for one write. Grows by doubling; `len` bytes are in use. */
export class OutBuffer {
  /** Allocated on first use: an idle connection may never reply. */
  buf: Uint8Array = EMPTY;
  len = 0;
  /** The pooled slab `buf` is, if it is one. */
  #slab: Slab | undefined;
  /** The last view `take()` made of a buffer of its own (not pooled). */
  #view = EMPTY;
  #viewOf = EMPTY;
  /**
   * The last write took more than a first buffer holds: the replies to a
   * pipelined batch (wrk's 16: ~3 KiB), and the next batch's will too, so
   * it starts in a grown buffer rather than copy its first replies over.
   * One write that fits a first buffer turns it off again.
   */
  #grew = false;

  /**
   * The queued bytes; the queue is empty after. Valid until the next byte
   * is queued. Replies of one size in a row share one view object.
   */
  take(): Uint8Array {
    const slab = this.#slab;
    let view: Uint8Array;
    if (slab !== undefined) {
      view = slab.view;
      if (view.length !== this.len) {
        view = slab.view = this.buf.subarray(0, this.len);
      }
    } else {
      view = this.#view;
      if (view.length !== this.len || this.#viewOf !== this.buf) {
        view = this.#view = this.buf.subarray(0, this.len);
        this.#viewOf = this.buf;
      }
    }
    this.#grew = this.len > MIN_OUT_BYTES;
    this.len = 0;
    return view;
  }

  /**
   * Gives the buffer back while nothing is queued (the connection waits
   * for its client); the next `reserve()` takes one again, most often the
   * same one (the pool is a stack), with its last view.
   */
  release(): void {
    if (this.len !== 0 || this.buf === EMPTY) return;
    const slab = this.#slab;
    if (slab !== undefined) {
      (slab.buf.length === MIN_OUT_BYTES ? outPool : grownPool).give(slab);
      this.#slab = undefined;
    }
    this.#view = this.#viewOf = EMPTY;
    this.buf = EMPTY;
  }

  /** Makes room for `n` more bytes and returns the (maybe new) buffer. */
  reserve(n: number): Uint8Array {
    const need = this.len + n;
    if (need <= this.buf.length) return this.buf;
    if (this.buf === EMPTY && need <= GROWN_OUT_BYTES) {
      const pool = this.#grew || need > MIN_OUT_BYTES ? grownPool : outPool;
      return this.buf = (this.#slab = pool.take()).buf;
    }
    const old = this.buf;
    const oldSlab = this.#slab;
    let bigger: Uint8Array;
    if (need <= GROWN_OUT_BYTES && old.length < GROWN_OUT_BYTES) {
      bigger = (this.#slab = grownPool.take()).buf;
    } else {
      let size = Math.max(old.length * 2, MIN_OUT_BYTES);
      while (size < need) size *= 2;
      bigger = new Uint8Array(size);
      this.#slab = undefined;
    }
    bigger.set(old.subarray(0, this.len));
    // Views taken of `old` are spent: bytes are queued again.
    if (oldSlab !== undefined) {
      (old.length === MIN_OUT_BYTES ? outPool : grownPool).give(oldSlab);
    }
    return this.buf = bigger;
  }

  bytes(bytes: Uint8Array): void {
    copyBytes(this.reserve(bytes.length), this.len, bytes);
    this.len += bytes.length;
  }

  /**
   * `s` as UTF-8. Short ASCII is copied by hand: cheaper than a
   * TextEncoder call, whose fixed cost is that of about 48 characters.
   */
  text(s: string): void {
    const buf = this.reserve(s.length * 3); // at most 3 bytes per UTF-16 unit
    let at = this.len;
    if (s.length > 48) {
      this.len = at + encoder.encodeInto(s, buf.subarray(at)).written;
      return;
    }
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        at += encoder.encodeInto(s.slice(i), buf.subarray(at)).written;
        break;
      }
      buf[at++] = c;
    }
    this.len = at;
  }
}

/**
 * `dst.set(src, at)`, but a loop for the shortest pieces (a number, a
 * CRLF): the builtin's fixed cost is that of copying about 16 bytes.
 */
function copyBytes(dst: Uint8Array, at: number, src: Uint8Array): void {
  const n = src.length;
  if (n > 16) dst.set(src, at);
  else for (let i = 0; i < n; i++) dst[at + i] = src[i];
}

/** True when `s` is all ASCII, so its length is its UTF-8 byte count. */
export function isAscii(s: string): boolean {
  if (s.length > 64) return NON_ASCII.test(s) === false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}
const NON_ASCII = /[\u0080-\uffff]/;

let dateSecond = 0;
let dateLine = "";
/** Status line and Date line as bytes, per status, for `dateSecond`. */
let statusDateLines: (Uint8Array | undefined)[] = [];

/** "Date: <IMF-fixdate>\r\n", rebuilt at most once a second (RFC 9110 §6.6.1). */
export function dateHeader(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `Date: ${new Date(second * 1000).toUTCString()}\r\n`;
    statusDateLines = [];
  }
  return dateLine;
}

/**
 * On every reply: a browser must not guess a script or a page out of a
 * text file or an upload (MIME sniffing). Written with the status line, so
 * it costs no more than the Date line it shares bytes with.
 */
const NOSNIFF = "X-Content-Type-Options: nosniff\r\n";

/** "HTTP/1.1 200 OK\r\nDate: ...\r\n" and nosniff as bytes, built once a second per status. */
function statusAndDate(status: number, now: number): Uint8Array {
  dateHeader(now);
  return statusDateLines[status] ??= encoder.encode(
    `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${dateLine}${NOSNIFF}`,
  );
}

/** A frozen header set as encoded, and with the head it was last written in. */
interface Encoded {
  /** The fields' bytes. */
  readonly bytes: Uint8Array;
  readonly scan: FieldScan;
  /** The status and Date lines it was last written after ({@link statusAndDate}). */
  line: Uint8Array;
  /** `line` and `bytes` in one: a reply's head up to its framing, in one copy. */
  head: Uint8Array;
}

/** The last frozen header set met and its bytes: a handler may reuse one. */
let frozenHeaders: object | undefined;
let frozenEncoded: Encoded | undefined;
/**
 * Every frozen header set met so far and its bytes, for handlers that keep
 * one per resource (a static file's fields per version): alternating among
 * them costs a lookup and a copy. Held weakly: gone with the set.
 */
const encodedSets = new WeakMap<object, Encoded>();

/** What {@link writeFields} found among the handler's fields. */
export interface FieldScan {
  /** The handler's content-length, or -1. */
  readonly contentLength: number;
  /** The handler asked to close the connection. */
  readonly close: boolean;
}

/** Fields the engine writes itself; a handler's copies are dropped. */
const OWNED = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "date",
  "keep-alive",
  "x-content-type-options", // always nosniff; a second copy would be ambiguous
]);

/**
 * Writes the status line, Date and the handler's fields, checking each one:
 * a name must be a token and a value must hold no CR, LF or NUL, which
 * would split the response (CWE-113). Throws on the first bad field; the
 * caller drops what was written. Returns the fields the engine acts on.
 * A frozen header set met twice in a row is copied as encoded the first
 * time: it cannot have changed.
 */
export function writeFields(
  out: OutBuffer,
  status: number,
  headers: ReplyHeaders | undefined,
  now: number,
): FieldScan {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new RangeError(`Invalid reply status ${status}`);
  }
  const line = statusAndDate(status, now);
  if (headers === undefined || headers === null) {
    out.bytes(line);
    return NO_FIELDS;
  }
  if (headers === frozenHeaders) return writeEncoded(out, line, frozenEncoded!);
  // A frozen record of strings cannot change; a frozen list's pairs can.
  if (Array.isArray(headers)) {
    const fixed = fixedAhead(headers as ReadonlyArray<Pair>);
    if (fixed !== undefined) {
      return writeFixedList(out, line, headers as ReadonlyArray<Pair>, fixed);
    }
    out.bytes(line);
    return writeEach(out, headers);
  }
  const frozen = Object.isFrozen(headers);
  const known = frozen ? encodedSets.get(headers) : undefined;
  if (known !== undefined) {
    frozenHeaders = headers;
    frozenEncoded = known;
    return writeEncoded(out, line, known);
  }
  out.bytes(line);
  if (!frozen) return writeEach(out, headers);
  const from = out.len;
  const scan = writeEach(out, headers);
  if (!scan.allStrings) return scan;
  const bytes = out.buf.slice(from, out.len);
  frozenHeaders = headers;
  frozenEncoded = { bytes, scan, line: EMPTY, head: EMPTY };
  encodedSets.set(headers, frozenEncoded);
  return scan;
}

/**
 * Writes `line` and an encoded frozen set's fields in one copy: joined once
 * per status and second the set is written in.
 */
function writeEncoded(
  out: OutBuffer,
  line: Uint8Array,
  encoded: Encoded,
): FieldScan {
  if (encoded.line !== line) {
    const head = new Uint8Array(line.length + encoded.bytes.length);
    head.set(line);
    head.set(encoded.bytes, line.length);
    encoded.line = line;
    encoded.head = head;
  }
  out.bytes(encoded.head);
  return encoded.scan;
}

const NO_FIELDS: FieldScan = Object.freeze({ contentLength: -1, close: false });

type Pair = readonly [string, string];

/**
 * Each {@link FixedFields} by its first pair (a frozen pair of its own), so
 * a list that starts with it is known without a mark on the list: a mark
 * would show to readers that compare lists (and a hidden one costs ~230 ns).
 */
const fixedByFirst = new WeakMap<Pair, FixedFields>();
let lastFirst: Pair | undefined;
let lastFixed: FixedFields | undefined;

/** The fixed fields `list` may start with, to be checked pair by pair. */
function fixedAhead(list: ReadonlyArray<Pair>): FixedFields | undefined {
  const first = list[0];
  if (first === lastFirst) return lastFixed;
  // A pair of one's own is seldom frozen: most lists cost no lookup.
  if (first === undefined || !Object.isFrozen(first)) return undefined;
  const fixed = fixedByFirst.get(first);
  if (fixed !== undefined) {
    lastFirst = first;
    lastFixed = fixed;
  }
  return fixed;
}

/**
 * Fields that stay the same over many replies (a route's frozen record,
 * the limit and policy of a rate limit), taken as they are when made,
 * checked and encoded by the engine the first time they are written and
 * copied as bytes after: the head of a field list made by
 * {@link FixedFields.listWith}, which adds the few fields that change.
 */
export class FixedFields {
  /** The fields, in order, as frozen pairs: what readers of a reply see. */
  readonly pairs: ReadonlyArray<Pair>;
  /** The same pairs, not frozen: copied faster. Never changed. */
  readonly #list: ReadonlyArray<Pair>;
  /** The encoded fields and what the engine found in them, once written. */
  #encoded: Encoded | undefined;
  /**
   * The one field that changes per reply, when a list holds it alone after
   * these ({@link FixedFields.followedBy}): its name is encoded with them.
   */
  #next = "";
  #encodedNext: Encoded | undefined;

  /**
   * Fixed fields that lists follow with one field named `next` (a count):
   * its name is copied with their bytes, only its value written per reply.
   */
  static followedBy(
    next: string,
    ...parts: ReadonlyArray<ReplyHeaders>
  ): FixedFields {
    const fixed = new FixedFields(...parts);
    if ((nameBytes.get(next) ?? learnName(next)) === OWNED_NAME) {
      throw new TypeError(`The engine writes ${next} itself`);
    }
    fixed.#next = next;
    return fixed;
  }

  /** The name of the field lists follow these with, or "". */
  get next(): string {
    return this.#next;
  }

  /** The fields of `parts` in order; values are taken as strings now. */
  constructor(...parts: ReadonlyArray<ReplyHeaders>) {
    const pairs: Pair[] = [];
    const add = (name: string, value: unknown) => {
      pairs.push(Object.freeze([name, String(value)] as const));
    };
    for (const part of parts) {
      if (Array.isArray(part)) {
        for (const [name, value] of part as ReadonlyArray<Pair>) {
          add(name, value);
        }
      } else {
        const record = part as Readonly<Record<string, string>>;
        for (const name in record) add(name, record[name]);
      }
    }
    this.#list = pairs;
    this.pairs = Object.freeze(pairs.slice());
    if (pairs.length > 0) fixedByFirst.set(pairs[0], this);
  }

  /**
   * A field list: these fields, then `more`. Readers see a plain list of
   * pairs; the engine, finding these very pairs ahead, copies them as
   * encoded bytes and checks and writes only the rest. A list changed
   * where they were is written pair by pair.
   */
  listWith(more: ReadonlyArray<Pair>): Pair[] {
    // Made at its length and filled: half the cost of slice() and push(),
    // which grows the copy.
    const fixed = this.#list;
    const n = fixed.length;
    const list = new Array<Pair>(n + more.length);
    for (let i = 0; i < n; i++) list[i] = fixed[i];
    for (let i = 0; i < more.length; i++) list[n + i] = more[i];
    return list;
  }

  /**
   * Writes `line` (status and Date) and the fields: checked and encoded the
   * first time, copied after, with `line` as one piece.
   */
  writeTo(out: OutBuffer, line: Uint8Array): FieldScan {
    if (this.#encoded !== undefined) {
      return writeEncoded(out, line, this.#encoded);
    }
    out.bytes(line);
    const from = out.len;
    const scan = writeEach(out, this.pairs);
    const bytes = out.buf.slice(from, out.len);
    this.#encoded = { bytes, scan, line: EMPTY, head: EMPTY };
    return scan;
  }

  /** {@link writeTo}, then the name of {@link next}: its value follows. */
  writeWithNext(out: OutBuffer, line: Uint8Array): FieldScan {
    if (this.#encodedNext === undefined) {
      const from = out.len;
      const scan = this.writeTo(out, line);
      const head = nameBytes.get(this.#next) ?? learnName(this.#next);
      out.bytes(head);
      const bytes = out.buf.slice(from + line.length, out.len);
      this.#encodedNext = { bytes, scan, line: EMPTY, head: EMPTY };
      return scan;
    }
    return writeEncoded(out, line, this.#encodedNext);
  }
}

/**
 * Writes `line` and `list`, `fixed`'s pairs ahead if they are: bytes, then
 * the rest.
 */
function writeFixedList(
  out: OutBuffer,
  line: Uint8Array,
  list: ReadonlyArray<Pair>,
  fixed: FixedFields,
): FieldScan {
  const head = fixed.pairs;
  const n = head.length;
  let ahead = list.length >= n;
  for (let i = 0; ahead && i < n; i++) ahead = list[i] === head[i];
  if (!ahead) {
    out.bytes(line);
    return writeEach(out, list);
  }
  if (list.length === n + 1 && fixed.next !== "" && list[n][0] === fixed.next) {
    const scan = fixed.writeWithNext(out, line);
    const value = list[n][1];
    writeValue(
      out,
      fixed.next,
      typeof value === "string" ? value : String(value),
    );
    return scan;
  }
  const fixedScan = fixed.writeTo(out, line);
  if (list.length === n) return fixedScan;
  const scan: Scan = {
    contentLength: fixedScan.contentLength,
    close: fixedScan.close,
    allStrings: true,
  };
  for (let i = n; i < list.length; i++) {
    const pair = list[i];
    writeField(out, pair[0], pair[1], scan);
  }
  return scan;
}

interface Scan {
  contentLength: number;
  close: boolean;
  /** No value needed String(): nothing could render differently next time. */
  allStrings: boolean;
  /** `Connection: Upgrade` was written for the handler's Connection field. */
  upgrade?: boolean;
}

function writeEach(out: OutBuffer, headers: ReplyHeaders): Scan {
  const scan: Scan = { contentLength: -1, close: false, allStrings: true };
  if (Array.isArray(headers)) {
    for (const [name, value] of headers as ReadonlyArray<[string, string]>) {
      writeField(out, name, value, scan);
    }
  } else {
    const record = headers as Readonly<Record<string, string>>;
    for (const name in record) writeField(out, name, record[name], scan);
  }
  return scan;
}

/**
 * "name: " as bytes for each field name seen, checked once; an empty array
 * marks a name the engine owns. Bounded: handlers may invent names.
 */
const nameBytes = new Map<string, Uint8Array>();
const OWNED_NAME = new Uint8Array(0);

function learnName(name: string): Uint8Array {
  if (name.length === 0) throw badName(name);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 0xff || TOKEN[c] !== 1) throw badName(name);
  }
  const bytes = OWNED.has(name.toLowerCase())
    ? OWNED_NAME
    : encoder.encode(`${name}: `);
  if (nameBytes.size >= 1024) nameBytes.clear();
  nameBytes.set(name, bytes);
  return bytes;
}

function writeField(
  out: OutBuffer,
  name: string,
  value: string,
  scan: Scan,
): void {
  if (typeof value !== "string") {
    value = String(value);
    scan.allStrings = false;
  }
  const head = nameBytes.get(name) ?? learnName(name);
  if (head === OWNED_NAME) {
    const lower = name.toLowerCase();
    if (lower === "content-length") scan.contentLength = contentLength(value);
    else if (lower === "connection") {
      if (/(^|,)\s*close\s*(,|$)/i.test(value)) scan.close = true;
      // The one option the engine does not decide: a reply that names a
      // protocol in Upgrade (a 426) must list "upgrade" here too (RFC 9110
      // §7.8). A line of its own; the engine's close or keep-alive follows.
      if (/(^|,)\s*upgrade\s*(,|$)/i.test(value) && scan.upgrade !== true) {
        scan.upgrade = true;
        out.bytes(CONNECTION_UPGRADE);
      }
    }
    checkValue(name, value);
    return;
  }
  copyBytes(out.reserve(head.length), out.len, head);
  out.len += head.length;
  writeValue(out, name, value);
}

/** A field's value, checked, and its CRLF. */
function writeValue(out: OutBuffer, name: string, value: string): void {
  const buf = out.reserve(value.length * 3 + 2);
  let at = out.len;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 && (c === CR || c === LF || c === NUL)) throw badValue(name);
    if (c >= 0x80) {
      const rest = value.slice(i);
      checkValue(name, rest);
      at += encoder.encodeInto(rest, buf.subarray(at)).written;
      break;
    }
    buf[at++] = c;
  }
  buf[at++] = CR;
  buf[at++] = LF;
  out.len = at;
}

function contentLength(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new Error(`Invalid content-length in reply: ${value}`);
  }
  return n;
}

function checkValue(name: string, value: string): void {
  if (/[\r\n\0]/.test(value)) throw badValue(name);
}

function badName(name: string): Error {
  return new Error(`Invalid header name in reply: ${JSON.stringify(name)}`);
}

function badValue(name: string): Error {
  return new Error(`Invalid header value in reply for ${name}`);
}

/** A reply body for {@link frameReply}: none at all (null or undefined). */
export const BODY_ABSENT = -1;
/** A reply body for {@link frameReply}: a stream of unknown length. */
export const BODY_STREAMED = -2;

/** How a reply body is delimited, and whether the connection outlives it. */
export interface Framing {
  /** The Content-Length to send; -1 for none. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** False: `Connection: close`, and the close ends the reply. */
  readonly keep: boolean;
  /** False for HEAD, 204 and 304: the head goes out alone. */
  readonly sendBody: boolean;
}

/**
 * Decides a reply's framing (RFC 9112 §6.3, RFC 9110 §6.4.1): `bodyLength`
 * is the body's length when known up front, else BODY_ABSENT or
 * BODY_STREAMED; `fieldLength` the handler's own Content-Length, -1 for
 * none; `keep` whether the request and the server allow keeping the
 * connection (this adds only what the reply forces).
 */
export function frameReply(
  status: number,
  isHead: boolean,
  minor: number,
  bodyLength: number,
  fieldLength: number,
  keep: boolean,
): Framing {
  let contentLength = bodyLength;
  let chunked = false;
  if (bodyLength === BODY_ABSENT) {
    // HEAD without a body: the handler's length if it gave one, else none,
    // never a 0 that GET would contradict (RFC 9110 §8.6).
    contentLength = isHead ? fieldLength : 0;
  } else if (bodyLength === BODY_STREAMED) {
    contentLength = fieldLength; // the handler vouches for a length it gives
    if (fieldLength === -1) {
      if (minor === 1) chunked = true;
      else keep = false; // HTTP/1.0: the close marks the end
    }
  }
  const bodiless = status === 204 || status === 304;
  if (bodiless) {
    contentLength = -1;
    chunked = false;
  }
  return { contentLength, chunked, keep, sendBody: !isHead && !bodiless };
}

const CONTENT_LENGTH = encoder.encode("Content-Length: ");
const CHUNKED = encoder.encode("Transfer-Encoding: chunked\r\n");
const KEEP_ALIVE = encoder.encode("Connection: keep-alive\r\n");

/** "Keep-Alive: timeout=N" as bytes, for the last idle timeout asked for... */
let keepAliveMs = -1;
let keepAliveTimeout = EMPTY;
/** ...and the same with the blank line that ends a head. */
let keepAliveEnd = EMPTY;
const BLANK_LINE = encoder.encode("\r\n");
const CLOSE_END = encoder.encode("Connection: close\r\n\r\n");

/**
 * `Keep-Alive: timeout=N\r\n`, N the idle timeout in whole seconds, encoded
 * once per timeout. Under a second: nothing, as there is no way to say it.
 */
export function keepAliveField(idleMs: number): Uint8Array {
  if (idleMs !== keepAliveMs) {
    keepAliveMs = idleMs;
    const seconds = Math.floor(idleMs / 1000);
    const field = seconds >= 1 ? `Keep-Alive: timeout=${seconds}\r\n` : "";
    keepAliveTimeout = field === "" ? EMPTY : encoder.encode(field);
    keepAliveEnd = encoder.encode(`${field}\r\n`);
  }
  return keepAliveTimeout;
}

/** Content-Length, Transfer-Encoding and Connection lines at their longest. */
const FRAMING_BYTES = CONTENT_LENGTH.length + 16 + 2 + CHUNKED.length +
  KEEP_ALIVE.length;

/**
 * Writes the framing fields the engine owns and the blank line that ends
 * the head. `contentLength` -1 sends none. `keepAlive` asks for an explicit
 * `Connection: keep-alive` (HTTP/1.0). A connection kept open also says how
 * long it stays open idle, `idleMs`, so a client closes an idle socket
 * before the server does instead of racing it (RFC 9112 §9.3, and the
 * `Keep-Alive` hint Node's and .NET's clients read); 0 says nothing.
 * One reserve for it all; the last field and the blank line are one copy.
 */
export function writeFraming(
  out: OutBuffer,
  contentLength: number,
  chunked: boolean,
  close: boolean,
  keepAlive: boolean,
  idleMs = 0,
): void {
  let end: Uint8Array = BLANK_LINE;
  if (close) end = CLOSE_END;
  else if (idleMs !== 0) {
    keepAliveField(idleMs);
    end = keepAliveEnd;
  }
  const buf = out.reserve(FRAMING_BYTES + end.length);
  let at = out.len;
  if (contentLength !== -1) {
    copyBytes(buf, at, CONTENT_LENGTH);
    at = writeDigits(buf, at + CONTENT_LENGTH.length, contentLength);
    buf[at++] = CR;
    buf[at++] = LF;
  }
  if (chunked) {
    copyBytes(buf, at, CHUNKED);
    at += CHUNKED.length;
  }
  if (keepAlive && !close) {
    copyBytes(buf, at, KEEP_ALIVE);
    at += KEEP_ALIVE.length;
  }
  copyBytes(buf, at, end);
  out.len = at + end.length;
}

/**
 * The decimal digits of `n` (a safe integer, 0 or more) at `buf[at]`;
 * returns the index past them. No string is made.
 */
function writeDigits(buf: Uint8Array, at: number, n: number): number {
  if (n <= 0x7fffffff) return writeSmallDigits(buf, at, n | 0);
  let width = 1;
  for (let p = 10; p <= n; p *= 10) width++;
  for (let i = at + width - 1; i >= at; i--) {
    buf[i] = 0x30 + n % 10;
    n = Math.floor(n / 10);
  }
  return at + width;
}

/** {@link writeDigits} in int32 arithmetic: `%` on a double is a call. */
function writeSmallDigits(buf: Uint8Array, at: number, n: number): number {
  let width = 1;
  for (let p = 10; p <= n && width < 10; p *= 10) width++;
  for (let i = at + width - 1; i >= at; i--) {
    const q = (n / 10) | 0;
    buf[i] = 0x30 + n - q * 10;
    n = q;
  }
  return at + width;
}

const SWITCHING = encoder.encode("HTTP/1.1 101 Switching Protocols\r\n");
const CONNECTION_UPGRADE = encoder.encode("Connection: Upgrade\r\n");

/**
 * The whole head of a `101 Switching Protocols` reply: the status line, the
 * handler's fields (checked as {@link writeFields} does; `Upgrade` among
 * them), `Connection: Upgrade` and the blank line. No Date, no framing: a
 * 1xx reply has no body (RFC 9110 §15.2), and the bytes after it are the
 * new protocol's.
 */
export function writeSwitchingHead(
  out: OutBuffer,
  headers: ReplyHeaders | undefined,
): void {
  out.bytes(SWITCHING);
  const scan = headers !== undefined && headers !== null
    ? writeEach(out, headers)
    : undefined;
  if (scan?.upgrade !== true) out.bytes(CONNECTION_UPGRADE);
  const buf = out.reserve(2);
  buf[out.len++] = CR;
  buf[out.len++] = LF;
}

/**
 * A whole small reply with `Connection: close` as bytes, for the server's
 * own answers outside a connection's loop (503 on overload, 408).
 */
export function encodeClosingReply(
  status: number,
  headers: ReplyHeaders | undefined,
  body: string,
  now = Date.now(),
): Uint8Array {
  const out = new OutBuffer();
  writeFields(out, status, headers, now);
  const bytes = encoder.encode(body);
  writeFraming(out, bytes.length, false, true, false);
  out.bytes(bytes);
  return out.buf.slice(0, out.len);
}
