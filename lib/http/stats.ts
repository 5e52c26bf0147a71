/**
 * Counters the engine keeps for health and metrics; plain fields, no
 * locking needed. `draining` also tells the app, by a signal, that
 * shutdown began.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "@spindle/server";
 *
 * await using server = serve({ port: 0, accessLog: false }, () => ({
 *   status: 204,
 * }));
 * await (await fetch(`http://127.0.0.1:${server.port}/`)).body?.cancel();
 * assert.equal(server.stats.requests, 1);
 * assert.equal(server.stats.draining, false);
 * ```
 */
export class EngineStats {
  /** `Date.now()` when the server started. */
  readonly startedAt: number = Date.now();
  /** Connections accepted since start. */
  accepted = 0;
  /** Connections being handled now. */
  active = 0;
  /** Connections waiting for a handler slot. */
  queued = 0;
  /** Connections refused with 503 because handlers and queue were full. */
  rejected = 0;
  /** Requests answered (any status). */
  requests = 0;
  /** Bytes read from client sockets. */
  bytesIn = 0;
  /** Bytes written to client sockets. */
  bytesOut = 0;
  #drain = new AbortController();

  /** True once shutdown began: health checks should answer 503. */
  get draining(): boolean {
    return this.#drain.signal.aborted;
  }
  /** Set by the server when shutdown begins; true aborts {@link drainSignal}. */
  set draining(on: boolean) {
    if (on) this.#drain.abort();
    else if (this.#drain.signal.aborted) this.#drain = new AbortController();
  }

  /**
   * Aborts when shutdown begins: replies that never end on their own (an
   * event stream) end on it, so a drain does not wait `shutdownTimeoutMs`
   * for them.
   */
  get drainSignal(): AbortSignal {
    return this.#drain.signal;
  }
}
