/**
 * An HTTP/2 stream's request body, with the API of the HTTP/1.1
 * `BodyReader` (both are a {@link PieceReader}): DATA frames push pieces in, the handler reads them
 * out, and each piece read gives the client that much flow-control window
 * back. Until the handler reads, the client can send no more than the
 * stream's window (h2StreamWindowBytes): an unread body costs bounded
 * memory, never the whole upload.
 */
import type { Limits } from "../config.ts";
import { PieceReader, tooLarge } from "./body.ts";

/** What a body needs from its connection. */
export interface H2BodyHost {
  /** The handler read `n` bytes: the client may send that many more. */
  consumed(n: number): void;
  /** A read waits for the client (true) or stopped waiting (false): the body deadline. */
  waiting(on: boolean): void;
  /** The first read of a request that asked for `100-continue`. */
  sendContinue(): void;
}

const EMPTY = new Uint8Array(0);

/** The body of one stream; `length` is its Content-Length, or null when the client sent none. */
export class H2Body extends PieceReader {
  readonly length: number | null;
  readonly #host: H2BodyHost;
  readonly #limits: Limits;
  readonly #expectContinue: boolean;
  /** Pieces arrived and not yet read, oldest first, from `#first`. */
  #queue: Uint8Array[] = [];
  #first = 0;
  /** END_STREAM (or trailers) arrived: no piece follows the queue. */
  #ended: boolean;
  #error: Error | undefined;
  #started = false;
  /** Bytes handed to the handler. */
  #read = 0;
  #wake: (() => void) | undefined;

  /** `contentLength` -1: none sent. `ended`: the request had no DATA at all. */
  constructor(
    host: H2BodyHost,
    contentLength: number,
    ended: boolean,
    expectContinue: boolean,
    limits: Limits,
  ) {
    super();
    this.#host = host;
    this.#limits = limits;
    this.length = contentLength === -1 ? (ended ? 0 : null) : contentLength;
    this.#ended = ended;
    this.#expectContinue = expectContinue && !ended;
  }

  get consumed(): boolean {
    return this.#ended && this.#first === this.#queue.length;
  }

  /** True once a read began. */
  get started(): boolean {
    return this.#started;
  }

  /** A DATA frame's payload (ours to keep); `end`: the last. */
  push(data: Uint8Array, end: boolean): void {
    if (this.#error !== undefined) return;
    if (data.length > 0) this.#queue.push(data);
    if (end) this.#ended = true;
    this.#wakeReader();
  }

  /** The stream failed (reset, timed out): reads throw `err` from now on. */
  fail(err: Error): void {
    if (this.#error !== undefined || this.consumed) return;
    this.#error = err;
    this.#queue = [];
    this.#first = 0;
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #start(limit: number): void {
    this.#started = true;
    if (this.length !== null && this.length > limit) throw tooLarge(limit);
    if (this.#expectContinue) this.#host.sendContinue();
  }

  /** Waits until a piece, the end or an error arrives. */
  async #arrival(): Promise<void> {
    this.#host.waiting(true);
    try {
      await new Promise<void>((resolve) => this.#wake = resolve);
    } finally {
      this.#host.waiting(false);
    }
  }

  /** The next piece of the body (the caller's to keep), or null at its end. */
  async next(maxBytes = this.#limits.maxBodyBytes): Promise<Uint8Array | null> {
    const limit = Math.min(maxBytes, this.#limits.maxBodyBytes);
    if (!this.#started) this.#start(limit);
    for (;;) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#first < this.#queue.length) break;
      if (this.#ended) return null;
      await this.#arrival();
    }
    const piece = this.#queue[this.#first++];
    if (this.#first === this.#queue.length) {
      this.#queue.length = this.#first = 0;
    }
    this.#read += piece.length;
    this.#host.consumed(piece.length);
    if (this.#read > limit) throw tooLarge(limit);
    return piece;
  }

  /** Whole body in one buffer, never past the limit. */
  async bytes(maxBytes = this.#limits.maxBodyBytes): Promise<Uint8Array> {
    const limit = Math.min(maxBytes, this.#limits.maxBodyBytes);
    if (!this.#started) this.#start(limit);
    const pieces: Uint8Array[] = [];
    let total = 0;
    for (
      let p = await this.next(limit);
      p !== null;
      p = await this.next(limit)
    ) {
      pieces.push(p);
      total += p.length;
    }
    if (pieces.length === 1) return pieces[0];
    if (pieces.length === 0) return EMPTY;
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
