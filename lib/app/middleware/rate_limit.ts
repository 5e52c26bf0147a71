/**
 * Per-client rate limiting with a sliding window counter: each client keeps
 * the count of the current and the previous fixed window, and the previous
 * one counts in proportion to how much of it the sliding window still
 * covers. O(1) memory per client, whatever the limit; idle clients are
 * swept and the table has a hard cap, so a flood of addresses cannot grow it.
 */
import { HttpError, STATUS } from "../../http/errors.ts";
import { clientKey } from "../client_addr.ts";
import type { AppRequest } from "../request.ts";
import { errorWithHeaders, withHeaders } from "../response.ts";
import { afterNext, type Middleware } from "../chain.ts";

/** A request budget: `limit` requests per `windowMs`. */
export interface RateLimitPolicy {
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateLimitOptions extends RateLimitPolicy {
  /** Clients tracked at once; past it the least recently seen is dropped. */
  readonly maxEntries?: number;
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

interface Counter {
  windowStart: number;
  previous: number;
  current: number;
}

// 10k clients x ~100 bytes is about 1 MB: fine on any box, bounded on all.
const DEFAULT_MAX_ENTRIES = 10_000;

/** The counting table, separate from HTTP so window edges test with numbers alone. */
export class RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly maxEntries: number;
  readonly #now: () => number;
  readonly #counters = new Map<string, Counter>();
  #lastSweep = -Infinity;

  constructor(options: RateLimitOptions) {
    if (!(options.limit >= 1 && options.windowMs >= 1)) {
      throw new TypeError("Rate limit needs limit >= 1 and windowMs >= 1");
    }
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = options.now ?? Date.now;
  }

  /** Clients tracked now. */
  get size(): number {
    return this.#counters.size;
  }

  /** Counts one request from `key` if the budget allows it. */
  hit(key: string): RateDecision {
    const now = this.#now();
    const w = this.windowMs;
    const windowStart = Math.floor(now / w) * w;
    if (now - this.#lastSweep >= w) this.#sweep(windowStart);
    let counter = this.#counters.get(key);
    if (counter === undefined) {
      if (this.#counters.size >= this.maxEntries) this.#evictOldest();
      counter = { windowStart, previous: 0, current: 0 };
      this.#counters.set(key, counter);
    } else if (counter.windowStart !== windowStart) {
      counter.previous = counter.windowStart === windowStart - w
        ? counter.current
        : 0;
      counter.current = 0;
      counter.windowStart = windowStart;
      // Re-insert so Map order is roughly least recently seen first.
      this.#counters.delete(key);
      this.#counters.set(key, counter);
    }
    const elapsed = now - windowStart;
    const used = counter.previous * ((w - elapsed) / w) + counter.current;
    const resetSeconds = Math.max(1, Math.ceil((w - elapsed) / 1000));
    if (used + 1 > this.limit) {
      return {
        allowed: false,
        limit: this.limit,
        remaining: 0,
        resetSeconds,
        retryAfterSeconds: Math.max(
          1,
          Math.ceil(this.#waitMs(counter, elapsed) / 1000),
        ),
      };
    }
    counter.current++;
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
    const counter = this.#counters.get(key);
    if (counter !== undefined && counter.current > 0) counter.current--;
  }

  /** Time from now until one more request fits the sliding window. */
  #waitMs(counter: Counter, elapsed: number): number {
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

  /** Drops clients whose counts no longer matter: both windows are over. */
  #sweep(windowStart: number): void {
    this.#lastSweep = this.#now();
    for (const [key, counter] of this.#counters) {
      if (counter.windowStart < windowStart - this.windowMs) {
        this.#counters.delete(key);
      }
    }
  }

  #evictOldest(): void {
    const oldest = this.#counters.keys().next();
    if (!oldest.done) this.#counters.delete(oldest.value);
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
