/**
 * A cache bounded by the total byte size of its values, evicting roughly the
 * least recently used first: "second chance" (CLOCK), so a hit only marks its
 * entry, where strict LRU would delete and re-insert it on every read.
 */
export class ByteLru<V> {
  readonly #maxBytes: number;
  readonly #entries = new Map<
    string,
    { value: V; bytes: number; used: boolean }
  >();
  #bytes = 0;

  /** `maxBytes` bounds the sum of the sizes given to {@link set}. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value for `key`, now marked as used; or undefined. */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    entry.used = true;
    return entry.value;
  }

  /**
   * Stores a value of `bytes` size; too big: not stored. Past the budget the
   * oldest entries go, except that one used since it was last passed over
   * moves to the back once instead.
   */
  set(key: string, value: V, bytes: number): void {
    this.delete(key);
    if (bytes > this.#maxBytes) return;
    this.#entries.set(key, { value, bytes, used: false });
    this.#bytes += bytes;
    // Map keeps insertion order: the first entries are the oldest. Each pass
    // clears a mark, so this ends within two rounds of the map.
    for (const [oldest, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(oldest);
      if (entry.used) {
        entry.used = false;
        this.#entries.set(oldest, entry); // a second chance, at the back
      } else {
        this.#bytes -= entry.bytes;
      }
    }
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}
