/**
 * The numbers behind each connection's deadlines, worked out once per
 * server from its limits: the usual ones, the tighter ones used while the
 * server is busy, and the time budget of a minimum transfer rate.
 */
import type { Limits } from "../config.ts";

/** Every timeout a connection arms, plain and busy, in milliseconds. */
export interface Timeouts {
  readonly headMs: number;
  readonly headBusyMs: number;
  readonly keepAliveMs: number;
  readonly keepAliveBusyMs: number;
  readonly bodyGapMs: number;
  readonly bodyGapBusyMs: number;
  readonly writeGapMs: number;
  readonly writeGapBusyMs: number;
  readonly graceMs: number;
  readonly graceBusyMs: number;
  /** Milliseconds each body byte buys; 0 without a minimum rate. */
  readonly bodyMsPerByte: number;
  /** Milliseconds each reply byte buys; 0 without a minimum rate. */
  readonly sendMsPerByte: number;
}

/** The timeouts of `limits`; throws RangeError for a divisor under 1. */
export function timeoutsOf(limits: Limits): Timeouts {
  const d = limits.busyTimeoutDivisor;
  if (!(d >= 1)) throw new RangeError("busyTimeoutDivisor must be at least 1");
  const busy = (ms: number) => Math.max(1, Math.ceil(ms / d));
  const perByte = (rate: number) => rate > 0 ? 1000 / rate : 0;
  return Object.freeze({
    headMs: limits.headTimeoutMs,
    headBusyMs: busy(limits.headTimeoutMs),
    keepAliveMs: limits.keepAliveTimeoutMs,
    keepAliveBusyMs: busy(limits.keepAliveTimeoutMs),
    bodyGapMs: limits.bodyTimeoutMs,
    bodyGapBusyMs: busy(limits.bodyTimeoutMs),
    writeGapMs: limits.writeTimeoutMs,
    writeGapBusyMs: busy(limits.writeTimeoutMs),
    graceMs: limits.minRateGraceMs,
    graceBusyMs: busy(limits.minRateGraceMs),
    bodyMsPerByte: perByte(limits.minBodyBytesPerSec),
    sendMsPerByte: perByte(limits.minSendBytesPerSec),
  });
}

/**
 * How much longer a client may keep us waiting before it is slower than a
 * minimum rate: the grace, plus what the bytes it moved bought, less the
 * time we already waited on it. Time the server spent elsewhere (a handler
 * between two body reads, a stream producing the next piece) never counts.
 * Infinity when there is no minimum.
 */
export function rateBudgetMs(
  graceMs: number,
  msPerByte: number,
  bytes: number,
  waitedMs: number,
): number {
  if (msPerByte === 0) return Infinity;
  return graceMs + bytes * msPerByte - waitedMs;
}
