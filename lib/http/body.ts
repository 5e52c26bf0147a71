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
/** Hex digits in a chunk size; 2^52 is far past any body limit. */
const MAX_SIZE_DIGITS = 13;

const decoder = new TextDecoder("utf-8", { fatal: true });

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(STATUS.ContentTooLarge, "Request body over the limit", {
    expose: `Request body is larger than ${maxBytes} bytes`,
    close: true,
  });
}

function endedEarly(): HttpError {
  return new HttpError(
    STATUS.BadRequest,
    "Client closed the connection mid-body",
    {
      expose: "Request body ended early",
      close: true,
    },
  );
}

/** The body of one request; `length` 0 means there is none. */
export class BodyReader implements RequestBody {
  readonly length: number | null;
  readonly #src: ByteSource;
  readonly #limits: Limits;
  /** Bytes left of a Content-Length body, or of the current chunk. */
  #remaining: number;
  #chunked: boolean;
  #done: boolean;
  #started = false;
  #received = 0;

  constructor(
    src: ByteSource,
    contentLength: number,
    chunked: boolean,
    limits: Limits,
  ) {
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

  /** The next piece of the body, or null at its end. */
  async next(maxBytes = this.#limits.maxBodyBytes): Promise<Uint8Array | null> {
    if (this.#done) return null;
    const limit = Math.min(maxBytes, this.#limits.maxBodyBytes);
    if (!this.#started) {
      this.#started = true;
      if (this.length !== null && this.length > limit) throw tooLarge(limit);
      await this.#src.sendContinue();
    }
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
    const piece = await this.#take(this.#remaining);
    this.#remaining -= piece.length;
    if (this.#remaining === 0) this.#done = true;
    return piece;
  }

  /** Up to `want` body bytes (at least one): buffered first, then the socket. */
  async #take(want: number): Promise<Uint8Array> {
    const src = this.#src;
    const buffered = src.buffered();
    if (buffered.length > 0) {
      const n = Math.min(buffered.length, want, CHUNK_BYTES);
      const piece = buffered.slice(0, n); // a copy: the buffer is reused
      src.consume(n);
      return piece;
    }
    const into = new Uint8Array(Math.min(want, CHUNK_BYTES));
    const n = await src.readDirect(into);
    if (n === null) throw endedEarly();
    return n === into.length ? into : into.subarray(0, n);
  }

  async #nextChunked(limit: number): Promise<Uint8Array | null> {
    if (this.#remaining === 0) {
      const size = await this.#readChunkSize();
      if (size === 0) {
        await this.#readTrailers();
        this.#done = true;
        return null;
      }
      // Refuse a chunk that cannot fit now, not after waiting for its bytes.
      if (this.#received + size > limit) throw tooLarge(limit);
      this.#remaining = size;
    }
    const piece = await this.#take(this.#remaining);
    this.#remaining -= piece.length;
    if (this.#remaining === 0) await this.#expectCrlf();
    return piece;
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

  async #readChunkSize(): Promise<number> {
    const line = await this.#readLine(
      this.#limits.maxChunkLineBytes,
      "chunk size line",
      400,
    );
    let i = 0;
    let size = 0;
    let digits = 0; // significant ones: leading zeros are allowed, and harmless
    for (; i < line.length; i++) {
      const c = line[i];
      const digit = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66
        ? (c | 0x20) - 0x57
        : -1;
      if (digit === -1) break;
      if (size !== 0 || digit !== 0) digits++;
      if (digits > MAX_SIZE_DIGITS) throw tooLarge(this.#limits.maxBodyBytes);
      size = size * 16 + digit;
    }
    if (i === 0) throw badRequest("malformed chunk size");
    // Chunk extensions (§7.1.1): BWS ";" name ["=" value]; skipped, but checked.
    while (i < line.length && (line[i] === SP || line[i] === HTAB)) i++;
    if (i < line.length) {
      if (line[i] !== 0x3b) throw badRequest("malformed chunk size");
      for (; i < line.length; i++) {
        const c = line[i];
        if (
          c !== 0x3b && c !== 0x3d && c !== 0x22 && c !== 0x5c &&
          FIELD_VALUE[c] === 0
        ) {
          throw badRequest("control byte in chunk extension");
        }
      }
    }
    return size;
  }

  async #expectCrlf(): Promise<void> {
    const src = this.#src;
    while (src.buffered().length < 2) {
      if (!(await src.fill())) throw endedEarly();
    }
    const buf = src.buffered();
    if (buf[0] !== CR || buf[1] !== LF) {
      throw badRequest("chunk data longer than its size");
    }
    src.consume(2);
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

  async bytes(maxBytes?: number): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    let total = 0;
    for (
      let p = await this.next(maxBytes);
      p !== null;
      p = await this.next(maxBytes)
    ) {
      pieces.push(p);
      total += p.length;
    }
    if (pieces.length === 1) return pieces[0];
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of pieces) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  async text(maxBytes?: number): Promise<string> {
    const bytes = await this.bytes(maxBytes);
    try {
      return decoder.decode(bytes);
    } catch {
      throw new HttpError(STATUS.BadRequest, "Body is not valid UTF-8", {
        expose: "Request body is not valid UTF-8",
      });
    }
  }

  async json(maxBytes?: number): Promise<unknown> {
    const text = await this.text(maxBytes);
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new HttpError(STATUS.BadRequest, "Body is not valid JSON", {
        expose: `Request body is not valid JSON: ${(err as Error).message}`,
      });
    }
  }

  async *chunks(maxBytes?: number): AsyncGenerator<Uint8Array> {
    for (
      let p = await this.next(maxBytes);
      p !== null;
      p = await this.next(maxBytes)
    ) {
      yield p;
    }
  }

  stream(maxBytes?: number): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const piece = await this.next(maxBytes);
          if (piece === null) controller.close();
          else controller.enqueue(piece);
        } catch (err) {
          controller.error(err);
        }
      },
    }, { highWaterMark: 0 });
  }

  /** Reads and drops the rest of the body (to keep the connection). */
  async discard(): Promise<void> {
    while ((await this.next(Infinity)) !== null) {
      // dropped
    }
  }
}
