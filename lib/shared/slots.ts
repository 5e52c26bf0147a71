/**
 * One `--max-conns` cap and one `--max-queue` for every engine on the port:
 * the counts live in a SharedArrayBuffer and change with Atomics, so taking
 * a slot is a compare-and-swap, not a message. Each engine keeps its own
 * queue of waiters; a slot freed in one engine goes to its own waiters
 * first, then wakes the engines with waiters (Atomics.notify).
 *
 * Each engine also counts what it holds in its own cell, so the supervisor
 * can give back the slots of an engine that died holding them.
 */
import type { ConnectionSlots, Ticket } from "../http/semaphore.ts";
import { waitChange } from "./wait.ts";

const HELD = 0;
const WAITING = 1;
/** Bumped on each release while someone waits: what waiters sleep on. */
const RELEASES = 2;
const HEADER = 3;

/** How long a waiter sleeps before looking again, in case a wake-up was missed. */
const RECHECK_MS = 250;

/** The shared counts; pass it to each engine's {@link SharedSlots}. */
export type SlotMemory = Int32Array;

/** Memory for a cap shared by engines in up to `cells` cells. */
export function createSlotMemory(cells: number): SlotMemory {
  return new Int32Array(
    new SharedArrayBuffer((HEADER + 2 * cells) * Int32Array.BYTES_PER_ELEMENT),
  );
}

/** Slots held and connections waiting, over every engine. */
export function slotCounts(
  memory: SlotMemory,
): { held: number; waiting: number } {
  return {
    held: Atomics.load(memory, HELD),
    waiting: Atomics.load(memory, WAITING),
  };
}

/**
 * Gives back what the engine in `cell` held and queued: for one that died
 * (or was stopped) without releasing them. Call once it runs no more.
 */
export function reclaimSlots(memory: SlotMemory, cell: number): void {
  const held = Atomics.exchange(memory, HEADER + 2 * cell, 0);
  const waiting = Atomics.exchange(memory, HEADER + 2 * cell + 1, 0);
  if (held > 0) Atomics.sub(memory, HELD, held);
  if (waiting > 0) Atomics.sub(memory, WAITING, waiting);
  if (held + waiting > 0) wake(memory);
}

function wake(memory: SlotMemory): void {
  Atomics.add(memory, RELEASES, 1);
  Atomics.notify(memory, RELEASES);
}

/** One engine's view of a cap shared with other engines. */
export class SharedSlots implements ConnectionSlots {
  readonly #m: SlotMemory;
  readonly #held: number;
  readonly #waiting: number;
  readonly #permits: number;
  readonly #maxQueue: number;
  readonly #queue: Array<(granted: boolean) => void> = [];
  /** Aborts the watch once this engine has no waiter left. */
  #watch: AbortController | undefined;

  /**
   * @param cell this engine's cell (0 to cells - 1), its alone while it runs.
   * @throws {RangeError} for fewer than one permit.
   */
  constructor(
    memory: SlotMemory,
    cell: number,
    permits: number,
    maxQueue: number,
  ) {
    if (!(permits >= 1)) {
      throw new RangeError("SharedSlots needs at least one permit");
    }
    if (!(cell >= 0 && HEADER + 2 * cell + 1 < memory.length)) {
      throw new RangeError(`No cell ${cell} in this slot memory`);
    }
    this.#m = memory;
    this.#held = HEADER + 2 * cell;
    this.#waiting = this.#held + 1;
    this.#permits = permits;
    this.#maxQueue = maxQueue;
  }

  // `waiting` and `inUse` are hints, read before every reply kept alive
  // (`keepAliveMs` in server.ts: yield the slot to a waiter? busy?), and
  // stale as soon as read whichever way: plain reads, which V8 inlines,
  // where Atomics.load() is a call of a builtin (~6 ns each, 3 a reply).
  // An aligned int32 is never torn; every change still goes through Atomics.

  /** Waiters in every engine's queue. */
  get waiting(): number {
    return this.#m[WAITING];
  }

  /** Slots held plus waiters, over every engine. */
  get inUse(): number {
    const m = this.#m;
    return m[HELD] + m[WAITING];
  }

  tryAcquire(): boolean {
    const m = this.#m;
    for (;;) {
      const held = Atomics.load(m, HELD);
      if (held >= this.#permits) return false;
      if (Atomics.compareExchange(m, HELD, held, held + 1) === held) {
        Atomics.add(m, this.#held, 1);
        return true;
      }
    }
  }

  enqueue(): Ticket | undefined {
    const m = this.#m;
    for (;;) {
      const waiting = Atomics.load(m, WAITING);
      if (waiting >= this.#maxQueue) return undefined;
      if (
        Atomics.compareExchange(m, WAITING, waiting, waiting + 1) === waiting
      ) {
        break;
      }
    }
    Atomics.add(m, this.#waiting, 1);
    let resolve!: (granted: boolean) => void;
    const granted = new Promise<boolean>((r) => resolve = r);
    this.#queue.push(resolve);
    if (this.#watch === undefined || this.#watch.signal.aborted) {
      this.#watchReleases();
    }
    const cancel = () => {
      const i = this.#queue.indexOf(resolve);
      if (i === -1) return;
      this.#queue.splice(i, 1);
      this.#unwait();
      resolve(false);
      this.#stopWatchIfIdle();
    };
    return { granted, cancel };
  }

  release(): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      // Handed on here: the slot stays held, one waiter fewer.
      this.#unwait();
      next(true);
      this.#stopWatchIfIdle();
      return;
    }
    const m = this.#m;
    Atomics.sub(m, HELD, 1);
    Atomics.sub(m, this.#held, 1);
    if (Atomics.load(m, WAITING) > 0) wake(m);
  }

  cancelAll(): void {
    for (const resolve of this.#queue.splice(0)) {
      this.#unwait();
      resolve(false);
    }
    this.#stopWatchIfIdle();
  }

  #stopWatchIfIdle(): void {
    if (this.#queue.length === 0) this.#watch?.abort();
  }

  #unwait(): void {
    Atomics.sub(this.#m, WAITING, 1);
    Atomics.sub(this.#m, this.#waiting, 1);
  }

  /** While this engine has waiters: take slots other engines free. */
  async #watchReleases(): Promise<void> {
    const watch = this.#watch = new AbortController();
    const m = this.#m;
    try {
      while (this.#queue.length > 0 && !watch.signal.aborted) {
        // Read before trying: a release after a failed try changes it, and
        // the wait below then returns at once instead of missing it.
        const seen = Atomics.load(m, RELEASES);
        while (this.#queue.length > 0 && this.tryAcquire()) {
          this.#unwait();
          this.#queue.shift()!(true);
        }
        if (this.#queue.length === 0) break;
        await waitChange(m, RELEASES, seen, RECHECK_MS, watch.signal);
      }
    } finally {
      if (this.#watch === watch) this.#watch = undefined;
    }
  }
}
