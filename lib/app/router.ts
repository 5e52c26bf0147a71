/**
 * Routes, middleware and a fallback as one engine handler: the public API
 * (`new Router().get(...)`), and dispatch: canonical path, match (in
 * route_table.ts), contract check, the middleware chain, the route. Errors
 * go to the engine, which renders them all, or to `onError()`.
 */
import { HttpError, STATUS } from "../http/errors.ts";
import type { Handler, Reply, ServerRequest } from "../http/handler.ts";
import {
  isUpgradeRequest,
  webSocketRequired,
} from "../http/ws/upgrade_request.ts";
import { canonicalPath } from "./canonical_path.ts";
import {
  compose,
  type Middleware,
  type MiddlewareHooks,
  type Run,
} from "./chain.ts";
import type { ProxyTrust } from "./client_addr.ts";
import {
  type AppHandler,
  AppRequest,
  checkContract,
  type RouteContract,
} from "./app_request.ts";
import { type Match, NO_MATCH, type Route, RouteTable } from "./route_table.ts";
import {
  type WsHandler,
  type WsHandlers,
  wsRoute,
  type WsRouteOptions,
} from "./websocket.ts";

export type { AppHandler } from "./app_request.ts";
export type { Match } from "./route_table.ts";
export { afterNext } from "./chain.ts";
export type {
  Middleware,
  MiddlewareFn,
  MiddlewareHooks,
  Next,
} from "./chain.ts";

/**
 * Per-route options: the request contract and route-only middleware.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { json, type RouteOptions, Router, serve } from "@spindle/server";
 *
 * const jsonOnly: RouteOptions = {
 *   contentType: "application/json", // else 415, before the body is read
 *   maxBodyBytes: 64 * 1024, // else 413, from Content-Length alone
 * };
 * const app = new Router().post("/items", async (req) => json(await req.json(), { status: 201 }), jsonOnly);
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/items`, {
 *   method: "POST",
 *   headers: { "content-type": "text/plain" },
 *   body: "hi",
 * });
 * assert.equal(res.status, 415);
 * await res.body?.cancel();
 * ```
 */
export interface RouteOptions extends RouteContract {
  /** Middleware for this route only, after the contract check. */
  readonly use?: readonly Middleware[];
}

/** The chains a request may take: the whole one, and one without `routesOnly` layers. */
interface Chains {
  readonly routed: Run;
  readonly other: Run;
}

/**
 * Turns what the middleware, a route or the fallback threw into a reply, or
 * throws it on to the engine; see {@link Router.onError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ErrorHandler, HttpError, json, Router, serve } from "@spindle/server";
 *
 * const asJson: ErrorHandler = (err) =>
 *   json({ error: err instanceof HttpError ? err.expose : "failed" }, {
 *     status: err instanceof HttpError ? err.status : 500,
 *   });
 * const app = new Router().onError(asJson).get("/teapot", () => {
 *   throw new HttpError(400, "bad pot", { expose: "no tea here" });
 * });
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/teapot`);
 * assert.equal(res.status, 400);
 * assert.deepEqual(await res.json(), { error: "no tea here" });
 * ```
 */
export type ErrorHandler = (
  err: unknown,
  req: AppRequest,
) => Reply | Promise<Reply>;

/**
 * Options for {@link Router.handler}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type HandlerOptions, Router, serve, text } from "@spindle/server";
 *
 * const options: HandlerOptions = {
 *   trustProxy: (addr) => addr === "127.0.0.1", // believe X-Forwarded-For from here
 *   maxBodyBytes: 1024,
 * };
 * const app = new Router().get("/who", (req) => text(req.client));
 * await using server = serve({ port: 0, accessLog: false }, app.handler(options));
 * const res = await fetch(`http://127.0.0.1:${server.port}/who`, {
 *   headers: { "x-forwarded-for": "203.0.113.9" },
 * });
 * assert.equal(await res.text(), "203.0.113.9");
 * ```
 */
export interface HandlerOptions {
  /** Which peers' X-Forwarded-For is believed; default: none. */
  readonly trustProxy?: ProxyTrust;
  /**
   * Body limit of routes that set none, and of the fallback; default: the
   * engine's. Lower than the engine's when one route needs a larger one
   * (the engine must then allow that much). Over: 413.
   */
  readonly maxBodyBytes?: number;
}

/**
 * Routes, middleware and a fallback, turned into one engine {@link Handler}.
 * Unknown path: the fallback, else 404. Known path, other method: 405 with
 * `Allow`. HEAD runs the GET route; OPTIONS answers 204 with `Allow`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { json, Router, serve, text } from "@spindle/server";
 *
 * const app = new Router()
 *   .get("/hello/{name}", (req) => text(`Hi ${req.params.name}`))
 *   .post("/echo", async (req) => json(await req.json()));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const base = `http://127.0.0.1:${server.port}`;
 * assert.equal(await (await fetch(`${base}/hello/ana`)).text(), "Hi ana");
 * const res = await fetch(`${base}/hello/ana`, { method: "DELETE" });
 * assert.equal(res.status, 405); // the path exists, not for this method
 * assert.equal(res.headers.get("allow"), "GET, HEAD, OPTIONS");
 * await res.body?.cancel();
 * ```
 */
export class Router {
  readonly #table = new RouteTable();
  readonly #use: Middleware[] = [];
  /** `#use` composed; undefined after a change, rebuilt by the next request. */
  #chains: Chains | undefined;
  #fallback: AppHandler | undefined;
  #fallbackName = "fallback";
  #onError: ErrorHandler | undefined;

  /**
   * Adds middleware around every request (routes, 404s, the fallback), in
   * order; a `routesOnly` one only around routed requests. Takes effect
   * from the next request, on handlers made before too.
   */
  use(...middleware: Middleware[]): this {
    this.#use.push(...middleware);
    this.#chains = undefined;
    return this;
  }

  /** Adds a GET route (HEAD runs it too and drops the body). */
  get(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["GET"] }, handler);
  }
  /** Adds a POST route. */
  post(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["POST"] }, handler);
  }
  /** Adds a PUT route. */
  put(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["PUT"] }, handler);
  }
  /** Adds a PATCH route. */
  patch(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["PATCH"] }, handler);
  }
  /** Adds a DELETE route. */
  delete(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["DELETE"] }, handler);
  }
  /** Adds an OPTIONS route (without one, OPTIONS gets 204 with Allow). */
  options(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["OPTIONS"] }, handler);
  }
  /** A route for every method (unless `options.methods` names some). */
  all(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, options ?? {}, handler);
  }

  /** Registers `handler` for `options.methods` (all when absent) on `template`. */
  route(template: string, options: RouteOptions, handler: AppHandler): this {
    const { use = [], ...contract } = options;
    this.#table.add(
      newRoute(template, handler, contract, use),
      contract.methods,
    );
    return this;
  }

  /**
   * A WebSocket route: a GET with `Upgrade: websocket` on `template` gets
   * 101 and `handler` gets the socket (or, given {@link WsHandlers}, their
   * methods get it and each message, with no event object made). Other
   * requests to the path go to its other routes as if this one were not
   * there; with none for a GET (or HEAD), or none at all, 426 with
   * `Upgrade: websocket` and `Connection: Upgrade` (400 for a handshake
   * whose method is not GET), and the 405 of another method lists GET in
   * `Allow`. A bad handshake is 400 (403 for an origin not in
   * `options.origins`, 426 for a version other than 13). A handshake for
   * a path no route has is 404, on every router.
   */
  ws(
    template: string,
    handler: WsHandler | WsHandlers<AppRequest>,
    options: WsRouteOptions & { readonly use?: readonly Middleware[] } = {},
  ): this {
    const { use = [], ...upgrade } = options;
    this.#table.addUpgrade(
      newRoute(template, wsRoute(handler, upgrade), { methods: ["GET"] }, use),
    );
    return this;
  }

  /** Answers every path no route has (static files, say); `name` labels it in metrics. */
  fallback(handler: AppHandler, name = "fallback"): this {
    this.#fallback = handler;
    this.#fallbackName = name;
    return this;
  }

  /**
   * Replaces how errors become replies, as Hono's `app.onError`: `handler`
   * gets what the middleware, a route or the fallback threw (outside every
   * layer, as the engine would) and returns the reply, or throws to leave
   * it to the engine. Unset, the engine renders every error: by Accept,
   * JSON on `jsonErrors` routes, with one log line and one set of headers.
   */
  onError(handler: ErrorHandler): this {
    this.#onError = handler;
    return this;
  }

  /**
   * Finds the route for a canonical path. `upgrade`: the request is a
   * WebSocket upgrade (a GET with `Upgrade: websocket`). The router's own
   * dispatch, not part of the package's API.
   *
   * @ignore
   */
  match(method: string, path: string, upgrade = false): Match {
    return this.#table.match(method, path, upgrade);
  }

  /** The engine handler for this router. Add routes first: it reads them live. */
  handler(options: HandlerOptions = {}): Handler {
    const { trustProxy, maxBodyBytes } = options;
    return (raw) => this.#dispatch(raw, trustProxy, maxBodyBytes);
  }

  #dispatch(
    raw: ServerRequest,
    trust: ProxyTrust | undefined,
    maxBodyBytes: number | undefined,
  ): Reply | Promise<Reply> {
    let path = raw.path;
    let refused: HttpError | undefined;
    try {
      path = canonicalPath(path);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      refused = err; // still runs the middleware: host guard, limits, metrics
    }
    const req = new AppRequest(raw, path, trust, maxBodyBytes);
    let match = NO_MATCH;
    if (refused === undefined) {
      const table = this.#table;
      match = table.find(raw.method, path);
      // Only a path with a WebSocket route, or with no route at all, pays
      // for looking at Upgrade. A handshake for the latter would get a
      // static page or a 404 page the client cannot use: a 404 that says
      // why instead (RFC 6455 §4.2.2). A path with HTTP routes only
      // answers as if Upgrade were not there (RFC 9110 §7.8).
      if (
        (table.wsPath || match.kind === "none") && raw.method === "GET" &&
        raw.headers.get("upgrade") !== undefined &&
        isUpgradeRequest(raw.headers)
      ) {
        if (table.wsPath) match = table.find(raw.method, path, true);
        else refused = noWebSocket(path);
      }
    }
    const chains = this.#chains ??= {
      routed: compose(this.#use),
      other: compose(this.#use.filter((m) => m.routesOnly !== true)),
    };
    let run = chains.other;
    let last = this.#last;
    let jsonErrors = false;
    if (match.kind === "route") {
      const route = match.route;
      req.route = route.template;
      req.matched = "route";
      req.params = this.#table.params; // the route's hit has none
      req.contract = route.contract;
      jsonErrors = route.contract.jsonErrors === true;
      let chain = route.chain;
      if (chain === undefined || chain.of !== chains) {
        chain = route.chain = { of: chains, run: this.#routeChain(route) };
      }
      run = chain.run;
      last = route.handler;
    } else if (match.kind === "method") {
      req.route = match.template;
      req.matched = "method";
      jsonErrors = match.jsonErrors;
      run = chains.routed;
    } else if (match.kind === "upgrade") {
      req.route = match.template;
      req.matched = "method";
      run = chains.routed;
    } else if (this.#fallback && !refused) {
      req.route = this.#fallbackName;
      req.matched = "fallback";
    }
    if (jsonErrors) preferJsonErrors(raw);
    req.found = refused ?? match;
    const onError = this.#onError;
    if (onError === undefined) return run(req, last);
    let reply: Reply | Promise<Reply>;
    try {
      reply = run(req, last);
    } catch (err) {
      return onError(err, req);
    }
    if (reply instanceof Promise) {
      return reply.catch((err) => onError(err, req));
    }
    return reply;
  }

  /**
   * A route's whole chain, around its handler: every layer of the router,
   * the contract check, then the route's own layers. One chain, so that
   * neighbouring hooks of both run in one loop, and the handler is what
   * the chain wraps, as it is.
   */
  #routeChain(route: Route): Run {
    const contract = route.contract;
    const check: MiddlewareHooks = {
      before: (req) => {
        // The route's limit, or the router's for routes that set none.
        if (req.maxBodyBytes !== undefined || contract.contentType) {
          checkContract(req, contract);
        }
        return undefined;
      },
    };
    return compose([...this.#use, check, ...route.use]);
  }

  /** The end of every chain but a route's: what the router found for the request. */
  readonly #last = (req: AppRequest) => this.#answer(req);

  #answer(req: AppRequest): Reply | Promise<Reply> {
    const match = req.found!;
    if (match instanceof HttpError) throw match; // a path refused
    if (match.kind === "method") {
      if (req.method === "OPTIONS") return allowReply(match.allow);
      throw new HttpError(
        STATUS.MethodNotAllowed,
        `${req.method} not allowed on ${match.template}`,
        {
          expose: `Method ${req.method} is not allowed here`,
          headers: { allow: match.allow },
        },
      );
    }
    if (match.kind === "upgrade") {
      // RFC 6455 §4.1: a handshake is a GET; a 426 would ask for what was sent.
      if (isUpgradeRequest(req.raw.headers)) {
        throw new HttpError(
          STATUS.BadRequest,
          `${req.method} with a WebSocket upgrade on ${match.template}`,
          {
            expose:
              `Cannot upgrade to WebSocket: method is ${req.method}, not GET`,
          },
        );
      }
      throw webSocketRequired(
        `${req.method} without a WebSocket upgrade on ${match.template}`,
        "This path takes a GET only as a WebSocket upgrade",
      );
    }
    if (this.#fallback) return this.#fallback(req);
    throw new HttpError(STATUS.NotFound, `No route for ${req.path}`);
  }
}

/** A route; the router composes its chain, the table makes its exact-path match. */
function newRoute(
  template: string,
  handler: AppHandler,
  contract: RouteContract,
  use: readonly Middleware[],
): Route {
  return { template, handler, contract, use, chain: undefined, hit: NO_MATCH };
}

/** The refusal of a WebSocket handshake for `path`, which has no route. */
function noWebSocket(path: string): HttpError {
  return new HttpError(
    STATUS.NotFound,
    `WebSocket upgrade on ${path}, which has no WebSocket route`,
    { expose: "Cannot upgrade to WebSocket: there is none at this path" },
  );
}

function allowReply(allow: string): Reply {
  return { status: STATUS.NoContent, headers: { allow }, body: null };
}

/**
 * API routes answer errors in JSON even to `*\/*` or no Accept at all; a
 * client that names HTML or JSON gets what it named. Said on the engine's
 * request, as the engine renders every error: each gets the same log line
 * and headers whichever route threw it.
 */
function preferJsonErrors(raw: ServerRequest): void {
  const accept = raw.headers.get("accept");
  if (
    accept === undefined ||
    !(accept.includes("text/html") || accept.includes("json"))
  ) raw.errorAccept = "application/json";
}
