/**
 * A connection's read buffer (as hyper's `io.rs`): bytes read and not yet
 * consumed are `buf[start, end)`. A small buffer of its own is all a
 * waiting connection holds; a longer head, a big pipelined batch or a body
 * borrows a work buffer from a pool, given back when the connection next
 * waits. No I/O: the connection reads into {@link ReadBuffer.space}.
 */
import { BufferPool } from "./buffers.ts";

/**
 * Each connection's own buffer, all a waiting one holds. Room for the
 * heads of curl, wrk and most API clients (under 200 bytes)...
 */
const OWN_BYTES = 512;
/**
 * ...and, once a client's head or pipelined batch did not fit, room for
 * the heads of browsers (500 to 1500 bytes with cookies) for the rest of
 * the connection. A longer one borrows a work buffer.
 */
const OWN_MAX_BYTES = 2048;
/**
 * Lent to a connection that needs more room and given back when it next
 * waits. Grows past this only for a head limit above it.
 */
const WORK_BYTES = 16 * 1024;
/** A read gets at least this much room, unless the buffer holds its limit. */
const MIN_ROOM_BYTES = 512;
const NO_BYTES = new Uint8Array(0);

/** Work buffers kept for lending: 4 MiB at most. Exported for tests. */
export const readBuffers = new BufferPool(WORK_BYTES, 256);

/** Bytes read from one socket and not consumed yet. */
export class ReadBuffer {
  #own = new Uint8Array(OWN_BYTES);
  /** `#own`, or a work buffer lent while the connection works. */
  buf: Uint8Array = this.#own;
  start = 0;
  end = 0;
  /** Where the search for the end of a head resumes. */
  scanFrom = 0;

  /** True when nothing is left to consume. */
  get empty(): boolean {
    return this.start === this.end;
  }

  /** The bytes not consumed yet: a view, valid until the next read. */
  buffered(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  /** Drops the first `n` buffered bytes. */
  consume(n: number): void {
    this.start += n;
    if (this.start === this.end) this.start = this.end = this.scanFrom = 0;
    else this.scanFrom = this.start;
  }

  /** Forgets every buffered byte. */
  clear(): void {
    this.start = this.end = this.scanFrom = 0;
  }

  /**
   * Where the next read goes: at least MIN_ROOM_BYTES past `end`, made by
   * moving the buffered bytes to the front or growing, unless `maxBytes`
   * are already buffered (the caller's limit decides what then).
   */
  space(maxBytes: number): Uint8Array {
    this.#makeRoom(maxBytes);
    return this.end === 0 ? this.buf : this.buf.subarray(this.end);
  }

  /** Counts `n` bytes a read put at `end`. */
  received(n: number): void {
    this.end += n;
  }

  /** Moves what is buffered to a work buffer, if still in its own: a body reads in big pieces. */
  lend(): void {
    if (this.buf !== this.#own) return;
    const lent = readBuffers.take();
    lent.set(this.#own.subarray(this.start, this.end));
    this.end -= this.start;
    this.scanFrom = Math.max(0, this.scanFrom - this.start);
    this.start = 0;
    this.buf = lent;
  }

  /** Gives a work buffer back; only when empty (the connection waits). */
  giveBack(): void {
    if (this.buf === this.#own) return;
    readBuffers.give(this.buf);
    this.buf = this.#own;
  }

  /**
   * Holds nothing from now on; with `keep`, the bytes buffered so far stay
   * valid for whoever took a view of them (another protocol's connection).
   */
  release(keep: boolean): void {
    if (this.buf !== this.#own) {
      if (keep) readBuffers.forget(this.buf);
      else readBuffers.give(this.buf);
    }
    this.buf = this.#own = NO_BYTES;
    this.clear();
  }

  #makeRoom(maxBytes: number): void {
    const used = this.end - this.start;
    const buf = this.buf;
    if (
      buf.length - this.end >= MIN_ROOM_BYTES ||
      (this.end < buf.length && used >= maxBytes)
    ) return;
    if (this.start > 0 && buf.length - used >= MIN_ROOM_BYTES) {
      buf.copyWithin(0, this.start, this.end);
    } else {
      const lent = buf !== this.#own;
      let bigger: Uint8Array;
      if (lent) bigger = new Uint8Array(buf.length * 2); // a head limit above it
      else if (buf.length < OWN_MAX_BYTES) {
        bigger = this.#own = new Uint8Array(OWN_MAX_BYTES);
      } else bigger = readBuffers.take();
      bigger.set(buf.subarray(this.start, this.end));
      if (lent) readBuffers.give(buf);
      this.buf = bigger;
    }
    this.scanFrom -= this.start;
    this.end = used;
    this.start = 0;
  }
}
