/**
 * More engines, one per core: extra Worker threads that each run the same
 * entry module and listen on the same port with `reusePort` (Linux; needs
 * `--unstable-net`). The kernel spreads new connections across them.
 */

/** A PEM certificate chain and key, as the main thread hands them on. */
export interface WorkerCertificate {
  readonly cert: string;
  readonly key: string;
}

/** Messages between the main thread and an engine worker. */
export type WorkerMessage =
  | {
    readonly type: "start";
    readonly args: readonly string[];
    /** The HTTPS pair: workers never read or make their own. */
    readonly certificate?: WorkerCertificate;
  }
  | { readonly type: "certificate"; readonly certificate: WorkerCertificate }
  | { readonly type: "listening"; readonly port: number }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "shutdown" }
  | { readonly type: "stopped" };

/** Extra engine threads started by {@link startWorkers}. */
export interface WorkerPool {
  readonly size: number;
  /** Hands every worker a new HTTPS pair for its next handshakes. */
  setCertificate(certificate: WorkerCertificate): void;
  /** Asks every worker to shut down gracefully and waits for all of them. */
  shutdown(): Promise<void>;
}

/**
 * Starts `count` workers running `entry` (a module that calls
 * {@link runAsWorker}), each given `args`. Resolves once all listen;
 * rejects (and stops the ones started) if any fails to.
 */
export async function startWorkers(
  entry: URL,
  count: number,
  args: readonly string[],
  certificate?: WorkerCertificate,
): Promise<WorkerPool> {
  const workers: Worker[] = [];
  const stopped: Promise<void>[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(entry, {
        type: "module",
        name: `spindle-${i + 1}`,
      });
      workers.push(worker);
      let onStopped!: () => void;
      stopped.push(new Promise((r) => onStopped = r));
      await new Promise<void>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<WorkerMessage>) => {
          if (e.data.type === "listening") resolve();
          else if (e.data.type === "failed") reject(new Error(e.data.message));
          else if (e.data.type === "stopped") onStopped();
        };
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
          onStopped();
        };
        worker.postMessage(
          { type: "start", args, certificate } satisfies WorkerMessage,
        );
      });
    }
  } catch (err) {
    for (const w of workers) w.terminate();
    throw err;
  }
  return {
    size: workers.length,
    setCertificate(certificate) {
      for (const w of workers) {
        w.postMessage(
          { type: "certificate", certificate } satisfies WorkerMessage,
        );
      }
    },
    async shutdown() {
      for (const w of workers) {
        w.postMessage({ type: "shutdown" } satisfies WorkerMessage);
      }
      await Promise.all(stopped);
      for (const w of workers) w.terminate();
    },
  };
}

/** The HTTPS pair a worker was given, and a way to hear of the next one. */
export interface WorkerTls {
  readonly certificate: WorkerCertificate;
  /** `replace` is called with each new pair the main thread sends. */
  onCertificate(replace: (certificate: WorkerCertificate) => void): void;
}

/**
 * The worker side: waits for "start", runs `serveUntilStopped(args, stop)`
 * where `stop` resolves on "shutdown", and reports back.
 */
export function runAsWorker(
  serveUntilStopped: (
    args: readonly string[],
    stop: Promise<void>,
    listening: (port: number) => void,
    tls: WorkerTls | undefined,
  ) => Promise<number>,
): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<WorkerMessage>) => void) | null;
    postMessage(m: WorkerMessage): void;
  };
  let requestStop!: () => void;
  const stop = new Promise<void>((r) => requestStop = r);
  let replace: ((certificate: WorkerCertificate) => void) | undefined;
  scope.onmessage = (e) => {
    if (e.data.type === "shutdown") return requestStop();
    if (e.data.type === "certificate") return replace?.(e.data.certificate);
    if (e.data.type !== "start") return;
    const certificate = e.data.certificate;
    serveUntilStopped(
      e.data.args,
      stop,
      (port) => scope.postMessage({ type: "listening", port }),
      certificate === undefined ? undefined : {
        certificate,
        onCertificate: (fn) => replace = fn,
      },
    )
      .then((code) => {
        scope.postMessage(
          code === 0
            ? { type: "stopped" }
            : { type: "failed", message: `exit code ${code}` },
        );
      })
      .catch((err) =>
        scope.postMessage({ type: "failed", message: String(err) })
      );
  };
}

/** True inside a Worker thread. */
export function inWorker(): boolean {
  return typeof (globalThis as { WorkerGlobalScope?: unknown })
    .WorkerGlobalScope !== "undefined";
}
