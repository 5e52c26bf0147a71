/**
 * The upload quota's byte counts, in memory every `--workers` engine shares,
 * so the folder's quota holds whichever engine takes an upload: bytes
 * stored, bytes committed (stored plus uploads in flight, reserved before
 * they are written), and the state of the folder's count, which one engine
 * at a time does while the others wait for it. Byte counts are BigInt64
 * (past 2 GiB) updated with Atomics; uploads are rare enough for BigInt.
 *
 * Each engine also counts its uploads in flight in its own cell, so the
 * supervisor can give back the room an engine that died had reserved.
 */

import { waitChange } from "./wait.ts";

const USED = 0;
const COMMITTED = 1;
/** Bytes stored since the count in progress began. */
const STORED_SINCE = 2;
const WORDS = 3;

// The folder's count: never done, in progress, done.
const UNCOUNTED = 0;
const COUNTING = 1;
const COUNTED = 2;

/** Longest wait for another engine's count before counting ourselves. */
const COUNT_WAIT_MS = 10_000;

/** The shared counts; pass them to each engine's {@link QuotaLedger}. */
export interface QuotaMemory {
  readonly bytes: BigInt64Array;
  /** [0]: the folder's count: 0 never done, 1 in progress, 2 done. */
  readonly state: Int32Array;
}

/** Memory for a quota shared by engines in up to `cells` cells. */
export function createQuotaMemory(cells: number): QuotaMemory {
  return {
    bytes: new BigInt64Array(new SharedArrayBuffer(8 * (WORDS + cells))),
    state: new Int32Array(new SharedArrayBuffer(4)),
  };
}

/**
 * Gives back the room the engine in `cell` had reserved for uploads it
 * never finished: for one that died. Call once it runs no more.
 */
export function reclaimQuota(memory: QuotaMemory, cell: number): void {
  const left = Atomics.exchange(memory.bytes, WORDS + cell, 0n);
  if (left !== 0n) Atomics.sub(memory.bytes, COMMITTED, left);
}

/** One engine's view of the quota's counts. */
export class QuotaLedger {
  readonly #bytes: BigInt64Array;
  readonly #state: Int32Array;
  readonly #mine: number;
  #counting: Promise<void> | undefined;

  /** A ledger of its own (one engine), unless given shared memory and a cell. */
  constructor(memory: QuotaMemory = createQuotaMemory(1), cell = 0) {
    if (!(cell >= 0 && WORDS + cell < memory.bytes.length)) {
      throw new RangeError(`No cell ${cell} in this quota memory`);
    }
    this.#bytes = memory.bytes;
    this.#state = memory.state;
    this.#mine = WORDS + cell;
  }

  /** Bytes stored, as last counted plus uploads since. */
  get usedBytes(): number {
    return Number(Atomics.load(this.#bytes, USED));
  }

  /** Bytes stored plus bytes reserved by uploads in flight. */
  get committedBytes(): number {
    return Number(Atomics.load(this.#bytes, COMMITTED));
  }

  /** True once some engine has counted the folder. */
  get counted(): boolean {
    return Atomics.load(this.#state, 0) === COUNTED;
  }

  /** Reserves `bytes` if committed bytes stay within `quotaBytes`. */
  tryReserve(bytes: number, quotaBytes: number): boolean {
    const b = this.#bytes;
    const n = BigInt(bytes);
    const cap = BigInt(quotaBytes);
    for (;;) {
      const committed = Atomics.load(b, COMMITTED);
      if (committed + n > cap) return false;
      if (
        Atomics.compareExchange(b, COMMITTED, committed, committed + n) ===
          committed
      ) {
        Atomics.add(b, this.#mine, n);
        return true;
      }
    }
  }

  /** A reserved upload is stored: its bytes stay committed, now as used. */
  stored(bytes: number): void {
    const n = BigInt(bytes);
    // Counted as stored-since first: a count ending now includes it, if anything twice.
    Atomics.add(this.#bytes, STORED_SINCE, n);
    Atomics.add(this.#bytes, USED, n);
    Atomics.sub(this.#bytes, this.#mine, n);
  }

  /** A stored file went (replaced, or removed): its bytes are free again. */
  freed(bytes: number): void {
    const b = this.#bytes;
    for (;;) {
      const used = Atomics.load(b, USED);
      // Never below zero: a count that missed the file is put right later.
      const gone = BigInt(bytes) < used ? BigInt(bytes) : used;
      if (Atomics.compareExchange(b, USED, used, used - gone) === used) {
        Atomics.sub(b, COMMITTED, gone);
        return;
      }
    }
  }

  /** A reserved upload failed: its room is free again. */
  unreserve(bytes: number): void {
    const n = BigInt(bytes);
    Atomics.sub(this.#bytes, COMMITTED, n);
    Atomics.sub(this.#bytes, this.#mine, n);
  }

  /**
   * Sets the bytes stored to what `count()` finds, plus uploads stored
   * while it ran. One engine counts at a time: if another is counting, this
   * waits for its result instead (up to 10 s, then counts itself).
   */
  recount(count: () => Promise<number>): Promise<void> {
    return this.#counting ??= this.#recount(count).finally(() => {
      this.#counting = undefined;
    });
  }

  async #recount(count: () => Promise<number>): Promise<void> {
    const state = this.#state;
    const before = Atomics.load(state, 0);
    if (
      before === COUNTING ||
      Atomics.compareExchange(state, 0, before, COUNTING) !== before
    ) {
      const outcome = await waitChange(state, 0, COUNTING, COUNT_WAIT_MS);
      if (outcome !== "timed-out") return;
    }
    const b = this.#bytes;
    let done = before === COUNTED ? COUNTED : UNCOUNTED;
    try {
      Atomics.store(b, STORED_SINCE, 0n);
      const counted = BigInt(await count());
      // Too much (an upload seen twice) is put right by the next count; too
      // little would let the folder grow past its quota.
      const fresh = counted + Atomics.load(b, STORED_SINCE);
      const old = Atomics.exchange(b, USED, fresh);
      Atomics.add(b, COMMITTED, fresh - old);
      done = COUNTED;
    } finally {
      Atomics.store(state, 0, done);
      Atomics.notify(state, 0);
    }
  }
}
