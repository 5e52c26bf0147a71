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

/** Everything the command line sets. */
export interface CliOptions {
  readonly server: ServerConfig;
  readonly app: AppConfig;
  readonly logFormat: "text" | "json";
  readonly quiet: boolean;
  readonly help: boolean;
  /** Engine threads sharing the port with reusePort; 1 runs in the main thread. */
  readonly workers: number;
  /** Print a QR code of the network URL at start. */
  readonly qr: boolean;
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
  "shutdown-timeout": [
    "TIME",
    "10s",
    "time in-flight requests get on SIGINT/SIGTERM",
  ],
  cert: ["FILE", "", "PEM certificate chain: serve HTTPS (with --key)"],
  key: ["FILE", "", "PEM private key for --cert"],
  workers: ["N", "1", "engine threads sharing the port (needs --unstable-net)"],
  dotfiles: ["allow|deny", "deny", "serve dotfiles and dot-folders"],
  "allow-ext": [
    "LIST",
    "web types",
    "file extensions served, e.g. html,txt,png,jpg,jpeg (else 403)",
  ],
  "cache-control": ["VALUE", "no-cache", "Cache-Control for static files"],
  "list-dirs": ["", "off", "HTML listing of folders without index.html"],
  spa: ["", "off", "serve index.html for unknown paths (single-page apps)"],
  attachment: [
    "",
    "off",
    "send non-HTML files as downloads (Content-Disposition)",
  ],
  directory: ["DIR", "", "enable GET/POST /files/{name} on this folder"],
  uploads: ["DIR", "resources/uploads", "folder for POST /upload"],
  "upload-max": ["SIZE", "1m", "largest upload (413)"],
  "upload-quota": ["SIZE", "100m", "total size of the uploads folder (507)"],
  "rate-limit": [
    "N/TIME",
    "off",
    "requests per client per window, e.g. 100/10s (429)",
  ],
  "trust-proxy": ["LIST", "", "peers whose X-Forwarded-For is believed"],
  "allowed-hosts": ["LIST", "loopback names", "Host values accepted (421)"],
  "metrics-public": ["", "off", "serve /metrics beyond loopback"],
  cors: ["ORIGIN", "", "Access-Control-Allow-Origin for API routes"],
  "log-format": ["text|json", "text", "log line format"],
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

/** "10s", "500ms", "2m", "10" (seconds) -> milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) {
    throw new UsageError(
      `--${flag}: "${text}" is not a duration (try 500ms, 10s, 2m)`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000 }[(m[2] ?? "s") as "ms" | "s" | "m"];
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
  const positional: string[] = [];
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
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined) {
      throw new UsageError(`--${name} needs a value (${spec[0]})`);
    }
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
  });

  const cert = str("cert");
  const key = str("key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }

  const dotfiles = str("dotfiles") ?? "deny";
  if (dotfiles !== "allow" && dotfiles !== "deny") {
    throw new UsageError(`--dotfiles: "${dotfiles}" is not allow or deny`);
  }
  const logFormat = str("log-format") ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new UsageError(`--log-format: "${logFormat}" is not text or json`);
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

  const root = str("root") ?? posRoot ?? DEFAULT_STATIC.root;
  const app: AppConfig = Object.freeze({
    static: Object.freeze({
      root,
      dotfiles,
      allowExt: str("allow-ext") === undefined
        ? null
        : parseList(str("allow-ext")!).map((e) =>
          e.replace(/^\./, "").toLowerCase()
        ),
      cacheControl: str("cache-control") ?? DEFAULT_STATIC.cacheControl,
      listDirs: flag("list-dirs"),
      spa: flag("spa"),
      attachment: flag("attachment"),
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
    cors: str("cors"),
  });

  return {
    server: Object.freeze({
      hostname,
      port,
      limits,
      cert,
      key,
      accessLog: !flag("quiet"),
    }),
    app,
    logFormat,
    quiet: flag("quiet"),
    help: flag("help"),
    workers: count("workers", 1),
    qr: flag("qr"),
  };
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
    const left = `  --${name}${value === "" ? "" : ` ${value}`}`;
    lines.push(`${left.padEnd(30)} ${text}${def === "" ? "" : ` [${def}]`}`);
  }
  return lines.join("\n");
}
