/**
 * Waiting for another engine to change a shared word, without blocking the
 * event loop: Atomics.waitAsync. A pending waitAsync does not keep Deno's
 * event loop alive, so a timer for the same time does.
 */

/**
 * Resolves once `memory[index]` no longer holds `value` (after an
 * Atomics.notify), after `timeoutMs`, or once `signal` aborts (the
 * waitAsync itself then runs out unseen, holding nothing).
 */
export function waitChange(
  memory: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<"ok" | "not-equal" | "timed-out" | "aborted"> {
  const wait = Atomics.waitAsync(memory, index, value, timeoutMs);
  if (!wait.async) return Promise.resolve(wait.value);
  if (signal?.aborted) return Promise.resolve("aborted");
  return new Promise((resolve) => {
    const done = (outcome: "ok" | "not-equal" | "timed-out" | "aborted") => {
      clearTimeout(alive);
      signal?.removeEventListener("abort", onAbort);
      resolve(outcome);
    };
    const onAbort = () => done("aborted");
    const alive = setTimeout(() => {}, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    wait.value.then(done);
  });
}
