/**
 * The request as the application sees it: the engine's {@link ServerRequest}
 * plus the canonical path, route params, lazily parsed query and the client
 * address. Body reads go straight to the engine's reader, with the route's
 * own limit.
 */
import type { Reply, ServerRequest } from "../http/handler.ts";
import type { HeaderFields } from "../http/headers.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import { clientAddress, type ProxyTrust, TRUST_NONE } from "./client_addr.ts";
import type { Match } from "./route_table.ts";
import { isJsonType, mediaType, mediaTypeMatches } from "./media_types.ts";

/**
 * Route params; one shared frozen object when a route has none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Params, Router, text } from "@spindle/server";
 *
 * const show = (params: Params) => `${params.owner}/${params.repo}`;
 * const app = new Router().get("/{owner}/{repo}", (req) => text(show(req.params)));
 * assert.equal(show({ owner: "denoland", repo: "deno" }), "denoland/deno");
 * assert.equal(typeof app.handler(), "function");
 * ```
 */
export type Params = Readonly<Record<string, string>>;
export const NO_PARAMS: Params = Object.freeze({});

/**
 * What a route accepts, checked from the head before any body byte is read
 * (so `Expect: 100-continue` gets the final status instead of `100`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { json, type RouteContract, Router } from "@spindle/server";
 *
 * const api: RouteContract = { jsonErrors: true, maxBodyBytes: 4096 };
 * const app = new Router().put("/notes/{id}", (req) => json({ id: req.params.id }), api);
 * assert.equal(typeof app.handler(), "function");
 * ```
 */
export interface RouteContract {
  /** Methods the route answers; `.get()` and friends set it themselves. */
  readonly methods?: readonly string[];
  /** Body limit for this route (capped by the engine's `maxBodyBytes`). Over: 413. */
  readonly maxBodyBytes?: number;
  /** Media types accepted (`application/json`, `text/*`), no parameters. Else: 415. */
  readonly contentType?: string | readonly string[];
  /** Errors are rendered as JSON unless the client names HTML or JSON (API routes). */
  readonly jsonErrors?: boolean;
}

/**
 * A route's handler: gets the app request, returns (or throws) a reply.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type AppHandler, Router, serve, text } from "@spindle/server";
 *
 * const greet: AppHandler = (req) => text(`hi ${req.params.name}`);
 * const app = new Router().get("/hi/{name}", greet);
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/hi/Ada%20L`);
 * assert.equal(await res.text(), "hi Ada L");
 * ```
 */
export type AppHandler = (req: AppRequest) => Reply | Promise<Reply>;

/**
 * One request inside the application. Built once per request by the router.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type AppRequest, json, Router, serve } from "@spindle/server";
 *
 * function describe(req: AppRequest) {
 *   return { path: req.path, id: req.params.id, sort: req.query.get("sort") };
 * }
 * const app = new Router().get("/users/{id}", (req) => json(describe(req)));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/users/7?sort=name`);
 * assert.deepEqual(await res.json(), { path: "/users/7", id: "7", sort: "name" });
 * ```
 */
export class AppRequest {
  /** The engine's request, for anything not wrapped here. */
  readonly raw: ServerRequest;
  /** The request method, as sent. */
  readonly method: string;
  /** Canonical path: decoded once by `canonicalPath()`; params come from it. */
  readonly path: string;
  /** Params of the matched route, decoded. */
  params: Params = NO_PARAMS;
  /** Template of the matched route (`/echo/{text}`), the fallback's name, or undefined. */
  route: string | undefined;
  /**
   * What the router found: a route for this method, the path under other
   * methods only (405, or 204 for OPTIONS), the fallback, or nothing.
   */
  matched: "route" | "method" | "fallback" | "none" = "none";
  /** Contract of the matched route, or undefined. */
  contract: RouteContract | undefined;
  /**
   * What the router answers at the end of the chain: the route it matched
   * (or why not), or the error that refused the path. The router's own.
   *
   * @ignore
   */
  found: Match | HttpError | undefined;
  readonly #trust: ProxyTrust;
  readonly #maxBodyBytes: number | undefined;
  #query: URLSearchParams | undefined;
  #client: string | undefined;

  /** `maxBodyBytes`: the limit for routes that set none (default: the engine's). */
  constructor(
    raw: ServerRequest,
    path: string,
    trust: ProxyTrust = TRUST_NONE,
    maxBodyBytes?: number,
  ) {
    this.raw = raw;
    this.method = raw.method;
    this.path = path;
    this.#trust = trust;
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** Query parameters, parsed on first use. */
  get query(): URLSearchParams {
    return this.#query ??= new URLSearchParams(this.raw.query);
  }

  /** Header fields; `get()` is case-insensitive. */
  get headers(): HeaderFields {
    return this.raw.headers;
  }

  /** The first value of a header (any case), or undefined. */
  header(name: string): string | undefined {
    return this.raw.headers.get(name);
  }

  /** Host header (or absolute-form authority) as sent. */
  get host(): string {
    return this.raw.host;
  }

  /** Client address: the peer, or X-Forwarded-For's when the peer is a trusted proxy. */
  get client(): string {
    if (this.#client !== undefined) return this.#client;
    const peer = this.raw.remoteAddr.hostname;
    // Trusting nobody (the default), X-Forwarded-For is not even looked up.
    return this.#client = this.#trust === TRUST_NONE ? peer : clientAddress(
      peer,
      this.raw.headers.getJoined("x-forwarded-for"),
      this.#trust,
    );
  }

  /** Body limit for this request: the route's, else the app's, else the engine's. */
  get maxBodyBytes(): number | undefined {
    return this.contract?.maxBodyBytes ?? this.#maxBodyBytes;
  }

  /** Whole body. Over the route's limit: 413. */
  bytes(): Promise<Uint8Array> {
    return this.raw.body.bytes(this.maxBodyBytes);
  }

  /** Whole body as UTF-8. Invalid UTF-8: 400; over the limit: 413. */
  text(): Promise<string> {
    return this.raw.body.text(this.maxBodyBytes);
  }

  /**
   * Whole body parsed as JSON. Not a JSON media type: 415, before reading.
   * Over the limit: 413. Malformed: 400 naming the parse error.
   */
  json(): Promise<unknown> {
    const type = mediaType(this.raw.headers.get("content-type"));
    if (!isJsonType(type)) {
      const message = type === ""
        ? "Content-Type must be application/json"
        : `Content-Type must be application/json, not ${type}`;
      return Promise.reject(
        new HttpError(STATUS.UnsupportedMediaType, message, {
          expose: message,
        }),
      );
    }
    return this.raw.body.json(this.maxBodyBytes);
  }

  /** The body piece by piece as it arrives. */
  chunks(): AsyncIterable<Uint8Array> {
    return this.raw.body.chunks(this.maxBodyBytes);
  }

  /** The body as a web stream. */
  stream(): ReadableStream<Uint8Array> {
    return this.raw.body.stream(this.maxBodyBytes);
  }
}

/**
 * Enforces a route's contract from the head alone: a declared Content-Length
 * over the limit is 413 and a media type outside the list is 415, before any
 * body byte is read, so `Expect: 100-continue` never earns a `100`.
 */
export function checkContract(
  req: AppRequest,
  contract: RouteContract,
): void {
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
