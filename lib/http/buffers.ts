/**
 * A bounded stack of things to reuse (buffers, mostly): `take()` pops one
 * or makes one, `give()` keeps one unless `max` are kept already, past
 * which it is left to the garbage collector. The one pool the engine and
 * the WebSocket session use, whatever they pool.
 */
export class Pool<T> {
  readonly #free: T[] = [];
  readonly #make: () => T;
  readonly #max: number;

  constructor(make: () => T, max: number) {
    this.#make = make;
    this.#max = max;
  }

  /** A kept item, or a new one: whatever its last user left in it. */
  take(): T {
    return this.#free.pop() ?? this.#make();
  }

  /** Keeps `item` for the next `take()`, unless full; returns whether it did. */
  give(item: T): boolean {
    if (this.#free.length >= this.#max) return false;
    this.#free.push(item);
    return true;
  }

  /** Items kept, ready to take. */
  get free(): number {
    return this.#free.length;
  }
}

/**
 * Buffers lent to connections while they work and given back when they
 * wait, so a connection idle on keep-alive holds only what its pending
 * read needs. A {@link Pool} of one size that counts what is lent.
 */
export class BufferPool {
  /** Length of every buffer the pool lends and keeps. */
  readonly size: number;
  readonly #pool: Pool<Uint8Array>;
  #lent = 0;

  constructor(size: number, max: number) {
    this.size = size;
    this.#pool = new Pool(() => new Uint8Array(size), max);
  }

  /** A buffer of `size` bytes, holding whatever its last user left. */
  take(): Uint8Array {
    this.#lent++;
    return this.#pool.take();
  }

  /**
   * Takes `buf` back for the next `take()`. Only buffers of `size` bytes
   * are kept, and only when nothing will read or write them any more.
   * Returns whether the pool kept it.
   */
  give(buf: Uint8Array): boolean {
    if (buf.length !== this.size) return false;
    this.#lent--;
    return this.#pool.give(buf);
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
    return this.#pool.free;
  }
}
