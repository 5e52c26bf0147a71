/**
 * The engine's limits and settings, and their defaults: what `serve()`
 * takes. Every number the engine enforces lives in {@link Limits}, each
 * with why its default is what it is and the status a client gets for
 * crossing it, so a test can shrink one to reach it. The app's settings
 * are in lib/app/settings.ts, the command line in lib/cli.ts.
 */

/**
 * Hard limits. Each one names the status a client gets for crossing it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Limits, serve } from "@spindle/server";
 *
 * const limits: Partial<Limits> = {
 *   maxBodyBytes: 1024, // a larger body gets 413
 *   headTimeoutMs: 5_000, // a slower head gets 408
 * };
 * await using server = serve(
 *   { port: 0, accessLog: false, limits },
 *   async (req) => ({ status: 200, body: await req.body.text() }),
 * );
 * const res = await fetch(`http://127.0.0.1:${server.port}/`, {
 *   method: "POST",
 *   body: "x".repeat(2048),
 * });
 * assert.equal(res.status, 413);
 * await res.body?.cancel();
 * ```
 */
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
  /** One WebSocket message as the app gets it (inflated; its deflated bytes may be what deflate makes of this many at worst). Over: close 1009. */
  readonly wsMaxMessageBytes: number;
  /** One WebSocket frame's payload, refused from its header (a compressed one: what deflate makes of this many at worst). Over: close 1009. */
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
  /** The window of {@link maxAuthFailures}, in milliseconds. */
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

/**
 * The limits a server gets unless told otherwise; each says why it is what it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_LIMITS, serve } from "@spindle/server";
 *
 * await using server = serve({
 *   port: 0,
 *   accessLog: false,
 *   limits: { maxBodyBytes: DEFAULT_LIMITS.maxBodyBytes / 4 }, // the rest as they are
 * }, () => ({ status: 204 }));
 * assert.equal(server.limits.maxBodyBytes, DEFAULT_LIMITS.maxBodyBytes / 4);
 * assert.equal(server.limits.maxHeadBytes, DEFAULT_LIMITS.maxHeadBytes);
 * ```
 */
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

/**
 * What `serve()` needs besides a handler.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve, type ServerConfig } from "@spindle/server";
 *
 * const config: Partial<ServerConfig> = { hostname: "127.0.0.1", port: 0, accessLog: false };
 * await using server = serve(config, () => ({ status: 204 }));
 * assert.equal(server.addr.hostname, "127.0.0.1");
 * ```
 */
export interface ServerConfig {
  /** Address to bind; `127.0.0.1` keeps a fresh server off the network. */
  readonly hostname: string;
  /** TCP port; 0 asks the kernel for a free one. */
  readonly port: number;
  /** Hard limits and timeouts; see {@link Limits}. */
  readonly limits: Limits;
  /** PEM certificate chain and key; both set means HTTPS. */
  readonly cert?: string;
  /** PEM private key for `cert`. */
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
