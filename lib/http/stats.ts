/** Counters the engine keeps for health and metrics; plain fields, no locking needed. */
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
  /** Bytes read from and written to client sockets. */
  bytesIn = 0;
  bytesOut = 0;
  /** True once shutdown began: health checks should answer 503. */
  draining = false;
}
