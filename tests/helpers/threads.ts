/** Runs tasks of tests/fixtures/shared_worker.ts in real threads. */

const WORKER = new URL("../fixtures/shared_worker.ts", import.meta.url);

/** Runs each task in its own worker, all at once; their replies in order. */
export async function inThreads<T>(tasks: readonly unknown[]): Promise<T[]> {
  const workers = tasks.map(() => new Worker(WORKER, { type: "module" }));
  try {
    return await Promise.all(
      workers.map((w, i) =>
        new Promise<T>((resolve, reject) => {
          w.onmessage = (e) => resolve(e.data);
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(e.message));
          };
          w.postMessage(tasks[i]);
        })
      ),
    );
  } finally {
    for (const w of workers) w.terminate();
  }
}
