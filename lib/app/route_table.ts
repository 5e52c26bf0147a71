/**
 * Route templates, and method + path -> route + params. Static paths are
 * found among the few of their length; only templates with `{name}`,
 * `:name` or a `{*rest}` tail are compared segment by segment. Matching runs
 * on the canonical path (decoded once by `canonicalPath()`), so params
 * arrive decoded and are never decoded again. What a match runs is the
 * router's (router.ts).
 */
import {
  type AppHandler,
  NO_PARAMS,
  type Params,
  type RouteContract,
} from "./app_request.ts";
import type { Middleware, Run } from "./chain.ts";

/** One handler on one template, with what the router runs around it. */
export interface Route {
  readonly template: string;
  readonly handler: AppHandler;
  readonly contract: RouteContract;
  /** The route's own middleware. */
  readonly use: readonly Middleware[];
  /**
   * The router's middleware, the contract check and `use` composed as one
   * chain around the handler, with what it was made from (the router's).
   */
  chain: { readonly of: unknown; readonly run: Run } | undefined;
  /** What {@link RouteTable.match} answers for this route on an exact path; set by add(). */
  hit: Match;
}

/**
 * Every route under one template, by method; `any` answers every method,
 * `ws` a WebSocket upgrade (GET with `Upgrade: websocket`).
 */
interface Entry {
  readonly template: string;
  readonly byMethod: Map<string, Route>;
  /**
   * `byMethod` again as two lists, for {@link findRoute}: an entry has a
   * method or two, and comparing the request's method with each is cheaper
   * than hashing it.
   */
  readonly methods: string[];
  readonly routes: Route[];
  any: Route | undefined;
  ws: Route | undefined;
  /** Some route here wants JSON errors: so do its 405s. */
  jsonErrors: boolean;
}

/** A segment's kind: matched as written, a `{name}`, or a `{*rest}` tail. */
const LITERAL = 0;
const PARAM = 1;
const TAIL = 2;

/** One segment of a template; every kind has the same shape, so matching reads it monomorphically. */
export interface Segment {
  readonly kind: typeof LITERAL | typeof PARAM | typeof TAIL;
  /** The literal text, or the param's name. */
  readonly text: string;
}

interface PatternEntry extends Entry {
  readonly segments: readonly Segment[];
  /**
   * The literal start every match has ("/echo/" of "/echo/{text}"), as
   * character codes: checked first, by hand.
   */
  readonly prefix: readonly number[];
  /** Segments the prefix covers. */
  readonly skip: number;
}

/** Result of {@link RouteTable.match}. */
export type Match =
  | { readonly kind: "route"; readonly route: Route; readonly params: Params }
  /** The path exists, not for this method: 405 (or 204 for OPTIONS). */
  | {
    readonly kind: "method";
    readonly template: string;
    readonly allow: string;
    readonly jsonErrors: boolean;
  }
  /** The path has a WebSocket route only, or only it takes a GET, and this is no upgrade: 426. */
  | { readonly kind: "upgrade"; readonly template: string }
  | { readonly kind: "none" };

/** What {@link RouteTable.match} answers for a path no route has. */
export const NO_MATCH: Match = Object.freeze({ kind: "none" });
const ALL_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/**
 * Splits a template into segments, or null for a path without params;
 * throws on a malformed one.
 */
export function compileTemplate(template: string): Segment[] | null {
  if (template.charCodeAt(0) !== 0x2f) {
    throw new TypeError(`Route must start with "/": ${template}`);
  }
  const parts = template.slice(1).split("/");
  if (!/[{}]|\/:/.test(template)) return null;
  const names = new Set<string>();
  return parts.map((part, i): Segment => {
    let kind: typeof PARAM | typeof TAIL = PARAM;
    let name: string;
    if (part.startsWith("{*") && part.endsWith("}")) {
      if (i !== parts.length - 1) {
        throw new TypeError(`Route tail must come last: ${template}`);
      }
      kind = TAIL;
      name = part.slice(2, -1);
    } else if (part.startsWith("{") && part.endsWith("}")) {
      name = part.slice(1, -1);
    } else if (part.startsWith(":")) {
      name = part.slice(1);
    } else {
      if (/[{}]/.test(part)) {
        throw new TypeError(`Malformed route: ${template}`);
      }
      return { kind: LITERAL, text: part };
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || names.has(name)) {
      throw new TypeError(`Bad or repeated param "${name}" in ${template}`);
    }
    names.add(name);
    return { kind, text: internalized(name) };
  });
}

/**
 * `name` as V8's one shared copy of that text, the kind every property
 * name is. A param is stored under its name in each request's params
 * object, and a keyed store by a name sliced from the template misses its
 * inline cache every time (megamorphic, ~10 ns more a param in a hot loop
 * and ~45 ns over sockets); by a shared name it stays monomorphic.
 */
function internalized(name: string): string {
  return Object.keys({ [name]: 0 })[0];
}

/**
 * The literal segments a template starts with, as the character codes of
 * one string ending in "/", and their count.
 */
function literalPrefix(segments: readonly Segment[]): [number[], number] {
  let prefix = "/";
  let i = 0;
  while (i < segments.length - 1 && segments[i].kind === LITERAL) {
    prefix += segments[i].text + "/";
    i++;
  }
  return [[...prefix].map((c) => c.charCodeAt(0)), i];
}

/** Params for `path` if it fits `entry`, else null. */
function matchSegments(entry: PatternEntry, path: string): Params | null {
  const prefix = entry.prefix;
  let pos = prefix.length;
  if (path.length < pos) return null;
  // By hand: `startsWith()` on a path the parser just made is ~25 ns.
  for (let i = 0; i < pos; i++) {
    if (path.charCodeAt(i) !== prefix[i]) return null;
  }
  const segments = entry.segments;
  const params: Record<string, string> = {};
  for (let i = entry.skip; i < segments.length; i++) {
    const seg = segments[i];
    if (pos > path.length) return null; // path ran out
    if (seg.kind === TAIL) {
      params[seg.text] = path.slice(pos);
      return params;
    }
    let end = path.indexOf("/", pos);
    if (end === -1) end = path.length;
    if (seg.kind === LITERAL) {
      if (end - pos !== seg.text.length || !path.startsWith(seg.text, pos)) {
        return null;
      }
    } else {
      if (end === pos) return null; // a param is never empty
      params[seg.text] = path.slice(pos, end);
    }
    pos = end + 1;
  }
  return pos === path.length + 1 ? params : null;
}

function allowOf(entries: readonly Entry[]): string {
  const methods = new Set<string>();
  for (const entry of entries) {
    if (entry.any) return ALL_METHODS;
    if (entry.ws !== undefined) methods.add("GET"); // with an upgrade
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
  return routeFor(entry, method) ??
    (method === "HEAD" ? routeFor(entry, "GET") : undefined) ?? entry.any;
}

/** The route registered for exactly `method`, or undefined. */
function routeFor(entry: Entry, method: string): Route | undefined {
  const methods = entry.methods;
  for (let i = 0; i < methods.length; i++) {
    if (methods[i] === method) return entry.routes[i];
  }
  return undefined;
}

/** The routes of one router, by template. */
export class RouteTable {
  readonly #exact = new Map<string, Entry>();
  /**
   * The exact entries again, by path length: comparing a fresh path with
   * the few of its length is ~7 ns, where a Map hashes it first (~45 ns).
   */
  readonly #exactByLength: Entry[][] = [];
  readonly #patterns: PatternEntry[] = [];

  /**
   * Registers `route` on its template for `methods`, or for every method
   * when undefined. Throws TypeError for a malformed template or a route
   * registered twice.
   */
  add(route: Route, methods: readonly string[] | undefined): void {
    const entry = this.#entry(route);
    const template = route.template;
    if (methods === undefined) {
      if (entry.any) throw new TypeError(`Route registered twice: ${template}`);
      entry.any = route;
    }
    for (const method of methods ?? []) {
      if (entry.byMethod.has(method)) {
        throw new TypeError(`Route registered twice: ${method} ${template}`);
      }
      entry.byMethod.set(method, route);
      entry.methods.push(method);
      entry.routes.push(route);
    }
    if (route.contract.jsonErrors) entry.jsonErrors = true;
  }

  /** Registers `route` for a WebSocket upgrade on its template; see add(). */
  addUpgrade(route: Route): void {
    const entry = this.#entry(route);
    if (entry.ws) {
      throw new TypeError(`Route registered twice: WS ${route.template}`);
    }
    entry.ws = route;
  }

  /** The entry for a route's template, made on first use; sets `route.hit`. */
  #entry(route: Route): Entry {
    route.hit = Object.freeze({ kind: "route", route, params: NO_PARAMS });
    const template = route.template;
    const entry: Entry | undefined = this.#exact.get(template) ??
      this.#patterns.find((p) => p.template === template);
    if (entry) return entry;
    const segments = compileTemplate(template);
    const fresh: Entry = {
      template,
      byMethod: new Map(),
      methods: [],
      routes: [],
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

  /**
   * Finds the route for a canonical path. `upgrade`: the request is a
   * WebSocket upgrade (a GET with `Upgrade: websocket`).
   */
  match(method: string, path: string, upgrade = false): Match {
    const found = this.find(method, path, upgrade);
    if (found.kind !== "route" || this.params === NO_PARAMS) return found;
    return { kind: "route", route: found.route, params: this.params };
  }

  /**
   * The params {@link find} last found, for the caller to take right
   * after it: a request's match then makes no object but its params.
   */
  params: Params = NO_PARAMS;

  /**
   * Whether a template that fits the path {@link find} last looked up has
   * a WebSocket route: only then can `upgrade` change its answer, so a
   * caller may look at the request's Upgrade field only then, and find
   * again with it.
   */
  wsPath = false;

  /**
   * {@link match} without a match object per request: a route's match is
   * its `hit` (no params), and its params are in {@link params}.
   */
  find(method: string, path: string, upgrade = false): Match {
    this.params = NO_PARAMS;
    this.wsPath = false;
    const exact = this.#findExact(path);
    if (exact !== undefined) {
      if (exact.ws !== undefined) this.wsPath = true;
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
      if (entry.ws !== undefined) this.wsPath = true;
      const route = findRoute(entry, method, upgrade);
      if (route !== undefined) {
        this.params = params;
        return route.hit;
      }
      (seen ??= exact ? [exact] : []).push(entry);
    }
    if (seen === undefined) {
      if (exact === undefined) return NO_MATCH;
      seen = [exact];
    }
    // WebSocket only; or a GET (HEAD) where only a WebSocket route takes
    // one: what works there is the same request with an upgrade.
    const ws = seen.find((e) => e.ws !== undefined);
    if (
      ws !== undefined && (method === "GET" || method === "HEAD" ||
        seen.every((e) => e.byMethod.size === 0 && e.any === undefined))
    ) {
      return { kind: "upgrade", template: ws.template };
    }
    return {
      kind: "method",
      template: seen[0].template,
      allow: allowOf(seen),
      jsonErrors: seen.some((e) => e.jsonErrors),
    };
  }
}
