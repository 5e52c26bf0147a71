/**
 * GET/HEAD for the files under a root folder: canonical paths only, no way
 * out of the root (not even through a symlink), conditional requests, byte
 * ranges, precompressed and on-the-fly compression, index files, listings,
 * a custom 404 page and a single-page-app fallback. This file answers the
 * request; the parts have their own: finding the path
 * (static_lookup.ts), the forms a file is sent in and their caches
 * (static_representations.ts), range and streamed bodies
 * (static_bodies.ts), folder listings and archives (static_folders.ts).
 */
import { basename, resolve } from "node:path";
import type { StaticConfig } from "./settings.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import type { Handler, Reply, ServerRequest } from "../http/handler.ts";
import { canonicalPath } from "./canonical_path.ts";
import { type Coding, type Compressor, sharedCompressor } from "./compress.ts";
import {
  evaluatePreconditions,
  httpDate,
  ifRangeHolds,
  type Validators,
} from "./conditional.ts";
import { negotiateEncoding } from "./encoding.ts";
import { FileChanged, openChecked } from "./file_version.ts";
import {
  LIVE_RELOAD_BYTES,
  LIVE_RELOAD_PATH,
  LiveReload,
  liveReloadTail,
  type LiveReloadTuning,
  withLiveReload,
} from "./live_reload.ts";
import { extensionOf } from "./media_types.ts";
import {
  contentRange,
  multipartLayout,
  parseRange,
  type RangeResult,
} from "./ranges.ts";
import { contentDisposition } from "./replies.ts";
import { joinParts, streamParts, streamThenTail } from "./static_bodies.ts";
import { type FolderTuning, StaticFolders } from "./static_folders.ts";
import { withFixedHeaders } from "./static_headers.ts";
import { type Found, StaticLookup } from "./static_lookup.ts";
import {
  etagOf,
  type FileMeta,
  type Offer,
  type Representation,
  Representations,
  type RepresentationTuning,
} from "./static_representations.ts";

/**
 * Sizes and thresholds of the static handler; tests shrink them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STATIC, type StaticTuning, staticFiles } from "@spindle/server";
 *
 * const tuning: Partial<StaticTuning> = {
 *   maxCachedFileBytes: 64 * 1024, // larger files stream from disk
 *   revalidateMs: 0, // look every file up afresh
 * };
 * const handler = staticFiles({ ...DEFAULT_STATIC, root: "." }, tuning);
 * assert.equal(typeof handler, "function");
 * ```
 */
export interface StaticTuning extends RepresentationTuning, FolderTuning {
  /**
   * Files compressed on the fly at once, each in a worker thread. A request
   * that would start one more is sent the file uncompressed.
   */
  readonly maxCompressions: number;
  /**
   * How long a found file's lookup (stat and checked real path) is trusted
   * before it is made again, as nginx's open_file_cache_valid. An edit shows
   * within this time; a missing path is always looked up afresh.
   */
  readonly revalidateMs: number;
}

const DEFAULT_TUNING: StaticTuning = Object.freeze({
  maxCachedFileBytes: 1024 * 1024, // pages, styles, scripts, most images
  fileCacheBytes: 64 * 1024 * 1024, // bounded: least recently used go first
  minCompressBytes: 1024, // as Hono's compress and nginx's gzip_min_length
  // A job holds the whole file, and its gzip takes ~120 ms of a core at 4 MiB.
  maxCompressBytes: 4 * 1024 * 1024,
  // One or two, and never every core: the event loop keeps one to itself, so
  // clients cycling codings over many large files cannot slow the others.
  maxCompressions: Math.max(1, Math.min(2, navigator.hardwareConcurrency - 1)),
  compressedCacheBytes: 32 * 1024 * 1024,
  sidecarTtlMs: 1000,
  maxListingEntries: 10_000,
  revalidateMs: 200, // a stat per file 5 times a second, not per request
  readChunkBytes: 256 * 1024,
  maxArchiveEntries: 100_000,
  zip64FromBytes: 0xffffffff, // the format's own 32-bit limit
});

/**
 * Types a browser runs as a document with scripts: HTML, XHTML, SVG, XML
 * (which may pull in XSLT).
 */
const ACTIVE_TYPES: ReadonlySet<string> = new Set([
  "text/html",
  "application/xhtml+xml",
  "image/svg+xml",
  "text/xml",
  "application/xml",
]);
/** CSP for those in an upload folder: no scripts, no forms, an origin of its own. */
const SANDBOX: [string, string] = ["content-security-policy", "sandbox"];

/** Methods a static path answers; the rest get 405 with this Allow. */
const ALLOW = "GET, HEAD, OPTIONS";

/**
 * A handler serving `config.root`. It canonicalises the raw `req.path` with
 * {@link canonicalPath}, so it must be given the request path as sent. It
 * throws {@link HttpError} for every error status: 400 bad path, 403
 * extension not allowed, 404, 405 (with Allow), 406, 412, 416 (with
 * `Content-Range: bytes *\/N`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STATIC, serve, staticFiles } from "@spindle/server";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/hello.txt`, "hello");
 * {
 *   await using server = serve(
 *     { port: 0, accessLog: false },
 *     staticFiles({ ...DEFAULT_STATIC, root }),
 *   );
 *   const base = `http://127.0.0.1:${server.port}`;
 *   const res = await fetch(`${base}/hello.txt`);
 *   assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
 *   assert.equal(await res.text(), "hello");
 *   const bad = await fetch(`${base}/a%2Fb`);
 *   assert.equal(bad.status, 400); // an encoded "/" is refused, never decoded
 *   await bad.body?.cancel();
 * }
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function staticFiles(
  config: StaticConfig,
  tuning: Partial<StaticTuning> = {},
  hooks: StaticHooks = {},
): Handler {
  const full = { ...DEFAULT_TUNING, ...tuning };
  const compressor = hooks.compressor ??
    sharedCompressor(full.maxCompressions);
  const site = new StaticSite(config, full, compressor, hooks);
  return withFixedHeaders((req) => site.handle(req), config.headers);
}

/**
 * `allowExt` as a test on file names: true for every name when null, else
 * for names whose extension (lower case, no dot) is listed.
 */
export function extensionPolicy(
  allowExt: readonly string[] | null,
): (name: string) => boolean {
  if (allowExt === null) return () => true;
  const allowed = new Set(
    allowExt.map((e) => e.toLowerCase().replace(/^\./, "")),
  );
  return (name) => allowed.has(extensionOf(name));
}

/**
 * What tests and embedders may hand the static handler.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STATIC, type StaticHooks, staticFiles } from "@spindle/server";
 *
 * const stop = new AbortController();
 * const hooks: StaticHooks = { signal: stop.signal }; // ends --watch's streams
 * const handler = staticFiles({ ...DEFAULT_STATIC, root: "." }, {}, hooks);
 * stop.abort();
 * assert.equal(typeof handler, "function");
 * ```
 */
export interface StaticHooks {
  /**
   * Runs on-the-fly compression; by default the thread's shared one. For
   * tests, not part of the package's API.
   *
   * @ignore
   */
  readonly compressor?: Compressor;
  /**
   * Aborts when the server drains: with `watch`, the watcher stops and the
   * pages' event streams end, so shutdown does not wait for open tabs.
   */
  readonly signal?: AbortSignal;
  /**
   * Timings of `watch`; tests shrink them. Not part of the package's API.
   *
   * @ignore
   */
  readonly liveReload?: Partial<LiveReloadTuning>;
}

/** The fields of a whole representation, and what they were made from. */
interface WholeFields {
  readonly size: number;
  readonly coding: string;
  readonly type: string;
  readonly compressible: boolean;
  readonly fields: Readonly<Record<string, string>>;
}

class StaticSite {
  readonly #config: StaticConfig;
  readonly #tuning: StaticTuning;
  readonly #lookup: StaticLookup;
  readonly #reps: Representations;
  readonly #folders: StaticFolders;
  /** The watcher and pages of `--watch`; undefined when off. */
  readonly #live: LiveReload | undefined;
  /** {@link StaticSite.#wholeFields}, per representation's validators. */
  readonly #fields = new WeakMap<Validators, WholeFields>();

  constructor(
    config: StaticConfig,
    tuning: StaticTuning,
    compressor: Compressor,
    hooks: StaticHooks,
  ) {
    this.#config = config;
    this.#tuning = tuning;
    const root = resolve(config.root);
    const serves = extensionPolicy(config.allowExt);
    const lookup = this.#lookup = new StaticLookup(
      root,
      config,
      tuning.revalidateMs,
    );
    this.#reps = new Representations(tuning, serves, compressor);
    this.#live = config.watch
      ? new LiveReload(root, {
        denyDots: config.dotfiles !== "allow",
        signal: hooks.signal,
        tuning: hooks.liveReload,
      })
      : undefined;
    this.#folders = new StaticFolders({
      config,
      tuning,
      serves,
      liveReload: this.#live !== undefined,
      takesUploads: (real) => lookup.takesUploads(real),
    });
  }

  /**
   * Synchronous for a file the memory cache holds (no promise of ours, so
   * the router and the engine answer it without an await); a promise when
   * anything is read, opened or compressed.
   */
  handle(req: ServerRequest): Reply | Promise<Reply> {
    const method = req.method;
    if (method !== "GET" && method !== "HEAD") {
      if (method === "OPTIONS") {
        return { status: STATUS.NoContent, headers: { allow: ALLOW } };
      }
      throw new HttpError(
        STATUS.MethodNotAllowed,
        `Method ${method} not allowed on static files`,
        {
          headers: { allow: ALLOW },
        },
      );
    }
    const path = canonicalPath(req.path);
    if (this.#live !== undefined && path === LIVE_RELOAD_PATH) {
      return this.#live.events(req);
    }
    let reply: Reply | Promise<Reply>;
    try {
      reply = this.#serve(req, path);
    } catch (err) {
      if (!(err instanceof FileChanged)) throw err;
      return this.#serveAgain(req, path);
    }
    if (reply instanceof Promise) return this.#settled(reply, req, path);
    return reply;
  }

  /** A promised reply; once more if a file changed under it. */
  async #settled(
    pending: Promise<Reply>,
    req: ServerRequest,
    path: string,
  ): Promise<Reply> {
    try {
      return await pending;
    } catch (err) {
      if (!(err instanceof FileChanged)) throw err;
      return this.#serveAgain(req, path);
    }
  }

  /** The reply after a file changed while being read: one more try. */
  async #serveAgain(req: ServerRequest, path: string): Promise<Reply> {
    // The lookups behind the read are stale, whatever revalidateMs says:
    // trusting them again would meet the same changed file (a 503).
    this.#lookup.forget();
    this.#reps.forget(); // a sidecar may be what vanished
    // One more try sees the file as it is now; a file rewritten twice
    // during one request is busy, not missing.
    try {
      return await this.#serve(req, path);
    } catch (again) {
      if (!(again instanceof FileChanged)) throw again;
      throw new HttpError(
        STATUS.ServiceUnavailable,
        "File changed twice while being read",
        {
          headers: { "retry-after": "1" },
        },
      );
    }
  }

  #serve(req: ServerRequest, path: string): Reply | Promise<Reply> {
    const found = this.#lookup.find(path);
    if (found === null) return this.#notFound(req, path);
    if (found.kind === "file") return this.#sendFile(req, found, path);
    if (path.endsWith("/") && req.query !== "") {
      const download = new URLSearchParams(req.query).get("download");
      if (download !== null) {
        return this.#orNotFound(
          this.#folders.archive(req, found, path, download),
          req,
          path,
        );
      }
    }
    if (!path.endsWith("/")) {
      // Built from the raw path, which canonicalPath() proved starts with one
      // "/" and holds no backslash: never "//evil.com/" (CVE-2021-28861).
      const query = req.query === "" ? "" : `?${req.query}`;
      return {
        status: STATUS.MovedPermanently,
        headers: { location: `${req.path}/${query}` },
      };
    }
    const index = this.#lookup.find(`${path}index.html`);
    if (index?.kind === "file") {
      return this.#sendFile(req, index, `${path}index.html`);
    }
    if (this.#config.listDirs) {
      return this.#orNotFound(
        this.#folders.listing(req, found, path),
        req,
        path,
      );
    }
    return this.#notFound(req, path);
  }

  /** A folder's reply, or the 404 when the folder was not there after all. */
  async #orNotFound(
    reply: Promise<Reply | null>,
    req: ServerRequest,
    path: string,
  ): Promise<Reply> {
    return (await reply) ?? this.#notFound(req, path);
  }

  /**
   * A file's reply: synchronous, step by step, while each step's answer is
   * at hand (a file in memory, sent whole in identity); from the first step
   * that waits, the rest runs when it settles.
   */
  #sendFile(
    req: ServerRequest,
    file: Found,
    urlPath: string,
  ): Reply | Promise<Reply> {
    // Size and dates go out in headers before (or without) any read: a
    // lookup not yet proven under the root is proven by an open first (which
    // waits out the folder that changed), unless the memory cache holds this
    // very version, read through a proven open.
    if (!file.proven && !this.#reps.holds(file)) {
      return openChecked(file).then((opened) => {
        opened.close();
        return this.#sendProven(req, file, urlPath);
      });
    }
    return this.#sendProven(req, file, urlPath);
  }

  #sendProven(
    req: ServerRequest,
    file: Found,
    urlPath: string,
  ): Reply | Promise<Reply> {
    const meta = this.#reps.meta(file);
    if (!meta.allowed) {
      throw new HttpError(
        STATUS.Forbidden,
        `Extension not served: ${meta.name}`,
        { expose: "This type of file is not served" },
      );
    }
    // Anyone who may upload may have written this page or image: it runs in
    // a sandbox, as a page of no origin, so its scripts cannot act for the
    // visitor here (read other files, upload in their name).
    const sandbox = ACTIVE_TYPES.has(meta.type) &&
      this.#lookup.takesUploads(file.path);
    if (this.#live !== undefined && meta.type === "text/html") {
      return this.#sendLive(req, file, meta, sandbox);
    }
    const acceptEncoding = req.headers.getJoined("accept-encoding");
    // Which codings could we send? Only looked for when the client takes one.
    const offer = this.#reps.offer(file, meta, acceptEncoding);
    if (offer instanceof Promise) {
      return offer.then((o) =>
        this.#sendOffered(req, file, urlPath, meta, sandbox, acceptEncoding, o)
      );
    }
    return this.#sendOffered(
      req,
      file,
      urlPath,
      meta,
      sandbox,
      acceptEncoding,
      offer,
    );
  }

  #sendOffered(
    req: ServerRequest,
    file: Found,
    urlPath: string,
    meta: FileMeta,
    sandbox: boolean,
    acceptEncoding: string | undefined,
    offer: Offer,
  ): Reply | Promise<Reply> {
    let coding = negotiateEncoding(acceptEncoding, offer.codings) as
      | Coding
      | "identity"
      | null;
    if (coding === null) {
      throw new HttpError(
        STATUS.NotAcceptable,
        "No acceptable content coding",
        {
          expose: "None of the content codings in Accept-Encoding is available",
        },
      );
    }

    // Ranges are of the identity form only: a range of a compressed body that
    // is made anew each time would not be stable across requests.
    let ranges: RangeResult = null;
    const range = req.method === "GET" ? req.headers.get("range") : undefined;
    if (
      range !== undefined &&
      (coding === "identity" || negotiateEncoding(acceptEncoding, []) !== null)
    ) {
      ranges = parseRange(range, file.size);
      if (
        ranges !== null &&
        !ifRangeHolds(req.headers, meta.validators.identity)
      ) ranges = null;
      if (ranges !== null) coding = "identity";
    }

    const rep = this.#reps.represent(file, meta, coding, offer.sidecars);
    if (ranges === null && !sandbox && !this.#config.attachment) {
      return rep instanceof Promise
        ? rep.then((r) => this.#sendWhole(req, meta, r))
        : this.#sendWhole(req, meta, rep);
    }
    return this.#sendFields(
      req,
      file,
      urlPath,
      meta,
      sandbox,
      rep,
      ranges,
      range,
    );
  }

  /**
   * The whole file, its usual fields: one frozen record per version, which
   * the engine copies as bytes.
   */
  #sendWhole(
    req: ServerRequest,
    meta: FileMeta,
    rep: Representation,
  ): Reply | Promise<Reply> {
    const fields = this.#wholeFields(rep, meta);
    const notModified = checkPreconditions(req, rep.validators, fields);
    if (notModified !== undefined) return notModified;
    if (req.method === "HEAD") {
      return { status: STATUS.OK, headers: fields, body: null };
    }
    const body = this.#reps.body(rep, 0, rep.size);
    if (body instanceof Promise) {
      return body.then((b) => ({
        status: STATUS.OK,
        headers: fields,
        body: b,
      }));
    }
    return { status: STATUS.OK, headers: fields, body };
  }

  /** A reply with fields of its own: a range, a sandbox, an attachment. */
  async #sendFields(
    req: ServerRequest,
    file: Found,
    urlPath: string,
    meta: FileMeta,
    sandbox: boolean,
    pending: Representation | Promise<Representation>,
    ranges: RangeResult,
    range: string | undefined,
  ): Promise<Reply> {
    const rep = await pending;
    const out: [string, string][] = [];
    if (!(ranges !== null && ranges !== "unsatisfiable" && ranges.length > 1)) {
      out.push(["content-type", meta.contentType]);
    }
    if (rep.coding !== "identity") out.push(["content-encoding", rep.coding]);
    if (meta.compressible) out.push(["vary", "Accept-Encoding"]);
    out.push(
      ["etag", rep.validators.etag],
      ["last-modified", httpDate(rep.validators.lastModifiedMs)],
      ["cache-control", this.#config.cacheControl],
    );
    if (sandbox) out.push(SANDBOX);

    const notModified = checkPreconditions(req, rep.validators, out);
    if (notModified !== undefined) return notModified;

    out.push(["accept-ranges", "bytes"]);
    if (this.#config.attachment && meta.type !== "text/html") {
      out.push([
        "content-disposition",
        contentDisposition(basename(urlPath) || meta.name),
      ]);
    }
    const head = req.method === "HEAD";

    if (ranges === "unsatisfiable") {
      throw new HttpError(
        STATUS.RangeNotSatisfiable,
        `Range not satisfiable: ${range}`,
        {
          expose: "Range not satisfiable",
          headers: { "content-range": `bytes */${file.size}` },
        },
      );
    }
    if (ranges === null) {
      out.push(["content-length", String(rep.size)]);
      return {
        status: STATUS.OK,
        headers: out,
        body: head ? null : await this.#reps.body(rep, 0, rep.size),
      };
    }
    if (ranges.length === 1) {
      const [r] = ranges;
      const length = r.end - r.start + 1;
      out.push(["content-range", contentRange(r, file.size)], [
        "content-length",
        String(length),
      ]);
      return {
        status: STATUS.PartialContent,
        headers: out,
        body: head ? null : await this.#reps.body(rep, r.start, length),
      };
    }
    const layout = multipartLayout(ranges, file.size, meta.contentType);
    out.push(["content-type", layout.contentType], [
      "content-length",
      String(layout.length),
    ]);
    let body: Reply["body"] = null;
    if (!head) {
      body = rep.source instanceof Uint8Array
        ? joinParts(rep.source, ranges, layout)
        : streamParts(
          rep.source,
          ranges,
          layout,
          this.#tuning.readChunkBytes,
        );
    }
    return { status: STATUS.PartialContent, headers: out, body };
  }

  /**
   * The fields of a whole representation, as #sendFile lists them: made
   * once per version and coding (the validators object is theirs).
   */
  #wholeFields(
    rep: Representation,
    meta: FileMeta,
  ): Readonly<Record<string, string>> {
    const known = this.#fields.get(rep.validators);
    if (
      known !== undefined && known.size === rep.size &&
      known.coding === rep.coding && known.type === meta.contentType &&
      known.compressible === meta.compressible
    ) return known.fields;
    const fields: Record<string, string> = {
      "content-type": meta.contentType,
    };
    if (rep.coding !== "identity") fields["content-encoding"] = rep.coding;
    if (meta.compressible) fields["vary"] = "Accept-Encoding";
    fields["etag"] = rep.validators.etag;
    fields["last-modified"] = httpDate(rep.validators.lastModifiedMs);
    fields["cache-control"] = this.#config.cacheControl;
    fields["accept-ranges"] = "bytes";
    fields["content-length"] = String(rep.size);
    Object.freeze(fields);
    this.#fields.set(rep.validators, {
      size: rep.size,
      coding: rep.coding,
      type: meta.contentType,
      compressible: meta.compressible,
      fields,
    });
    return fields;
  }

  /**
   * An HTML page with the live-reload script after it (`--watch`): its own
   * ETag, so no cache mixes it up with the page as stored; always identity
   * (no sidecar or compressed form holds the script) and always whole (no
   * Accept-Ranges: a range of it would not be a range of the file).
   */
  async #sendLive(
    req: ServerRequest,
    file: Found,
    meta: FileMeta,
    sandbox: boolean,
  ): Promise<Reply> {
    const validators: Validators = {
      etag: etagOf(file.size, file.mtimeMs, "live"),
      lastModifiedMs: file.mtimeMs,
    };
    const out: [string, string][] = [
      ["content-type", meta.contentType],
      ["etag", validators.etag],
      ["last-modified", httpDate(file.mtimeMs)],
      ["cache-control", this.#config.cacheControl],
    ];
    if (sandbox) out.push(SANDBOX);
    const notModified = checkPreconditions(req, validators, out);
    if (notModified !== undefined) return notModified;
    out.push(["content-length", String(file.size + LIVE_RELOAD_BYTES)]);
    if (req.method === "HEAD") return { status: STATUS.OK, headers: out };
    const source = await this.#reps.source(file);
    return {
      status: STATUS.OK,
      headers: out,
      body: source instanceof Uint8Array
        ? withLiveReload(source)
        : streamThenTail(source, this.#tuning.readChunkBytes, liveReloadTail()),
    };
  }

  async #notFound(req: ServerRequest, path: string): Promise<Reply> {
    const html = acceptsHtml(req);
    if (html && this.#config.spa) {
      const index = this.#lookup.find("/index.html");
      if (index?.kind === "file") {
        return this.#sendFile(req, index, "/index.html");
      }
    }
    if (html) {
      const page = this.#lookup.find("/404.html");
      if (
        page?.kind === "file" && page.size <= this.#tuning.maxCachedFileBytes
      ) {
        let bytes = await this.#reps.readCached(page);
        if (this.#live !== undefined) bytes = withLiveReload(bytes);
        return {
          status: STATUS.NotFound,
          headers: {
            "content-type": "text/html; charset=utf-8",
            "content-length": String(bytes.length),
            "cache-control": "no-cache",
          },
          body: req.method === "HEAD" ? null : bytes,
        };
      }
    }
    throw new HttpError(STATUS.NotFound, `No file for ${path}`, {
      expose: "File not found",
    });
  }
}

/** Fields a 304 carries (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = new Set([
  "etag",
  "last-modified",
  "cache-control",
  "vary",
  "content-location",
]);

function acceptsHtml(req: ServerRequest): boolean {
  return req.headers.getJoined("accept")?.includes("text/html") ?? false;
}

/**
 * The 304 (with the fields of `out` it carries) when the client's copy is
 * current; undefined when the request goes on.
 *
 * @throws {HttpError} 412 when If-Match or If-Unmodified-Since does not hold.
 */
function checkPreconditions(
  req: ServerRequest,
  validators: Validators,
  out: readonly [string, string][] | Readonly<Record<string, string>>,
): Reply | undefined {
  const verdict = evaluatePreconditions(req.method, req.headers, validators);
  if (verdict === 412) {
    throw new HttpError(STATUS.PreconditionFailed, "Precondition failed", {
      expose: "A precondition (If-Match or If-Unmodified-Since) does not hold",
    });
  }
  if (verdict !== 304) return undefined;
  return {
    status: STATUS.NotModified,
    headers: (Array.isArray(out) ? out : Object.entries(out)).filter(([n]) =>
      NOT_MODIFIED_FIELDS.has(n)
    ),
  };
}
