/**
 * Middleware, and how the router runs a list of it. A chain is composed
 * once: hook layers run in a loop with no closure and no promise of their
 * own, a function layer costs one closure, and a chain whose handler
 * answers synchronously answers synchronously, so the engine replies
 * without awaiting anything.
 */
import type { Reply } from "../http/handler.ts";
import type { AppRequest } from "./app_request.ts";

/**
 * Runs the rest of the chain. A reply when everything after it answered
 * synchronously, else a promise; a sync throw is the chain's error. Use
 * {@link afterNext} to handle both without adding a promise layer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterNext, type Next, Router, serve, text, withHeaders } from "@spindle/server";
 *
 * const app = new Router()
 *   .use((req, next: Next) => afterNext(req, next, (_req, reply) => withHeaders(reply, { "x-n": "1" })))
 *   .get("/", () => text("ok"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(res.headers.get("x-n"), "1");
 * await res.body?.cancel();
 * ```
 */
export type Next = () => Reply | Promise<Reply>;

/**
 * Wraps everything after it: may answer early, or change the reply `next()` gives.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type MiddlewareFn, Router, serve, text } from "@spindle/server";
 *
 * const needsKey: MiddlewareFn = (req, next) =>
 *   req.header("x-key") === "secret" ? next() : text("no key", { status: 401 });
 * const app = new Router().use(needsKey).get("/", () => text("in"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(res.status, 401);
 * await res.body?.cancel();
 * ```
 */
export interface MiddlewareFn {
  (req: AppRequest, next: Next): Reply | Promise<Reply>;
  /** See {@link MiddlewareHooks.routesOnly}. */
  readonly routesOnly?: boolean;
}

/**
 * Middleware as synchronous hooks around the rest of the chain: the
 * cheapest kind, for work every request does (metrics, the Host check,
 * compression). Each hook is optional.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type MiddlewareHooks, Router, serve, text } from "@spindle/server";
 *
 * let seen = 0;
 * const counter: MiddlewareHooks = {
 *   before: () => {
 *     seen++;
 *     return undefined; // go on to the route
 *   },
 * };
 * const app = new Router().use(counter).get("/", () => text("ok"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * await (await fetch(`http://127.0.0.1:${server.port}/`)).body?.cancel();
 * assert.equal(seen, 1);
 * ```
 */
export interface MiddlewareHooks {
  /** Before the rest: a reply answers early (the rest is skipped); a throw fails the request. */
  readonly before?: (req: AppRequest) => Reply | undefined;
  /** The reply of the rest (or of a later layer that answered early): returns the one to send. */
  readonly after?: (req: AppRequest, reply: Reply) => Reply;
  /** What the rest threw: returns a reply instead, or throws (the same error or another). */
  readonly error?: (req: AppRequest, err: unknown) => Reply;
  /**
   * Only for requests a route path matched: the router leaves the layer out
   * of the chain for the fallback (static files) and for 404s.
   */
  readonly routesOnly?: boolean;
}

/**
 * A function around `next()`, or hooks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Middleware, Router, serve, text, withHeaders } from "@spindle/server";
 *
 * const tagged: Middleware = {
 *   after: (_req, reply) => withHeaders(reply, { "x-served-by": "spindle" }),
 *   routesOnly: true, // not on the fallback or 404s
 * };
 * const app = new Router().use(tagged).get("/hi", () => text("hi"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/hi`);
 * assert.equal(res.headers.get("x-served-by"), "spindle");
 * await res.body?.cancel();
 * ```
 */
export type Middleware = MiddlewareFn | MiddlewareHooks;

/**
 * Calls `next()` and passes its reply to `onReply`, or what it threw to
 * `onError` (rethrown when there is none): at once when the rest of the
 * chain was synchronous, when it settles otherwise. `req` is handed back so
 * the callbacks can be made once, not per request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterNext, type Middleware, Router, serve, text, withHeaders } from "@spindle/server";
 *
 * const timed: Middleware = (req, next) => {
 *   const start = performance.now();
 *   // Synchronous routes stay synchronous: no promise unless `next()` gives one.
 *   return afterNext(req, next, (_req, reply) =>
 *     withHeaders(reply, {
 *       "server-timing": `app;dur=${(performance.now() - start).toFixed(3)}`,
 *     }));
 * };
 * const app = new Router().use(timed).get("/", () => text("hi"));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.match(res.headers.get("server-timing") ?? "", /^app;dur=/);
 * await res.body?.cancel();
 * ```
 */
export function afterNext(
  req: AppRequest,
  next: Next,
  onReply: (req: AppRequest, reply: Reply) => Reply | Promise<Reply>,
  onError?: (req: AppRequest, err: unknown) => Reply | Promise<Reply>,
): Reply | Promise<Reply> {
  let reply: Reply | Promise<Reply>;
  try {
    reply = next();
  } catch (err) {
    if (onError === undefined) throw err;
    return onError(req, err);
  }
  if (reply instanceof Promise) {
    return reply.then(
      (r) => onReply(req, r),
      onError && ((err) => onError(req, err)),
    );
  }
  return onReply(req, reply);
}

/**
 * What a chain wraps, given the request: a route's handler as it is, so
 * running a route's own middleware makes no closure per request.
 */
export type Last = (req: AppRequest) => Reply | Promise<Reply>;

/** A composed chain; `last` runs what the chain wraps. */
export type Run = (req: AppRequest, last: Last) => Reply | Promise<Reply>;

/** The empty chain. */
export const LAST: Run = (req, last) => last(req);

/** `chain`, outermost first, as one function. */
export function compose(chain: readonly Middleware[]): Run {
  let run = LAST;
  for (let i = chain.length - 1; i >= 0;) {
    const layer = chain[i];
    if (typeof layer === "function") {
      const inner = run;
      run = inner === LAST
        ? (req, last) => layer(req, () => last(req))
        : (req, last) => layer(req, () => inner(req, last));
      i--;
      continue;
    }
    // Neighbouring hook layers run as one loop.
    let first = i;
    while (first > 0 && typeof chain[first - 1] !== "function") first--;
    run = hookRun(chain.slice(first, i + 1) as MiddlewareHooks[], run);
    i = first - 1;
  }
  return run;
}

/** Hook layers `hooks` (outermost first) around `inner`. */
function hookRun(hooks: readonly MiddlewareHooks[], inner: Run): Run {
  const n = hooks.length;
  const befores = hooks.map((h) => h.before);
  return (req, last) => {
    // Layers [0, wrapping) have run `before` and see what comes back.
    let wrapping = n;
    let reply: Reply | Promise<Reply> | undefined;
    try {
      for (let i = 0; i < n; i++) {
        const before = befores[i];
        if (before === undefined) continue;
        wrapping = i;
        reply = before(req);
        if (reply !== undefined) break;
      }
      if (reply === undefined) {
        wrapping = n;
        reply = inner(req, last);
      }
    } catch (err) {
      return unwindError(hooks, wrapping, req, err);
    }
    if (reply instanceof Promise) {
      return unwindLater(hooks, wrapping, req, reply);
    }
    return unwind(hooks, wrapping, req, reply);
  };
}

/**
 * {@link unwind} once `pending` settles. A function of its own: callbacks
 * made in the closure above would capture `req`, and V8 would then give
 * every call of it a context object, synchronous replies included.
 */
function unwindLater(
  hooks: readonly MiddlewareHooks[],
  k: number,
  req: AppRequest,
  pending: Promise<Reply>,
): Promise<Reply> {
  return pending.then(
    (r) => unwind(hooks, k, req, r),
    (err) => unwindError(hooks, k, req, err),
  );
}

/** `reply` through the `after` hooks of layers [0, k), innermost first. */
function unwind(
  hooks: readonly MiddlewareHooks[],
  k: number,
  req: AppRequest,
  reply: Reply,
): Reply {
  for (let j = k - 1; j >= 0; j--) {
    const after = hooks[j].after;
    if (after === undefined) continue;
    try {
      reply = after(req, reply);
    } catch (err) {
      return unwindError(hooks, j, req, err); // outer layers see the error
    }
  }
  return reply;
}

/** `err` through the `error` hooks of layers [0, k): the first reply goes on out as a reply. */
function unwindError(
  hooks: readonly MiddlewareHooks[],
  k: number,
  req: AppRequest,
  err: unknown,
): Reply {
  for (let j = k - 1; j >= 0; j--) {
    const onError = hooks[j].error;
    if (onError === undefined) continue;
    let reply: Reply;
    try {
      reply = onError(req, err);
    } catch (again) {
      err = again;
      continue;
    }
    return unwind(hooks, j, req, reply);
  }
  throw err;
}
