/**
 * `--rate-limit-store redis://HOST:PORT`: the sliding-window counts live in
 * Redis, so every instance behind a load balancer enforces one limit. A
 * check is one Lua script, one round trip (EVALSHA; EVAL once when Redis
 * has forgotten the script), with the same rule and the same RateLimit
 * fields as the in-memory limiter. The client library (node-redis's
 * `@redis/client`) is loaded only when a store is asked for, so a server
 * without one starts as fast as before.
 *
 * When Redis cannot answer within `rateStoreTimeoutMs`, {@link FailoverStore}
 * decides: by default it fails open (this process counts on its own, and
 * says so once in the log); `--rate-limit-fail closed` answers 503 instead.
 */
import { createHash } from "node:crypto";
import { getLogger } from "../npm/logtape.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import { RateLimiter } from "./middleware/rate_limit.ts";
import {
  type RateDecision,
  type RateLimitPolicy,
  type RateLimitStore,
  slidingWindow,
} from "./rate_limit_store.ts";

const log = getLogger(["spindle", "app", "rate-limit"]);

/**
 * One check, atomic in Redis: the counts of the current and previous fixed
 * windows in one hash per client, the same rule as `slidingWindow()`, and
 * an expiry once neither window can count any more. The clock is Redis's
 * own (one clock for every instance) unless the caller passes one (tests).
 * Returns {allowed, previous, current before this request, elapsed ms}.
 */
const SCRIPT = `
local limit = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local start = now - (now % w)
local counts = redis.call('HMGET', KEYS[1], 'start', 'previous', 'current')
local seen = tonumber(counts[1])
local previous, current = 0, 0
if seen == start then
  previous = tonumber(counts[2]) or 0
  current = tonumber(counts[3]) or 0
elseif seen == start - w then
  previous = tonumber(counts[3]) or 0
end
local elapsed = now - start
local allowed = 0
if previous * ((w - elapsed) / w) + current + 1 <= limit then
  allowed = 1
  redis.call('HSET', KEYS[1], 'start', start, 'previous', previous,
    'current', current + 1)
  redis.call('PEXPIRE', KEYS[1], 2 * w - elapsed)
end
return {allowed, previous, current, elapsed}
`;
const SCRIPT_SHA1 = createHash("sha1").update(SCRIPT).digest("hex");

/** Failed checks in a row that make an outage: one slow answer is not one. */
const FAILURES_FOR_OUTAGE = 3;
/** During an outage, one request a second tries Redis again. */
const RETRY_MS = 1000;
/** Longest the start waits for a first connection before serving without it. */
const CONNECT_WAIT_MS = 2000;
/** Reconnection back-off: 100 ms more a try, 2 s at most. */
const MAX_RECONNECT_MS = 2000;

export interface RedisStoreOptions extends RateLimitPolicy {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` for TLS. */
  readonly url: string;
  /** Longest a check may take; past it, the check fails. */
  readonly timeoutMs: number;
  /** Prefix of every key; default `spindle:rl:`. */
  readonly prefix?: string;
  /** A clock for the script instead of Redis's own (tests). */
  readonly now?: () => number;
}

/** The part of node-redis's client this store uses. */
interface RedisClient {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  evalSha(
    sha1: string,
    options: { keys: string[]; arguments: string[] },
  ): Promise<unknown>;
  eval(
    script: string,
    options: { keys: string[]; arguments: string[] },
  ): Promise<unknown>;
  on(event: "error", listener: (err: Error) => void): unknown;
  close(): Promise<void>;
  destroy(): void;
}

/** Rate-limit counts in Redis; every check may reject (see {@link FailoverStore}). */
export class RedisRateLimitStore implements RateLimitStore {
  readonly limit: number;
  readonly windowMs: number;
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #now: (() => number) | undefined;
  readonly #timeoutMs: number;

  private constructor(client: RedisClient, options: RedisStoreOptions) {
    this.#client = client;
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.#prefix = options.prefix ?? "spindle:rl:";
    this.#now = options.now;
    this.#timeoutMs = options.timeoutMs;
  }

  /**
   * Loads the client library and connects. Resolves once connected, or
   * after {@link CONNECT_WAIT_MS} without Redis: the client keeps trying in
   * the background, and checks fail until it gets through.
   */
  static async connect(
    options: RedisStoreOptions,
  ): Promise<RedisRateLimitStore> {
    const { createClient } = await import("../npm/redis.ts");
    const client = createClient({
      url: options.url,
      // Fail a check at once while disconnected, rather than queue it.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: Math.max(options.timeoutMs, 1000),
        reconnectStrategy: (tries: number) =>
          Math.min(tries * 100, MAX_RECONNECT_MS),
      },
    }) as unknown as RedisClient;
    // Socket errors come here as events; FailoverStore logs outages once.
    client.on("error", (err) => log.debug("Redis: {error}", { error: err }));
    const store = new RedisRateLimitStore(client, options);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      client.connect().catch(() => {}),
      new Promise((r) => timer = setTimeout(r, CONNECT_WAIT_MS)),
    ]);
    clearTimeout(timer);
    return store;
  }

  /** True while connected. */
  get ready(): boolean {
    return this.#client.isReady;
  }

  /** Rejects after `timeoutMs`: a stalled Redis (connected, not answering) fails the check. */
  async hit(key: string): Promise<RateDecision> {
    const check = this.#check(key);
    check.catch(() => {}); // a late failure after the timeout is not news
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        check,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer in ${this.#timeoutMs} ms`)),
            this.#timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #check(key: string): Promise<RateDecision> {
    const command = {
      keys: [this.#prefix + key],
      arguments: [
        String(this.limit),
        String(this.windowMs),
        this.#now === undefined ? "" : String(this.#now()),
      ],
    };
    let reply: unknown;
    try {
      reply = await this.#client.evalSha(SCRIPT_SHA1, command);
    } catch (err) {
      // A restarted or flushed Redis has forgotten the script: send it whole.
      if (!String((err as Error)?.message).startsWith("NOSCRIPT")) throw err;
      reply = await this.#client.eval(SCRIPT, command);
    }
    if (!Array.isArray(reply) || reply.length !== 4) {
      throw new Error(`Unexpected reply from the rate-limit script`);
    }
    const [allowed, previous, current, elapsed] = reply.map(Number);
    return slidingWindow(this, previous, current, elapsed, allowed === 1);
  }

  async close(): Promise<void> {
    if (this.#client.isReady) {
      try {
        await this.#client.close();
        return;
      } catch { /* going anyway */ }
    }
    this.#client.destroy();
  }
}

/** What to do while the shared store cannot answer. */
export type FailMode = "open" | "closed";

/**
 * A shared store with a way out: while `remote` fails, `local` counts
 * (fail open) or every request gets 503 with `Retry-After: 1` (fail
 * closed). An outage is logged once when it starts and once when it ends,
 * never per request; meanwhile one request a second tries the remote again.
 */
export class FailoverStore implements RateLimitStore {
  readonly limit: number;
  readonly windowMs: number;
  readonly #remote: RateLimitStore;
  readonly #local: RateLimiter;
  readonly #mode: FailMode;
  readonly #label: string;
  readonly #now: () => number;
  #down = false;
  #downSince = 0;
  #retryAt = 0;
  #probing = false;
  /** Failed checks in a row. */
  #failures = 0;
  /** Requests decided without the remote in this outage. */
  #fellBack = 0;

  constructor(
    remote: RateLimitStore,
    local: RateLimiter,
    options: { mode: FailMode; label: string; now?: () => number },
  ) {
    this.limit = remote.limit;
    this.windowMs = remote.windowMs;
    this.#remote = remote;
    this.#local = local;
    this.#mode = options.mode;
    this.#label = options.label;
    this.#now = options.now ?? Date.now;
  }

  /** True while the remote store is taken for unreachable. */
  get down(): boolean {
    return this.#down;
  }

  hit(key: string): RateDecision | Promise<RateDecision> {
    if (this.#down) {
      if (this.#probing || this.#now() < this.#retryAt) {
        return this.#fallBack(key);
      }
      this.#probing = true; // this request finds out whether it is back
    }
    let answer: RateDecision | Promise<RateDecision>;
    try {
      answer = this.#remote.hit(key);
    } catch (err) {
      return this.#failed(err, key);
    }
    return Promise.resolve(answer).then(
      (decision) => {
        this.#reachable();
        return decision;
      },
      (err) => this.#failed(err, key),
    );
  }

  #failed(err: unknown, key: string): RateDecision {
    this.unreachable(err);
    return this.#fallBack(key);
  }

  /**
   * Counts a failed check; the third in a row (or `now`) starts an outage,
   * logged once: until then the remote is asked again at each request.
   */
  unreachable(err: unknown, now = false): void {
    this.#probing = false;
    this.#failures++;
    if (!now && !this.#down && this.#failures < FAILURES_FOR_OUTAGE) return;
    this.#retryAt = this.#now() + RETRY_MS;
    if (!this.#down) {
      this.#down = true;
      this.#downSince = this.#now();
      this.#fellBack = 0;
      log.error(
        "Rate limit store {store} unreachable ({error}): {action} until it answers again",
        {
          store: this.#label,
          error: err instanceof Error ? err.message : String(err),
          action: this.#mode === "open"
            ? "each instance counts on its own"
            : "answering 503",
        },
      );
    }
  }

  #reachable(): void {
    this.#probing = false;
    this.#failures = 0;
    if (!this.#down) return;
    this.#down = false;
    log.warn(
      "Rate limit store {store} answers again after {ms} ms; {count} requests were {how} meanwhile",
      {
        store: this.#label,
        ms: this.#now() - this.#downSince,
        count: this.#fellBack,
        how: this.#mode === "open" ? "counted locally" : "refused",
      },
    );
  }

  #fallBack(key: string): RateDecision {
    this.#fellBack++;
    if (this.#mode === "closed") {
      throw new HttpError(
        STATUS.ServiceUnavailable,
        "Rate limit store unreachable",
        {
          expose: "Service unavailable, try again shortly",
          headers: { "retry-after": "1" },
        },
      );
    }
    return this.#local.hit(key);
  }

  async close(): Promise<void> {
    await this.#remote.close?.();
  }
}

/**
 * The store behind `--rate-limit-store`: Redis at `url`, with this
 * process's memory or 503 while Redis cannot answer.
 */
export async function connectRateLimitStore(
  policy: RateLimitPolicy,
  url: string,
  options: { mode: FailMode; timeoutMs: number },
): Promise<FailoverStore> {
  const remote = await RedisRateLimitStore.connect({
    ...policy,
    url,
    timeoutMs: options.timeoutMs,
  });
  const store = new FailoverStore(remote, new RateLimiter(policy), {
    mode: options.mode,
    label: redactUrl(url),
  });
  if (!remote.ready) store.unreachable("no connection at start", true);
  return store;
}

/** The URL without a password, for the log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unreadable URL)";
  }
}
