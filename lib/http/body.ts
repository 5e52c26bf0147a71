/**
 * Request bodies: Content-Length and chunked (RFC 9112 §6, §7.1), read on
 * demand from the connection's buffer and socket through a {@link ByteSource}.
 */
import type { Limits } from "../config.ts";
import { badRequest, HttpError, STATUS } from "./errors.ts";
import type { RequestBody } from "./handler.ts";
import { CR, FIELD_VALUE, HTAB, LF, SP, TOKEN } from "./parser.ts";

/** What a body reader needs from its connection. */
export interface ByteSource {
  /** Unread bytes already received (a view; copy what you keep). */
  buffered(): Uint8Array;
  /** Marks `n` buffered bytes as read. */
  consume(n: number): void;
  /** Reads more into the buffer; false when the peer closed. */
  fill(): Promise<boolean>;
  /** Reads from the socket into `into` past the buffer; null when closed. */
  readDirect(into: Uint8Array): Promise<number | null>;
  /** Sends `100 Continue` if the request asked and it was not sent yet. */
  sendContinue(): Promise<void>;
}

/** Largest piece handed out at once; bigger bodies come in several. */
const CHUNK_BYTES = 64 * 1024;
/** Chunk data left at least this big is read past the connection's buffer. */
const DIRECT_READ_BYTES = 8 * 1024;
/** First buffer of a whole chunked body; it doubles as needed, up to the limit. */
const FIRST_BODY_BYTES = 16 * 1024;
/** Hex digits in a chunk size; 2^52 is far past any body limit. */
const MAX_SIZE_DIGITS = 13;
/** Framing each chunk may carry beyond its share (Go's figure). */
const CHUNK_ALLOWANCE_BYTES = 16;
/** Framing each data byte earns. */
const FRAMING_PER_DATA_BYTE = 2;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Value of a hex digit, -1 for any other byte. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX[0x41 + c] = HEX[0x61 + c] = 10 + c;

/**
 * Where the chunked decoder writes a piece before it is copied out at its
 * exact size. Shared: it is filled and copied with no await in between.
 */
const scratch = new Uint8Array(CHUNK_BYTES);

const decoder = new TextDecoder("utf-8", { fatal: true });

/** 413 for a body past `maxBytes`; the connection closes after the reply. */
export function tooLarge(maxBytes: number): HttpError {
  return new HttpError(STATUS.ContentTooLarge, "Request body over the limit", {
    expose: `Request body is larger than ${maxBytes} bytes`,
    close: true,
  });
}

/** 400 for a body the client stopped sending part-way. */
export function endedEarly(): HttpError {
  return new HttpError(
    STATUS.BadRequest,
    "Client closed the connection mid-body",
    {
      expose: "Request body ended early",
      close: true,
    },
  );
}

function lineTooLong(): HttpError {
  return badRequest("chunk size line too long");
}

/** Index past OWS (SP, HTAB) from `i`, at most `end`. */
function skipOws(buf: Uint8Array, i: number, end: number): number {
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  return i;
}

/** Index past a token from `i`, at most `end`. */
function skipToken(buf: Uint8Array, i: number, end: number): number {
  while (i < end && TOKEN[buf[i]] === 1) i++;
  return i;
}

/**
 * The size in the chunk-size line `buf[start..lf]` (LF at `lf`), its
 * extensions checked by the grammar of RFC 9112 §7.1.1 and dropped:
 * `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
 * Throws 400 for anything else, 413 for a size past any body limit.
 */
function chunkSize(
  buf: Uint8Array,
  start: number,
  lf: number,
  limits: Limits,
): number {
  if (lf === start || buf[lf - 1] !== CR) {
    throw badRequest("bare LF in chunk size line");
  }
  const end = lf - 1;
  let i = start;
  let size = 0;
  let digits = 0; // significant ones: leading zeros are allowed, and harmless
  for (; i < end; i++) {
    const digit = HEX[buf[i]];
    if (digit === -1) break;
    if (size !== 0 || digit !== 0) digits++;
    if (digits > MAX_SIZE_DIGITS) throw tooLarge(limits.maxBodyBytes);
    size = size * 16 + digit;
  }
  if (i === start) throw badRequest("malformed chunk size");
  const sizeEnd = i;
  while (i < end) {
    // BWS may come before ";" only: "a \r\n" or "5;x \r\n" is refused,
    // as llhttp's strict mode does.
    const at = i;
    i = skipOws(buf, i, end);
    if (i === end || buf[i] !== SEMICOLON) {
      throw badRequest(
        at === sizeEnd ? "malformed chunk size" : "malformed chunk extension",
      );
    }
    i = skipOws(buf, i + 1, end);
    const name = i;
    i = skipToken(buf, i, end);
    if (i === name) throw badRequest("chunk extension without a name");
    const eq = skipOws(buf, i, end);
    if (eq === end || buf[eq] !== EQUALS) continue;
    i = skipOws(buf, eq + 1, end);
    if (i < end && buf[i] === DQUOTE) {
      i = quotedStringEnd(buf, i, end);
    } else {
      const value = i;
      i = skipToken(buf, i, end);
      if (i === value) throw badRequest("chunk extension without a value");
    }
  }
  return size;
}

/** Index past the quoted-string that opens at `buf[i]` (RFC 9110 §5.6.4). */
function quotedStringEnd(buf: Uint8Array, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = buf[i];
    if (c === DQUOTE) return i + 1;
    // qdtext and the byte after "\" are both HTAB, SP, VCHAR or obs-text.
    if (c === BACKSLASH) i++;
    if (i === end || FIELD_VALUE[buf[i]] === 0) break;
  }
  throw badRequest("malformed quoted string in chunk extension");
}

/** `n` bytes of `piece`, copied when that frees most of its buffer. */
function trimmed(piece: Uint8Array, n: number): Uint8Array {
  if (n === piece.length) return piece;
  return n * 2 >= piece.length ? piece.subarray(0, n) : piece.slice(0, n);
}

/** Where a chunked body is between two reads (RFC 9112 §7.1). */
const enum Chunked {
  /** A chunk-size line comes next. */
  Size,
  /** `#remaining` bytes of chunk data come next. */
  Data,
  /** The CRLF after chunk data comes next. */
  DataEnd,
  /** The last chunk was read; the trailer section comes next. */
  Trailers,
}

/**
 * What a request body reader builds on its `next()` and `bytes()`: the
 * text, JSON, piece-by-piece and web-stream reads, the same for HTTP/1.1
 * and HTTP/2 bodies.
 */
export abstract class PieceReader implements RequestBody {
  abstract readonly length: number | null;
  abstract readonly consumed: boolean;
  /** The next piece of the body (the caller's to keep), or null at its end. */
  abstract next(maxBytes?: number): Promise<Uint8Array | null>;
  abstract bytes(maxBytes?: number): Promise<Uint8Array>;

  async text(maxBytes?: number): Promise<string> {
    return bodyText(await this.bytes(maxBytes));
  }

  async json(maxBytes?: number): Promise<unknown> {
    return bodyJson(await this.text(maxBytes));
  }

  chunks(maxBytes?: number): AsyncGenerator<Uint8Array> {
    return piecesOf(() => this.next(maxBytes));
  }

  stream(maxBytes?: number): ReadableStream<Uint8Array> {
    return streamOf(() => this.next(maxBytes));
  }
}

/** The body of one request; `length` 0 means there is none. */
export class BodyReader extends PieceReader {
  readonly length: number | null;
  readonly #src: ByteSource;
  readonly #limits: Limits;
  /** Bytes left of a Content-Length body, or of the current chunk. */
  #remaining: number;
  #chunked: boolean;
  #state = Chunked.Size;
  #done: boolean;
  #started = false;
  /** Body bytes handed out so far. */
  #received = 0;
  /** Chunked framing read so far, less an allowance per data byte and chunk. */
  #excess = 0;

  constructor(
    src: ByteSource,
    contentLength: number,
    chunked: boolean,
    limits: Limits,
  ) {
    super();
    this.#src = src;
    this.#limits = limits;
    this.#chunked = chunked;
    this.length = chunked ? null : Math.max(contentLength, 0);
    this.#remaining = chunked ? 0 : Math.max(contentLength, 0);
    this.#done = !chunked && this.#remaining === 0;
  }

  get consumed(): boolean {
    return this.#done;
  }

  /** Bytes of a Content-Length body still unread; -1 when chunked. */
  get unread(): number {
    return this.#chunked ? -1 : this.#remaining;
  }

  /** True once a read began (and so 100 Continue, if asked, went out). */
  get started(): boolean {
    return this.#started;
  }

  /** First read: refuses a Content-Length past `limit`, sends 100 Continue. */
  async #start(limit: number): Promise<void> {
    this.#started = true;
    if (this.length !== null && this.length > limit) throw tooLarge(limit);
    await this.#src.sendContinue();
  }

  /**
   * The next piece of the body, or null at its end. A chunked body comes in
   * pieces of whatever one read held, however small its chunks.
   */
  async next(maxBytes = this.#limits.maxBodyBytes): Promise<Uint8Array | null> {
    if (this.#done) return null;
    const limit = Math.min(maxBytes, this.#limits.maxBodyBytes);
    if (!this.#started) await this.#start(limit);
    const piece = this.#chunked
      ? await this.#nextChunked(limit)
      : await this.#nextFixed();
    if (piece !== null) {
      this.#received += piece.length;
      if (this.#received > limit) throw tooLarge(limit);
    }
    return piece;
  }

  async #nextFixed(): Promise<Uint8Array | null> {
    const src = this.#src;
    const buffered = src.buffered();
    let piece: Uint8Array;
    if (buffered.length > 0) {
      const n = Math.min(buffered.length, this.#remaining, CHUNK_BYTES);
      piece = buffered.slice(0, n); // a copy: the buffer is reused
      src.consume(n);
    } else {
      const into = new Uint8Array(Math.min(this.#remaining, CHUNK_BYTES));
      const n = await src.readDirect(into);
      if (n === null) throw endedEarly();
      piece = trimmed(into, n);
    }
    this.#remaining -= piece.length;
    if (this.#remaining === 0) this.#done = true;
    return piece;
  }

  async #nextChunked(limit: number): Promise<Uint8Array | null> {
    const src = this.#src;
    for (;;) {
      if (this.#state === Chunked.Trailers) {
        await this.#readTrailers();
        this.#done = true;
        return null;
      }
      if (this.#readsDirect) {
        // Chunk data with nothing buffered: straight from the socket.
        const into = new Uint8Array(Math.min(this.#remaining, CHUNK_BYTES));
        const n = await src.readDirect(into);
        if (n === null) throw endedEarly();
        this.#dataRead(n);
        return trimmed(into, n);
      }
      const n = this.#decode(scratch, 0, scratch.length, limit);
      if (n > 0) return scratch.slice(0, n);
      if (this.#needsInput && !(await src.fill())) throw endedEarly();
    }
  }

  /**
   * True when the rest of a big chunk can skip the connection's buffer.
   * Small chunks go through it, so the ones behind them come in the same read.
   */
  get #readsDirect(): boolean {
    return this.#state === Chunked.Data &&
      this.#remaining >= DIRECT_READ_BYTES &&
      this.#src.buffered().length === 0;
  }

  /** True when #decode() can go no further without another read. */
  get #needsInput(): boolean {
    const state = this.#state;
    return state === Chunked.Size || state === Chunked.DataEnd ||
      (state === Chunked.Data && this.#src.buffered().length === 0 &&
        this.#remaining < DIRECT_READ_BYTES);
  }

  /** Accounts for `n` bytes of chunk data read past the buffer. */
  #dataRead(n: number): void {
    this.#remaining -= n;
    if (this.#remaining === 0) this.#state = Chunked.DataEnd;
  }

  /**
   * Decodes what the buffer holds of a chunked body into `dest[off..end)`:
   * every whole chunk and the start of a partial one, so a read full of tiny
   * chunks makes one piece. Stops at the last chunk, at a frame not yet
   * received whole, or when `dest` is full; consumes what it decoded.
   * Returns the data bytes written. Synchronous, so `dest` may be shared.
   */
  #decode(dest: Uint8Array, off: number, end: number, limit: number): number {
    const src = this.#src;
    const buf = src.buffered();
    const len = buf.length;
    const limits = this.#limits;
    // Locals in the loop: a read may hold thousands of one-byte chunks.
    let state = this.#state;
    let remaining = this.#remaining;
    let excess = this.#excess;
    let pos = 0;
    let out = off;
    for (;;) {
      if (state === Chunked.Data) {
        const n = Math.min(remaining, len - pos, end - out);
        if (n === 0) break;
        if (n > 32) dest.set(buf.subarray(pos, pos + n), out);
        else for (let k = 0; k < n; k++) dest[out + k] = buf[pos + k];
        pos += n;
        out += n;
        remaining -= n;
        if (remaining > 0) break;
        state = Chunked.DataEnd;
      } else if (state === Chunked.DataEnd) {
        if (len - pos < 2) break;
        if (buf[pos] !== CR || buf[pos + 1] !== LF) {
          throw badRequest("chunk data longer than its size");
        }
        pos += 2;
        state = Chunked.Size;
      } else if (state === Chunked.Size) {
        // The usual line is a few hex digits and CRLF: read it in one pass.
        let i = pos;
        let size = 0;
        while (i < len) {
          const d = HEX[buf[i]];
          if (d < 0) break;
          size = size * 16 + d;
          i++;
        }
        let lf = i + 1;
        if (
          i === pos || i - pos > MAX_SIZE_DIGITS || lf >= len ||
          buf[i] !== CR || buf[lf] !== LF
        ) {
          // Extensions, many leading zeros, a bad byte, or a partial line.
          lf = buf.indexOf(LF, pos);
          if (lf === -1) {
            if (len - pos > limits.maxChunkLineBytes) throw lineTooLong();
            break;
          }
          if (lf - pos > limits.maxChunkLineBytes) throw lineTooLong();
          size = chunkSize(buf, pos, lf, limits);
        } else if (lf - pos > limits.maxChunkLineBytes) throw lineTooLong();
        // Framing (size line, its CRLF and the one after the data) against
        // the data it carries, as Go's chunked reader does (CVE-2023-39326):
        // tiny chunks pass, a flood of extensions or of empty framing does not.
        excess += lf + 3 - pos - CHUNK_ALLOWANCE_BYTES -
          size * FRAMING_PER_DATA_BYTE;
        if (excess < 0) excess = 0;
        else if (excess > limits.maxChunkExcessBytes) {
          throw badRequest("chunk framing outweighs the data");
        }
        pos = lf + 1;
        if (size === 0) {
          state = Chunked.Trailers;
          break;
        }
        // Refuse a chunk that cannot fit now, not after waiting for its bytes.
        if (this.#received + (out - off) + size > limit) throw tooLarge(limit);
        remaining = size;
        state = Chunked.Data;
      } else break;
    }
    this.#state = state;
    this.#remaining = remaining;
    this.#excess = excess;
    src.consume(pos);
    return out - off;
  }

  /** A whole line (without CRLF) of at most `max` bytes, copied. */
  async #readLine(
    max: number,
    what: string,
    status: 400 | 431,
  ): Promise<Uint8Array> {
    const src = this.#src;
    let scanned = 0;
    for (;;) {
      const buf = src.buffered();
      const lf = buf.indexOf(LF, scanned);
      if (lf !== -1) {
        if (lf > max) break;
        if (lf === 0 || buf[lf - 1] !== CR) {
          throw badRequest(`bare LF in ${what}`);
        }
        const line = buf.slice(0, lf - 1);
        src.consume(lf + 1);
        return line;
      }
      if (buf.length > max) break;
      scanned = buf.length;
      if (!(await src.fill())) throw endedEarly();
    }
    if (status === 400) throw badRequest(`${what} too long`);
    throw new HttpError(status, `${what} too long`, { close: true });
  }

  /** Trailer fields (§7.1.2): validated like headers, bounded, then dropped. */
  async #readTrailers(): Promise<void> {
    let total = 0;
    for (;;) {
      // A field line with its CRLF must fit in what is left; the empty
      // line that ends the section always may (readLine's max is LF's index).
      const left = this.#limits.maxTrailerBytes - total;
      const line = await this.#readLine(
        Math.max(left - 1, 1),
        "trailer section",
        431,
      );
      if (line.length === 0) return;
      total += line.length + 2;
      let i = 0;
      while (TOKEN[line[i]] === 1) i++;
      if (i === 0 || line[i] !== 0x3a) {
        throw badRequest("malformed trailer field");
      }
      for (i++; i < line.length; i++) {
        if (FIELD_VALUE[line[i]] === 0) {
          throw badRequest("control byte in trailer field");
        }
      }
    }
  }

  /**
   * Whole body in one buffer: sized by Content-Length, or for a chunked
   * body grown by doubling, never past the limit.
   */
  async bytes(maxBytes = this.#limits.maxBodyBytes): Promise<Uint8Array> {
    if (this.#done) return new Uint8Array(0);
    const limit = Math.min(maxBytes, this.#limits.maxBodyBytes);
    if (!this.#started) await this.#start(limit);
    const src = this.#src;
    if (!this.#chunked) {
      if (this.#received + this.#remaining > limit) throw tooLarge(limit);
      const out = new Uint8Array(this.#remaining);
      for (let off = 0; off < out.length;) {
        const buffered = src.buffered();
        let n = Math.min(buffered.length, out.length - off);
        if (n > 0) {
          out.set(buffered.subarray(0, n), off);
          src.consume(n);
        } else {
          const got = await src.readDirect(out.subarray(off));
          if (got === null) throw endedEarly();
          n = got;
        }
        off += n;
        this.#remaining -= n;
        this.#received += n;
      }
      this.#done = true;
      return out;
    }
    let out = new Uint8Array(
      Math.min(limit - this.#received, FIRST_BODY_BYTES),
    );
    let len = 0;
    for (;;) {
      const state = this.#state;
      if (state === Chunked.Trailers) {
        await this.#readTrailers();
        this.#done = true;
        return len === out.length ? out : out.subarray(0, len);
      }
      if (state === Chunked.Data && len === out.length) {
        // #decode() refused any chunk past the limit: this stays within it.
        const bigger = new Uint8Array(Math.min(
          Math.max(out.length * 2, FIRST_BODY_BYTES),
          limit - this.#received + len,
        ));
        bigger.set(out);
        out = bigger;
      }
      let n: number;
      if (this.#readsDirect) {
        const want = Math.min(this.#remaining, out.length - len);
        const got = await src.readDirect(out.subarray(len, len + want));
        if (got === null) throw endedEarly();
        this.#dataRead(got);
        n = got;
      } else {
        n = this.#decode(out, len, out.length, limit);
        if (n === 0 && this.#needsInput && !(await src.fill())) {
          throw endedEarly();
        }
      }
      len += n;
      this.#received += n;
    }
  }

  /** Reads and drops the rest of the body (to keep the connection). */
  async discard(): Promise<void> {
    while ((await this.next(Infinity)) !== null) {
      // dropped
    }
  }
}

/**
 * A whole body, as bytes already read, parsed as UTF-8 JSON: what `json()`
 * does, for a caller that keeps the bytes too. Not UTF-8 or not JSON:
 * HttpError 400 naming what failed.
 */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  return bodyJson(bodyText(bytes));
}

/** A whole body as UTF-8; invalid UTF-8: HttpError 400. */
function bodyText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new HttpError(STATUS.BadRequest, "Body is not valid UTF-8", {
      expose: "Request body is not valid UTF-8",
    });
  }
}

/** A whole body's text parsed as JSON; malformed: HttpError 400. */
function bodyJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(STATUS.BadRequest, "Body is not valid JSON", {
      expose: `Request body is not valid JSON: ${(err as Error).message}`,
    });
  }
}

/** The pieces `next()` returns until it returns null. */
async function* piecesOf(
  next: () => Promise<Uint8Array | null>,
): AsyncGenerator<Uint8Array> {
  for (let p = await next(); p !== null; p = await next()) yield p;
}

/** The pieces `next()` returns as a web stream, pulled one at a time. */
function streamOf(
  next: () => Promise<Uint8Array | null>,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      try {
        const piece = await next();
        if (piece === null) controller.close();
        else controller.enqueue(piece);
      } catch (err) {
        controller.error(err);
      }
    },
  }, { highWaterMark: 0 });
}
