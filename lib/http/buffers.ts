/**
 * Buffers lent to connections while they work and given back when they
 * wait, so a connection idle on keep-alive holds only what its pending
 * read needs. Bounded: past `max` kept, a returned buffer is left to the
 * garbage collector.
 */
export class BufferPool {
  /** Length of every buffer the pool lends and keeps. */
  readonly size: number;
  readonly #max: number;
  readonly #free: Uint8Array[] = [];
  #lent = 0;

  constructor(size: number, max: number) {
    this.size = size;
    this.#max = max;
  }

  /** A buffer of `size` bytes, holding whatever its last user left. */
  take(): Uint8Array {
    this.#lent++;
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /**
   * Takes `buf` back for the next `take()`. Only buffers of `size` bytes
   * are kept, and only when nothing will read or write them any more.
   * Returns whether the pool kept it.
   */
  give(buf: Uint8Array): boolean {
    if (buf.length !== this.size) return false;
    this.#lent--;
    if (this.#free.length >= this.#max) return false;
    this.#free.push(buf);
    return true;
  }

  /** `buf`, once lent, now belongs to someone else for good: no longer counted. */
  forget(buf: Uint8Array): void {
    if (buf.length === this.size) this.#lent--;
  }

  /** Buffers taken and not given back yet. */
  get lent(): number {
    return this.#lent;
  }

  /** Buffers kept, ready to lend. */
  get free(): number {
    return this.#free.length;
  }
}
