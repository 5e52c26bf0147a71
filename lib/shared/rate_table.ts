/**
 * The rate limiter's counts in memory every `--workers` engine shares, so a
 * client gets one budget whichever engine its connection lands on: a fixed
 * open-addressing hash table in a SharedArrayBuffer. No message per request:
 * a request hashes its key, probes a few entries, reads one entry's counts
 * and counts itself with one compare-and-swap on the entry's running
 * total, retried if another engine counted in between: a budget is counted
 * exactly, with no lock taken per request. A lock (the entry's sequence
 * word, odd while held) is taken only to start a window, to claim an entry
 * or to give a request back; readers retry when it moved under them.
 *
 * Collisions err toward limiting, never toward letting more through:
 * - keys are told apart by a 64-bit hash; two keys with the same hash share
 *   one budget (with 10,000 clients, odds about 1 in 10^11);
 * - a key finds room within {@link PROBE} entries of its home: an empty
 *   one, or one whose client has been idle for two windows. When all of
 *   them hold active clients (a flood of addresses), the key shares the
 *   home entry's budget with its owner rather than evicting anyone's count.
 */
import {
  type RateDecision,
  type RateLimitPolicy,
  type RateLimitStore,
  slidingWindow,
} from "../app/rate_limit_store.ts";
import { batchNow } from "../http/clock.ts";

/** The counts a request found (before it), and whether it was counted. */
export interface TakeResult {
  readonly previous: number;
  readonly current: number;
  readonly taken: boolean;
  /** Requests counted: 0 when refused, more than 1 for a lease. */
  readonly granted: number;
}

// One entry, in Int32s: sequence (odd while a writer holds the entry), two
// hash words, window number (wrapping), previous window's count, the
// running total (all windows, wrapping; it only grows, but for a request
// given back), the total when the window began, and one unused, so an
// entry is 32 bytes and never straddles two cache lines: the one client
// every engine serves moves one line between cores per request, not two.
const SEQ = 0;
const TAG_A = 1;
const TAG_B = 2;
const WINDOW = 3;
const PREVIOUS = 4;
const TOTAL = 5;
const BASE = 6;
/** Int32s per entry. */
export const ENTRY_INTS = 8;
const ENTRY = ENTRY_INTS;

/** Entries a key may land on, from its home entry on. */
export const PROBE = 8;
/**
 * Most requests one engine may count at once for a client (a lease): its
 * next ones are then answered from that engine's memory, without touching
 * the entry the other engines also write.
 */
export const MAX_LEASE = 64;
/**
 * A lease takes at most this share of what the client has left, so units
 * leased by one engine and never used (the client's next requests all
 * reach another) hold back at most 1/256 of a budget, and none for a limit
 * under 512: those count one request at a time, exactly.
 */
export const LEASE_SHARE = 256;
/** Spins before taking an entry from a holder that must have died mid-update. */
const LOCK_SPINS = 1 << 20;

/** The table's memory; pass it to each engine's {@link SharedRateTable}. */
export type RateMemory = Int32Array;

/**
 * Memory for at least `clients` active clients: twice as many entries,
 * rounded up to a power of two (32 bytes each; 10,000 clients: 1 MiB).
 */
export function createRateMemory(clients: number): RateMemory {
  let entries = 2 * PROBE;
  while (entries < 2 * clients) entries *= 2;
  return new Int32Array(
    new SharedArrayBuffer(entries * ENTRY * Int32Array.BYTES_PER_ELEMENT),
  );
}

/** `key`'s 64-bit hash as two int32 words, never both 0 (an empty entry). */
export function hashKey(key: string): [number, number] {
  hashInto(key);
  return [hashA, hashB];
}

/** {@link hashKey}'s words, left here by {@link hashInto}: no pair allocated per request. */
let hashA = 0;
let hashB = 0;

function hashInto(key: string): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = mix(a ^ key.length);
  b = mix(b + 0x27d4eb2d);
  hashA = a;
  hashB = a === 0 && b === 0 ? 1 : b;
}

/** MurmurHash3's finalizer: every input bit moves every output bit. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** One engine's view of the shared rate table. */
export class SharedRateTable {
  readonly #m: RateMemory;
  readonly #mask: number;

  constructor(memory: RateMemory) {
    const entries = memory.length / ENTRY;
    if (!(entries >= PROBE && (entries & (entries - 1)) === 0)) {
      throw new RangeError("Rate memory must hold a power of two of entries");
    }
    this.#m = memory;
    this.#mask = entries - 1;
  }

  /** Entries holding a client (active or not yet reused). */
  get size(): number {
    const m = this.#m;
    let n = 0;
    for (let e = 0; e < m.length; e += ENTRY) {
      if (
        Atomics.load(m, e + TAG_A) !== 0 || Atomics.load(m, e + TAG_B) !== 0
      ) {
        n++;
      }
    }
    return n;
  }

  /**
   * In fixed window number `window` (time / window length, floored), counts
   * one request from `key` if it fits: `previous * carry + current + 1 <=
   * limit`, where `carry` is the share of the previous window still covered.
   * With `most` above 1, counts up to that many at once (a lease), never
   * more than {@link LEASE_SHARE} of what is left: as `carry` only falls
   * within a window, each request the lease is spent on fits as well.
   * Returns the counts from before this request.
   *
   * Exact across engines: the counts are read between two equal readings
   * of the entry's sequence, and the request counts itself with a
   * compare-and-swap from the very total it checked, so no two engines
   * spend the same unit; one that lost the race reads again. A count that
   * lands just after another engine began the next window is counted in
   * that window (never lost). An entry is never moved back to an earlier
   * window: a `window` behind the entry's counts in the entry's window,
   * with `carry` 1 (never more lenient).
   */
  take(
    key: string,
    window: number,
    carry: number,
    limit: number,
    most = 1,
  ): TakeResult {
    hashInto(key);
    const w = window | 0;
    const m = this.#m;
    const e = this.#claim(hashA, hashB, w);
    for (;;) {
      // Plain reads between two atomic ones of the sequence (a seqlock):
      // checked by the second, and ~10 ns cheaper each than Atomics.load.
      const seq = Atomics.load(m, e + SEQ);
      const ahead = (m[e + WINDOW] - w) | 0;
      if ((seq & 1) !== 0 || ahead < 0) {
        this.#roll(e, w); // or wait for the engine writing it
        continue;
      }
      // An engine whose clock lags (each reads its own, once per batch)
      // may still be in the window before the entry's.
      const share = ahead > 0 ? 1 : carry;
      const previous = m[e + PREVIOUS];
      const base = m[e + BASE];
      const total = m[e + TOTAL];
      if (Atomics.load(m, e + SEQ) !== seq) continue;
      const current = (total - base) | 0;
      const used = previous * share + current;
      if (used + 1 > limit) {
        return { previous, current, taken: false, granted: 0 };
      }
      const granted = most <= 1 ? 1 : Math.max(
        1,
        Math.min(most, Math.floor((limit - used) / LEASE_SHARE)),
      );
      const next = (total + granted) | 0;
      if (Atomics.compareExchange(m, e + TOTAL, total, next) === total) {
        return { previous, current, taken: true, granted };
      }
    }
  }

  /** Takes back one request counted for `key` in window `window` (or the one before). */
  giveBack(key: string, window: number): void {
    hashInto(key);
    const a = hashA;
    const b = hashB;
    const e = this.#find(a, b);
    if (e === -1) return;
    const m = this.#m;
    const seq = this.#lock(e);
    try {
      // Only while its count is still there to take from.
      const w = window | 0;
      if (
        m[e + TAG_A] === a && m[e + TAG_B] === b &&
        ((Atomics.load(m, e + TOTAL) - m[e + BASE]) | 0) > 0 &&
        (m[e + WINDOW] === w || m[e + WINDOW] === ((w - 1) | 0))
      ) Atomics.sub(m, e + TOTAL, 1);
    } finally {
      this.#unlock(e, seq);
    }
  }

  /**
   * Starts window `w` on entry `e` if it is still in an earlier one: the
   * counts so far become the previous window's (if it was the one just
   * before). Counts other engines add meanwhile land in window `w`.
   */
  #roll(e: number, w: number): void {
    const m = this.#m;
    const seq = this.#lock(e);
    try {
      const ahead = (m[e + WINDOW] - w) | 0;
      if (ahead >= 0) return; // another engine started it
      const total = Atomics.load(m, e + TOTAL);
      m[e + PREVIOUS] = ahead === -1 ? (total - m[e + BASE]) | 0 : 0;
      m[e + BASE] = total;
      m[e + WINDOW] = w;
    } finally {
      this.#unlock(e, seq);
    }
  }

  /** The entry holding (a, b), or -1. */
  #find(a: number, b: number): number {
    const m = this.#m;
    const home = a & this.#mask;
    for (let i = 0; i < PROBE; i++) {
      const e = ((home + i) & this.#mask) * ENTRY;
      const ta = Atomics.load(m, e + TAG_A);
      const tb = Atomics.load(m, e + TAG_B);
      if (ta === a && tb === b) return e;
      if (ta === 0 && tb === 0) return -1; // entries are never emptied: the key is not further on
    }
    return -1;
  }

  /** The entry for (a, b) in window `w`: its own, a new one, or its home's. */
  #claim(a: number, b: number, w: number): number {
    const m = this.#m;
    const home = a & this.#mask;
    // Plain reads: Atomics.load is a call in this V8 (~10 ns against ~1),
    // an aligned Int32 is never read torn, and an entry is changed only
    // under its lock, where what these reads decided is checked again.
    for (let i = 0; i < PROBE; i++) {
      const e = ((home + i) & this.#mask) * ENTRY;
      const ta = m[e + TAG_A];
      const tb = m[e + TAG_B];
      if (ta === a && tb === b) return e;
      const empty = ta === 0 && tb === 0;
      // Idle for two windows: its counts no longer matter to anyone.
      const idle = !empty && ((w - m[e + WINDOW]) | 0) > 1;
      if (!empty && !idle) continue;
      const seq = this.#lock(e);
      try {
        const ua = m[e + TAG_A];
        const ub = m[e + TAG_B];
        if (ua === a && ub === b) return e; // another engine just claimed it for us
        if (ua === ta && ub === tb) {
          m[e + TAG_A] = a;
          m[e + TAG_B] = b;
          m[e + WINDOW] = w;
          m[e + PREVIOUS] = 0;
          m[e + BASE] = Atomics.load(m, e + TOTAL);
          return e;
        }
      } finally {
        this.#unlock(e, seq);
      }
      // Taken meanwhile by another key: look further on.
    }
    // No room nearby: share the home entry's budget (never more lenient).
    return (home & this.#mask) * ENTRY;
  }

  /** Holds entry `e` (its sequence made odd); the sequence to pass to {@link #unlock}. */
  #lock(e: number): number {
    const m = this.#m;
    for (let spins = 0;;) {
      const seq = Atomics.load(m, e + SEQ);
      const held = (seq + 1) | 0;
      if ((seq & 1) === 0) {
        if (Atomics.compareExchange(m, e + SEQ, seq, held) === seq) return held;
      } else if (++spins >= LOCK_SPINS) {
        return seq; // its holder died mid-update: take it over
      }
    }
  }

  /** Lets go of entry `e`: its sequence even again, and moved on. */
  #unlock(e: number, held: number): void {
    Atomics.store(this.#m, e + SEQ, (held + 1) | 0);
  }
}

/** Requests one engine counted ahead for a client, in one window. */
interface Lease {
  readonly window: number;
  readonly previous: number;
  /** The shared count before the next request this lease answers. */
  current: number;
  left: number;
}

/**
 * Clients with a lease at once, per engine; past it, leases of past windows
 * are dropped, and while it stays full new clients are counted one request
 * at a time.
 */
export const MAX_LEASES = 4096;

/**
 * A rate limit counted in the shared table: the store `--workers` engines
 * use for `--rate-limit` and for failed password checks. A client with a
 * large budget (limit 512 and up) is counted in leases: an engine counts up
 * to {@link MAX_LEASE} of its requests at once and answers the next ones
 * from its own memory, so one busy client's entry does not move between
 * cores on every request. Units leased and not used stay counted: the
 * limit never lets a client past it, and holds back at most 1/256 of what
 * the client had left per engine.
 */
export class SharedRateLimiter implements RateLimitStore {
  readonly limit: number;
  readonly windowMs: number;
  readonly #table: SharedRateTable;
  readonly #now: () => number;
  readonly #leases = new Map<string, Lease>();
  /** A lease can hold more than one request: `limit >= 2 * LEASE_SHARE`. */
  readonly #leasing: boolean;
  /** The window whose leases were last swept for room. */
  #sweptWindow = Number.NaN;

  constructor(
    policy: RateLimitPolicy,
    memory: RateMemory,
    now: () => number = batchNow,
  ) {
    if (!(policy.limit >= 1 && policy.windowMs >= 1)) {
      throw new TypeError("Rate limit needs limit >= 1 and windowMs >= 1");
    }
    this.limit = policy.limit;
    this.windowMs = policy.windowMs;
    this.#table = new SharedRateTable(memory);
    this.#now = now;
    this.#leasing = policy.limit >= 2 * LEASE_SHARE;
  }

  /** Clients the table holds. */
  get size(): number {
    return this.#table.size;
  }

  hit(key: string): RateDecision {
    const now = this.#now();
    const w = this.windowMs;
    const window = Math.floor(now / w);
    const elapsed = now - window * w;
    if (this.#leasing) {
      const lease = this.#leases.get(key);
      if (lease !== undefined && lease.window === window && lease.left > 0) {
        lease.left--;
        return slidingWindow(
          this,
          lease.previous,
          lease.current++,
          elapsed,
          true,
        );
      }
    }
    const counts = this.#table.take(
      key,
      window,
      (w - elapsed) / w,
      this.limit,
      this.#leasing && this.#roomFor(key, window) ? MAX_LEASE : 1,
    );
    if (counts.granted > 1) this.#lease(key, window, counts);
    else if (this.#leasing) this.#leases.delete(key);
    return slidingWindow(
      this,
      counts.previous,
      counts.current,
      elapsed,
      counts.taken,
    );
  }

  /** Takes back one request counted for `key` in the current window. */
  forgive(key: string): void {
    this.#table.giveBack(key, Math.floor(this.#now() / this.windowMs));
  }

  /**
   * Whether `key` may get a lease: it has one, or there is room for one.
   * Only leases of past windows are dropped for room: their unused units
   * were left counted when their window ended; dropping one still running
   * would leave more.
   */
  #roomFor(key: string, window: number): boolean {
    const leases = this.#leases;
    if (leases.size < MAX_LEASES || leases.has(key)) return true;
    if (this.#sweptWindow !== window) {
      this.#sweptWindow = window;
      for (const [k, lease] of leases) {
        if (lease.window !== window) leases.delete(k);
      }
    }
    return leases.size < MAX_LEASES;
  }

  /** Keeps the units `counts` granted beyond this request for `key`'s next ones. */
  #lease(key: string, window: number, counts: TakeResult): void {
    this.#leases.set(key, {
      window,
      previous: counts.previous,
      current: counts.current + 1,
      left: counts.granted - 1,
    });
  }
}
