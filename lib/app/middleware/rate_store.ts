/**
 * Where the rate limiter keeps its counts: per client, the requests of the
 * current fixed window and of the one before. The limiter does the sliding
 * window's arithmetic; a store does one check-and-count per request, as one
 * step. Stores: this engine's memory (here), memory shared by `--workers`
 * engines (lib/shared/rate_table.ts).
 */

/** One client's counts in the current fixed window and the one before. */
export interface WindowCounts {
  readonly previous: number;
  readonly current: number;
}

/** The counts a request found, and whether it was counted. */
export interface TakeResult extends WindowCounts {
  readonly taken: boolean;
}

/** A table of per-client window counts. */
export interface RateStore {
  /**
   * In fixed window number `window` (time / window length, floored), counts
   * one request from `key` if it fits: `previous * carry + current + 1 <=
   * limit`, where `carry` is the share of the previous window still covered.
   * Returns the counts from before this request. No other take of the same
   * key comes between the check and the count.
   */
  take(key: string, window: number, carry: number, limit: number): TakeResult;
  /** Takes back one request counted for `key` in window `window`. */
  giveBack(key: string, window: number): void;
  /** Clients tracked now. */
  readonly size: number;
}

interface Counter {
  window: number;
  previous: number;
  current: number;
}

// 10k clients x ~100 bytes is about 1 MB: fine on any box, bounded on all.
const DEFAULT_MAX_ENTRIES = 10_000;

/**
 * Counts in this engine's memory, least recently seen first; idle clients
 * are swept once a window, and past `maxEntries` the least recently seen
 * is dropped.
 */
export class MemoryRateStore implements RateStore {
  readonly maxEntries: number;
  readonly #counters = new Map<string, Counter>();
  #sweptWindow = -Infinity;

  constructor(maxEntries = DEFAULT_MAX_ENTRIES) {
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#counters.size;
  }

  take(key: string, window: number, carry: number, limit: number): TakeResult {
    if (window !== this.#sweptWindow) this.#sweep(window);
    let counter = this.#counters.get(key);
    if (counter === undefined) {
      if (this.#counters.size >= this.maxEntries) this.#evictOldest();
      counter = { window, previous: 0, current: 0 };
      this.#counters.set(key, counter);
    } else if (counter.window !== window) {
      counter.previous = counter.window === window - 1 ? counter.current : 0;
      counter.current = 0;
      counter.window = window;
      // Re-insert so Map order is roughly least recently seen first.
      this.#counters.delete(key);
      this.#counters.set(key, counter);
    }
    const { previous, current } = counter;
    const taken = previous * carry + current + 1 <= limit;
    if (taken) counter.current++;
    return { previous, current, taken };
  }

  giveBack(key: string, _window: number): void {
    const counter = this.#counters.get(key);
    if (counter !== undefined && counter.current > 0) counter.current--;
  }

  /** Drops clients whose counts no longer matter: both windows are over. */
  #sweep(window: number): void {
    this.#sweptWindow = window;
    for (const [key, counter] of this.#counters) {
      if (counter.window < window - 1) this.#counters.delete(key);
    }
  }

  #evictOldest(): void {
    const oldest = this.#counters.keys().next();
    if (!oldest.done) this.#counters.delete(oldest.value);
  }
}
