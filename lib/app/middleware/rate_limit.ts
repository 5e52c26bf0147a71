/**
 * Per-client rate limiting with a sliding window counter: each client keeps
 * the count of the current and the previous fixed window, and the previous
 * one counts in proportion to how much of it the sliding window still
 * covers. O(1) memory per client, whatever the limit. The counts live in a
 * {@link RateStore}: this engine's memory (idle clients swept, a hard cap,
 * so a flood of addresses cannot grow it), or a table every engine shares.
 */
import { HttpError, STATUS } from "../../http/errors.ts";
import { clientKey } from "../client_addr.ts";
import type { AppRequest } from "../request.ts";
import { errorWithHeaders, withHeaders } from "../response.ts";
import { afterNext, type Middleware } from "../chain.ts";
import {
  MemoryRateStore,
  type RateStore,
  type WindowCounts,
} from "./rate_store.ts";

/** A request budget: `limit` requests per `windowMs`. */
export interface RateLimitPolicy {
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateLimitOptions extends RateLimitPolicy {
  /**
   * Clients tracked at once by the default store; past it the least
   * recently seen is dropped.
   */
  readonly maxEntries?: number;
  /**
   * Where the counts live; default: this engine's memory. `--workers`
   * engines share one table (lib/shared/rate_table.ts).
   */
  readonly store?: RateStore;
  /** Clock in ms (tests inject one). */
  readonly now?: () => number;
  /** Called once per refused request (metrics). */
  readonly onLimited?: (req: AppRequest) => void;
}

/** The verdict on one request. */
export interface RateDecision {
  readonly allowed: boolean;
  readonly limit: number;
  /** Requests left in the sliding window after this one. */
  readonly remaining: number;
  /** Seconds until the current window ends and its older half stops counting. */
  readonly resetSeconds: number;
  /** Seconds until a refused client may try again; 0 when allowed. */
  readonly retryAfterSeconds: number;
}

/** The counting, separate from HTTP so window edges test with numbers alone. */
export class RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly #now: () => number;
  readonly #store: RateStore;

  constructor(options: RateLimitOptions) {
    if (!(options.limit >= 1 && options.windowMs >= 1)) {
      throw new TypeError("Rate limit needs limit >= 1 and windowMs >= 1");
    }
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
    this.#store = options.store ?? new MemoryRateStore(options.maxEntries);
  }

  /** Clients tracked now. */
  get size(): number {
    return this.#store.size;
  }

  /** Counts one request from `key` if the budget allows it. */
  hit(key: string): RateDecision {
    const now = this.#now();
    const w = this.windowMs;
    const window = Math.floor(now / w);
    const elapsed = now - window * w;
    // The share of the previous window the sliding window still covers.
    const carry = (w - elapsed) / w;
    const counts = this.#store.take(key, window, carry, this.limit);
    const used = counts.previous * carry + counts.current;
    const resetSeconds = Math.max(1, Math.ceil((w - elapsed) / 1000));
    if (!counts.taken) {
      return {
        allowed: false,
        limit: this.limit,
        remaining: 0,
        resetSeconds,
        retryAfterSeconds: Math.max(
          1,
          Math.ceil(this.#waitMs(counts, elapsed) / 1000),
        ),
      };
    }
    return {
      allowed: true,
      limit: this.limit,
      remaining: Math.max(0, Math.floor(this.limit - used - 1)),
      resetSeconds,
      retryAfterSeconds: 0,
    };
  }

  /**
   * Takes back one request counted for `key` in the current window (a
   * failed sign-in counted up front that turned out good).
   */
  forgive(key: string): void {
    this.#store.giveBack(key, Math.floor(this.#now() / this.windowMs));
  }

  /** Time from now until one more request fits the sliding window. */
  #waitMs(counter: WindowCounts, elapsed: number): number {
    const w = this.windowMs;
    const room = this.limit - 1 - counter.current; // for the previous window's share
    // Still in this window: wait until previous * (w - t) / w <= room.
    if (room >= 0 && counter.previous > 0) {
      const t = w * (1 - room / counter.previous);
      if (t < w) return Math.max(t - elapsed, 0);
    }
    // Next window: this window's count becomes the fading previous one.
    const t = counter.current > this.limit - 1
      ? w * (1 - (this.limit - 1) / counter.current)
      : 0;
    return w - elapsed + t;
  }
}

/** The RateLimit header fields (IETF draft, widely used `RateLimit-*` form). */
function rateHeaders(
  d: RateDecision,
  policy: string,
): Record<string, string> {
  return {
    "ratelimit-limit": String(d.limit),
    "ratelimit-remaining": String(d.remaining),
    "ratelimit-reset": String(d.resetSeconds),
    "ratelimit-policy": policy,
  };
}

/**
 * Refuses a client over its budget with 429, `Retry-After` and the RateLimit
 * fields; allowed replies carry the RateLimit fields too. Clients are keyed
 * by `req.client` (trust-proxy aware), IPv6 by /64.
 */
export function rateLimit(options: RateLimitOptions | RateLimiter): Middleware {
  const limiter = options instanceof RateLimiter
    ? options
    : new RateLimiter(options);
  const onLimited = options instanceof RateLimiter
    ? undefined
    : options.onLimited;
  const policy = `${limiter.limit};w=${Math.ceil(limiter.windowMs / 1000)}`;
  return (req, next) => {
    const decision = limiter.hit(clientKey(req.client));
    const headers = rateHeaders(decision, policy);
    if (!decision.allowed) {
      onLimited?.(req);
      throw new HttpError(
        STATUS.TooManyRequests,
        `Rate limit hit by ${req.client}`,
        {
          expose:
            `Too many requests: try again in ${decision.retryAfterSeconds} s`,
          headers: {
            ...headers,
            "retry-after": String(decision.retryAfterSeconds),
          },
        },
      );
    }
    return afterNext(
      req,
      next,
      (_req, reply) => withHeaders(reply, headers),
      (_req, err) => {
        throw err instanceof HttpError ? errorWithHeaders(err, headers) : err;
      },
    );
  };
}
