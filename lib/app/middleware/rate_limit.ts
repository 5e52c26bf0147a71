/**
 * Per-client rate limiting with a sliding window counter: each client keeps
 * the count of the current and the previous fixed window, and the previous
 * one counts in proportion to how much of it the sliding window still
 * covers. O(1) memory per client, whatever the limit; idle clients are
 * swept and the table has a hard cap, so a flood of addresses cannot grow it.
 */
import { batchNow } from "../../http/clock.ts";
import { HttpError, STATUS } from "../../http/errors.ts";
import { clientKey } from "../client_addr.ts";
import type { Reply, ReplyHeaders } from "../../http/handler.ts";
import type { AppRequest } from "../app_request.ts";
import { errorWithHeaders } from "../replies.ts";
import { FixedFields } from "../../http/response.ts";
import type { Middleware, Next } from "../chain.ts";
import {
  type RateDecision,
  type RateLimitPolicy,
  type RateLimitStore,
  slidingWindow,
} from "../rate_limit_store.ts";

export type { RateDecision, RateLimitPolicy, RateLimitStore };

/**
 * Options for {@link rateLimit}: the budget per client, and how clients are told apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rateLimit, type RateLimitOptions } from "@spindle/server";
 *
 * const options: RateLimitOptions = {
 *   limit: 100,
 *   windowMs: 10_000,
 *   maxEntries: 50_000, // clients tracked at once
 * };
 * assert.ok(rateLimit(options)); // a middleware for `router.use()`
 * ```
 */
export interface RateLimitOptions extends RateLimitPolicy {
  /** Clients tracked at once; past it the least recently seen is dropped. */
  readonly maxEntries?: number;
  /** Clock in ms (tests inject one); by default the engine's, read once per batch of work. */
  readonly now?: () => number;
  /** Called once per refused request (metrics). */
  readonly onLimited?: (req: AppRequest) => void;
}

interface Counter {
  windowStart: number;
  previous: number;
  current: number;
}

// 10k clients x ~100 bytes is about 1 MB: fine on any box, bounded on all.
const DEFAULT_MAX_ENTRIES = 10_000;

/**
 * The counting table in this engine's memory, separate from HTTP so window
 * edges test with numbers alone. The default store, and the fallback of a
 * shared one.
 */
export class RateLimiter implements RateLimitStore {
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
    this.#now = options.now ?? batchNow;
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
    const decision = slidingWindow(
      this,
      counter.previous,
      counter.current,
      now - windowStart,
    );
    if (decision.allowed) counter.current++;
    return decision;
  }

  /**
   * Takes back one request counted for `key` in the current window (a
   * failed sign-in counted up front that turned out good).
   */
  forgive(key: string): void {
    const counter = this.#counters.get(key);
    if (counter !== undefined && counter.current > 0) counter.current--;
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
const LIMIT = "ratelimit-limit";
const REMAINING = "ratelimit-remaining";
const RESET = "ratelimit-reset";
const POLICY = "ratelimit-policy";
const RATE_FIELDS = [LIMIT, REMAINING, RESET, POLICY];

type Pair = readonly [string, string];

/**
 * The RateLimit fields of one policy, made per reply from two numbers. Limit,
 * policy and reset (which changes once a second) are fixed fields the engine
 * encodes once and copies as bytes; so are a frozen reply record's own
 * fields, ahead of them. Only the remaining count is written per reply.
 */
class RateFields {
  readonly #limit: string;
  readonly #policy: string;
  #resetSeconds = -1;
  #reset = "";
  /** Limit, policy and reset, for replies without a frozen record. */
  #ours = FixedFields.followedBy(REMAINING);
  /** Per frozen reply record: its fields (ours left out), then ours. */
  #withRecord = new WeakMap<object, FixedFields>();
  #lastRecord: ReplyHeaders | undefined;
  #lastFixed = this.#ours;

  constructor(limit: number, policy: string) {
    this.#limit = String(limit);
    this.#policy = policy;
  }

  /** The four fields as a record (for errors, where they are merged). */
  record(d: RateDecision): Record<string, string> {
    this.#setReset(d.resetSeconds);
    return {
      [LIMIT]: this.#limit,
      [REMAINING]: String(d.remaining),
      [RESET]: this.#reset,
      [POLICY]: this.#policy,
    };
  }

  /** `reply` with the four fields set, replacing any of the same names. */
  addTo(reply: Reply, d: RateDecision): Reply {
    this.#setReset(d.resetSeconds);
    const remaining: Pair = [REMAINING, decimal(d.remaining)];
    const own = reply.headers;
    let headers: ReplyHeaders;
    if (own === undefined || own === null) {
      headers = this.#ours.listWith([remaining]); // null: a JS handler's "none"
    } else if (
      own === this.#lastRecord || // known frozen: not asked again
      (!Array.isArray(own) && Object.isFrozen(own))
    ) {
      headers = this.#fixedWith(own).listWith([remaining]);
    } else {
      const more = othersOf(own);
      more.push(remaining);
      headers = this.#ours.listWith(more);
    }
    return { ...reply, headers };
  }

  #setReset(seconds: number): void {
    if (seconds === this.#resetSeconds) return;
    this.#resetSeconds = seconds;
    this.#reset = String(seconds);
    this.#ours = FixedFields.followedBy(REMAINING, {
      [LIMIT]: this.#limit,
      [POLICY]: this.#policy,
      [RESET]: this.#reset,
    });
    this.#withRecord = new WeakMap();
    this.#lastRecord = undefined;
  }

  /** The fixed fields for a frozen reply record: it cannot change. */
  #fixedWith(record: ReplyHeaders): FixedFields {
    if (record === this.#lastRecord) return this.#lastFixed;
    let fixed = this.#withRecord.get(record);
    if (fixed === undefined) {
      fixed = FixedFields.followedBy(
        REMAINING,
        othersOf(record),
        this.#ours.pairs,
      );
      this.#withRecord.set(record, fixed);
    }
    this.#lastRecord = record;
    return this.#lastFixed = fixed;
  }
}

/** "0" to "999", and the same with leading zeros to three digits. */
const DIGITS = Array.from({ length: 1000 }, (_, i) => String(i));
const DIGITS3 = DIGITS.map((s) => s.padStart(3, "0"));

/**
 * A count as decimal text, for RateLimit-Remaining. `String(n)` of a count
 * that changes every request misses V8's small cache of spellings and calls
 * into the runtime; joining these pieces does not. Anything but a whole
 * number from 0 to 2^53 is left to `String()`.
 */
function decimal(n: number): string {
  if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) {
    return String(n);
  }
  let low = "";
  while (n >= 1000) {
    const high = Math.floor(n / 1000);
    low = DIGITS3[n - high * 1000] + low;
    n = high;
  }
  return DIGITS[n] + low;
}

/** A reply's fields as a list, without those named as ours. */
function othersOf(headers: ReplyHeaders): Pair[] {
  const pairs: Pair[] = [];
  if (Array.isArray(headers)) {
    for (const [name, value] of headers as ReadonlyArray<Pair>) {
      if (!RATE_FIELDS.includes(name.toLowerCase())) pairs.push([name, value]);
    }
  } else {
    const record = headers as Readonly<Record<string, string>>;
    for (const name in record) {
      if (!RATE_FIELDS.includes(name.toLowerCase())) {
        pairs.push([name, record[name]]);
      }
    }
  }
  return pairs;
}

/**
 * What else `rateLimit()` does besides counting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rateLimit, type RateLimitHooks } from "@spindle/server";
 *
 * let refused = 0;
 * const hooks: RateLimitHooks = {
 *   exemptPaths: ["/health"], // the balancer's checks are never counted
 *   onLimited: () => refused++,
 * };
 * const layer = rateLimit({ limit: 10, windowMs: 1_000 }, hooks);
 * assert.ok(layer !== undefined && refused === 0);
 * ```
 */
export interface RateLimitHooks {
  /** Called once per refused request (metrics); for a store, as options carry their own. */
  readonly onLimited?: (req: AppRequest) => void;
  /** Canonical paths neither counted nor refused, such as a load balancer's health check. */
  readonly exemptPaths?: readonly string[];
}

/**
 * Refuses a client over its budget with 429, `Retry-After` and the RateLimit
 * fields; allowed replies carry the RateLimit fields too. Clients are keyed
 * by `req.client` (trust-proxy aware), IPv6 by /64. Counts in this engine's
 * memory, or in a store (shared by instances or workers); a store across
 * the network makes the check asynchronous, the in-memory one stays not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rateLimit, Router, serve, text } from "@spindle/server";
 *
 * const app = new Router()
 *   .use(rateLimit({ limit: 2, windowMs: 60_000 }))
 *   .get("/", () => text("ok"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const statuses = [];
 * for (let i = 0; i < 3; i++) {
 *   const res = await fetch(`http://127.0.0.1:${server.port}/`);
 *   await res.body?.cancel();
 *   statuses.push(res.status);
 * }
 * assert.deepEqual(statuses, [200, 200, 429]);
 * ```
 */
export function rateLimit(
  options: RateLimitOptions | RateLimitStore,
  hooks: RateLimitHooks = {},
): Middleware {
  const limiter: RateLimitStore = "hit" in options
    ? options
    : new RateLimiter(options);
  const onLimited = "hit" in options ? hooks.onLimited : options.onLimited;
  // A few paths at most: compared in turn, the path not hashed for a Set.
  const exempt = hooks.exemptPaths?.slice() ?? [];
  const fields = new RateFields(
    limiter.limit,
    `${limiter.limit};w=${Math.ceil(limiter.windowMs / 1000)}`,
  );
  /** An error from further in, carrying the fields as a reply would. */
  const withFields = (err: unknown, decision: RateDecision): unknown =>
    err instanceof HttpError
      ? errorWithHeaders(err, fields.record(decision))
      : err;
  const decide = (
    req: AppRequest,
    next: Next,
    decision: RateDecision,
  ): Reply | Promise<Reply> => {
    if (!decision.allowed) {
      onLimited?.(req);
      throw new HttpError(
        STATUS.TooManyRequests,
        `Rate limit hit by ${req.client}`,
        {
          expose:
            `Too many requests: try again in ${decision.retryAfterSeconds} s`,
          headers: {
            ...fields.record(decision),
            "retry-after": String(decision.retryAfterSeconds),
          },
        },
      );
    }
    // afterNext() without its two closures per request.
    let reply: Reply | Promise<Reply>;
    try {
      reply = next();
    } catch (err) {
      throw withFields(err, decision);
    }
    if (reply instanceof Promise) {
      return reply.then(
        (r) => fields.addTo(r, decision),
        (err) => {
          throw withFields(err, decision);
        },
      );
    }
    return fields.addTo(reply, decision);
  };
  // A connection's requests all come from one address: keyed once in a row.
  let lastClient = "";
  let lastKey = "";
  return (req, next) => {
    if (exempt.length > 0 && exempt.includes(req.path)) return next();
    const client = req.client;
    if (client !== lastClient) {
      lastKey = clientKey(client);
      lastClient = client;
    }
    const decision = limiter.hit(lastKey);
    return decision instanceof Promise
      ? decision.then((d) => decide(req, next, d))
      : decide(req, next, decision);
  };
}
