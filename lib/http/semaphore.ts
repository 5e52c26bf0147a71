/** A waiter's place in the queue: true once it holds a permit, false if cancelled. */
export interface Ticket {
  readonly granted: Promise<boolean>;
  readonly cancel: () => void;
}

/**
 * What the accept loop needs of a connection cap: a {@link Semaphore} in
 * this engine, or one whose counts every `--workers` engine shares.
 */
export interface ConnectionSlots {
  /** Waiters in the queue (for a shared cap: in every engine's queue). */
  readonly waiting: number;
  /** Permits held plus waiters (for a shared cap: by every engine). */
  readonly inUse: number;
  tryAcquire(): boolean;
  enqueue(): Ticket | undefined;
  release(): void;
  cancelAll(): void;
}

/**
 * Caps how many connections are handled at once, with a bounded queue of
 * waiters behind the cap. Past both, `acquire()` says no at once so the
 * server can answer 503 instead of hanging or dropping the connection.
 */
export class Semaphore implements ConnectionSlots {
  #free: number;
  readonly #maxQueue: number;
  readonly #queue: Array<(granted: boolean) => void> = [];

  readonly #permits: number;

  constructor(permits: number, maxQueue: number) {
    if (!(permits >= 1)) {
      throw new RangeError("Semaphore needs at least one permit");
    }
    this.#permits = this.#free = permits;
    this.#maxQueue = maxQueue;
  }

  /** Waiters in the queue. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Permits held plus waiters. */
  get inUse(): number {
    return this.#permits - this.#free + this.#queue.length;
  }

  /** Takes a permit now if one is free. */
  tryAcquire(): boolean {
    if (this.#free > 0) {
      this.#free--;
      return true;
    }
    return false;
  }

  /**
   * Waits in the queue for a permit. Returns undefined when the queue is
   * full; else a promise that is true once the permit is held, or false if
   * the wait was cancelled through `cancel()`.
   */
  enqueue(): Ticket | undefined {
    if (this.#queue.length >= this.#maxQueue) return undefined;
    let resolve!: (granted: boolean) => void;
    const granted = new Promise<boolean>((r) => resolve = r);
    this.#queue.push(resolve);
    const cancel = () => {
      const i = this.#queue.indexOf(resolve);
      if (i !== -1) {
        this.#queue.splice(i, 1);
        resolve(false);
      }
    };
    return { granted, cancel };
  }

  /** Returns a permit, handing it straight to the first waiter if any. */
  release(): void {
    const next = this.#queue.shift();
    if (next !== undefined) next(true);
    else this.#free++;
  }

  /** Refuses every waiter (shutdown). */
  cancelAll(): void {
    for (const resolve of this.#queue.splice(0)) resolve(false);
  }
}
