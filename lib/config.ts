/**
 * Limits, server configuration and their defaults. Every number the engine
 * enforces lives in {@link Limits}, so a test can shrink one to reach it.
 */

/** Hard limits. Each one names the status a client gets for crossing it. */
export interface Limits {
  /** Request target (path and query), in bytes. Over: 414. */
  readonly maxTargetBytes: number;
  /** Request line + headers, in bytes. Over: 431. */
  readonly maxHeadBytes: number;
  /** Header lines per request. Over: 431. */
  readonly maxHeaderCount: number;
  /** Request body, in bytes, from Content-Length or while de-chunking. Over: 413. */
  readonly maxBodyBytes: number;
  /** One chunk-size line with its extensions, in bytes. Over: 400. */
  readonly maxChunkLineBytes: number;
  /** All trailer fields of a chunked body, in bytes. Over: 431. */
  readonly maxTrailerBytes: number;
  /** Requests served on one connection before it is closed. */
  readonly maxRequestsPerConnection: number;
  /** Connections handled at once. Past it, connections wait in the queue. */
  readonly maxConns: number;
  /** Connections waiting for a slot. Past it: 503 with Retry-After, then close. */
  readonly maxQueue: number;
  /** Time allowed to receive a whole head once its first byte came. Over: 408, then close. */
  readonly headTimeoutMs: number;
  /** Idle time between requests on a kept-alive connection. Over: close. */
  readonly keepAliveTimeoutMs: number;
  /** Time the body may go without a single byte arriving. Over: 408, then close. */
  readonly bodyTimeoutMs: number;
  /** Time a write may make no progress (a client that stopped reading). Over: close. */
  readonly writeTimeoutMs: number;
  /** Time in-flight requests get to finish after SIGINT/SIGTERM. Then: close. */
  readonly shutdownTimeoutMs: number;
  /** Time a connection may wait in the queue for a slot. Over: 503, then close. */
  readonly queueTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxTargetBytes: 8 * 1024, // nginx's default line buffer; longer URLs are abuse
  maxHeadBytes: 16 * 1024, // big cookies fit; a header flood does not
  maxHeaderCount: 100, // Python's http.server and Go use 100 too
  maxBodyBytes: 1024 * 1024, // nginx's client_max_body_size default
  maxChunkLineBytes: 1024, // 16 hex digits plus room for honest extensions
  maxTrailerBytes: 8 * 1024,
  maxRequestsPerConnection: 10_000, // bounds the life of one connection
  maxConns: 4096, // well under a typical 65k fd limit, above any benchmark
  maxQueue: 1024,
  headTimeoutMs: 10_000, // slowloris gets 10 s, not forever
  keepAliveTimeoutMs: 5_000, // as Node's http server
  bodyTimeoutMs: 30_000, // an idle gap, not a whole-body deadline (Caddy #7913)
  writeTimeoutMs: 30_000,
  shutdownTimeoutMs: 10_000,
  queueTimeoutMs: 10_000,
});

/** What `serve()` needs besides a handler. */
export interface ServerConfig {
  /** Address to bind; `127.0.0.1` keeps a fresh server off the network. */
  readonly hostname: string;
  /** TCP port; 0 asks the kernel for a free one. */
  readonly port: number;
  readonly limits: Limits;
  /** PEM certificate chain and key; both set means HTTPS. */
  readonly cert?: string;
  readonly key?: string;
  /** Share the port with other processes or workers (Linux, `--unstable-net`). */
  readonly reusePort?: boolean;
  /** Log one access line per request. */
  readonly accessLog?: boolean;
}

export const DEFAULT_CONFIG: ServerConfig = Object.freeze({
  hostname: "127.0.0.1",
  port: 8080,
  limits: DEFAULT_LIMITS,
  accessLog: true,
});

/** How the static site is served (issue: static files). */
export interface StaticConfig {
  /** Folder served at "/". */
  readonly root: string;
  /** "deny" answers 404 for any dot segment (`.env`, `.git/`); "allow" serves them. */
  readonly dotfiles: "deny" | "allow";
  /** File extensions served (lower case, no dot); null serves the default web set. */
  readonly allowExt: readonly string[] | null;
  /** Cache-Control for files. */
  readonly cacheControl: string;
  /** HTML listing for folders without index.html. */
  readonly listDirs: boolean;
  /** Unknown GET paths that are not files get index.html (single-page apps). */
  readonly spa: boolean;
  /** Send non-HTML files as attachments (`Content-Disposition`). */
  readonly attachment: boolean;
}

/** The default application's settings (issue: application layer). */
export interface AppConfig {
  readonly static: StaticConfig;
  /** Folder behind GET/POST /files/{name}; unset: those routes do not exist. */
  readonly directory?: string;
  /** Folder that POST /upload writes to. */
  readonly uploads: string;
  /** Largest upload, in bytes. Over: 413. */
  readonly uploadMaxBytes: number;
  /** Total bytes the uploads folder may hold. Over: 507. */
  readonly uploadQuotaBytes: number;
  /** Requests per client per window; unset: no rate limit. */
  readonly rateLimit?: { readonly limit: number; readonly windowMs: number };
  /** Peers whose X-Forwarded-For is believed. */
  readonly trustProxy: readonly string[];
  /** Host header values accepted; unset: loopback names when bound to loopback, else any. */
  readonly allowedHosts?: readonly string[];
  /** Serve /metrics to any client, not just loopback. */
  readonly metricsPublic: boolean;
  /** Access-Control-Allow-Origin for API routes; unset: no CORS. */
  readonly cors?: string;
}

export const DEFAULT_STATIC: StaticConfig = Object.freeze({
  root: "resources",
  dotfiles: "deny",
  allowExt: null,
  cacheControl: "no-cache", // always revalidate: ETag makes that a cheap 304
  listDirs: false,
  spa: false,
  attachment: false,
});

export const DEFAULT_APP: AppConfig = Object.freeze({
  static: DEFAULT_STATIC,
  uploads: "resources/uploads",
  uploadMaxBytes: 1024 * 1024,
  uploadQuotaBytes: 100 * 1024 * 1024,
  trustProxy: [],
  metricsPublic: false,
});
