/** The counters, in row order; gauges go up and down, the rest only grow. */
export const ENGINE_FIELDS = [
  ["accepted", "counter"],
  ["active", "gauge"],
  ["queued", "gauge"],
  ["rejected", "counter"],
  ["requests", "counter"],
  ["bytesIn", "counter"],
  ["bytesOut", "counter"],
] as const;

export type EngineField = typeof ENGINE_FIELDS[number][0];

const ACCEPTED = 0;
const ACTIVE = 1;
const QUEUED = 2;
const REJECTED = 3;
const REQUESTS = 4;
const BYTES_IN = 5;
const BYTES_OUT = 6;

/**
 * Counters the engine keeps for health and metrics. They live in a
 * Float64Array row: its own by default, or a row of a table the `--workers`
 * engines share, which only this engine writes, so plain stores do and no
 * locking is needed. `draining` also tells the app, by a signal, that
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
  /** The counters, indexed in {@link ENGINE_FIELDS} order. */
  readonly row: Float64Array;
  #drain = new AbortController();

  /** Counters in `row`: their own by default, or a shared table's row for this engine. */
  constructor(row: Float64Array = new Float64Array(ENGINE_FIELDS.length)) {
    if (row.length < ENGINE_FIELDS.length) {
      throw new RangeError("EngineStats row is too short");
    }
    this.row = row;
  }

  /** Connections accepted since start. */
  get accepted(): number {
    return this.row[ACCEPTED];
  }
  set accepted(n: number) {
    this.row[ACCEPTED] = n;
  }
  /** Connections being handled now. */
  get active(): number {
    return this.row[ACTIVE];
  }
  set active(n: number) {
    this.row[ACTIVE] = n;
  }
  /** Connections waiting for a handler slot. */
  get queued(): number {
    return this.row[QUEUED];
  }
  set queued(n: number) {
    this.row[QUEUED] = n;
  }
  /** Connections refused with 503 because handlers and queue were full. */
  get rejected(): number {
    return this.row[REJECTED];
  }
  set rejected(n: number) {
    this.row[REJECTED] = n;
  }
  /** Requests answered (any status). */
  get requests(): number {
    return this.row[REQUESTS];
  }
  set requests(n: number) {
    this.row[REQUESTS] = n;
  }
  /** Bytes read from client sockets. */
  get bytesIn(): number {
    return this.row[BYTES_IN];
  }
  set bytesIn(n: number) {
    this.row[BYTES_IN] = n;
  }
  /** Bytes written to client sockets. */
  get bytesOut(): number {
    return this.row[BYTES_OUT];
  }
  set bytesOut(n: number) {
    this.row[BYTES_OUT] = n;
  }

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
