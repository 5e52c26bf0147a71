/**
 * Method + path -> handler + params. Static paths are one Map lookup; only
 * templates with `{name}`, `:name` or a `{*rest}` tail are compared segment by
 * segment. Matching runs on the canonical path (decoded once by
 * `canonicalPath()`), so params arrive decoded and are never decoded again.
 */
import {
  HttpError,
  reasonPhrase,
  renderError,
  STATUS,
} from "../http/errors.ts";
import type { Handler, Reply, ServerRequest } from "../http/handler.ts";
import { isUpgradeRequest } from "../http/ws/handshake.ts";
import { canonicalPath } from "./canonical_path.ts";
import { compose, LAST, type Middleware, type Run } from "./chain.ts";
import type { ProxyTrust } from "./client_addr.ts";
import {
  AppRequest,
  mediaType,
  mediaTypeMatches,
  NO_PARAMS,
  type Params,
  type RouteContract,
} from "./request.ts";
import { type WsHandler, wsRoute, type WsRouteOptions } from "./websocket.ts";

/** A route's handler: gets the app request, returns (or throws) a reply. */
export type AppHandler = (req: AppRequest) => Reply | Promise<Reply>;
export { afterNext } from "./chain.ts";
export type {
  Middleware,
  MiddlewareFn,
  MiddlewareHooks,
  Next,
} from "./chain.ts";

/** Per-route options: the request contract and route-only middleware. */
export interface RouteOptions extends RouteContract {
  /** Middleware for this route only, after the contract check. */
  readonly use?: readonly Middleware[];
}

interface Route {
  readonly template: string;
  readonly handler: AppHandler;
  readonly contract: RouteContract;
  /** The route's own middleware, composed once. */
  readonly run: Run;
  /** What {@link Router.match} answers for this route on an exact path; set once, on registration. */
  hit: Match;
}

/** The chains a request may take: the whole one, and one without `routesOnly` layers. */
interface Chains {
  readonly routed: Run;
  readonly other: Run;
}

/**
 * Every route under one template, by method; `any` answers every method,
 * `ws` a WebSocket upgrade (GET with `Upgrade: websocket`).
 */
interface Entry {
  readonly template: string;
  readonly byMethod: Map<string, Route>;
  any: Route | undefined;
  ws: Route | undefined;
  /** Some route here wants JSON errors: so do its 405s. */
  jsonErrors: boolean;
}

type Segment =
  | { readonly kind: "literal"; readonly text: string }
  | { readonly kind: "param"; readonly name: string }
  | { readonly kind: "tail"; readonly name: string };

interface PatternEntry extends Entry {
  readonly segments: readonly Segment[];
  /** The literal start every match has ("/echo/" of "/echo/{text}"): checked first. */
  readonly prefix: string;
  /** Segments the prefix covers. */
  readonly skip: number;
}

/** Result of {@link Router.match}. */
export type Match =
  | { readonly kind: "route"; readonly route: Route; readonly params: Params }
  /** The path exists, not for this method: 405 (or 204 for OPTIONS). */
  | {
    readonly kind: "method";
    readonly template: string;
    readonly allow: string;
    readonly jsonErrors: boolean;
  }
  /** The path has a WebSocket route only, and this is no upgrade: 426. */
  | { readonly kind: "upgrade"; readonly template: string }
  | { readonly kind: "none" };

const NONE: Match = Object.freeze({ kind: "none" });
const ALL_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/** Splits a template into segments; throws on a malformed one. */
function compile(template: string): Segment[] | null {
  if (template.charCodeAt(0) !== 0x2f) {
    throw new TypeError(`Route must start with "/": ${template}`);
  }
  const parts = template.slice(1).split("/");
  if (!/[{}]|\/:/.test(template)) return null;
  const names = new Set<string>();
  return parts.map((part, i): Segment => {
    let kind: "param" | "tail" = "param";
    let name: string;
    if (part.startsWith("{*") && part.endsWith("}")) {
      if (i !== parts.length - 1) {
        throw new TypeError(`Route tail must come last: ${template}`);
      }
      kind = "tail";
      name = part.slice(2, -1);
    } else if (part.startsWith("{") && part.endsWith("}")) {
      name = part.slice(1, -1);
    } else if (part.startsWith(":")) {
      name = part.slice(1);
    } else {
      if (/[{}]/.test(part)) {
        throw new TypeError(`Malformed route: ${template}`);
      }
      return { kind: "literal", text: part };
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || names.has(name)) {
      throw new TypeError(`Bad or repeated param "${name}" in ${template}`);
    }
    names.add(name);
    return { kind, name };
  });
}

/** The literal segments a template starts with, as one string ending in "/", and their count. */
function literalPrefix(segments: readonly Segment[]): [string, number] {
  let prefix = "/";
  let i = 0;
  while (i < segments.length - 1 && segments[i].kind === "literal") {
    prefix += (segments[i] as { text: string }).text + "/";
    i++;
  }
  return [prefix, i];
}

/** Params for `path` if it fits `entry`, else null. */
function matchSegments(entry: PatternEntry, path: string): Params | null {
  const prefix = entry.prefix;
  if (!path.startsWith(prefix)) return null;
  const segments = entry.segments;
  const params: Record<string, string> = {};
  let pos = prefix.length;
  for (let i = entry.skip; i < segments.length; i++) {
    const seg = segments[i];
    if (pos > path.length) return null; // path ran out
    if (seg.kind === "tail") {
      params[seg.name] = path.slice(pos);
      return params;
    }
    let end = path.indexOf("/", pos);
    if (end === -1) end = path.length;
    if (seg.kind === "literal") {
      if (end - pos !== seg.text.length || !path.startsWith(seg.text, pos)) {
        return null;
      }
    } else {
      if (end === pos) return null; // a param is never empty
      params[seg.name] = path.slice(pos, end);
    }
    pos = end + 1;
  }
  return pos === path.length + 1 ? params : null;
}

function allowOf(entries: readonly Entry[]): string {
  const methods = new Set<string>();
  for (const entry of entries) {
    if (entry.any) return ALL_METHODS;
    for (const method of entry.byMethod.keys()) methods.add(method);
  }
  if (methods.has("GET")) methods.add("HEAD");
  methods.add("OPTIONS");
  return [...methods].join(", ");
}

function findRoute(
  entry: Entry,
  method: string,
  upgrade: boolean,
): Route | undefined {
  if (upgrade && entry.ws !== undefined) return entry.ws;
  return entry.byMethod.get(method) ??
    (method === "HEAD" ? entry.byMethod.get("GET") : undefined) ?? entry.any;
}

/** Options for {@link Router.handler}. */
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
 * import { Router } from "./router.ts";
 * import { text } from "./response.ts";
 *
 * const router = new Router()
 *   .get("/hello/{name}", (req) => text(`Hi ${req.params.name}`));
 * const match = router.match("GET", "/hello/ana");
 * assert.equal(match.kind === "route" && match.params.name, "ana");
 * assert.equal(router.match("DELETE", "/hello/ana").kind, "method"); // 405
 * ```
 */
export class Router {
  readonly #exact = new Map<string, Entry>();
  /**
   * The exact entries again, by path length: comparing a fresh path with
   * the few of its length is ~7 ns, where a Map hashes it first (~45 ns).
   */
  readonly #exactByLength: Entry[][] = [];
  readonly #patterns: PatternEntry[] = [];
  readonly #use: Middleware[] = [];
  /** `#use` composed; undefined after a change, rebuilt by the next request. */
  #chains: Chains | undefined;
  /** Some route is a WebSocket one: requests are checked for an upgrade. */
  #hasWs = false;
  #fallback: AppHandler | undefined;
  #fallbackName = "fallback";

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

  get(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["GET"] }, handler);
  }
  post(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["POST"] }, handler);
  }
  put(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["PUT"] }, handler);
  }
  patch(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["PATCH"] }, handler);
  }
  delete(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["DELETE"] }, handler);
  }
  options(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, { ...options, methods: ["OPTIONS"] }, handler);
  }
  /** A route for every method (unless `options.methods` names some). */
  all(template: string, handler: AppHandler, options?: RouteOptions): this {
    return this.route(template, options ?? {}, handler);
  }

  /**
   * A WebSocket route: a GET with `Upgrade: websocket` on `template` gets
   * 101 and `handler` gets the socket. Other requests to the path go to
   * its other routes as if this one were not there; with none, 426 with
   * `Upgrade: websocket`. A bad handshake is 400 (403 for an origin not in
   * `options.origins`, 426 for a version other than 13).
   */
  ws(
    template: string,
    handler: WsHandler,
    options: WsRouteOptions & { readonly use?: readonly Middleware[] } = {},
  ): this {
    const entry = this.#entry(template);
    if (entry.ws) throw new TypeError(`Route registered twice: WS ${template}`);
    const { use = [], ...upgrade } = options;
    entry.ws = newRoute(template, wsRoute(handler, upgrade), {
      methods: ["GET"],
    }, use);
    this.#hasWs = true;
    return this;
  }

  /** The entry for `template`, made on first use; throws on a malformed one. */
  #entry(template: string): Entry {
    const entry: Entry | undefined = this.#exact.get(template) ??
      this.#patterns.find((p) => p.template === template);
    if (entry) return entry;
    const segments = compile(template);
    const fresh: Entry = {
      template,
      byMethod: new Map(),
      any: undefined,
      ws: undefined,
      jsonErrors: false,
    };
    if (segments === null) {
      this.#exact.set(template, fresh);
      (this.#exactByLength[template.length] ??= []).push(fresh);
      return fresh;
    }
    const [prefix, skip] = literalPrefix(segments);
    const pattern: PatternEntry = { ...fresh, segments, prefix, skip };
    this.#patterns.push(pattern);
    return pattern;
  }

  /** Registers `handler` for `options.methods` (all when absent) on `template`. */
  route(template: string, options: RouteOptions, handler: AppHandler): this {
    const entry = this.#entry(template);
    const { use = [], ...contract } = options;
    const route = newRoute(template, handler, contract, use);
    if (contract.methods === undefined) {
      if (entry.any) throw new TypeError(`Route registered twice: ${template}`);
      entry.any = route;
    }
    for (const method of contract.methods ?? []) {
      if (entry.byMethod.has(method)) {
        throw new TypeError(`Route registered twice: ${method} ${template}`);
      }
      entry.byMethod.set(method, route);
    }
    if (contract.jsonErrors) entry.jsonErrors = true;
    return this;
  }

  /** Answers every path no route has (static files, say); `name` labels it in metrics. */
  fallback(handler: AppHandler, name = "fallback"): this {
    this.#fallback = handler;
    this.#fallbackName = name;
    return this;
  }

  /**
   * Finds the route for a canonical path. `upgrade`: the request is a
   * WebSocket upgrade (a GET with `Upgrade: websocket`).
   */
  match(method: string, path: string, upgrade = false): Match {
    const exact = this.#findExact(path);
    if (exact !== undefined) {
      const route = findRoute(exact, method, upgrade); // most requests end here
      if (route !== undefined) return route.hit;
    }
    return this.#matchPattern(method, path, exact, upgrade);
  }

  #findExact(path: string): Entry | undefined {
    const same = this.#exactByLength[path.length];
    if (same === undefined) return undefined;
    if (same.length > 8) return this.#exact.get(path); // many of one length
    // Most paths of one length differ in their last character: comparing
    // that first skips most string compares (~40 ns each in the server).
    const last = path.charCodeAt(path.length - 1);
    for (let i = 0; i < same.length; i++) {
      const template = same[i].template;
      if (template.charCodeAt(path.length - 1) === last && template === path) {
        return same[i];
      }
    }
    return undefined;
  }

  #matchPattern(
    method: string,
    path: string,
    exact: Entry | undefined,
    upgrade: boolean,
  ): Match {
    let seen: Entry[] | undefined; // paths that match under other methods
    const patterns = this.#patterns;
    for (let i = 0; i < patterns.length; i++) {
      const entry = patterns[i];
      const params = matchSegments(entry, path);
      if (params === null) continue;
      const route = findRoute(entry, method, upgrade);
      if (route !== undefined) return { kind: "route", route, params };
      (seen ??= exact ? [exact] : []).push(entry);
    }
    if (seen === undefined) {
      if (exact === undefined) return NONE;
      seen = [exact];
    }
    if (seen.every((e) => e.byMethod.size === 0 && e.any === undefined)) {
      return { kind: "upgrade", template: seen[0].template }; // WebSocket only
    }
    return {
      kind: "method",
      template: seen[0].template,
      allow: allowOf(seen),
      jsonErrors: seen.some((e) => e.jsonErrors),
    };
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
    // Only apps with WebSocket routes pay for looking at Upgrade.
    const upgrade = this.#hasWs && raw.method === "GET" &&
      raw.headers.get("upgrade") !== undefined && isUpgradeRequest(raw.headers);
    const match = refused ? NONE : this.match(raw.method, path, upgrade);
    const chains = this.#chains ??= {
      routed: compose(this.#use),
      other: compose(this.#use.filter((m) => m.routesOnly !== true)),
    };
    let run = chains.other;
    let jsonErrors = false;
    if (match.kind === "route") {
      req.route = match.route.template;
      req.matched = "route";
      req.params = match.params;
      req.contract = match.route.contract;
      jsonErrors = match.route.contract.jsonErrors === true;
      run = chains.routed;
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
    const last = () => this.#answer(req, match, refused);
    if (!jsonErrors) return run(req, last);
    let reply: Reply | Promise<Reply>;
    try {
      reply = run(req, last);
    } catch (err) {
      return jsonError(req, err);
    }
    if (reply instanceof Promise) {
      return reply.catch((err) => jsonError(req, err));
    }
    return reply;
  }

  #answer(
    req: AppRequest,
    match: Match,
    refused: HttpError | undefined,
  ): Reply | Promise<Reply> {
    if (refused) throw refused;
    if (match.kind === "route") {
      const { handler, contract, run } = match.route;
      // The route's limit, or the router's for routes that set none.
      if (req.maxBodyBytes !== undefined || contract.contentType) {
        checkContract(req, contract);
      }
      if (run === LAST) return handler(req);
      return run(req, () => handler(req));
    }
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
      // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
      throw new HttpError(
        STATUS.UpgradeRequired,
        `${req.method} without a WebSocket upgrade on ${match.template}`,
        {
          expose: "This path speaks WebSocket only",
          headers: { upgrade: "websocket" },
        },
      );
    }
    if (this.#fallback) return this.#fallback(req);
    throw new HttpError(STATUS.NotFound, `No route for ${req.path}`);
  }
}

/** A route with its middleware composed and its exact-path match made once. */
function newRoute(
  template: string,
  handler: AppHandler,
  contract: RouteContract,
  use: readonly Middleware[],
): Route {
  const route: Route = {
    template,
    handler,
    contract,
    run: compose(use),
    hit: NONE,
  };
  route.hit = Object.freeze({ kind: "route", route, params: NO_PARAMS });
  return route;
}

function allowReply(allow: string): Reply {
  return { status: STATUS.NoContent, headers: { allow }, body: null };
}

/**
 * Enforces a route's contract from the head alone: a declared Content-Length
 * over the limit is 413 and a media type outside the list is 415, before any
 * body byte is read, so `Expect: 100-continue` never earns a `100`.
 */
function checkContract(req: AppRequest, contract: RouteContract): void {
  const { contentType } = contract;
  const maxBodyBytes = req.maxBodyBytes;
  const length = req.raw.body.length;
  if (maxBodyBytes !== undefined && length !== null && length > maxBodyBytes) {
    throw new HttpError(
      STATUS.ContentTooLarge,
      "Declared body over the route limit",
      {
        expose: `Request body is larger than ${maxBodyBytes} bytes`,
        close: true, // not worth reading a body we refused just to keep the connection
      },
    );
  }
  if (contentType !== undefined) {
    const type = mediaType(req.header("content-type"));
    const accepted = typeof contentType === "string"
      ? [contentType]
      : contentType;
    if (!accepted.some((pattern) => mediaTypeMatches(type, pattern))) {
      const message = `Content-Type must be ${accepted.join(" or ")}`;
      throw new HttpError(STATUS.UnsupportedMediaType, message, {
        expose: message,
      });
    }
  }
}

/**
 * The one app-level error renderer: API routes answer JSON even to `*\/*`
 * or no Accept at all. A client that names HTML or JSON gets what the engine
 * would pick, so the error is rethrown to it, as is anything but an HttpError.
 */
function jsonError(req: AppRequest, err: unknown): Reply {
  if (!(err instanceof HttpError)) throw err;
  const accept = req.header("accept");
  if (
    accept !== undefined &&
    (accept.includes("text/html") || accept.includes("json"))
  ) {
    throw err;
  }
  const { contentType, body } = renderError(
    err.status,
    err.expose ?? reasonPhrase(err.status),
    "application/json",
  );
  const headers: Record<string, string> = {
    ...err.headers,
    "content-type": contentType,
  };
  if (err.close) headers.connection = "close";
  return { status: err.status, headers, body };
}
