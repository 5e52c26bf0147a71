/**
 * HTTP Basic authentication (RFC 7617) for the paths and methods the rules
 * name. A password check is a deliberately slow KDF (about 140 ms of one
 * core), so three things stand between a client and it:
 *
 * - Good answers are cached by a salted SHA-256 of the exact
 *   `Authorization` value (never the value itself) for
 *   {@link AuthOptions.cacheMs}: a browser sends the same value with every
 *   request, and only the first in that time pays for the KDF. Concurrent
 *   requests with one value share one check.
 * - Failed checks are counted per client (IPv6 by /64, trust-proxy aware);
 *   past the limit, 429 with `Retry-After` and no check at all. A check is
 *   counted when it starts and forgiven if it succeeds, so a burst of
 *   parallel guesses cannot slip past the count.
 * - At most `maxChecks` run at once, `maxCheckQueue` wait; past that, 503.
 *   A guessing flood then costs the server a bounded share of its cores,
 *   and signed-in users, answered from the cache, do not wait behind it.
 */
import { createHash } from "node:crypto";
import type { AppAuth, AuthRule } from "../settings.ts";
import { HttpError, STATUS } from "../../http/errors.ts";
import { Semaphore } from "../../http/semaphore.ts";
import { clientKey } from "../client_addr.ts";
import { parseBasic } from "../credentials.ts";
import type { AppRequest } from "../app_request.ts";
import type { Middleware } from "../router.ts";
import { type RateDecision, RateLimiter } from "./rate_limit.ts";

/** Counts failed checks per client: a {@link RateLimiter}, or one shared by `--workers`. */
export interface FailureLimiter {
  hit(key: string): RateDecision;
  /** Takes back one failure counted for `key` (the check turned out good). */
  forgive(key: string): void;
}

/** Every path, every method: the default. */
export const AUTH_EVERYTHING: readonly AuthRule[] = Object.freeze([
  Object.freeze({ prefix: "/", writeOnly: false }),
]);

export interface AuthOptions {
  /** A {@link Credentials} from lib/app/credentials.ts, or a stand-in. */
  readonly credentials: AppAuth["credentials"];
  /** Default: {@link AUTH_EVERYTHING}. */
  readonly rules?: readonly AuthRule[];
  /** Shown by browsers in the password prompt. */
  readonly realm?: string;
  /** Failed checks per client per window. Past it: 429. */
  readonly maxFailures: number;
  readonly failureWindowMs: number;
  /** Password checks running at once; more wait in a queue. */
  readonly maxChecks: number;
  /** Checks waiting for a slot. Past it: 503. */
  readonly maxCheckQueue: number;
  /** How long a good `Authorization` value is trusted without a check. */
  readonly cacheMs?: number;
  /** Good values cached at once; past it the oldest goes. */
  readonly maxCacheEntries?: number;
  /** Clock in ms (tests inject one). */
  readonly now?: () => number;
  /**
   * Where failed checks are counted (for `maxFailures` in `failureWindowMs`);
   * default: this engine's memory. `--workers` engines share one, so a
   * guesser gets one budget.
   */
  readonly failures?: FailureLimiter;
}

// A browser session pays one KDF run per 5 minutes; credentials are read
// once at start, so a longer time could not outlive a changed password.
const CACHE_MS = 5 * 60_000;
// Each entry is ~150 bytes: a few thousand signed-in clients, bounded.
const CACHE_ENTRIES = 4096;
const REALM = "spindle";
/** RFC 9110 §9.2.1 safe methods: reading, never changing. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

interface Cached {
  readonly user: string;
  readonly expires: number;
}

/** True when `path` is `prefix` or lies under it, by whole segments. */
function under(path: string, prefix: string): boolean {
  return path.startsWith(prefix) &&
    (path.length === prefix.length || path.charCodeAt(prefix.length) === 0x2f);
}

/**
 * The form rules match against: case folded and NFC, so `/PRIVATE/` or a
 * decomposed `é` cannot reach a protected folder on a case-insensitive or
 * normalising file system (macOS, Windows) by another spelling.
 */
function foldPath(path: string): string {
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(path)
    ? path.toLowerCase()
    : path.normalize("NFC").toLowerCase();
}

/** Rules ready for {@link needsAuth}: prefixes folded, without a trailing "/" (but "/"). */
export function compileAuthRules(rules: readonly AuthRule[]): AuthRule[] {
  return rules.map(({ prefix, writeOnly }) => {
    const folded = foldPath(prefix);
    return {
      prefix: folded.length > 1 && folded.endsWith("/")
        ? folded.slice(0, -1)
        : folded,
      writeOnly,
    };
  });
}

/** True when a request needs a password under rules from {@link compileAuthRules}. */
export function needsAuth(
  rules: readonly AuthRule[],
  method: string,
  path: string,
): boolean {
  const write = !SAFE_METHODS.has(method);
  let folded: string | undefined;
  for (const rule of rules) {
    if (rule.writeOnly && !write) continue;
    if (rule.prefix === "/") return true; // the default: no folding needed
    folded ??= foldPath(path);
    if (under(folded, rule.prefix)) return true;
  }
  return false;
}

/**
 * Asks for a password where `options.rules` say so. Sets the user name on
 * the request for the access line. 401 with a `Basic` challenge for a
 * missing, wrong or non-UTF-8 credential; 400 for a malformed one; 429 past
 * the failure limit; 503 when too many checks wait.
 */
export function basicAuth(options: AuthOptions): Middleware {
  const rules = compileAuthRules(options.rules ?? AUTH_EVERYTHING);
  const now = options.now ?? Date.now;
  const cacheMs = options.cacheMs ?? CACHE_MS;
  const maxCacheEntries = options.maxCacheEntries ?? CACHE_ENTRIES;
  const credentials = options.credentials;
  const challenge = `Basic realm="${
    (options.realm ?? REALM).replace(/["\\]/g, "\\$&")
  }", charset="UTF-8"`;
  const failures: FailureLimiter = options.failures ?? new RateLimiter({
    limit: options.maxFailures,
    windowMs: options.failureWindowMs,
    now,
  });
  const checks = new Semaphore(options.maxChecks, options.maxCheckQueue);
  // A per-process salt: guessing a password from a cache key needs it too.
  // (SHA-256 from node:crypto costs ~4 us a request; an HMAC object ~30 us.)
  const salt = crypto.getRandomValues(new Uint8Array(32));
  const cacheKey = (value: string) =>
    createHash("sha256").update(salt).update(value).digest("hex");
  const cache = new Map<string, Cached>();
  const pending = new Map<string, Promise<string | undefined>>();

  const unauthorized = (message: string, expose: string) =>
    new HttpError(STATUS.Unauthorized, message, {
      expose,
      headers: { "www-authenticate": challenge, "cache-control": "no-store" },
    });

  /** Runs one check when a slot is free; 503 when the queue is full too. */
  async function check(
    user: Uint8Array,
    password: Uint8Array,
  ): Promise<string | undefined> {
    if (!checks.tryAcquire()) {
      const wait = checks.enqueue();
      if (wait === undefined || !(await wait.granted)) {
        throw new HttpError(
          STATUS.ServiceUnavailable,
          "Too many password checks waiting",
          {
            expose: "Too many sign-ins at once: try again in a moment",
            headers: { "retry-after": "1" },
          },
        );
      }
    }
    try {
      return await credentials.verify(user, password);
    } finally {
      checks.release();
    }
  }

  function remember(key: string, user: string): void {
    if (cache.size >= maxCacheEntries) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.set(key, { user, expires: now() + cacheMs });
  }

  /** A user by a full check (or one in flight for the same value); throws if none. */
  async function authenticate(
    req: AppRequest,
    value: string,
    key: string,
  ): Promise<string> {
    const basic = parseBasic(value);
    if (basic === "other") {
      throw unauthorized(
        "Authorization scheme is not Basic",
        "Sign in with a user name and password (Basic)",
      );
    }
    if (basic === "malformed") {
      const message = "Malformed Basic credentials";
      throw new HttpError(STATUS.BadRequest, message, { expose: message });
    }
    let verdict = pending.get(key);
    if (verdict === undefined) {
      const client = clientKey(req.client);
      const decision = failures.hit(client);
      if (!decision.allowed) {
        const after = String(decision.retryAfterSeconds);
        throw new HttpError(
          STATUS.TooManyRequests,
          "Too many failed sign-ins",
          {
            expose: `Too many failed sign-ins: try again in ${after} s`,
            headers: { "retry-after": after },
          },
        );
      }
      verdict = check(basic.user, basic.password).then((user) => {
        if (user !== undefined) {
          failures.forgive(client);
          remember(key, user);
        }
        return user;
      }, (err) => {
        failures.forgive(client); // no check ran: nothing failed
        throw err;
      }).finally(() => pending.delete(key));
      pending.set(key, verdict);
    }
    const user = await verdict;
    if (user === undefined) {
      throw unauthorized(
        "Wrong user name or password",
        "Wrong user name or password",
      );
    }
    return user;
  }

  return (req, next) => {
    if (!needsAuth(rules, req.method, req.path)) return next();
    // A CORS preflight never carries credentials (Fetch §4.8): let it by.
    if (
      req.method === "OPTIONS" &&
      req.header("access-control-request-method") !== undefined
    ) return next();
    // Two Authorization fields join into one malformed value: 400, not a pick.
    const value = req.headers.getJoined("authorization");
    if (value === undefined) {
      throw unauthorized(
        "No credentials",
        "A user name and password are needed",
      );
    }
    const key = cacheKey(value);
    const hit = cache.get(key);
    if (hit !== undefined) {
      // Signed in already: the common request takes no await here.
      if (hit.expires > now()) {
        req.raw.user = hit.user;
        return next();
      }
      cache.delete(key);
    }
    return authenticate(req, value, key).then((user) => {
      req.raw.user = user;
      return next();
    });
  };
}
