/**
 * The default application: the one list of routes, the middleware around
 * them, and static files for every other path.
 */
import { isAbsolute, relative, resolve } from "node:path";
import { type AppConfig, uploadFilesDir } from "./settings.ts";
import { DEFAULT_LIMITS, type Limits } from "../config.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import type { Handler, Reply } from "../http/handler.ts";
import { isAscii } from "../http/response.ts";
import type { EngineStats } from "../http/stats.ts";
import type { AppHandler, AppRequest } from "./app_request.ts";
import { removeDeadTempFiles } from "./atomic_write.ts";
import {
  forwardedBeyondLoopback,
  isLoopback,
  trustProxy,
} from "./client_addr.ts";
import { getFile, postFile } from "./files_route.ts";
import { checkUploadFolder, FolderUploads } from "./folder_upload.ts";
import { AppMetrics, METRICS_TYPE } from "./metrics.ts";
import { basicAuth } from "./middleware/auth.ts";
import { compression } from "./middleware/compression.ts";
import { cors } from "./middleware/cors.ts";
import { hostGuard } from "./middleware/host_guard.ts";
import { hsts } from "./middleware/hsts.ts";
import { rateLimit } from "./middleware/rate_limit.ts";
import type { RateLimitStore } from "./rate_limit_store.ts";
import type { QuotaLedger } from "../shared/quota.ts";
import type { FailureLimiter } from "./middleware/auth.ts";
import { json, text } from "./replies.ts";
import { Router } from "./router.ts";
import { extensionPolicy, staticFiles } from "./static_files.ts";
import { uploadHandler, UploadStore } from "./upload_route.ts";
import type { WsHandlers } from "./websocket.ts";

/** What the app needs to know about the server it runs in. */
export interface ServerInfo {
  /** The engine's counters, for /health and /metrics. */
  readonly stats: EngineStats;
  /** The bind address (loopback turns the Host guard on). */
  readonly hostname: string;
  /** The bound port; a function because port 0 is known only once bound. */
  port(): number;
  /** The server's limits (the app's own are there too); default: the defaults. */
  readonly limits?: Limits;
  /**
   * True once the whole server shuts down, so /health says "draining";
   * default: once this engine drains. An engine replaced by a reload
   * drains while the server goes on.
   */
  stopping?(): boolean;
  /**
   * Where `config.rateLimit` counts: shared by instances (Redis) or by
   * workers; unset: this engine's memory. Built for the same policy.
   */
  readonly rateLimitStore?: RateLimitStore;
}

/**
 * Where the app keeps its state, and a clock for tests. Each defaults to
 * this engine's own; `--workers` engines pass ones in shared memory.
 */
export interface AppHooks {
  readonly now?: () => number;
  readonly metrics?: AppMetrics;
  /** Failed password checks per client, shared by `--workers` engines. */
  readonly authFailures?: FailureLimiter;
  /** The --upload-quota's counts (POST /upload). */
  readonly quota?: QuotaLedger;
  /** The --upload-files-quota's counts (forms posted to folders). */
  readonly formQuota?: QuotaLedger;
}

const JSON_TYPES = ["application/json", "application/*+json"];

/** `text/plain` without a charset, frozen: the engine copies its encoded bytes. */
const PLAIN_ASCII = Object.freeze({ "content-type": "text/plain" });
/** The same for /echo, which is gzipped when asked whatever its size. */
const ECHO_ASCII = Object.freeze({
  "content-type": "text/plain",
  vary: "Accept-Encoding",
});

/** `text/plain` as CodeCrafters expects it; a charset only when the text needs one. */
function plain(
  body: string,
  ascii = PLAIN_ASCII,
  other?: Readonly<Record<string, string>>,
): Reply {
  if (!isAscii(body)) return text(body, other && { headers: other });
  return { status: STATUS.OK, headers: ascii, body };
}

const ECHO_COMPRESSION = Object.freeze({
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
});

/** The reply depends on this header: no shared cache may give it to another client. */
const VARY_USER_AGENT = Object.freeze({ vary: "User-Agent" });
const USER_AGENT_ASCII = Object.freeze({
  "content-type": "text/plain",
  ...VARY_USER_AGENT,
});

/** The two answers of /health, made once. */
const HEALTHY = Object.freeze(
  json({ status: "ok" }, { headers: { "cache-control": "no-store" } }),
);
const DRAINING = Object.freeze(
  json({ status: "draining" }, {
    status: STATUS.ServiceUnavailable,
    headers: { "cache-control": "no-store" },
  }),
);
Object.freeze(HEALTHY.headers);
Object.freeze(DRAINING.headers);

/** The URL path a folder is served under by the static root, or undefined. */
function servedAt(dir: string, root: string): string | undefined {
  const rel = relative(resolve(root), resolve(dir));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return `/${rel.split("\\").join("/")}/`;
}

/**
 * The limits to run the engine with for this app: form uploads
 * (`--upload-files`) need bodies up to `maxFormBytes`, so the engine's
 * body limit is raised to that, and the app holds every other route to
 * `maxBodyBytes` itself (createApp()).
 */
export function engineLimits(config: AppConfig, limits: Limits): Limits {
  if (
    config.uploadFiles === undefined ||
    limits.maxFormBytes <= limits.maxBodyBytes
  ) return limits;
  return Object.freeze({ ...limits, maxBodyBytes: limits.maxFormBytes });
}

/** WebSocket /echo: each message back as it came (bench/ws_layers.ts uses it too). */
export const ECHO_SOCKET: WsHandlers = {
  message: (ws, data) => ws.send(data),
};

/** POST /echo: the query and User-Agent back, as JSON. */
function echoRequest(req: AppRequest): Reply {
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(req.query.keys())) {
    const all = req.query.getAll(key);
    query[key] = all.length === 1 ? all[0] : all;
  }
  return json({ query, userAgent: req.header("user-agent") ?? null });
}

/** GET /user-agent: the User-Agent back, as text. */
function userAgent(req: AppRequest): Reply {
  return plain(
    req.header("user-agent") ?? "",
    USER_AGENT_ASCII,
    VARY_USER_AGENT,
  );
}

/** GET /metrics: loopback clients only unless `metricsPublic`. */
function metricsRoute(
  metrics: AppMetrics,
  server: ServerInfo,
  metricsPublic: boolean,
): AppHandler {
  return (req) => {
    if (!metricsPublic) {
      // A reverse proxy on loopback makes every client's peer loopback: its
      // forwarding headers name who really asked. (With --proxy-protocol the
      // engine has already put the client the PROXY header names in
      // req.client, loopback only for a local client or a health check.)
      const refused = isLoopback(req.client)
        ? forwardedBeyondLoopback(
          req.raw.headers.getJoined("x-forwarded-for"),
          req.raw.headers.getJoined("forwarded"),
        )
        : req.client;
      if (refused !== undefined) {
        throw new HttpError(STATUS.Forbidden, `Metrics refused to ${refused}`, {
          expose: "Metrics are served to loopback clients only",
        });
      }
    }
    return text(metrics.render(server.stats), {
      headers: { "content-type": METRICS_TYPE, "cache-control": "no-store" },
    });
  };
}

/**
 * Every path no route has: static files, and with `--upload-files` a POST
 * to a folder (a form upload); the methods an upload folder answers in Allow.
 */
function staticOrUpload(
  statics: Handler,
  uploads: FolderUploads | undefined,
): AppHandler {
  return (req) => {
    const method = req.method;
    if (uploads === undefined || method === "GET" || method === "HEAD") {
      return statics(req.raw);
    }
    if (method === "POST") return uploads.post(req);
    // An upload folder answers POST too: say so in Allow.
    const allow = uploads.allowOn(req.path);
    if (allow === undefined) return statics(req.raw);
    if (method === "OPTIONS") {
      return { status: STATUS.NoContent, headers: { allow } };
    }
    throw new HttpError(
      STATUS.MethodNotAllowed,
      `Method ${method} not allowed on an upload folder`,
      { headers: { allow } },
    );
  };
}

/**
 * Builds the default app as an engine handler.
 *
 * Routes: GET /echo/{text}, POST /echo, WebSocket /echo, GET /user-agent, GET|POST
 * /files/{name} (only with `config.directory`), POST /upload, GET /health,
 * GET /metrics; everything else goes to static files under
 * `config.static.root`, and POSTs to its folders are form uploads with
 * `config.uploadFiles` (run the engine with {@link engineLimits}). Middleware, outermost first: metrics, HSTS (if set), Host guard,
 * rate limit (if set), CORS (if set), passwords (if set), gzip for dynamic
 * replies of 1 KiB+.
 */
export function createApp(
  config: AppConfig,
  server: ServerInfo,
  hooks: AppHooks = {},
): Handler {
  const metrics = hooks.metrics ?? new AppMetrics();
  const router = new Router().use(metrics.middleware());
  if (config.hstsMaxAgeS !== undefined) router.use(hsts(config.hstsMaxAgeS));
  const guard = hostGuard({
    allowedHosts: config.allowedHosts,
    hostname: server.hostname,
    port: () => server.port(),
    onRefused: () => metrics.misdirected++,
  });
  if (guard) router.use(guard);
  if (config.rateLimit) {
    const onLimited = () => metrics.rateLimited++;
    // A load balancer checks /health every second or two, from one address,
    // on every instance: counted against a shared limit, its checks would
    // soon be refused and take the whole fleet out.
    const limits = { onLimited, exemptPaths: ["/health"] };
    router.use(
      server.rateLimitStore
        ? rateLimit(server.rateLimitStore, limits)
        : rateLimit({ ...config.rateLimit, now: hooks.now, onLimited }, limits),
    );
  }
  if (config.cors !== undefined) router.use(cors(config.cors));
  const limits = server.limits ?? DEFAULT_LIMITS;
  if (config.auth !== undefined) {
    router.use(basicAuth({
      credentials: config.auth.credentials,
      rules: config.auth.rules,
      maxFailures: limits.maxAuthFailures,
      failureWindowMs: limits.authFailureWindowMs,
      maxChecks: limits.maxPasswordChecks,
      maxCheckQueue: limits.maxPasswordQueue,
      now: hooks.now,
      failures: hooks.authFailures,
    }));
  }
  router.use(compression());

  const upload = config.uploadFiles;
  let uploads: FolderUploads | undefined;
  let staticConfig = config.static;
  if (upload !== undefined) {
    const root = config.static.root;
    checkUploadFolder(root, uploadFilesDir(root, upload.path));
    uploads = new FolderUploads({
      root,
      upload,
      limits,
      cors: config.cors,
      serves: extensionPolicy(config.static.allowExt),
      ledger: hooks.formQuota,
    });
    staticConfig = {
      ...staticConfig,
      uploads: {
        path: upload.path,
        maxBytes: limits.maxFormBytes,
        overwrite: upload.overwrite,
      },
    };
  }
  const store = new UploadStore({
    dir: config.uploads,
    quotaBytes: config.uploadQuotaBytes,
    ledger: hooks.quota,
  });
  // Writes cut short by a crash left temp files; this engine has none yet.
  for (const dir of new Set([config.uploads, config.directory])) {
    if (dir !== undefined) removeDeadTempFiles(dir);
  }
  // Stored uploads are static files when under the root; else /uploads/.
  const uploadsAt = servedAt(config.uploads, config.static.root);

  // The routes, then everything else: static files and form uploads.
  router.get("/echo/{text}", (req) => plain(req.params.text, ECHO_ASCII), {
    use: [compression({ minBytes: 0 })], // CodeCrafters gzips even "abc"
  });
  router.post("/echo", echoRequest, { jsonErrors: true });
  // The same echo over WebSocket, for checking a deployment: every message
  // comes back as it came, through handlers that get plain values (no
  // event a message). Compression without context takeover: zlib's ~300
  // KiB a socket is held only while a message is being (de)compressed.
  router.ws("/echo", ECHO_SOCKET, { compression: ECHO_COMPRESSION });
  router.get("/user-agent", userAgent);
  if (config.directory !== undefined) {
    router.get(
      "/files/{*name}",
      getFile(config.directory, { strictLinks: config.static.strictLinks }),
    );
    router.post("/files/{*name}", postFile(config.directory));
  }
  if (uploadsAt === undefined) {
    router.get(
      "/uploads/{*name}",
      getFile(config.uploads, {
        contentType: "application/json",
        strictLinks: config.static.strictLinks,
      }),
    );
  }
  router.post("/upload", uploadHandler(store, uploadsAt ?? "/uploads/"), {
    contentType: JSON_TYPES,
    maxBodyBytes: config.uploadMaxBytes,
    jsonErrors: true,
  });
  const draining = server.stopping ?? (() => server.stats.draining);
  router.get(
    "/health",
    () => draining() ? DRAINING : HEALTHY,
    { jsonErrors: true },
  );
  router.get("/metrics", metricsRoute(metrics, server, config.metricsPublic));
  // Draining ends --watch's event streams, which would hold shutdown.
  const statics = staticFiles(staticConfig, {}, {
    signal: server.stats.drainSignal,
  });
  router.fallback(staticOrUpload(statics, uploads), "static");

  return router.handler({
    trustProxy: trustProxy(config.trustProxy),
    // The engine may allow more, for form uploads: every other body stays under this.
    maxBodyBytes: limits.maxBodyBytes,
  });
}
