/**
 * The numbers behind each connection's deadlines, worked out once per
 * server from its limits: the usual ones, the tighter ones used while the
 * server is busy, and the time budget of a minimum transfer rate.
 */
import type { Limits } from "../config.ts";

/** Every timeout a connection arms, plain and busy, in milliseconds. */
export interface Timeouts {
  readonly headMs: number;
  readonly headBusyMs: number;
  readonly keepAliveMs: number;
  readonly keepAliveBusyMs: number;
  readonly bodyGapMs: number;
  readonly bodyGapBusyMs: number;
  readonly writeGapMs: number;
  readonly writeGapBusyMs: number;
  readonly graceMs: number;
  readonly graceBusyMs: number;
  /** Milliseconds each body byte buys; 0 without a minimum rate. */
  readonly bodyMsPerByte: number;
  /** Milliseconds each reply byte buys; 0 without a minimum rate. */
  readonly sendMsPerByte: number;
  /**
   * The deadline of a reply's first write, plain and busy: the gap or the
   * rate's grace, whichever is sooner (nothing sent or waited on yet).
   * Worked out once: every reply arms it.
   */
  readonly firstWriteMs: number;
  readonly firstWriteBusyMs: number;
}

/** The timeouts of `limits`; throws RangeError for a divisor under 1. */
export function timeoutsOf(limits: Limits): Timeouts {
  const d = limits.busyTimeoutDivisor;
  if (!(d >= 1)) throw new RangeError("busyTimeoutDivisor must be at least 1");
  const busy = (ms: number) => Math.max(1, Math.ceil(ms / d));
  const perByte = (rate: number) => rate > 0 ? 1000 / rate : 0;
  const sendMsPerByte = perByte(limits.minSendBytesPerSec);
  const writeGapBusyMs = busy(limits.writeTimeoutMs);
  const graceBusyMs = busy(limits.minRateGraceMs);
  return Object.freeze({
    headMs: limits.headTimeoutMs,
    headBusyMs: busy(limits.headTimeoutMs),
    keepAliveMs: limits.keepAliveTimeoutMs,
    keepAliveBusyMs: busy(limits.keepAliveTimeoutMs),
    bodyGapMs: limits.bodyTimeoutMs,
    bodyGapBusyMs: busy(limits.bodyTimeoutMs),
    writeGapMs: limits.writeTimeoutMs,
    writeGapBusyMs,
    graceMs: limits.minRateGraceMs,
    graceBusyMs,
    bodyMsPerByte: perByte(limits.minBodyBytesPerSec),
    sendMsPerByte,
    firstWriteMs: Math.min(
      limits.writeTimeoutMs,
      rateBudgetMs(limits.minRateGraceMs, sendMsPerByte, 0, 0),
    ),
    firstWriteBusyMs: Math.min(
      writeGapBusyMs,
      rateBudgetMs(graceBusyMs, sendMsPerByte, 0, 0),
    ),
  });
}

/**
 * How much longer a client may keep us waiting before it is slower than a
 * minimum rate: the grace, plus what the bytes it moved bought, less the
 * time we already waited on it. Time the server spent elsewhere (a handler
 * between two body reads, a stream producing the next piece) never counts.
 * Infinity when there is no minimum.
 */
export function rateBudgetMs(
  graceMs: number,
  msPerByte: number,
  bytes: number,
  waitedMs: number,
): number {
  if (msPerByte === 0) return Infinity;
  return graceMs + bytes * msPerByte - waitedMs;
}

/**
 * What a {@link DeadlineWheel} times: its deadlines, what to do past them,
 * and (in the base class, so no object per owner) its place in the wheel.
 */
export abstract class Timed {
  /** `Date.now()` past which `expire()` acts; 0 for none. */
  abstract readonly deadline: number;
  /** The same while the server is busy: never later than `deadline`. */
  abstract readonly busyDeadline: number;
  /** Acts on the deadline that applies if it has passed. */
  abstract expire(now: number, busy: boolean): void;
  /** Any deadline after this is visited in time; Infinity while not filed. */
  wheelFrom = Infinity;
  /** The tick it is filed under, and its place in that slot's list; -1 if none. */
  wheelTick = -1;
  wheelIndex = -1;
}

/**
 * An empty slot, made as a list of objects: a list made by `[]` holds small
 * integers until its first push, which changes its kind. Filing and unfiling
 * are inlined into each connection's request loop, and V8 deoptimizes that
 * loop the first time its optimized code meets what it never saw before
 * (a slot of the other kind, a call not made yet): then the loop runs
 * unoptimized for thousands of requests, well into a server's first seconds
 * under load. So every slot is of one kind from the start.
 */
function emptySlot(): Timed[] {
  const list = [null] as unknown as Timed[];
  list.length = 0;
  return list;
}

/** More slots than this and a long timeout just takes a few laps. */
const MAX_SLOTS = 4096;

/**
 * Deadlines filed in a hashed timer wheel: a ring of slots, one per tick,
 * each holding the entries due in that tick. Filing and removing cost O(1)
 * and no allocation; a tick visits only the entries due in it, so 5,000
 * idle connections cost nothing until their time comes. Filing is lazy: a
 * deadline that moves later leaves its entry where it is (the common case:
 * every request pushes its connection's deadline on), and the visit finds
 * it early and files it again under the new time.
 */
export class DeadlineWheel {
  readonly tickMs: number;
  readonly #slots: Timed[][];
  #spare: Timed[] = emptySlot();
  /** The next tick to visit. */
  #next: number;
  #size = 0;

  /**
   * `horizonMs`: the longest usual deadline, to size the ring so it is
   * visited in one lap; a later one waits for its lap.
   */
  constructor(tickMs: number, horizonMs: number, now = Date.now()) {
    if (!(tickMs > 0)) throw new RangeError("tickMs must be above 0");
    this.tickMs = tickMs;
    const slots = Math.min(MAX_SLOTS, Math.ceil(horizonMs / tickMs) + 2);
    this.#slots = Array.from({ length: Math.max(2, slots) }, emptySlot);
    this.#next = Math.floor(now / tickMs);
  }

  /** Entries filed. */
  get size(): number {
    return this.#size;
  }

  /**
   * Makes sure `entry` is visited once `Date.now()` reaches `at`, within a
   * tick. Nothing to do when it is already filed as soon: the hot path.
   */
  arm(entry: Timed, at: number): void {
    if (at > entry.wheelFrom) return;
    this.#file(entry, Math.ceil(at / this.tickMs));
  }

  /** Takes `entry` out of the wheel (its owner closed). */
  remove(entry: Timed): void {
    this.#unlink(entry);
  }

  /**
   * Visits the ticks up to `now`: an owner whose deadline (the busy one
   * when `busy`) has passed is expired, one whose deadline moved later is
   * filed again, one without a deadline leaves the wheel until it arms
   * one. Returns how many entries it looked at.
   */
  advance(now: number, busy: boolean): number {
    const nowTick = Math.floor(now / this.tickMs);
    const first = this.#next;
    if (nowTick < first) return 0;
    // Late by more than a lap: each slot once is enough, since every due
    // entry is taken whatever its lap.
    const last = Math.min(nowTick, first + this.#slots.length - 1);
    this.#next = nowTick + 1;
    let visited = 0;
    for (let t = first; t <= last; t++) {
      const s = t % this.#slots.length;
      const list = this.#slots[s];
      if (list.length === 0) continue;
      this.#slots[s] = this.#spare; // what callbacks file lands in the new list
      for (let i = 0; i < list.length; i++) {
        const entry = list[i];
        if (entry.wheelTick === -1) continue; // removed by a callback meanwhile
        if (entry.wheelTick > nowTick) {
          this.#push(entry, entry.wheelTick); // a later lap
          continue;
        }
        visited++;
        this.#size--;
        entry.wheelTick = entry.wheelIndex = -1;
        entry.wheelFrom = Infinity;
        this.#due(entry, now, busy);
      }
      list.length = 0;
      this.#spare = list;
    }
    return visited;
  }

  /**
   * Visits every entry now, as if each were due: when the server turns
   * busy, deadlines filed by their plain time may have a busy one past.
   */
  visitAll(now: number, busy: boolean): number {
    const all = this.#slots.flat();
    for (const entry of all) this.#unlink(entry);
    for (const entry of all) this.#due(entry, now, busy);
    return all.length;
  }

  #due(entry: Timed, now: number, busy: boolean): void {
    const deadline = busy ? entry.busyDeadline : entry.deadline;
    if (deadline === 0) return;
    if (deadline <= now) entry.expire(now, busy);
    else this.#file(entry, Math.ceil(deadline / this.tickMs));
  }

  #file(entry: Timed, tick: number): void {
    // Called whether or not the entry is filed, so that a connection's first
    // arm runs the call: see emptySlot().
    this.#unlink(entry);
    this.#push(entry, Math.max(tick, this.#next));
    this.#size++;
  }

  #push(entry: Timed, tick: number): void {
    const list = this.#slots[tick % this.#slots.length];
    entry.wheelTick = tick;
    entry.wheelIndex = list.length;
    entry.wheelFrom = (tick - 1) * this.tickMs;
    list.push(entry);
  }

  /** Takes `entry` out of its slot; nothing for an entry not filed. */
  #unlink(entry: Timed): void {
    if (entry.wheelTick === -1) return;
    const list = this.#slots[entry.wheelTick % this.#slots.length];
    // Not there when its slot is being visited: the visit skips it.
    if (list[entry.wheelIndex] === entry) {
      const last = list.pop()!;
      if (last !== entry) {
        list[entry.wheelIndex] = last;
        last.wheelIndex = entry.wheelIndex;
      }
    }
    entry.wheelTick = entry.wheelIndex = -1;
    entry.wheelFrom = Infinity;
    this.#size--;
  }
}
