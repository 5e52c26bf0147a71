/**
 * One engine per core: Worker threads that each run the same entry module
 * and listen on the same port with `reusePort` (Linux; needs
 * `--unstable-net`). The kernel spreads new connections across them; the
 * main thread only supervises.
 *
 * Each worker has a slot (the worker number `/metrics` shows) and a cell
 * (its share of the shared memory, free again once it ends). The
 * supervisor replaces a worker that dies, at once the first time and with
 * a doubling delay while it keeps dying; reloads by starting a fresh worker
 * per slot and draining the old one once the fresh one listens; and stops
 * them all on shutdown.
 */
import { getLogger } from "../npm/logtape.ts";

const log = getLogger(["spindle", "workers"]);

/** A PEM certificate chain and key, as the main thread hands them on. */
export interface WorkerCertificate {
  readonly cert: string;
  readonly key: string;
}

/** Messages from the main thread to an engine worker. */
export type ToWorker =
  | {
    readonly type: "start";
    readonly args: readonly string[];
    /** What {@link PoolOptions.share} gave for this worker. */
    readonly share: unknown;
    /** The HTTPS pair: workers never read or make their own. */
    readonly certificate?: WorkerCertificate;
  }
  /** Present this pair from the next handshake on. */
  | { readonly type: "certificate"; readonly certificate: WorkerCertificate }
  /** Stop accepting (close the listener), before every worker drains. */
  | { readonly type: "close" }
  /** Stop: the whole server is shutting down. */
  | { readonly type: "shutdown" }
  /** Stop: a fresh worker took this one's place (a reload). */
  | { readonly type: "retire" };

/** Messages from an engine worker to the main thread. */
export type FromWorker =
  | { readonly type: "listening"; readonly port: number }
  /** `code`: the exit code the failure calls for (2: a bad setting). */
  | { readonly type: "failed"; readonly message: string; readonly code: number }
  | { readonly type: "stopped" }
  /** Its listener is closed ("close"). */
  | { readonly type: "closed" }
  /** Its heap passed its budget: replace it before V8 aborts the process. */
  | { readonly type: "exhausted"; readonly heapBytes: number };

/** How the pool runs its workers. */
export interface PoolOptions {
  /** A module that calls {@link runAsWorker}. */
  readonly entry: URL;
  /** Workers serving at once. */
  readonly size: number;
  /** Arguments each worker gets. */
  readonly args: readonly string[];
  /** Cells there are: workers that may run at once, draining ones included. */
  readonly cells: number;
  /** The `share` of a worker's start message: shared memory for its cell. */
  share(cell: number, slot: number): unknown;
  /**
   * A worker in `cell` ended: give back what it still held. `died`: it was
   * serving (not starting, not draining) when it went.
   */
  release(cell: number, slot: number, died: boolean): void;
  /** Time a stopping worker gets to drain before it is terminated. */
  readonly stopTimeoutMs: number;
  /**
   * The HTTPS pair a worker starts with, asked at each start (a
   * replacement gets the one current then); unset: plain HTTP.
   */
  certificate?(): WorkerCertificate | undefined;
}

/** Time a worker gets to start listening before it counts as failed. */
const START_TIMEOUT_MS = 30_000;
/** Crashes of one slot this close together count as a crash loop. */
const CRASH_WINDOW_MS = 60_000;
/** The delay before the second replacement in a crash loop; doubled for each next one. */
const FIRST_BACKOFF_MS = 100;
/** The longest delay between replacements. */
const MAX_BACKOFF_MS = 30_000;

/** Longest wait for every listener to close before the drains begin anyway. */
const CLOSE_TIMEOUT_MS = 2_000;
/** Time past `stopTimeoutMs` a stopping worker gets before it is terminated. */
const STOP_MARGIN_MS = 5_000;

/** Delay before replacing a worker that died, given its slot's recent crashes (this one included). */
export function backoffMs(crashes: number): number {
  if (crashes <= 1) return 0;
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (crashes - 2));
}

/** One running worker. */
class Incarnation {
  state: "starting" | "serving" | "stopping" | "ended" = "starting";
  /** Resolves once listening, rejects if it failed to. */
  readonly listening: Promise<void>;
  /** Resolves once it ended, whatever the way. */
  readonly ended: Promise<void>;
  /** Resolves once its listener is closed (or it ended). */
  readonly closed: Promise<void>;
  onClosed!: () => void;
  onListening!: () => void;
  onFailed!: (err: Error) => void;
  onEnded!: () => void;

  constructor(
    readonly worker: Worker,
    readonly slot: number,
    readonly cell: number,
  ) {
    this.listening = new Promise((resolve, reject) => {
      this.onListening = resolve;
      this.onFailed = reject;
    });
    this.listening.catch(() => {}); // reported through died()
    this.ended = new Promise((r) => this.onEnded = r);
    this.closed = new Promise((r) => this.onClosed = r);
    this.ended.then(() => this.onClosed());
  }
}

/** What a reload did. */
export interface ReloadResult {
  /** Slots now served by a fresh worker. */
  readonly reloaded: number;
  /** Why the other slots kept their old worker. */
  readonly failures: readonly string[];
}

/** The engine workers and their supervision. */
export class WorkerPool {
  readonly #opts: PoolOptions;
  /** Slot (1-based) -> the worker serving it. */
  readonly #serving = new Map<number, Incarnation>();
  /** Slot -> a worker starting for it, not yet listening. */
  readonly #starting = new Map<number, Incarnation>();
  /** Workers draining after a reload, or stopping. */
  readonly #stopping = new Set<Incarnation>();
  readonly #freeCells: number[];
  /** Slot -> times its workers died lately, oldest first. */
  readonly #crashes = new Map<number, number[]>();
  /** Slots waiting for a replacement: a timer, or null to wait for a free cell. */
  readonly #pending = new Map<number, ReturnType<typeof setTimeout> | null>();
  #reloading: Promise<ReloadResult> | undefined;
  #reloadAgain = false;
  #closed = false;

  private constructor(opts: PoolOptions) {
    this.#opts = opts;
    this.#freeCells = Array.from({ length: opts.cells }, (_, i) => i);
  }

  /**
   * Starts `size` workers; resolves once all listen. Rejects (and stops
   * the ones started) if any fails to.
   */
  static async start(opts: PoolOptions): Promise<WorkerPool> {
    if (opts.cells < opts.size) {
      throw new RangeError("Fewer cells than workers");
    }
    const pool = new WorkerPool(opts);
    const started: Incarnation[] = [];
    for (let slot = 1; slot <= opts.size; slot++) {
      started.push(pool.#spawn(slot, pool.#freeCells.shift()!));
    }
    try {
      await Promise.all(started.map((w) => w.listening));
    } catch (err) {
      await pool.shutdown();
      // Those that listened are no slot's yet: stop them too.
      await Promise.all(started.map((w) => pool.#stop(w, "shutdown")));
      throw err;
    }
    for (const w of started) pool.#serving.set(w.slot, w);
    return pool;
  }

  /** Slots (workers serving at once). */
  get size(): number {
    return this.#opts.size;
  }

  /** Workers running now: serving, starting and draining. */
  get running(): number {
    return this.#serving.size + this.#starting.size + this.#stopping.size;
  }

  #spawn(slot: number, cell: number): Incarnation {
    const worker = new Worker(this.#opts.entry, {
      type: "module",
      name: `spindle-${slot}`,
    });
    const w = new Incarnation(worker, slot, cell);
    this.#starting.set(slot, w);
    const timer = setTimeout(
      () => this.#died(w, "did not start listening in time"),
      START_TIMEOUT_MS,
    );
    w.listening.finally(() => clearTimeout(timer)).catch(() => {});
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if (m.type === "listening") {
        if (this.#starting.get(slot) === w) this.#starting.delete(slot);
        if (w.state === "starting") w.state = "serving";
        w.onListening();
      } else if (m.type === "failed") this.#died(w, m.message, m.code);
      else if (m.type === "stopped") this.#ended(w, false);
      else if (m.type === "closed") w.onClosed();
      else if (m.type === "exhausted") this.#exhausted(w, m.heapBytes);
    };
    worker.onerror = (e) => {
      // Left alone, an error in a worker reaches the main thread and ends it.
      e.preventDefault();
      this.#died(w, e.message);
    };
    worker.postMessage(
      {
        type: "start",
        args: this.#opts.args,
        share: this.#opts.share(cell, slot),
        certificate: this.#opts.certificate?.(),
      } satisfies ToWorker,
    );
    return w;
  }

  /**
   * Hands every running worker a new HTTPS pair for its next handshakes,
   * draining ones too; one starting gets it after its start message, and
   * one spawned later asks {@link PoolOptions.certificate}.
   */
  setCertificate(certificate: WorkerCertificate): void {
    const all = [
      ...this.#serving.values(),
      ...this.#starting.values(),
      ...this.#stopping,
    ];
    for (const w of all) {
      if (w.state === "ended") continue;
      w.worker.postMessage(
        { type: "certificate", certificate } satisfies ToWorker,
      );
    }
  }

  /** A worker is gone for good: give back its cell, then what it held. */
  #ended(w: Incarnation, died: boolean): void {
    if (w.state === "ended") return;
    w.state = "ended";
    w.worker.terminate();
    this.#stopping.delete(w);
    if (this.#serving.get(w.slot) === w) this.#serving.delete(w.slot);
    if (this.#starting.get(w.slot) === w) this.#starting.delete(w.slot);
    this.#opts.release(w.cell, w.slot, died);
    this.#freeCells.push(w.cell);
    w.onFailed(new Error("Worker ended before it listened"));
    w.onEnded();
    // A replacement that waited for a free cell can go now.
    for (const [slot, timer] of this.#pending) {
      if (timer === null) {
        this.#pending.delete(slot);
        this.#replace(slot);
        break;
      }
    }
  }

  /** A worker failed to start, threw, or was terminated. */
  #died(w: Incarnation, why: string, code = 1): void {
    if (w.state === "ended") return;
    const state = w.state;
    // Whoever started it hears why.
    w.onFailed(Object.assign(new Error(why), { code }));
    this.#ended(w, state === "serving");
    // A failed start is its starter's to report; a draining worker is not missed.
    if (this.#closed || state !== "serving" || this.#serving.has(w.slot)) {
      return;
    }
    const delay = this.#crashed(w.slot);
    log.error("Worker {worker} died: {why}; {action}", {
      worker: w.slot,
      why,
      action: delay === 0
        ? "replacing it"
        : `replacing it in ${delay} ms (${
          this.#crashes.get(w.slot)!.length
        } deaths in a minute)`,
      event: "worker-died",
      delayMs: delay,
    });
    this.#schedule(w.slot, delay);
  }

  /** Counts a death of `slot`'s worker; the delay before the next one. */
  #crashed(slot: number): number {
    const now = Date.now();
    const recent = (this.#crashes.get(slot) ?? []).filter((t) =>
      now - t < CRASH_WINDOW_MS
    );
    recent.push(now);
    this.#crashes.set(slot, recent);
    return backoffMs(recent.length);
  }

  #schedule(slot: number, delayMs: number): void {
    if (this.#pending.has(slot)) return;
    if (delayMs === 0) return this.#replace(slot);
    this.#pending.set(
      slot,
      setTimeout(() => {
        this.#pending.delete(slot);
        this.#replace(slot);
      }, delayMs),
    );
  }

  /** Starts a worker for an empty slot; a failed start counts as a death. */
  #replace(slot: number): void {
    if (
      this.#closed || this.#serving.has(slot) || this.#starting.has(slot)
    ) return;
    const cell = this.#freeCells.shift();
    if (cell === undefined) {
      this.#pending.set(slot, null); // #ended() starts it once a cell is free
      return;
    }
    const w = this.#spawn(slot, cell);
    w.listening.then(() => {
      if (this.#closed) return void this.#stop(w, "shutdown");
      this.#serving.set(slot, w);
      log.info("Worker {worker} replaced", {
        worker: slot,
        event: "worker-replaced",
      });
    }, (err) => {
      if (this.#closed) return;
      const delay = Math.max(FIRST_BACKOFF_MS, this.#crashed(slot));
      log.error(
        "Worker {worker} failed to start: {why}; trying again in {delay} ms",
        { worker: slot, why: err.message, delay },
      );
      this.#schedule(slot, delay);
    });
  }

  /** Its heap is near the end: a fresh worker takes its slot, then it drains. */
  #exhausted(w: Incarnation, heapBytes: number): void {
    if (
      this.#closed || this.#serving.get(w.slot) !== w ||
      this.#starting.has(w.slot)
    ) return;
    log.warn(
      "Worker {worker} holds {heap} MiB of heap, past its budget; replacing it",
      { worker: w.slot, heap: Math.round(heapBytes / 2 ** 20) },
    );
    this.#swap(w.slot).catch((err) =>
      log.error("Worker {worker} could not be replaced: {why}", {
        worker: w.slot,
        why: err.message,
      })
    );
  }

  /**
   * Starts a fresh worker for `slot`; once it listens, the old one drains.
   * Rejects, leaving the old one serving, if the fresh one fails to start.
   */
  async #swap(slot: number): Promise<void> {
    const cell = this.#freeCells.shift();
    if (cell === undefined) throw new Error("no free cell");
    const fresh = this.#spawn(slot, cell);
    await fresh.listening;
    if (this.#closed) return void this.#stop(fresh, "shutdown");
    const old = this.#serving.get(slot);
    this.#serving.set(slot, fresh);
    if (old === undefined || old === fresh) return;
    // Its listener closed first: once this resolves, only fresh workers
    // take new connections (a reload's "Reloaded" means just that).
    await this.#closeListeners([old]);
    this.#stop(old, "retire");
  }

  /** Asks workers to stop accepting; resolves once they have (or 2 s passed). */
  async #closeListeners(workers: readonly Incarnation[]): Promise<void> {
    for (const w of workers) {
      if (w.state !== "ended") {
        w.worker.postMessage({ type: "close" } satisfies ToWorker);
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(workers.map((w) => w.closed)),
      new Promise((r) => timer = setTimeout(r, CLOSE_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
  }

  /** Asks a worker to drain and stop; terminates it if it takes too long. */
  #stop(w: Incarnation, how: "retire" | "shutdown"): Promise<void> {
    if (w.state === "ended") return w.ended;
    if (this.#serving.get(w.slot) === w) this.#serving.delete(w.slot);
    if (w.state !== "stopping") {
      w.state = "stopping";
      this.#stopping.add(w);
      w.worker.postMessage({ type: how } satisfies ToWorker);
      // The worker's own drain ends by stopTimeoutMs; past a margin it hangs.
      const timer = setTimeout(() => {
        log.warn("Worker {worker} did not stop in time; terminating it", {
          worker: w.slot,
        });
        this.#ended(w, false);
      }, this.#opts.stopTimeoutMs + STOP_MARGIN_MS);
      w.ended.then(() => clearTimeout(timer));
    }
    return w.ended;
  }

  /**
   * A fresh worker for each slot, one slot at a time: each reads the files
   * again as it starts, and the old one drains once the fresh one listens,
   * so the port never goes unserved. A slot whose fresh worker fails to
   * start keeps its old one. A reload asked for while one runs happens
   * once it is done (and the old workers have drained).
   */
  reload(): Promise<ReloadResult> {
    if (this.#reloading !== undefined) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    const run = async (): Promise<ReloadResult> => {
      let result: ReloadResult;
      do {
        this.#reloadAgain = false;
        result = await this.#reloadOnce();
      } while (this.#reloadAgain && !this.#closed);
      return result;
    };
    return this.#reloading = run().finally(() => this.#reloading = undefined);
  }

  async #reloadOnce(): Promise<ReloadResult> {
    // Old workers still draining from the last reload hold cells: let them finish.
    await Promise.all([...this.#stopping].map((w) => w.ended));
    let reloaded = 0;
    const failures: string[] = [];
    for (let slot = 1; slot <= this.#opts.size && !this.#closed; slot++) {
      try {
        await this.#swap(slot);
        reloaded++;
      } catch (err) {
        failures.push(
          `worker ${slot}: ${err instanceof Error ? err.message : err}`,
        );
      }
    }
    return { reloaded, failures };
  }

  /**
   * Stops every worker gracefully and waits for all of them. Every
   * listener closes before any worker drains: a client whose connection
   * one worker closes must not reconnect to another worker's listener just
   * as it closes, which would reset the connection. (Another Spindle on the
   * port, an upgrade, then takes the reconnections.)
   */
  async shutdown(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#pending.values()) {
      if (timer !== null) clearTimeout(timer);
    }
    this.#pending.clear();
    const all = [
      ...this.#serving.values(),
      ...this.#starting.values(),
      ...this.#stopping,
    ];
    await this.#closeListeners(all);
    await Promise.all(all.map((w) => this.#stop(w, "shutdown")));
  }
}

/** What a worker's engine gets from {@link runAsWorker}. */
export interface WorkerStart {
  readonly args: readonly string[];
  readonly share: unknown;
  /** The HTTPS pair to serve (the main thread reads or makes it). */
  readonly certificate?: WorkerCertificate;
  /**
   * `replace` gets each pair the main thread sends later, and at once one
   * that came since the start message.
   */
  onCertificate(replace: (certificate: WorkerCertificate) => void): void;
  /** Resolves when the engine should stop; `retire` is true for a reload. */
  readonly stop: Promise<{ retire: boolean }>;
  /**
   * Call with the engine's `stopAccepting()` once listening: "close" runs
   * it and reports back, before "shutdown" comes.
   */
  onClose(stopAccepting: () => Promise<void>): void;
  /** Call once listening. */
  listening(port: number): void;
  /** Call when the heap passed its budget: the supervisor replaces this worker. */
  exhausted(heapBytes: number): void;
}

/**
 * The worker side: waits for "start", runs `serveUntilStopped`, whose
 * `stop` resolves on "shutdown" or "retire", and reports back. An exit
 * code other than 0, or an error (its `code` property, else 1), is
 * reported as a failure.
 */
export function runAsWorker(
  serveUntilStopped: (start: WorkerStart) => Promise<number>,
): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
    postMessage(m: FromWorker): void;
  };
  let requestStop!: (how: { retire: boolean }) => void;
  const stop = new Promise<{ retire: boolean }>((r) => requestStop = r);
  let askedToClose = false;
  let stopAccepting: (() => Promise<void>) | undefined;
  let replace: ((certificate: WorkerCertificate) => void) | undefined;
  /** The pair the main thread sent last. */
  let latest: WorkerCertificate | undefined;
  const close = () => {
    if (!askedToClose || stopAccepting === undefined) return;
    stopAccepting().finally(() => scope.postMessage({ type: "closed" }));
    stopAccepting = undefined;
  };
  scope.onmessage = (e) => {
    const m = e.data;
    if (m.type === "shutdown") return requestStop({ retire: false });
    if (m.type === "retire") return requestStop({ retire: true });
    if (m.type === "close") {
      askedToClose = true;
      return close();
    }
    if (m.type === "certificate") {
      latest = m.certificate;
      return replace?.(m.certificate);
    }
    const first = latest = m.certificate;
    serveUntilStopped({
      args: m.args,
      share: m.share,
      certificate: first,
      onCertificate: (fn) => {
        replace = fn;
        if (latest !== undefined && latest !== first) fn(latest);
      },
      stop,
      onClose: (fn) => {
        stopAccepting = fn;
        close();
      },
      listening: (port) => scope.postMessage({ type: "listening", port }),
      exhausted: (heapBytes) =>
        scope.postMessage({ type: "exhausted", heapBytes }),
    })
      .then((code) => {
        scope.postMessage(
          code === 0
            ? { type: "stopped" }
            : { type: "failed", message: `exit code ${code}`, code },
        );
      })
      .catch((err) =>
        scope.postMessage({
          type: "failed",
          message: err instanceof Error ? err.message : String(err),
          code: typeof err?.code === "number" ? err.code : 1,
        })
      );
  };
}

/** True inside a Worker thread. */
export function inWorker(): boolean {
  return typeof (globalThis as { WorkerGlobalScope?: unknown })
    .WorkerGlobalScope !== "undefined";
}
