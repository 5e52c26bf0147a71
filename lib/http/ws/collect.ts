/**
 * Minor collections asked for as big messages come in, so the memory of
 * the dead ones is reused while it is still in the CPU's cache.
 *
 * A received message is a fresh ArrayBuffer the app owns; V8 frees the
 * dead ones only when it collects, about every 64 MiB of them (its
 * external-memory limit), so each new buffer is memory last touched
 * 64 MiB of messages ago: clearing it and reading into it run at memory
 * speed. With a minor collection (a scavenge: only the young objects are
 * visited) after every {@link COLLECT_EVERY_BYTES} of big message
 * buffers, the next ones reuse chunks still in the L2 cache. On this
 * machine a loop making 256 KiB buffers spent 0.55x the CPU so, and the
 * WebSocket echo of 256 KiB messages 0.65-0.68x (bench/README.md,
 * session 25).
 *
 * Only where the runtime gives us V8's `gc` under the name
 * {@link COLLECTOR_GLOBAL} (`--v8-flags=--expose-gc-as=...`, which the
 * launcher passes to the engine): it is taken when this module loads (the
 * first WebSocket upgrade) and the global set to undefined, so the app
 * sees no `gc` of ours after that. Elsewhere nothing happens.
 *
 * @module
 */

/** The global V8 puts `gc` under when the engine runs with `--expose-gc-as=` this. */
export const COLLECTOR_GLOBAL = "__spindleCollect";

/**
 * Big message buffers made between two minor collections: the size of
 * this machine's per-core L2 cache. 8 MiB measured 0.83x the CPU of none
 * where 2 MiB measured 0.65x.
 */
export const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/** Message buffers smaller than this are not counted (their memory is malloc's small bins, warm). */
export const COLLECT_MIN_BYTES = 64 * 1024;

/** V8's `gc` as `--expose-gc`/`--expose-gc-as` gives it. */
export type Collect = (options: { type: "minor" }) => void;

let collect: Collect | undefined = takeCollector();
let sinceCollect = 0;

function takeCollector(): Collect | undefined {
  const global = globalThis as Record<string, unknown>;
  const found = global[COLLECTOR_GLOBAL];
  if (typeof found !== "function") return undefined;
  // V8 makes the property non-configurable, but writable.
  global[COLLECTOR_GLOBAL] = undefined;
  return found as Collect;
}

/**
 * A message buffer of `bytes` was just made for the app: counted if big,
 * and a minor collection asked for once {@link COLLECT_EVERY_BYTES} are.
 */
export function noteMessageBuffer(bytes: number): void {
  if (collect === undefined || bytes < COLLECT_MIN_BYTES) return;
  sinceCollect += bytes;
  if (sinceCollect < COLLECT_EVERY_BYTES) return;
  sinceCollect = 0;
  collect({ type: "minor" });
}

/** Replaces the collector (tests); returns the one before. */
export function setCollector(next: Collect | undefined): Collect | undefined {
  const before = collect;
  collect = next;
  sinceCollect = 0;
  return before;
}
