/**
 * The floor for `--workers N` and `deno serve --parallel`: the bare loop of
 * bare_loop.ts in N Worker threads (the second argument, default 2), each
 * on its own listener of 127.0.0.1 and the port given as the first
 * argument, shared with `reusePort` (Linux; needs `--unstable-net`) so the
 * kernel spreads connections across them. A worker accepts only once every
 * worker listens: a client that got in started no single-worker server.
 * Prints "worker <i> listening" per worker; stops on SIGTERM.
 */
import { bareLoop } from "./bare_loop.ts";

/** From the main thread to a worker. */
type ToWorker = { type: "listen"; port: number } | { type: "accept" };

/** The Worker scope's own names, which `Deno`'s global types leave out. */
interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: unknown): void;
}

if ("WorkerGlobalScope" in globalThis) {
  const scope = globalThis as unknown as WorkerScope;
  let listener: Deno.TcpListener | undefined;
  scope.onmessage = (e) => {
    if (e.data.type === "listen") {
      listener = Deno.listen({
        hostname: "127.0.0.1",
        port: e.data.port,
        reusePort: true,
      });
      scope.postMessage("listening");
    } else if (listener) {
      bareLoop(listener);
    }
  };
} else {
  const port = Number(Deno.args[0] ?? 0);
  const count = Number(Deno.args[1] ?? 2);
  const workers = Array.from(
    { length: count },
    (_, i) =>
      new Worker(import.meta.url, { type: "module", name: `bare loop ${i}` }),
  );
  await Promise.all(
    workers.map((worker, i) =>
      new Promise<void>((resolve, reject) => {
        worker.onerror = (e) => reject(e.error ?? new Error(e.message));
        worker.onmessage = () => {
          console.log(`worker ${i} listening`);
          resolve();
        };
        worker.postMessage({ type: "listen", port } satisfies ToWorker);
      })
    ),
  );
  for (const worker of workers) {
    worker.postMessage({ type: "accept" } satisfies ToWorker);
  }
}
