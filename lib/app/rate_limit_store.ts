/**
 * Where the rate limiter keeps its counts: this engine's memory
 * (`RateLimiter` in middleware/rate_limit.ts), Redis, shared by every
 * instance (redis_rate_limit.ts), or any other store that counts the same
 * way. Every store runs the one sliding-window rule below, so a client gets
 * the same answer and the same RateLimit fields whichever store counts it.
 */

/**
 * A request budget: `limit` requests per `windowMs`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RateLimitPolicy } from "@spindle/server";
 *
 * const perMinute: RateLimitPolicy = { limit: 60, windowMs: 60_000 };
 * assert.equal(perMinute.windowMs / perMinute.limit, 1_000);
 * ```
 */
export interface RateLimitPolicy {
  /** Requests allowed per client in one window. */
  readonly limit: number;
  /** The window, in milliseconds. */
  readonly windowMs: number;
}

/**
 * The verdict on one request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RateDecision } from "@spindle/server";
 *
 * const refused: RateDecision = {
 *   allowed: false,
 *   limit: 10,
 *   remaining: 0,
 *   resetSeconds: 4,
 *   retryAfterSeconds: 4, // sent as Retry-After with the 429
 * };
 * assert.equal(refused.allowed, false);
 * ```
 */
export interface RateDecision {
  /** True when the request is within the budget; false: answer 429. */
  readonly allowed: boolean;
  /** The budget per window, for `RateLimit-Limit`. */
  readonly limit: number;
  /** Requests left in the sliding window after this one. */
  readonly remaining: number;
  /** Seconds until the current window ends and its older half stops counting. */
  readonly resetSeconds: number;
  /** Seconds until a refused client may try again; 0 when allowed. */
  readonly retryAfterSeconds: number;
}

/**
 * Counts requests per client key against one policy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type RateDecision, rateLimit, type RateLimitStore, Router, serve, text } from "@spindle/server";
 *
 * // A store that allows every request: a shared store (Redis) has this shape.
 * const everyone: RateLimitStore = {
 *   limit: 10,
 *   windowMs: 1_000,
 *   hit: (): RateDecision => ({
 *     allowed: true,
 *     limit: 10,
 *     remaining: 9,
 *     resetSeconds: 1,
 *     retryAfterSeconds: 0,
 *   }),
 * };
 * const app = new Router().use(rateLimit(everyone)).get("/", () => text("ok"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(res.status, 200);
 * await res.body?.cancel();
 * ```
 */
export interface RateLimitStore extends RateLimitPolicy {
  /**
   * Counts one request from `key` if the budget allows it. A store across
   * the network answers with a promise, and rejects when it cannot answer
   * (the middleware's fallback then decides).
   */
  hit(key: string): RateDecision | Promise<RateDecision>;
  /** Lets go of connections and timers; the store is not used again. */
  close?(): Promise<void>;
}

/**
 * The sliding-window rule, from the counts of the current fixed window
 * (before this request) and the one before it: the previous window counts
 * in proportion to how much of it the sliding window still covers.
 * `allowed` is passed by a store that decided atomically elsewhere (a
 * Redis script running this same rule); by default it is computed here.
 */
export function slidingWindow(
  policy: RateLimitPolicy,
  previous: number,
  current: number,
  elapsedMs: number,
  allowed?: boolean,
): RateDecision {
  const { limit, windowMs: w } = policy;
  const used = previous * ((w - elapsedMs) / w) + current;
  const resetSeconds = Math.max(1, Math.ceil((w - elapsedMs) / 1000));
  if (!(allowed ?? used + 1 <= limit)) {
    return {
      allowed: false,
      limit,
      remaining: 0,
      resetSeconds,
      retryAfterSeconds: Math.max(
        1,
        Math.ceil(waitMs(policy, previous, current, elapsedMs) / 1000),
      ),
    };
  }
  return {
    allowed: true,
    limit,
    remaining: Math.max(0, Math.floor(limit - used - 1)),
    resetSeconds,
    retryAfterSeconds: 0,
  };
}

/** Time from now until one more request fits the sliding window. */
function waitMs(
  { limit, windowMs: w }: RateLimitPolicy,
  previous: number,
  current: number,
  elapsedMs: number,
): number {
  const room = limit - 1 - current; // for the previous window's share
  // Still in this window: wait until previous * (w - t) / w <= room.
  if (room >= 0 && previous > 0) {
    const t = w * (1 - room / previous);
    if (t < w) return Math.max(t - elapsedMs, 0);
  }
  // Next window: this window's count becomes the fading previous one.
  const t = current > limit - 1 ? w * (1 - (limit - 1) / current) : 0;
  return w - elapsedMs + t;
}
