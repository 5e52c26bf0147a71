/**
 * Spindle: an HTTP/1.1 and HTTP/2 server written from the socket up on
 * `Deno.listen`, with a router, static files and an adapter for web-standard
 * `(Request) => Response` apps. This is the package's one entry point.
 *
 * @example Serve a router
 * ```ts
 * import assert from "node:assert/strict";
 * import { Router, serve, text } from "@spindle/server";
 *
 * const app = new Router().get("/hi/{name}", (req) => text(`hi ${req.params.name}`));
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const res = await fetch(`http://127.0.0.1:${server.port}/hi/you`);
 * assert.equal(await res.text(), "hi you");
 * ```
 *
 * @module
 */

// The engine: sockets, HTTP/1.1 and HTTP/2, limits, errors.
export { serve, type ServeOptions, type Server } from "./lib/http/server.ts";
export {
  FileBody,
  type Handler,
  type Reply,
  type ReplyBody,
  type ReplyHeaders,
  type RequestBody,
  type ServerRequest,
} from "./lib/http/handler.ts";
export type { HeaderFields } from "./lib/http/headers.ts";
export type { EngineStats } from "./lib/http/stats.ts";
export {
  DEFAULT_LIMITS,
  type Limits,
  type ServerConfig,
} from "./lib/config.ts";
export {
  DEFAULT_STATIC,
  type StaticConfig,
  type StaticUploads,
} from "./lib/app/settings.ts";
export {
  type ErrorStatus,
  HttpError,
  type HttpErrorOptions,
  STATUS,
  type Status,
} from "./lib/http/errors.ts";
export {
  type CertNames,
  makeSelfSigned,
  type PemPair,
} from "./lib/self_signed.ts";
export {
  CertificateError,
  type CertificateInfo,
  TlsCertificate,
} from "./lib/http/tls.ts";

// The application layer: routes, replies, middleware.
export {
  afterNext,
  type AppHandler,
  type ErrorHandler,
  type HandlerOptions,
  type Middleware,
  type MiddlewareFn,
  type MiddlewareHooks,
  type Next,
  type RouteOptions,
  Router,
} from "./lib/app/router.ts";
export {
  AppRequest,
  type Params,
  type RouteContract,
} from "./lib/app/app_request.ts";
export {
  html,
  json,
  redirect,
  type ReplyInit,
  text,
  withHeaders,
} from "./lib/app/replies.ts";
export type { ProxyTrust } from "./lib/app/client_addr.ts";
export type {
  DeflateOptions,
  UpgradeOptions,
} from "./lib/http/ws/handshake.ts";
export type {
  ServerWebSocket,
  WsEventHandler,
  WsHandler,
  WsHandlers,
  WsMessage,
  WsRouteOptions,
} from "./lib/app/websocket.ts";
export {
  type FetchHandler,
  type FetchInfo,
  type FetchUpgradeOptions,
  fromFetch,
  serveFetch,
  upgradeWebSocket,
} from "./lib/app/fetch_adapter.ts";
export type { FolderTuning } from "./lib/app/static_folders.ts";
export type { RepresentationTuning } from "./lib/app/static_representations.ts";
export {
  staticFiles,
  type StaticHooks,
  type StaticTuning,
} from "./lib/app/static_files.ts";
export {
  rateLimit,
  type RateLimitHooks,
  type RateLimitOptions,
} from "./lib/app/middleware/rate_limit.ts";
export type {
  RateDecision,
  RateLimitPolicy,
  RateLimitStore,
} from "./lib/app/rate_limit_store.ts";
