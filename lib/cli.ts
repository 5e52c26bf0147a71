/**
 * The command line: flags -> {@link CliOptions}, and the --help text built
 * from the same table, its defaults from the default values. Throws
 * {@link UsageError} for anything wrong; main prints it and exits 2.
 */
import {
  type AppConfig,
  type AuthRule,
  DEFAULT_APP,
  DEFAULT_HSTS_MAX_AGE_S,
  DEFAULT_STATIC,
  DEFAULT_UPLOAD_FILES_QUOTA,
  type UploadFilesConfig,
  WEB_EXTENSIONS,
} from "./app/settings.ts";
import {
  DEFAULT_CONFIG,
  DEFAULT_LIMITS,
  type Limits,
  type ServerConfig,
} from "./config.ts";

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

/** The password flags as given; main reads the file and hashes the pairs. */
export interface AuthFlags {
  /** `--auth USER:PASSWORD` values. */
  readonly pairs: readonly string[];
  /** `--auth-file`: one `user:hash` a line. */
  readonly file?: string;
  readonly rules: readonly AuthRule[];
}

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

/** `--log-format` unless given: LogTape's text lines, for a person at a terminal. */
const DEFAULT_LOG_FORMAT: LogFormat = "text";
/** `--http2` unless given: on, as `serve()` does for HTTPS. */
const DEFAULT_HTTP2 = true;
/** `--workers` unless given: the engine in the main thread, the cheapest start. */
const DEFAULT_WORKERS = 1;
/** `--rate-limit-fail` unless given: a store down counts here, as without a store. */
const DEFAULT_RATE_LIMIT_FAIL = "open";

/** The engine's defaults, which most flags change. */
const L = DEFAULT_LIMITS;

function onOff(on: boolean): string {
  return on ? "on" : "off";
}

/**
 * Bytes as a flag takes them, in the largest unit that divides them:
 * 1048576 -> "1m", 1536 MiB -> "1536m", 500 -> "500". parseSize() reads it back.
 */
export function formatSize(bytes: number): string {
  const units = [["g", 1024 ** 3], ["m", 1024 ** 2], ["k", 1024]] as const;
  for (const [unit, n] of units) {
    if (bytes !== 0 && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/**
 * Milliseconds as a flag takes them, in the largest unit that divides them:
 * 10000 -> "10s", 200 -> "200ms", 0 -> "0". parseDuration() reads it back.
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  const units = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const;
  for (const [unit, n] of units) {
    if (ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * Flag name -> [value name or "" for a switch, default shown in --help, help
 * text]. A default comes from the default values, so --help cannot drift
 * from them; a word ("off", "loopback names") stands where there is none.
 */
export const FLAGS: Readonly<
  Record<string, readonly [string, string, string]>
> = {
  host: ["ADDR", DEFAULT_CONFIG.hostname, "address to listen on"],
  port: [
    "N",
    String(DEFAULT_CONFIG.port),
    "port to listen on; 0 picks a free one",
  ],
  root: ["DIR", DEFAULT_STATIC.root, "folder served as the static site"],
  "max-conns": ["N", String(L.maxConns), "connections handled at once"],
  "max-queue": [
    "N",
    String(L.maxQueue),
    "connections waiting for a slot; past it: 503",
  ],
  "max-body": [
    "SIZE",
    formatSize(L.maxBodyBytes),
    "largest request body (413)",
  ],
  "max-head": [
    "SIZE",
    formatSize(L.maxHeadBytes),
    "largest request line + headers (431)",
  ],
  "max-headers": ["N", String(L.maxHeaderCount), "most header lines (431)"],
  "max-target": [
    "SIZE",
    formatSize(L.maxTargetBytes),
    "longest request target (414)",
  ],
  "max-requests": [
    "N",
    String(L.maxRequestsPerConnection),
    "requests per connection before it is closed",
  ],
  "head-timeout": [
    "TIME",
    formatDuration(L.headTimeoutMs),
    "time to send a whole head (408)",
  ],
  "keepalive-timeout": [
    "TIME",
    formatDuration(L.keepAliveTimeoutMs),
    "idle time between requests (close)",
  ],
  "body-timeout": [
    "TIME",
    formatDuration(L.bodyTimeoutMs),
    "longest gap while sending a body (408)",
  ],
  "write-timeout": [
    "TIME",
    formatDuration(L.writeTimeoutMs),
    "longest stall of a client that stopped reading (close)",
  ],
  "queue-timeout": [
    "TIME",
    formatDuration(L.queueTimeoutMs),
    "longest wait for a connection slot (503)",
  ],
  "max-conns-per-ip": [
    "N",
    String(L.maxConnsPerIp),
    "connections from one address, 0: no cap (429; loopback exempt)",
  ],
  "min-body-rate": [
    "SIZE",
    formatSize(L.minBodyBytesPerSec),
    "slowest request body per second after the grace (408); 0: off",
  ],
  "min-send-rate": [
    "SIZE",
    formatSize(L.minSendBytesPerSec),
    "slowest a client may read a reply per second (close); 0: off",
  ],
  "rate-grace": [
    "TIME",
    formatDuration(L.minRateGraceMs),
    "waiting allowed before the minimum rates apply",
  ],
  "max-fds": [
    "N",
    L.maxOpenFiles === 0 ? "auto" : String(L.maxOpenFiles),
    "descriptor limit to stay under (503 past it, less --fd-reserve)",
  ],
  "fd-reserve": [
    "N",
    String(L.fdReserve),
    "descriptors kept free for files and refusals",
  ],
  "shutdown-timeout": [
    "TIME",
    formatDuration(L.shutdownTimeoutMs),
    "time in-flight requests get on SIGINT/SIGTERM",
  ],
  "drain-delay": [
    "TIME",
    formatDuration(L.drainDelayMs),
    "on SIGINT/SIGTERM, serve this long more with /health 503 (behind a load balancer)",
  ],
  "ws-max-message": [
    "SIZE",
    formatSize(L.wsMaxMessageBytes),
    "largest WebSocket message and frame, inflated or not (close 1009)",
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
    `Strict-Transport-Security on HTTPS replies; max-age ${
      formatDuration(DEFAULT_HSTS_MAX_AGE_S * 1000)
    }, or TIME (--hsts=1d)`,
  ],
  http2: [
    "on|off",
    onOff(DEFAULT_HTTP2),
    "HTTP/2 over TLS, chosen by ALPN; off: HTTP/1.1 only",
  ],
  h2c: [
    "",
    "off",
    "HTTP/2 with prior knowledge on plain HTTP, beside HTTP/1.1 (for proxies)",
  ],
  workers: [
    "N|auto",
    String(DEFAULT_WORKERS),
    "engine threads sharing the port and its limits; auto: one per CPU",
  ],
  "worker-heap": [
    "SIZE",
    formatSize(L.workerHeapBytes),
    "a worker whose JS heap passes this is replaced by a fresh one; 0: never",
  ],
  takeover: [
    "",
    "off",
    "share the port with the Spindle already on it, which then gets SIGTERM (an upgrade)",
  ],
  dotfiles: [
    "allow|deny",
    DEFAULT_STATIC.dotfiles,
    "serve dotfiles and dot-folders",
  ],
  "allow-ext": [
    "LIST",
    DEFAULT_STATIC.allowExt?.join(",") ?? "all",
    "file extensions served, e.g. html,txt,png,jpg,jpeg (else 403); web: the web types",
  ],
  "cache-control": [
    "VALUE",
    DEFAULT_STATIC.cacheControl,
    "Cache-Control for static files",
  ],
  "list-dirs": ["", "off", "HTML listing of folders without index.html"],
  "archive-max": [
    "SIZE",
    formatSize(DEFAULT_STATIC.archiveMaxBytes),
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
  uploads: ["DIR", DEFAULT_APP.uploads, "folder for POST /upload"],
  "upload-max": [
    "SIZE",
    formatSize(DEFAULT_APP.uploadMaxBytes),
    "largest upload (413)",
  ],
  "upload-quota": [
    "SIZE",
    formatSize(DEFAULT_APP.uploadQuotaBytes),
    "total size of the uploads folder (507)",
  ],
  "upload-files": [
    "[=PATH]",
    "off",
    "uploads from the browser and curl -F into folders of the root (=PATH: only that folder, e.g. =/inbox, and those below)",
  ],
  "upload-files-max": [
    "SIZE",
    formatSize(L.maxFormBytes),
    "largest form upload, all its files together (413)",
  ],
  "upload-files-quota": [
    "SIZE",
    formatSize(DEFAULT_UPLOAD_FILES_QUOTA),
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
    formatDuration(L.rateStoreTimeoutMs),
    "longest wait for the store; past it the request is decided as if unreachable",
  ],
  "rate-limit-fail": [
    "open|closed",
    DEFAULT_RATE_LIMIT_FAIL,
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
    DEFAULT_LOG_FORMAT,
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
    // A frame never needs to be bigger than a message: one flag sets both.
    wsMaxMessageBytes: size("ws-max-message", L.wsMaxMessageBytes),
    wsMaxFrameBytes: size("ws-max-message", L.wsMaxFrameBytes),
  });

  const http2 = str("http2") ?? onOff(DEFAULT_HTTP2);
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

  const dotfiles = str("dotfiles") ?? DEFAULT_STATIC.dotfiles;
  if (dotfiles !== "allow" && dotfiles !== "deny") {
    throw new UsageError(`--dotfiles: "${dotfiles}" is not allow or deny`);
  }
  const logFormat = (str("log-format") ?? DEFAULT_LOG_FORMAT) as LogFormat;
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
  const fail = str("rate-limit-fail") ?? DEFAULT_RATE_LIMIT_FAIL;
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
      ? DEFAULT_APP.trustProxy
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
      : count("workers", DEFAULT_WORKERS),
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
