/**
 * Compression of whole bodies. Files for the static handler are compressed
 * by {@link Compressor} in worker threads, a few at a time: in Deno 2.9.6
 * node:zlib's async calls and CompressionStream both run on the event loop
 * (1 MiB of text held it for 30-40 ms), so a client asking for many large
 * files would stall every other client. Small dynamic replies (the
 * compression middleware) use {@link gzipBytes} on the calling thread.
 */
import { getLogger } from "../npm/logtape.ts";
import { brotliCompressSync, gzipSync } from "node:zlib";
import {
  type CompressJob,
  type CompressReply,
  WORKER_SOURCE,
} from "./compress_worker.ts";

/** Codings the static handler can make on the fly, best first. */
export type Coding = "br" | "gzip";

/** True when node:zlib brotli works in this runtime (it does in Deno 2.9). */
function probeBrotli(): boolean {
  try {
    return brotliCompressSync(new Uint8Array([1, 2, 3])).length > 0;
  } catch {
    return false;
  }
}

/** On-the-fly codings this runtime offers, best first. */
export const ON_THE_FLY: readonly Coding[] = probeBrotli()
  ? ["br", "gzip"]
  : ["gzip"];

/**
 * gzips `bytes` on this thread, holding its event loop ~1 ms per 32 KiB:
 * for small replies only (the compression middleware's 64 KiB: ~2 ms).
 */
export function gzipBytes(bytes: Uint8Array): Uint8Array {
  const out = gzipSync(bytes);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * A worker with nothing to do is let go after this long: starting one holds
 * the event loop ~10-15 ms, and an idle one keeps a process from exiting.
 */
const IDLE_WORKER_MS = 5000;

// Quality 5 of 11: a 1 MiB stylesheet in ~10 ms of a core, still smaller
// than gzip -9. Off the event loop now, but the core is shared all the same.
const BROTLI_QUALITY = 5;

const log = getLogger(["spindle", "app", "static"]);

/** A compression worker failed a job or died; the caller sends identity. */
export class CompressionFailed extends Error {
  override name = "CompressionFailed";
}

/**
 * Runs compression jobs in worker threads, at most `maxJobs` at once; a job
 * asked for beyond that is refused at once, not queued, so the caller sends
 * the uncompressed form. Workers start on demand and stop when idle.
 */
export class Compressor {
  readonly maxJobs: number;
  readonly #idleMs: number;
  readonly #source: string;
  /** A blob: URL of the worker's program, made on first use. */
  #url: string | undefined;
  /** Started workers waiting for a job. */
  readonly #idle: Worker[] = [];
  #running = 0;
  #workers = 0;
  #peak = 0;
  #refused = 0;
  /** A worker failed to start or crashed: compression is off from then on. */
  #broken = false;

  /** `source` is the workers' program; tests pass a broken one. */
  constructor(
    maxJobs: number,
    idleMs = IDLE_WORKER_MS,
    source = WORKER_SOURCE,
  ) {
    this.maxJobs = maxJobs;
    this.#idleMs = idleMs;
    this.#source = source;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** Worker threads started and not yet let go. */
  get workers(): number {
    return this.#workers;
  }

  /** The most jobs that ever ran at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Jobs refused because `maxJobs` were running. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Compresses what `load()` gives off the event loop. Returns undefined at
   * once, calling nothing, when `maxJobs` jobs are running. Rejects with
   * what `load()` threw, or {@link CompressionFailed} (logged here).
   */
  tryRun(
    coding: Coding,
    load: () => Uint8Array | Promise<Uint8Array>,
  ): Promise<Uint8Array> | undefined {
    if (this.#broken || this.#running >= this.maxJobs) {
      this.#refused++;
      return undefined;
    }
    this.#running++;
    if (this.#running > this.#peak) this.#peak = this.#running;
    return (async () => {
      try {
        return await this.#post(coding, await load());
      } finally {
        this.#running--;
      }
    })();
  }

  #post(coding: Coding, bytes: Uint8Array): Promise<Uint8Array> {
    const worker = this.#idle.pop() ?? this.#start();
    return new Promise((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<CompressReply>) => {
        const reply = e.data;
        if (reply.type === "idle") return; // crossed this job: not idle
        worker.onmessage = (e: MessageEvent<CompressReply>) => {
          if (e.data.type === "idle") this.#letGo(worker);
        };
        worker.onerror = (e) => this.#fail(worker, e);
        this.#idle.push(worker);
        if (reply.type === "done") return resolve(reply.bytes);
        log.warning("Compression failed: {why}", { why: reply.message });
        reject(new CompressionFailed(reply.message));
      };
      worker.onerror = (e) => {
        this.#fail(worker, e);
        reject(new CompressionFailed(e.message));
      };
      // The bytes are copied, not moved: they may be the file cache's.
      const job: CompressJob = {
        coding,
        bytes,
        brotliQuality: BROTLI_QUALITY,
        idleMs: this.#idleMs,
      };
      worker.postMessage(job);
    });
  }

  #start(): Worker {
    this.#url ??= URL.createObjectURL(
      new Blob([this.#source], { type: "text/javascript" }),
    );
    // Starting a worker holds the event loop ~15 ms: idle ones are kept a while.
    this.#workers++;
    return new Worker(this.#url, { type: "module", name: "spindle-compress" });
  }

  /** Stops an idle worker; one given a job meanwhile is not idle. */
  #letGo(worker: Worker): void {
    const at = this.#idle.indexOf(worker);
    if (at === -1) return;
    this.#idle.splice(at, 1);
    this.#workers--;
    worker.terminate();
  }

  #fail(worker: Worker, e: ErrorEvent): void {
    e.preventDefault(); // not the process's death: files go uncompressed
    if (!this.#broken) {
      log.error("Compression worker failed; files go uncompressed: {why}", {
        why: e.message,
      });
    }
    this.#broken = true;
    if (this.#idle.includes(worker)) this.#letGo(worker);
    else {
      this.#workers--;
      worker.terminate();
    }
  }
}

const shared = new Map<number, Compressor>();

/**
 * The thread's compressor for a cap: static handlers share it, so the cap
 * holds for the thread (an engine) however many handlers it runs.
 */
export function sharedCompressor(maxJobs: number): Compressor {
  let compressor = shared.get(maxJobs);
  if (compressor === undefined) {
    compressor = new Compressor(maxJobs);
    shared.set(maxJobs, compressor);
  }
  return compressor;
}
