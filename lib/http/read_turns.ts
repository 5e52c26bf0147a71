/**
 * Turns for the read that waits for a connection's next request, so that a
 * saturated server serves its connections in turn.
 *
 * Why: every `conn.read()` of this process is an op of the one JS event loop.
 * Under load, more reads are ready than the runtime polls in one go (tokio
 * lets a task make 128 I/O polls, then defers the rest), and the deferred
 * ones are queued behind newer reads each time: at 1000 busy keep-alive
 * connections some wait a second and more while others are served every
 * few milliseconds. With at most {@link READ_TURNS} such reads started at a
 * time, handed out first come first served, each round fits in one poll and
 * every connection gets its turn.
 *
 * A read not answered within {@link AGE} ticks of the clock (an idle
 * keep-alive connection's) gives its turn on and goes on waiting without
 * one: idle connections never hold up busy ones for long. The clock runs only while
 * connections wait for a turn (it stops at the first tick nobody waited
 * through), so an idle or lightly loaded server pays a counter per request
 * and no timer. It is one interval, not a timeout armed when the first
 * waiter comes and cleared when the last leaves: a server just past its
 * turns (a worker holding 70 of wrk's 128 connections) goes from none to a
 * few waiters and back hundreds of times a second, and each arming and
 * clearing of a Deno timer cost ~2 µs even when warm (measured).
 *
 * Turns start only once more reads wait at once than the runtime answers in
 * one poll ({@link POLL_BUDGET}), and stop at the first tick nobody waited
 * through: up to that many connections read as if there were no turns. A
 * worker holding ~70 of wrk's 128 connections made about half its reads
 * wait for a turn at 64, for nothing: with no turns it spent less CPU per
 * request and its p99 was no worse (busy machine, see bench/README.md).
 */

/**
 * Request reads started and not yet answered, at most: 64 reads and their
 * 64 writes fit in tokio's budget of 128 polls per task turn, so up to 64
 * busy connections (the bench's usual load) never wait for a turn at all.
 * Measured on the bare read/write loop at 1000 connections (busy machine):
 * 48 and 64 kept p99 within 2x of Deno.serve's; 100 already let the
 * queueing back in.
 */
export const READ_TURNS = 64;

/**
 * Reads started and not yet answered that a server allows itself before
 * turns start: tokio's budget of polls per task turn. Up to that, every
 * ready read is polled in one go; past it, some are deferred for sure, and
 * at 1000 connections unfairly (see above).
 */
export const POLL_BUDGET = 128;

/**
 * The clock that ages turns, in ms: 0, a turn of the event loop. A read
 * whose bytes are there is answered within one; 1 ms measured no fairer at
 * 1000 connections, and makes a connection wait longer behind idle ones.
 */
const TICK_MS = 0;

/**
 * Ticks a turn is held, at most, before it is passed on. Under load a tick
 * is a turn of the event loop, and a busy read may need more than two: 64
 * reads and their writes fill tokio's budget of polls, and an op past it
 * waits a turn more. Aged, its turn lets one read more in flight, which
 * defers more ops the next turn. At two, a saturated worker (500 of wrk's
 * 1000 connections) passed on ~900 busy reads' turns a second, one engine
 * with all 1000 ~2,500; at four, a third as many (busy machine, see
 * bench/README.md). An idle connection's read holds its turn four ticks: a
 * few ms when the loop is not busy.
 */
const AGE = 4;

/** Slots of {@link ReadTurns}' count of turns by tick: a power of two over {@link AGE}. */
const TICKS = 8;

/** Slots the ring of waiters starts with; it doubles when full (a power of two). */
const MIN_RING = 64;

export class ReadTurns {
  readonly #limit: number;
  readonly #startAt: number;
  /**
   * Reads held at once, at most, before the next waits: {@link #startAt}
   * while turns are off, {@link #limit} once they are on (reads reached
   * {@link #startAt}, and someone waited at every tick since). One field
   * compared on every take, so the check reads the same fields whether turns
   * are on or not: V8 otherwise deoptimizes `take()` the first time all of
   * a bench's 64 connections read at once.
   */
  #cap: number;
  /** Turns held now. */
  #held = 0;
  /** Of those, how many were taken in each of the last {@link AGE} ticks (slot: tick % TICKS). */
  readonly #taken = new Int32Array(TICKS);
  #tick = 0;
  /**
   * Connections waiting for a turn, first come first served: a ring, as a
   * saturated server's queue never empties (a list grown at the tail and
   * read from the head would keep every woken waiter until it did).
   */
  #ring: Array<((turn: number) => void) | undefined> = new Array(
    MIN_RING,
  ).fill(undefined);
  #head = 0;
  #waiting = 0;
  #clock: ReturnType<typeof setInterval> | undefined;

  /**
   * At most `limit` reads at a time once `startAt` reads were held at once
   * (at least `limit`); until then, any number.
   */
  constructor(limit = READ_TURNS, startAt = limit) {
    if (!(limit >= 1)) throw new RangeError("ReadTurns needs at least one");
    this.#limit = limit;
    this.#startAt = Math.max(limit, startAt);
    this.#cap = this.#startAt;
  }

  /** Connections waiting for a turn. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * A turn for one read: at once if one is free and nobody waits, else the
   * promise of one. Give what it returns to {@link give} when the read is over.
   */
  take(): number | Promise<number> {
    if (this.#waiting === 0 && this.#held < this.#cap) {
      this.#held++;
      this.#taken[this.#tick & (TICKS - 1)]++;
      return this.#tick;
    }
    this.#cap = this.#limit;
    this.#clock ??= setInterval(this.#age, TICK_MS);
    return new Promise(this.#push);
  }

  /** The read of this turn is over: the next waiter, if any, reads now. */
  give(turn: number): void {
    if (this.#tick - turn >= AGE) return; // aged out: passed on already
    this.#taken[turn & (TICKS - 1)]--;
    this.#held--;
    // Just after turns started, more are held than the limit: none passed on
    // until the held ones are down to it.
    if (this.#held < this.#limit) this.#passOn();
  }

  /** Queues a waiter; an arrow, made once, so a wait allocates no closure. */
  #push = (wake: (turn: number) => void): void => {
    let ring = this.#ring;
    if (this.#waiting === ring.length) {
      // Full: unrolled into one twice the size, the head at 0.
      const bigger = new Array(ring.length * 2).fill(undefined);
      for (let i = 0; i < ring.length; i++) {
        bigger[i] = ring[(this.#head + i) & (ring.length - 1)];
      }
      this.#ring = ring = bigger;
      this.#head = 0;
    }
    ring[(this.#head + this.#waiting++) & (ring.length - 1)] = wake;
  };

  #passOn(): void {
    if (this.#waiting === 0) return;
    const ring = this.#ring;
    const wake = ring[this.#head]!;
    ring[this.#head] = undefined; // woken: the ring no longer holds it
    this.#head = (this.#head + 1) & (ring.length - 1);
    this.#waiting--; // the clock stops by itself if nobody waits at its next tick
    this.#held++;
    this.#taken[this.#tick & (TICKS - 1)]++;
    wake(this.#tick);
  }

  /**
   * Turns taken {@link AGE} ticks ago and still held are passed on. A tick with
   * nobody waiting stops the clock and the turns instead, before it
   * counts: the next waiter starts them again.
   */
  #age = (): void => {
    if (this.#waiting === 0) {
      this.#cap = this.#startAt;
      return this.close();
    }
    this.#tick++;
    const slot = (this.#tick - AGE) & (TICKS - 1);
    this.#held -= this.#taken[slot];
    this.#taken[slot] = 0;
    while (this.#held < this.#limit && this.#waiting > 0) this.#passOn();
  };

  /**
   * Stops the clock now; the next waiter starts it again. A server calls
   * it once its connections are gone, so that no timer outlives it.
   */
  close(): void {
    clearInterval(this.#clock);
    this.#clock = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
