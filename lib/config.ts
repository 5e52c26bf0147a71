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
  /**
   * Chunk framing (size lines, extensions, CRLFs) beyond 16 bytes a chunk
   * and 2 a data byte, counted over the body, in bytes. Over: 400, then close.
   */
  readonly maxChunkExcessBytes: number;
  /** All trailer fields of a chunked body, in bytes. Over: 431. */
  readonly maxTrailerBytes: number;
  /** Requests served on one connection before it is closed (HTTP/2: streams, then a graceful GOAWAY). */
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
  /**
   * Connections open at once from one client address (IPv6: one /64),
   * handled, queued or in a TLS handshake; 0: no cap. Loopback and trusted
   * proxies are exempt. Over: 429 with Retry-After, then close.
   */
  readonly maxConnsPerIp: number;
  /**
   * Slowest a request body may arrive, in bytes per second, once
   * `minRateGraceMs` of waiting is spent; 0: no minimum. Slower: 408, then close.
   */
  readonly minBodyBytesPerSec: number;
  /**
   * Slowest a client may take a reply, in bytes per second, once
   * `minRateGraceMs` of waiting is spent; 0: no minimum. Slower: close.
   */
  readonly minSendBytesPerSec: number;
  /**
   * Time a body or a reply may keep us waiting before its minimum rate
   * applies; each byte moved then buys 1/rate seconds more (Apache's MinRate).
   */
  readonly minRateGraceMs: number;
  /**
   * Percent of `maxConns`, or of the descriptor budget, in use past which
   * the server is busy: head, handshake, body and write deadlines and the
   * rate grace are then divided by `busyTimeoutDivisor`, and so is the
   * keep-alive idle time of replies sent meanwhile.
   */
  readonly busyPercent: number;
  /** How much deadlines shrink while the server is busy. */
  readonly busyTimeoutDivisor: number;
  /**
   * A kept-alive connection idle this long may be closed early for a
   * newcomer when the queue is full or descriptors run short (oldest first);
   * draining (shutdown, reload), one is closed once idle this long.
   */
  readonly reclaimIdleMs: number;
  /**
   * Descriptors the process may open; 0: the soft limit from
   * /proc/self/limits when readable (not with narrow --allow-read), else
   * learnt at the first "Too many open files".
   */
  readonly maxOpenFiles: number;
  /**
   * Descriptors kept free for files, logs and refusals. A connection past
   * the budget closes the oldest silent one, or gets 503 at once.
   */
  readonly fdReserve: number;
  /**
   * A `--workers` engine's JS heap, in bytes, past which a fresh worker
   * takes its place and it drains (no request is cut); 0: never. V8 ends
   * the whole process, every worker with it, at its own heap limit.
   */
  readonly workerHeapBytes: number;

  // WebSocket (issue #15); close codes are RFC 6455 §7.4.1's.
  /** One WebSocket message, on the wire and again after inflating. Over: close 1009. */
  readonly wsMaxMessageBytes: number;
  /** One WebSocket frame's payload, refused from its header. Over: close 1009. */
  readonly wsMaxFrameBytes: number;
  /** Bytes sent to a WebSocket peer and not yet written. A send past it: the connection is dropped (1006). */
  readonly wsMaxQueuedBytes: number;
  /** Time a WebSocket may go without a byte from the peer before a ping; as long again: close 1001. */
  readonly wsIdleTimeoutMs: number;
  /** Time the peer gets to answer our close frame. Over: the connection is dropped (1006). */
  readonly wsCloseTimeoutMs: number;

  // HTTP/2 (RFC 9113). The ones with a SETTINGS name are advertised in our
  // first SETTINGS frame and enforced whether or not the client honours them.
  /** Streams in flight on one connection, counting reset ones whose handler still runs (SETTINGS_MAX_CONCURRENT_STREAMS). Over: RST_STREAM REFUSED_STREAM. */
  readonly h2MaxConcurrentStreams: number;
  /** Decoded request or trailer fields, counted as RFC 9113 §6.5.2 does: name + value + 32 bytes each (SETTINGS_MAX_HEADER_LIST_SIZE). Over: 431. */
  readonly h2MaxHeaderListBytes: number;
  /** One compressed header block: a HEADERS frame and its CONTINUATIONs. Over: GOAWAY ENHANCE_YOUR_CALM. */
  readonly h2MaxHeaderBlockBytes: number;
  /** CONTINUATION frames after one HEADERS frame (CVE-2024-27316). Over: GOAWAY ENHANCE_YOUR_CALM. */
  readonly h2MaxContinuationFrames: number;
  /** Largest frame payload a client may send (SETTINGS_MAX_FRAME_SIZE; 16384 to 16777215). Over: GOAWAY FRAME_SIZE_ERROR. */
  readonly h2MaxFrameBytes: number;
  /** HPACK dynamic table for request fields (SETTINGS_HEADER_TABLE_SIZE); our reply encoder uses no more. Over: GOAWAY COMPRESSION_ERROR. */
  readonly h2HeaderTableBytes: number;
  /** Request body one stream may have sent and the handler not yet read (SETTINGS_INITIAL_WINDOW_SIZE). Over: RST_STREAM FLOW_CONTROL_ERROR. */
  readonly h2StreamWindowBytes: number;
  /** Request body all streams of a connection may have sent and not yet had read. Over: GOAWAY FLOW_CONTROL_ERROR. */
  readonly h2ConnectionWindowBytes: number;
  /** Streams reset by the client or refused before their reply ended, less one per reply sent in full (rapid reset, CVE-2023-44487). Over: GOAWAY ENHANCE_YOUR_CALM. */
  readonly h2MaxResetStreams: number;
  /** Frames that cost work but carry no request or body (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, empty DATA, unknown types), less one per request and per KiB of body moved (CVE-2019-9512/9515/9518). Over: GOAWAY ENHANCE_YOUR_CALM. */
  readonly h2MaxCheapFrames: number;
  /** PING and SETTINGS acks and RST_STREAMs queued and not yet taken for writing (a client that sends but does not read). Over: GOAWAY ENHANCE_YOUR_CALM. */
  readonly h2MaxQueuedControlFrames: number;
  /** Reply bytes framed but not yet taken for writing. Past it a stream's DATA waits: backpressure, no status. */
  readonly h2MaxQueuedOutputBytes: number;

  // Passwords (issue #13).
  /** Failed password checks per client in {@link authFailureWindowMs}. Over: 429. */
  readonly maxAuthFailures: number;
  readonly authFailureWindowMs: number;
  /** Password checks (one slow KDF run each) at once. Past it, they queue. */
  readonly maxPasswordChecks: number;
  /** Password checks waiting for a slot. Past it: 503 with Retry-After. */
  readonly maxPasswordQueue: number;

  // Form uploads (multipart/form-data, issue #13); files stream to disk.
  /** Parts in one form. Over: 413. */
  readonly maxFormParts: number;
  /** One part's header section, in bytes. Over: 413. */
  readonly maxPartHeadBytes: number;
  /** A form's plain (non-file) fields together, held in memory, in bytes. Over: 413. */
  readonly maxFormFieldBytes: number;
  /**
   * One form upload's body, and so each file in it (`--upload-files-max`),
   * in bytes; streamed to disk, never held. Over: 413.
   */
  readonly maxFormBytes: number;

  // Many machines (issue #12).
  /**
   * A PROXY header from a trusted load balancer, in bytes (a v1 line is 107
   * at most whatever this says). Over: close, no reply (the peer is a proxy,
   * not a client). Its wait is bounded by `headTimeoutMs`.
   */
  readonly maxProxyHeaderBytes: number;
  /**
   * After SIGINT/SIGTERM, time requests are still accepted and served while
   * `/health` answers 503 and every reply says `Connection: close`, so a load
   * balancer takes the instance out before its listener closes. Then
   * `shutdownTimeoutMs` runs.
   */
  readonly drainDelayMs: number;
  /**
   * One rate-limit check against a shared store (Redis). Over: this
   * request is decided by the local limiter (or 503 with `--rate-limit-fail
   * closed`); three such failures in a row take the store for unreachable.
   */
  readonly rateStoreTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxTargetBytes: 8 * 1024, // nginx's default line buffer; longer URLs are abuse
  maxHeadBytes: 16 * 1024, // big cookies fit; a header flood does not
  maxHeaderCount: 100, // Python's http.server and Go use 100 too
  maxBodyBytes: 1024 * 1024, // nginx's client_max_body_size default
  maxChunkLineBytes: 1024, // 16 hex digits plus room for honest extensions
  maxChunkExcessBytes: 16 * 1024, // Go's figure: one-byte chunks pass, extension floods do not
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
  // A browser opens 6 per host: 256 is 40 browsers behind one NAT address,
  // and one address cannot hold more than 1/16 of maxConns.
  maxConnsPerIp: 256,
  minBodyBytesPerSec: 500, // Apache mod_reqtimeout's MinRate
  // 8 kbit/s: slower than any real link; a slow reader cannot hold a slot for days.
  minSendBytesPerSec: 1024,
  minRateGraceMs: 10_000, // as headTimeoutMs: a slow start, not a slow transfer
  busyPercent: 75, // a quarter of the slots left: time to be strict
  busyTimeoutDivisor: 4, // 10 s heads become 2.5 s: still minutes for a real client's RTT
  // A client about to reuse a connection does so within an RTT of its last
  // reply; after a second it is parked in a pool, the least likely to race.
  reclaimIdleMs: 1000,
  maxOpenFiles: 0,
  fdReserve: 128, // files being served, Deno's own, the log: well over what they use
  // Deno's V8 stops at about 4 GiB a heap: replaced at 1.5 GiB, a leaking
  // worker goes long before the process would, with room for the fresh one.
  workerHeapBytes: 1536 * 1024 * 1024,

  wsMaxMessageBytes: 1024 * 1024, // as maxBodyBytes: a message is a body by another name
  wsMaxFrameBytes: 1024 * 1024, // a frame never needs to be bigger than a message
  wsMaxQueuedBytes: 1024 * 1024, // a few messages for a slow reader; a stopped one costs 1 MiB, not all memory
  wsIdleTimeoutMs: 30_000, // pings keep proxies that cut idle links at 60 s (nginx) from doing so
  wsCloseTimeoutMs: 5_000, // a live peer answers a close at once

  h2MaxConcurrentStreams: 100, // RFC 9113 §6.5.2 asks for at least 100; h2o and Apache use 100
  h2MaxHeaderListBytes: 20 * 1024, // a 16 KiB HTTP/1.1 head plus 32 bytes for each of its 100 fields
  h2MaxHeaderBlockBytes: 40 * 1024, // HPACK only shrinks a list; twice the list still gets 431, not GOAWAY
  h2MaxContinuationFrames: 8, // a 40 KiB block fills 3 frames of the smallest size; nghttp2 allows 8
  h2MaxFrameBytes: 16_384, // the RFC's default and floor; larger frames only help uploads a little
  h2HeaderTableBytes: 4096, // the RFC's default: every client's encoder starts there
  h2StreamWindowBytes: 256 * 1024, // 4x the RFC's 64 KiB so uploads are not held to 64 KiB per round trip
  h2ConnectionWindowBytes: 1024 * 1024, // unread request bodies a connection may hold in memory
  h2MaxResetStreams: 200, // a browser cancels some requests; an attacker cancels all of them
  h2MaxCheapFrames: 1000, // an idle connection closes after keepAliveTimeoutMs long before honest pings reach it
  h2MaxQueuedControlFrames: 1000, // nghttp2's max_outbound_ack; 17 KiB of queued acks
  h2MaxQueuedOutputBytes: 256 * 1024, // the piece size the engine streams files in

  // Ten typos in five minutes is a person; more is a script guessing, and
  // 10 guesses per 5 minutes is under 3,000 a day per client (IPv6 per /64).
  maxAuthFailures: 10,
  authFailureWindowMs: 5 * 60_000,
  // Each check keeps a core busy ~140 ms: two at once leave the event loop
  // room on a small box, and a guessing flood waits instead of piling up.
  maxPasswordChecks: 2,
  maxPasswordQueue: 64, // ~5 s of checks queued at most; past it 503 beats a hang

  maxFormParts: 1000, // Go's multipartmaxparts: a real form has tens; more is parser-cost abuse
  maxPartHeadBytes: 8 * 1024, // a 255-byte name escaped three ways and a long type fit 10 times over
  maxFormFieldBytes: 1024 * 1024, // text fields are read into memory, files are not
  // A few minutes of a phone's 4K video, or hundreds of photos in one form:
  // files stream to disk, so the cost is disk and time, which the folder's
  // quota bounds; larger is one flag away.
  maxFormBytes: 1024 ** 3,

  // Two UNIX addresses (232 bytes with the fixed part) and HAProxy's TLVs
  // (ALPN, authority, unique id, SSL details) fit several times over.
  maxProxyHeaderBytes: 2048,
  drainDelayMs: 0, // alone, stop at once; behind a balancer, set it above its check interval x fall
  // A check is one round trip on a LAN (~0.2 ms), but the timer also waits
  // on this process's own event loop: under 4,700 req/s on a busy 2-core
  // machine, 50 ms fired for healthy checks and let the limit leak (each
  // instance counting alone). 200 ms is still a stalled store.
  rateStoreTimeoutMs: 200,
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
  /** HTTP/2 on TLS, chosen by ALPN (`--http2 on|off`); default on. */
  readonly http2?: boolean;
  /** HTTP/2 with prior knowledge on plain TCP (`--h2c`), beside HTTP/1.1; default off. */
  readonly h2c?: boolean;
  /** Share the port with other processes or workers (Linux, `--unstable-net`). */
  readonly reusePort?: boolean;
  /** Log one access line per request. */
  readonly accessLog?: boolean;
  /**
   * Peer addresses exempt from `maxConnsPerIp`, such as trusted reverse
   * proxies (whose clients the engine cannot see); unset: loopback.
   */
  readonly exemptPeer?: (hostname: string) => boolean;
  /**
   * Peers (load balancers) whose connections must start with a PROXY
   * header, v1 or v2; the client it names is the connection's remote
   * address. Unset: no PROXY headers are read.
   */
  readonly proxyProtocolFrom?: (hostname: string) => boolean;
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
  /** File extensions served (lower case, no dot; "" for none); null serves every file. */
  readonly allowExt: readonly string[] | null;
  /** Cache-Control for files. */
  readonly cacheControl: string;
  /** HTML listing for folders without index.html. */
  readonly listDirs: boolean;
  /** Unknown GET paths that are not files get index.html (single-page apps). */
  readonly spa: boolean;
  /** Send non-HTML files as attachments (`Content-Disposition`). */
  readonly attachment: boolean;
  /**
   * 404 for regular files with more than one name (hard links): a hard link
   * inside the root to a file outside looks like any file to a path check.
   */
  readonly strictLinks: boolean;
  /** Header fields added to every static reply, replacing any of the same name (`--header`). */
  readonly headers: readonly (readonly [name: string, value: string])[];
  /**
   * Largest folder a listing offers as one `.zip`, in bytes of file contents;
   * 0: no archives. Over: 413, before a byte is sent.
   */
  readonly archiveMaxBytes: number;
  /** Reload open pages when a file under the root changes (`--watch`). */
  readonly watch: boolean;
  /**
   * Folders that take form uploads (`--upload-files`): their listings offer
   * an upload form, and their pages and images run sandboxed. Unset: none.
   */
  readonly uploads?: StaticUploads;
}

/** What the static layer shows and guards of `--upload-files`. */
export interface StaticUploads {
  /** The upload folder as a canonical URL path ending in "/"; folders below it too. */
  readonly path: string;
  /** Largest form, in bytes (shown on the form, and checked before sending). */
  readonly maxBytes: number;
  /** A file of the same name is replaced. */
  readonly overwrite: boolean;
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
  readonly rateLimit?: {
    readonly limit: number;
    readonly windowMs: number;
    /** `redis://HOST:PORT` keeps the counts there, shared by instances; unset: in memory. */
    readonly store?: string;
    /** The store unreachable: count locally ("open") or answer 503 ("closed"). */
    readonly fail?: "open" | "closed";
  };
  /** Peers whose X-Forwarded-For is believed. */
  readonly trustProxy: readonly string[];
  /** Host header values accepted; unset: loopback names when bound to loopback, else any. */
  readonly allowedHosts?: readonly string[];
  /** Serve /metrics to any client, not just loopback. */
  readonly metricsPublic: boolean;
  /** Access-Control-Allow-Origin for API routes and static files; unset: no CORS. */
  readonly cors?: string;
  /** HTTP Basic authentication; unset: no passwords asked. */
  readonly auth?: AppAuth;
  /** Strict-Transport-Security max-age on HTTPS replies, in seconds; unset: none. */
  readonly hstsMaxAgeS?: number;
  /** Uploads from browsers and `curl -F` into folders of the static root; unset: none. */
  readonly uploadFiles?: UploadFilesConfig;
}

/** Where and how form uploads are stored (`--upload-files`). */
export interface UploadFilesConfig {
  /**
   * The folder uploads may go to, and every folder below it, as a canonical
   * URL path ending in "/": "/" is the whole static root, "/inbox/" one folder.
   */
  readonly path: string;
  /** Total bytes that folder and those below it may hold; 0: the disk alone. Over: 507. */
  readonly quotaBytes: number;
  /** Replace a file of the same name; else 409. */
  readonly overwrite: boolean;
}

/**
 * Room an upload folder gets: a phone's worth of photos and videos. A full
 * disk hurts every program on the machine, so uploads stop well before that
 * unless `--upload-files-quota` says more (or 0).
 */
export const DEFAULT_UPLOAD_FILES_QUOTA = 10 * 1024 ** 3;

/** The file system path of an upload folder: the root joined with its URL path. */
export function uploadFilesDir(root: string, urlPath: string): string {
  return urlPath === "/"
    ? root
    : `${root.replace(/\/+$/, "")}${urlPath.slice(0, -1)}`;
}

/** Where a password is needed (`--auth-paths`). */
export interface AuthRule {
  /** A decoded path prefix, matched by whole segments; "/" is every path. */
  readonly prefix: string;
  /** Only methods that change things: all but GET, HEAD, OPTIONS and TRACE. */
  readonly writeOnly: boolean;
}

/** Passwords for the app: who (checked by `verify`) and where. */
export interface AppAuth {
  /** Resolves to the user name for a good pair, else undefined (lib/app/credentials.ts). */
  readonly credentials: {
    verify(user: Uint8Array, password: Uint8Array): Promise<string | undefined>;
  };
  readonly rules: readonly AuthRule[];
}

/** The password flags as given; main reads the file and hashes the pairs. */
export interface AuthFlags {
  /** `--auth USER:PASSWORD` values. */
  readonly pairs: readonly string[];
  /** `--auth-file`: one `user:hash` a line. */
  readonly file?: string;
  readonly rules: readonly AuthRule[];
}

export const DEFAULT_STATIC: StaticConfig = Object.freeze({
  root: "resources",
  dotfiles: "deny",
  allowExt: null,
  cacheControl: "no-cache", // always revalidate: ETag makes that a cheap 304
  listDirs: false,
  spa: false,
  attachment: false,
  strictLinks: false, // hard links are common (deploy tools, package caches)
  headers: [],
  // A DVD's worth: a folder of photos or a build fits; a disk of films does
  // not. Each archive reads that much from disk and holds a connection.
  archiveMaxBytes: 4 * 1024 ** 3,
  watch: false,
});

export const DEFAULT_APP: AppConfig = Object.freeze({
  static: DEFAULT_STATIC,
  uploads: "resources/uploads",
  uploadMaxBytes: 1024 * 1024,
  uploadQuotaBytes: 100 * 1024 * 1024,
  trustProxy: [],
  metricsPublic: false,
});

/** `--log-format`: LogTape's text or JSON lines, or nginx's and Apache's access log formats. */
export type LogFormat = "text" | "json" | "common" | "combined";
const LOG_FORMATS: readonly string[] = ["text", "json", "common", "combined"];

/** HTTPS flags besides the --cert and --key paths (issue #14). */
export interface TlsFlags {
  /** `--tls self-signed`: a certificate made at start. */
  readonly selfSigned: boolean;
  /** `--tls-save DIR`: keep the self-signed pair there, and reuse it. */
  readonly saveDir?: string;
  /** `--redirect-http PORT`: a plain HTTP listener answering 308 to HTTPS. */
  readonly redirectPort?: number;
}

/** Strict-Transport-Security's max-age when `--hsts` names none: a year, as Caddy and nginx guides use. */
export const DEFAULT_HSTS_MAX_AGE_S = 365 * 24 * 60 * 60;

/** Everything the command line sets. */
export interface CliOptions {
  readonly server: ServerConfig;
  readonly app: AppConfig;
  readonly logFormat: LogFormat;
  readonly quiet: boolean;
  readonly help: boolean;
  /** Engine threads sharing the port with reusePort; 1 runs in the main thread. */
  readonly workers: number;
  /**
   * Share the port with the Spindle already listening on it (an upgrade);
   * without it, a port in use is an error.
   */
  readonly takeover: boolean;
  /** `--auth`, `--auth-file`, `--auth-paths`; unset: no passwords. */
  readonly auth?: AuthFlags;
  /** HTTPS: set with `--cert`/`--key` or `--tls`; unset: plain HTTP. */
  readonly tls?: TlsFlags;
  /** Print a QR code of the network URL at start. */
  readonly qr: boolean;
  /** `--proxy-protocol`: `--trust-proxy` peers start with a PROXY header. */
  readonly proxyProtocol: boolean;
}

/** A bad command line; main prints `message` and exits with code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Flag name -> [value name or "" for a switch, default shown in --help, help text]. */
export const FLAGS: Readonly<
  Record<string, readonly [string, string, string]>
> = {
  host: ["ADDR", "127.0.0.1", "address to listen on"],
  port: ["N", "8080", "port to listen on; 0 picks a free one"],
  root: ["DIR", "resources", "folder served as the static site"],
  "max-conns": ["N", "4096", "connections handled at once"],
  "max-queue": ["N", "1024", "connections waiting for a slot; past it: 503"],
  "max-body": ["SIZE", "1m", "largest request body (413)"],
  "max-head": ["SIZE", "16k", "largest request line + headers (431)"],
  "max-headers": ["N", "100", "most header lines (431)"],
  "max-target": ["SIZE", "8k", "longest request target (414)"],
  "max-requests": ["N", "10000", "requests per connection before it is closed"],
  "head-timeout": ["TIME", "10s", "time to send a whole head (408)"],
  "keepalive-timeout": ["TIME", "5s", "idle time between requests (close)"],
  "body-timeout": ["TIME", "30s", "longest gap while sending a body (408)"],
  "write-timeout": [
    "TIME",
    "30s",
    "longest stall of a client that stopped reading (close)",
  ],
  "queue-timeout": ["TIME", "10s", "longest wait for a connection slot (503)"],
  "max-conns-per-ip": [
    "N",
    "256",
    "connections from one address, 0: no cap (429; loopback exempt)",
  ],
  "min-body-rate": [
    "SIZE",
    "500",
    "slowest request body per second after the grace (408); 0: off",
  ],
  "min-send-rate": [
    "SIZE",
    "1k",
    "slowest a client may read a reply per second (close); 0: off",
  ],
  "rate-grace": [
    "TIME",
    "10s",
    "waiting allowed before the minimum rates apply",
  ],
  "max-fds": [
    "N",
    "auto",
    "descriptor limit to stay under (503 past it, less --fd-reserve)",
  ],
  "fd-reserve": ["N", "128", "descriptors kept free for files and refusals"],
  "shutdown-timeout": [
    "TIME",
    "10s",
    "time in-flight requests get on SIGINT/SIGTERM",
  ],
  "drain-delay": [
    "TIME",
    "0",
    "on SIGINT/SIGTERM, serve this long more with /health 503 (behind a load balancer)",
  ],
  cert: ["FILE", "", "PEM certificate chain: serve HTTPS (with --key)"],
  key: ["FILE", "", "PEM private key for --cert (both reread on SIGHUP)"],
  tls: [
    "self-signed",
    "",
    "serve HTTPS with a certificate made at start for this machine",
  ],
  "tls-save": [
    "DIR",
    "",
    "keep the self-signed certificate in DIR and reuse it on the next start",
  ],
  "redirect-http": [
    "PORT",
    "",
    "also listen for plain HTTP on PORT and answer 308 to the HTTPS URL",
  ],
  hsts: [
    "[=TIME]",
    "",
    "Strict-Transport-Security on HTTPS replies; max-age 1 year, or TIME (--hsts=1d)",
  ],
  http2: [
    "on|off",
    "on",
    "HTTP/2 over TLS, chosen by ALPN; off: HTTP/1.1 only",
  ],
  h2c: [
    "",
    "off",
    "HTTP/2 with prior knowledge on plain HTTP, beside HTTP/1.1 (for proxies)",
  ],
  workers: [
    "N|auto",
    "1",
    "engine threads sharing the port and its limits; auto: one per CPU",
  ],
  "worker-heap": [
    "SIZE",
    "1536m",
    "a worker whose JS heap passes this is replaced by a fresh one; 0: never",
  ],
  takeover: [
    "",
    "off",
    "share the port with the Spindle already on it, which then gets SIGTERM (an upgrade)",
  ],
  dotfiles: ["allow|deny", "deny", "serve dotfiles and dot-folders"],
  "allow-ext": [
    "LIST",
    "all",
    "file extensions served, e.g. html,txt,png,jpg,jpeg (else 403); web: the web types",
  ],
  "cache-control": ["VALUE", "no-cache", "Cache-Control for static files"],
  "list-dirs": ["", "off", "HTML listing of folders without index.html"],
  "archive-max": [
    "SIZE",
    "4g",
    "largest folder a listing sends as one .zip (413); 0: no archives",
  ],
  header: [
    "'NAME: VALUE'",
    "",
    "header on every static reply (repeatable)",
  ],
  watch: ["", "off", "reload open pages when a file under the root changes"],
  spa: ["", "off", "serve index.html for unknown paths (single-page apps)"],
  attachment: [
    "",
    "off",
    "send non-HTML files as downloads (Content-Disposition)",
  ],
  "strict-links": ["", "off", "404 for files with more than one hard link"],
  directory: ["DIR", "", "enable GET/POST /files/{name} on this folder"],
  uploads: ["DIR", "resources/uploads", "folder for POST /upload"],
  "upload-max": ["SIZE", "1m", "largest upload (413)"],
  "upload-quota": ["SIZE", "100m", "total size of the uploads folder (507)"],
  "upload-files": [
    "[=PATH]",
    "off",
    "uploads from the browser and curl -F into folders of the root (=PATH: only that folder, e.g. =/inbox, and those below)",
  ],
  "upload-files-max": [
    "SIZE",
    "1g",
    "largest form upload, all its files together (413)",
  ],
  "upload-files-quota": [
    "SIZE",
    "10g",
    "total size of the upload folder (507); 0: the disk alone",
  ],
  overwrite: [
    "",
    "off",
    "form uploads may replace a file of the same name (else 409)",
  ],
  "rate-limit": [
    "N/TIME",
    "off",
    "requests per client per window, e.g. 100/10s (429)",
  ],
  "rate-limit-store": [
    "URL",
    "off",
    "keep --rate-limit counts in redis://HOST:PORT, shared by every instance",
  ],
  "rate-limit-store-timeout": [
    "TIME",
    "200ms",
    "longest wait for the store; past it the request is decided as if unreachable",
  ],
  "rate-limit-fail": [
    "open|closed",
    "open",
    "store unreachable: count in this process (open) or answer 503 (closed)",
  ],
  "trust-proxy": ["LIST", "", "peers whose X-Forwarded-For is believed"],
  "proxy-protocol": [
    "",
    "off",
    "--trust-proxy peers start each connection with a PROXY header (v1 or v2)",
  ],
  "allowed-hosts": ["LIST", "loopback names", "Host values accepted (421)"],
  "metrics-public": ["", "off", "serve /metrics beyond loopback"],
  cors: [
    "[ORIGIN]",
    "",
    "CORS for API routes and static files; alone: any origin (*)",
  ],
  auth: [
    "USER:PASSWORD",
    "",
    "ask for this password (repeatable; others on the host can read argv: prefer --auth-file)",
  ],
  "auth-file": [
    "FILE",
    "",
    "user:hash lines, each made by `spindle hash-password USER`",
  ],
  "auth-paths": [
    "LIST",
    "",
    "where a password is needed: path prefixes, write:PREFIX for writes only (default: everything)",
  ],
  "auth-insecure": [
    "",
    "off",
    "allow passwords over plain HTTP on a non-loopback address",
  ],
  "log-format": [
    "text|json|common|combined",
    "text",
    "log line format; common and combined: access lines alone on stdout",
  ],
  quiet: ["", "off", "no access log lines"],
  qr: ["", "off", "print a QR code of the network URL, for a phone"],
  help: ["", "", "print this help"],
};

/** "16k", "1m", "512" -> bytes (binary units). */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+)([kmg]?)i?b?$/i.exec(text.trim());
  if (m === null) {
    throw new UsageError(
      `--${flag}: "${text}" is not a size (try 512, 16k, 1m)`,
    );
  }
  const unit = {
    "": 1,
    k: 1024,
    m: 1024 ** 2,
    g: 1024 ** 3,
  }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
}

/** "10s", "500ms", "2m", "1d", "10" (seconds) -> milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) {
    throw new UsageError(
      `--${flag}: "${text}" is not a duration (try 500ms, 10s, 2m)`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    (m[2] ?? "s") as "ms" | "s" | "m" | "h" | "d"
  ];
  return Math.round(Number(m[1]) * unit);
}

function parseCount(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(
      `--${flag}: "${text}" is not a whole number of at least ${min}`,
    );
  }
  return n;
}

/**
 * `--allow-ext web`: the files a web site is made of. Anything else (`.env`,
 * `.sqlite`, `.key`, `.ts`, no extension) is then 403, so a stray secret in
 * the root is not one guess away. Not the default: every peer serves every
 * file, and a folder shared for downloads holds `.mkv`, `.iso`, `.exe`.
 */
export const WEB_EXTENSIONS: readonly string[] = Object.freeze([
  "html",
  "htm",
  "css",
  "js",
  "mjs",
  "json",
  "txt",
  "md",
  "xml",
  "svg",
  "png",
  "jpg",
  "jpeg",
  "gif",
  "webp",
  "avif",
  "ico",
  "bmp",
  "woff",
  "woff2",
  "ttf",
  "otf",
  "eot",
  "pdf",
  "mp3",
  "mp4",
  "webm",
  "ogg",
  "oga",
  "ogv",
  "wav",
  "flac",
  "m4a",
  "wasm",
  "map",
  "csv",
  "tsv",
  "zip",
  "gz",
  "br",
  "tar",
  "tgz",
  "bin",
  "webmanifest",
  "rss",
  "atom",
  "vtt",
  "ics",
  "epub",
]);

/** Flags that may be given more than once; each value counts. */
const REPEATABLE: ReadonlySet<string> = new Set(["header"]);

/** `*`, or an origin list such as `https://a.example,http://localhost:5173`. */
function isOrigin(word: string | undefined): boolean {
  return word !== undefined &&
    (word === "*" || /^[a-z][a-z0-9+.-]*:\/\//i.test(word));
}

/**
 * Reply fields the server works out for each reply: a fixed value would
 * break the framing (Content-Length, Transfer-Encoding, Connection) or lie
 * about one file's bytes (Content-Type, ETag, Content-Encoding).
 */
const COMPUTED_FIELDS: ReadonlySet<string> = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "date",
  "content-type",
  "content-encoding",
  "content-range",
  "etag",
  "last-modified",
]);

/** `--header "Name: value"` -> [lower-case name, value]. */
export function parseHeaderFlag(text: string): [string, string] {
  const colon = text.indexOf(":");
  const name = text.slice(0, colon).trim().toLowerCase();
  const value = text.slice(colon + 1).trim();
  if (colon === -1 || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
    throw new UsageError(
      `--header: "${text}" is not NAME: VALUE (try --header "X-Frame-Options: DENY")`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
    throw new UsageError(`--header: the value of ${name} holds a control byte`);
  }
  if (COMPUTED_FIELDS.has(name)) {
    throw new UsageError(
      `--header: ${name} is worked out for each reply and cannot be fixed`,
    );
  }
  return [name, value];
}

/** `--allow-ext`: "all" (every file), "web" (the web types) or a list. */
function parseExtensions(text: string): string[] | null {
  const word = text.trim().toLowerCase();
  if (word === "all") return null;
  if (word === "web") return [...WEB_EXTENSIONS];
  return parseList(text).map((e) => e.replace(/^\./, "").toLowerCase());
}

function parseList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * Parses the command line. Also takes `DIR` (a first positional argument that
 * is not a number) and the seeds' positional form `[port] [host] [max-conns]`.
 * A leading `--` is skipped: `deno task serve -- --port 8081` passes it on.
 * Throws {@link UsageError} on anything wrong.
 */
export function parseFlags(args: readonly string[]): CliOptions {
  const values: Record<string, string | boolean> = {};
  const repeated: Record<string, string[]> = {};
  const positional: string[] = [];
  const authPairs: string[] = []; // --auth is the one repeatable flag
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      if (i === 0) continue;
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      values.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = FLAGS[name];
    if (spec === undefined) {
      throw new UsageError(`unknown option --${name} (see --help)`);
    }
    if (spec[0] === "") {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    // "[=PATH]": a value only after "=", so `--upload-files 8080` or a
    // folder to serve after it is never taken for the PATH.
    if (spec[0].startsWith("[=") && eq === -1) {
      values[name] = true;
      continue;
    }
    // "[ORIGIN]": the value is optional; the next word is it only if it
    // looks like one, so `--cors 8080` still reads 8080 as the port.
    if (spec[0].startsWith("[") && eq === -1 && !isOrigin(args[i + 1])) {
      values[name] = true;
      continue;
    }
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined) {
      throw new UsageError(`--${name} needs a value (${spec[0]})`);
    }
    if (REPEATABLE.has(name)) (repeated[name] ??= []).push(value);
    if (name === "auth") authPairs.push(value);
    values[name] = value;
  }
  // `spindle DIR`, as `http-server DIR`; a number is the seeds' port.
  const posRoot = positional.length > 0 && !/^\d+$/.test(positional[0])
    ? positional.shift()
    : undefined;
  if (positional.length > 3) {
    throw new UsageError(`too many arguments: ${positional.join(" ")}`);
  }
  const [posPort, posHost, posConns] = positional;
  const str = (name: string): string | undefined =>
    values[name] as string | undefined;
  const flag = (name: string): boolean => values[name] === true;

  const portText = str("port") ?? posPort;
  const port = portText === undefined
    ? DEFAULT_CONFIG.port
    : parseCount(portText, "port", 0);
  if (port > 65535) {
    throw new UsageError(`--port: ${port} is not a port (0-65535)`);
  }
  if (flag("takeover") && port === 0) {
    throw new UsageError(
      "--takeover needs the port of the Spindle to take over",
    );
  }
  const hostname = str("host") ?? posHost ?? DEFAULT_CONFIG.hostname;

  const L = DEFAULT_LIMITS;
  const size = (name: string, d: number) =>
    str(name) === undefined ? d : parseSize(str(name)!, name);
  const time = (name: string, d: number) =>
    str(name) === undefined ? d : parseDuration(str(name)!, name);
  const count = (name: string, d: number, min = 1) =>
    str(name) === undefined ? d : parseCount(str(name)!, name, min);
  const maxConnsText = str("max-conns") ?? posConns;
  const limits: Limits = Object.freeze({
    ...L,
    maxConns: maxConnsText === undefined
      ? L.maxConns
      : parseCount(maxConnsText, "max-conns", 1),
    maxQueue: count("max-queue", L.maxQueue, 0),
    maxBodyBytes: size("max-body", L.maxBodyBytes),
    maxHeadBytes: size("max-head", L.maxHeadBytes),
    maxHeaderCount: count("max-headers", L.maxHeaderCount),
    maxTargetBytes: size("max-target", L.maxTargetBytes),
    maxRequestsPerConnection: count("max-requests", L.maxRequestsPerConnection),
    headTimeoutMs: time("head-timeout", L.headTimeoutMs),
    keepAliveTimeoutMs: time("keepalive-timeout", L.keepAliveTimeoutMs),
    bodyTimeoutMs: time("body-timeout", L.bodyTimeoutMs),
    writeTimeoutMs: time("write-timeout", L.writeTimeoutMs),
    queueTimeoutMs: time("queue-timeout", L.queueTimeoutMs),
    shutdownTimeoutMs: time("shutdown-timeout", L.shutdownTimeoutMs),
    drainDelayMs: time("drain-delay", L.drainDelayMs),
    rateStoreTimeoutMs: time("rate-limit-store-timeout", L.rateStoreTimeoutMs),
    maxConnsPerIp: count("max-conns-per-ip", L.maxConnsPerIp, 0),
    minBodyBytesPerSec: size("min-body-rate", L.minBodyBytesPerSec),
    minSendBytesPerSec: size("min-send-rate", L.minSendBytesPerSec),
    minRateGraceMs: time("rate-grace", L.minRateGraceMs),
    maxOpenFiles: str("max-fds") === "auto"
      ? 0
      : count("max-fds", L.maxOpenFiles, 0),
    fdReserve: count("fd-reserve", L.fdReserve, 0),
    workerHeapBytes: size("worker-heap", L.workerHeapBytes),
    maxFormBytes: size("upload-files-max", L.maxFormBytes),
  });

  const http2 = str("http2") ?? "on";
  if (http2 !== "on" && http2 !== "off") {
    throw new UsageError(`--http2: "${http2}" is not on or off`);
  }
  const cert = str("cert");
  const key = str("key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  const tls = parseTlsFlags(
    cert !== undefined,
    str("tls"),
    str("tls-save"),
    str("redirect-http"),
    port,
  );
  if (flag("takeover") && tls?.redirectPort === 0) {
    throw new UsageError(
      "--takeover needs the --redirect-http port of the Spindle to take over",
    );
  }
  const hsts = values.hsts;
  if (hsts !== undefined && tls === undefined) {
    throw new UsageError(
      "--hsts needs HTTPS (--cert and --key, or --tls self-signed)",
    );
  }
  const hstsMaxAgeS = hsts === undefined
    ? undefined
    : hsts === true
    ? DEFAULT_HSTS_MAX_AGE_S
    : Math.floor(parseDuration(hsts as string, "hsts") / 1000);
  if (flag("h2c") && tls !== undefined) {
    throw new UsageError(
      "--h2c is HTTP/2 on plain HTTP; with HTTPS, HTTP/2 is chosen by ALPN (--http2)",
    );
  }

  const dotfiles = str("dotfiles") ?? "deny";
  if (dotfiles !== "allow" && dotfiles !== "deny") {
    throw new UsageError(`--dotfiles: "${dotfiles}" is not allow or deny`);
  }
  const logFormat = (str("log-format") ?? "text") as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) {
    throw new UsageError(
      `--log-format: "${logFormat}" is not text, json, common or combined`,
    );
  }

  let rateLimit: AppConfig["rateLimit"];
  const rate = str("rate-limit");
  if (rate !== undefined) {
    const m = /^(\d+)\/(.+)$/.exec(rate);
    if (m === null) {
      throw new UsageError(
        `--rate-limit: "${rate}" is not N/TIME (try 100/10s)`,
      );
    }
    rateLimit = {
      limit: parseCount(m[1], "rate-limit", 1),
      windowMs: parseDuration(m[2], "rate-limit"),
    };
    if (rateLimit.windowMs <= 0) {
      throw new UsageError("--rate-limit: the window must be longer than 0");
    }
  }
  const store = str("rate-limit-store");
  const fail = str("rate-limit-fail") ?? "open";
  if (fail !== "open" && fail !== "closed") {
    throw new UsageError(`--rate-limit-fail: "${fail}" is not open or closed`);
  }
  // Failing open is what happens without a store too; closed needs one.
  if (fail === "closed" && store === undefined) {
    throw new UsageError("--rate-limit-fail closed needs --rate-limit-store");
  }
  if (store !== undefined) {
    if (rateLimit === undefined) {
      throw new UsageError("--rate-limit-store needs --rate-limit");
    }
    if (!isRedisUrl(store)) {
      throw new UsageError(
        `--rate-limit-store: "${store}" is not redis://HOST:PORT`,
      );
    }
    rateLimit = { ...rateLimit, store, fail };
  }

  const root = str("root") ?? posRoot ?? DEFAULT_STATIC.root;
  const app: AppConfig = Object.freeze({
    static: Object.freeze({
      root,
      dotfiles,
      allowExt: str("allow-ext") === undefined
        ? DEFAULT_STATIC.allowExt
        : parseExtensions(str("allow-ext")!),
      cacheControl: str("cache-control") ?? DEFAULT_STATIC.cacheControl,
      listDirs: flag("list-dirs"),
      spa: flag("spa"),
      attachment: flag("attachment"),
      strictLinks: flag("strict-links"),
      headers: (repeated.header ?? []).map(parseHeaderFlag),
      archiveMaxBytes: size("archive-max", DEFAULT_STATIC.archiveMaxBytes),
      watch: flag("watch"),
    }),
    directory: str("directory"),
    uploads: str("uploads") ?? DEFAULT_APP.uploads,
    uploadMaxBytes: size("upload-max", DEFAULT_APP.uploadMaxBytes),
    uploadQuotaBytes: size("upload-quota", DEFAULT_APP.uploadQuotaBytes),
    rateLimit,
    trustProxy: str("trust-proxy") === undefined
      ? []
      : parseList(str("trust-proxy")!),
    allowedHosts: str("allowed-hosts") === undefined
      ? undefined
      : parseList(str("allowed-hosts")!),
    metricsPublic: flag("metrics-public"),
    cors: values.cors === true ? "*" : str("cors"),
    hstsMaxAgeS,
    uploadFiles: parseUploadFiles(
      values["upload-files"] as string | true | undefined,
      str("upload-files-quota"),
      flag("overwrite"),
    ),
  });

  const proxyProtocol = flag("proxy-protocol");
  if (proxyProtocol && app.trustProxy.length === 0) {
    throw new UsageError(
      "--proxy-protocol needs --trust-proxy: the load balancers whose PROXY headers are believed",
    );
  }

  const auth = parseAuthFlags(
    authPairs,
    str("auth-file"),
    str("auth-paths"),
    flag("auth-insecure"),
  );
  if (
    auth !== undefined && tls === undefined && !isLoopbackHost(hostname) &&
    !flag("auth-insecure")
  ) {
    throw new UsageError(
      `--auth on ${hostname} over plain HTTP would send passwords across the network in clear text. ` +
        "Serve HTTPS (--cert and --key, or --tls self-signed), listen on 127.0.0.1, or add --auth-insecure " +
        "if a TLS proxy on this machine or a trusted private network carries the traffic",
    );
  }

  return {
    server: Object.freeze({
      hostname,
      port,
      limits,
      cert,
      key,
      http2: http2 === "on",
      h2c: flag("h2c"),
      accessLog: !flag("quiet"),
    }),
    app,
    logFormat,
    quiet: flag("quiet"),
    help: flag("help"),
    workers: str("workers") === "auto"
      ? Math.max(1, navigator.hardwareConcurrency)
      : count("workers", 1),
    takeover: flag("takeover"),
    auth,
    tls,
    qr: flag("qr"),
    proxyProtocol,
  };
}

/**
 * `--upload-files[=PATH]` and the flags that go with it. PATH is a folder
 * of the root as a URL path (`inbox`, `/inbox/`, `photos/2026`): no dot
 * folders, no `.` or `..`, no `%` escapes, no backslash or control byte.
 */
function parseUploadFiles(
  value: string | true | undefined,
  quota: string | undefined,
  overwrite: boolean,
): UploadFilesConfig | undefined {
  // --upload-files-quota and -max alone are limits waiting for uploads to
  // be on, as --archive-max waits for --list-dirs; --overwrite says more.
  if (value === undefined) {
    if (overwrite) throw new UsageError("--overwrite needs --upload-files");
    return undefined;
  }
  let path = value === true ? "/" : value.trim();
  if (!path.startsWith("/")) path = `/${path}`;
  if (!path.endsWith("/")) path += "/";
  if (
    // deno-lint-ignore no-control-regex
    /\/\/|%|\\|[\x00-\x1f\x7f]/.test(path) || /\/\./.test(path)
  ) {
    throw new UsageError(
      `--upload-files: "${value}" is not a folder of the root such as =/inbox (no dot folders, no .., no escapes)`,
    );
  }
  return Object.freeze({
    path,
    quotaBytes: quota === undefined
      ? DEFAULT_UPLOAD_FILES_QUOTA
      : parseSize(quota, "upload-files-quota"),
    overwrite,
  });
}

function parseTlsFlags(
  certs: boolean,
  mode: string | undefined,
  saveDir: string | undefined,
  redirect: string | undefined,
  httpsPort: number,
): TlsFlags | undefined {
  if (mode !== undefined && mode !== "self-signed") {
    throw new UsageError(`--tls: "${mode}" is not self-signed`);
  }
  const selfSigned = mode === "self-signed";
  if (selfSigned && certs) {
    throw new UsageError(
      "--tls self-signed and --cert/--key both give a certificate: choose one",
    );
  }
  if (saveDir !== undefined && !selfSigned) {
    throw new UsageError("--tls-save needs --tls self-signed");
  }
  if (!selfSigned && !certs) {
    if (redirect !== undefined) {
      throw new UsageError(
        "--redirect-http needs HTTPS (--cert and --key, or --tls self-signed)",
      );
    }
    return undefined;
  }
  let redirectPort: number | undefined;
  if (redirect !== undefined) {
    redirectPort = parseCount(redirect, "redirect-http", 0);
    if (redirectPort > 65535) {
      throw new UsageError(
        `--redirect-http: ${redirectPort} is not a port (0-65535)`,
      );
    }
    if (redirectPort === httpsPort && redirectPort !== 0) {
      throw new UsageError(
        `--redirect-http: port ${redirectPort} is the HTTPS port; give another`,
      );
    }
  }
  return Object.freeze({ selfSigned, saveDir, redirectPort });
}

/** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
function isRedisUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "redis:" || url.protocol === "rediss:") &&
      url.hostname !== "" && /^(\/\d*)?$/.test(url.pathname) &&
      url.search === "" && url.hash === "";
  } catch {
    return false;
  }
}

/** True for a bind address only this machine can reach. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" ||
    hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * `--auth-paths` entries: `/prefix` (every method) or `write:/prefix`
 * (methods that change things). A prefix is a decoded path as the router
 * sees it: no `//`, no `.` or `..` segment, no `%` escape, no control byte.
 */
export function parseAuthRules(text: string): AuthRule[] {
  const rules = parseList(text).map((entry): AuthRule => {
    const writeOnly = entry.startsWith("write:");
    const prefix = writeOnly ? entry.slice(6) : entry;
    if (
      // deno-lint-ignore no-control-regex
      !prefix.startsWith("/") || /\/\/|%|\\|[\x00-\x1f\x7f]/.test(prefix) ||
      /\/\.\.?(\/|$)/.test(prefix)
    ) {
      throw new UsageError(
        `--auth-paths: "${entry}" is not /PREFIX or write:/PREFIX`,
      );
    }
    return { prefix, writeOnly };
  });
  if (rules.length === 0) throw new UsageError("--auth-paths: empty list");
  return rules;
}

function parseAuthFlags(
  pairs: readonly string[],
  file: string | undefined,
  paths: string | undefined,
  insecure: boolean,
): AuthFlags | undefined {
  if (pairs.length === 0 && file === undefined) {
    if (paths !== undefined || insecure) {
      throw new UsageError(
        `--${
          paths !== undefined ? "auth-paths" : "auth-insecure"
        } needs --auth or --auth-file`,
      );
    }
    return undefined;
  }
  for (const pair of pairs) {
    if (pair.indexOf(":") < 1 || pair.endsWith(":")) {
      throw new UsageError("--auth takes USER:PASSWORD");
    }
  }
  return Object.freeze({
    pairs: Object.freeze([...pairs]),
    file,
    rules: paths === undefined
      ? [{ prefix: "/", writeOnly: false }]
      : parseAuthRules(paths),
  });
}

/** The --help text, built from {@link FLAGS}. */
export function helpText(): string {
  const lines = [
    "Spindle: a safe, fast HTTP/1.1 server for a folder and a small API.",
    "",
    "Usage: spindle [options] [DIR] [port] [host] [max-conns]",
    "",
    "Options (SIZE: 512, 16k, 1m; TIME: 500ms, 10s, 2m):",
  ];
  for (const [name, [value, def, text]] of Object.entries(FLAGS)) {
    const sep = value === "" || value.startsWith("[=") ? "" : " ";
    const left = `  --${name}${sep}${value}`;
    lines.push(`${left.padEnd(30)} ${text}${def === "" ? "" : ` [${def}]`}`);
  }
  return lines.join("\n");
}
