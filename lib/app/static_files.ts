/**
 * GET/HEAD for the files under a root folder: canonical paths only, no way
 * out of the root (not even through a symlink), conditional requests, byte
 * ranges, precompressed and on-the-fly compression, index files, listings,
 * a custom 404 page and a single-page-app fallback.
 */
import { basename, resolve } from "node:path";
import { type StaticConfig, uploadFilesDir } from "../config.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import {
  FileBody,
  type Handler,
  type Reply,
  type ServerRequest,
} from "../http/handler.ts";
import { canonicalPath, isDotPath } from "./canonical_path.ts";
import {
  isBeneath,
  type Look,
  lookBeneath,
  openBeneath,
} from "./open_beneath.ts";
import {
  evaluatePreconditions,
  httpDate,
  ifRangeHolds,
  type Validators,
} from "./conditional.ts";
import {
  filterEntries,
  type ListingEntry,
  parseView,
  renderListing,
  renderListingJson,
  sortEntries,
} from "./dir_listing.ts";
import { negotiateEncoding } from "./encoding.ts";
import {
  LIVE_RELOAD_BYTES,
  LIVE_RELOAD_PATH,
  LiveReload,
  liveReloadTail,
  type LiveReloadTuning,
  withLiveReload,
} from "./live_reload.ts";
import {
  type ArchivePolicy,
  isServableName,
  walkFolder,
  zipFolder,
} from "./folder_archive.ts";
import {
  type ByteRange,
  contentRange,
  type MultipartLayout,
  multipartLayout,
  parseRange,
  type RangeResult,
} from "./ranges.ts";
import { ByteLru } from "./static_cache.ts";
import { withFixedHeaders } from "./static_headers.ts";
import {
  type Coding,
  CompressionFailed,
  type Compressor,
  ON_THE_FLY,
  sharedCompressor,
} from "./static_compress.ts";
import {
  contentTypeOf,
  extensionOf,
  isCompressible,
  mediaTypeOf,
} from "./static_mime.ts";

/** Sizes and thresholds of the static handler; tests shrink them. */
export interface StaticTuning {
  /** Files up to this size are served from memory. Larger ones stream. */
  readonly maxCachedFileBytes: number;
  /** Total bytes of file contents kept in memory. */
  readonly fileCacheBytes: number;
  /** Smaller files are not compressed on the fly: the headers outweigh the gain. */
  readonly minCompressBytes: number;
  /** Larger files are not compressed on the fly (sidecars still count). */
  readonly maxCompressBytes: number;
  /**
   * Files compressed on the fly at once, each in a worker thread. A request
   * that would start one more is sent the file uncompressed.
   */
  readonly maxCompressions: number;
  /** Total bytes of compressed forms kept in memory. */
  readonly compressedCacheBytes: number;
  /** How long a look for `x.br` / `x.gz` beside `x` is trusted. */
  readonly sidecarTtlMs: number;
  /** A listing shows at most this many entries. */
  readonly maxListingEntries: number;
  /**
   * How long a found file's lookup (stat and checked real path) is trusted
   * before it is made again, as nginx's open_file_cache_valid. An edit shows
   * within this time; a missing path is always looked up afresh.
   */
  readonly revalidateMs: number;
  /** Read size for multipart replies from large files and archives. */
  readonly readChunkBytes: number;
  /**
   * Files and folders one `.zip` may hold. The walk keeps ~300 bytes an
   * entry until the archive ends (a 30 MiB bound). Over: 413.
   */
  readonly maxArchiveEntries: number;
  /** Files this big or bigger get Zip64 records in an archive (tests lower it). */
  readonly zip64FromBytes: number;
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

/** One version of one file: an edit, a rename over it or a swap changes a field. */
interface FileVersion {
  readonly dev: number;
  /** null where the platform has none (Windows): then never trusted by inode. */
  readonly ino: number | null;
  readonly size: number;
  readonly mtimeMs: number;
}

/** A file to read, and the version it must still be when opened. */
interface OnDisk extends FileVersion {
  /** Its real path, under `root`. */
  readonly path: string;
  /** The real root it was found under: what is opened must lie under it. */
  readonly root: string;
  /** Refuse it when it has more than one name (`--strict-links`). */
  readonly strictLinks: boolean;
}

/** A file or folder found under the root; `path` is its real path, inside the real root. */
interface Found extends OnDisk {
  readonly kind: "file" | "dir";
  /**
   * False when a folder on the path changed too recently to prove the lookup
   * did not go through a symlink swapped in and out (see lookBeneath()):
   * size and dates must not be sent before an open proves the file.
   */
  readonly proven: boolean;
  /** What replies for this version share; made by the first one. */
  meta?: FileMeta;
}

/** What every reply for one file version shares, worked out once. */
interface FileMeta {
  /** Base name of the real path: its extension picks the type. */
  readonly name: string;
  /** Its extension is in the allowed list. */
  readonly allowed: boolean;
  /** Media type, without parameters. */
  readonly type: string;
  readonly contentType: string;
  readonly compressible: boolean;
  /** Validators of each form made from this version. */
  readonly validators: Readonly<Record<Coding | "identity", Validators>>;
}

/** A lookup (stat and checked real path) of one joined path, and when it was made. */
interface Resolved {
  readonly found: Found;
  checkedAt: number;
}

/** Checked real paths remembered; past it the memory starts afresh. */
const MAX_RESOLVED = 10_000;

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

/** Something made from one version of a file: its contents, a compressed form. */
interface Cached<T> extends FileVersion {
  readonly bytes: T;
}

/** A precompressed file beside the original, with its own validators. */
interface Sidecar extends OnDisk {
  readonly validators: Validators;
}

type Sidecars = Partial<Record<Coding, Sidecar>>;

/** Precompressed files beside an original, as last looked for. */
interface SidecarLook {
  readonly checkedAt: number;
  readonly found: Sidecars;
  /** The version of the original `fresh` was picked for. */
  forFile: OnDisk;
  /** Those not older than that version. */
  fresh: Sidecars;
}

/** One way of sending the file: which coding, its bytes or a file to stream. */
interface Representation {
  readonly coding: Coding | "identity";
  readonly validators: Validators;
  readonly size: number;
  readonly source: Uint8Array | OnDisk;
}

/** The file changed between stat and read; the request is tried once more. */
class FileChanged extends Error {
  override name = "FileChanged";
}

/** Sidecar suffix of each coding. */
const SIDECAR_SUFFIX: Record<Coding, string> = { br: ".br", gzip: ".gz" };
const ALL_CODINGS: readonly Coding[] = ["br", "gzip"];
const NO_CODINGS: readonly Coding[] = [];
const NO_SIDECARS: Sidecars = Object.freeze({});

const encoder = new TextEncoder();

/**
 * A handler serving `config.root`. It canonicalises the raw `req.path` with
 * {@link canonicalPath}, so it must be given the request path as sent. It
 * throws {@link HttpError} for every error status: 400 bad path, 403
 * extension not allowed, 404, 405 (with Allow), 406, 412, 416 (with
 * `Content-Range: bytes *\/N`).
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

/** What tests and embedders may hand the static handler. */
export interface StaticHooks {
  /** Runs on-the-fly compression; by default the thread's shared one. */
  readonly compressor?: Compressor;
  /**
   * Aborts when the server drains: with `watch`, the watcher stops and the
   * pages' event streams end, so shutdown does not wait for open tabs.
   */
  readonly signal?: AbortSignal;
  /** Timings of `watch`; tests shrink them. */
  readonly liveReload?: Partial<LiveReloadTuning>;
}

class StaticSite {
  readonly #config: StaticConfig;
  readonly #tuning: StaticTuning;
  readonly #root: string;
  /** True when the extension policy serves a file of this (real) name. */
  readonly #serves: (name: string) => boolean;
  readonly #files: ByteLru<Cached<Uint8Array>>;
  /** Compressed forms; null marks "compression did not make it smaller". */
  readonly #compressed: ByteLru<Cached<Uint8Array | null>>;
  readonly #compressing = new Map<
    string,
    Cached<Promise<Uint8Array | null>>
  >();
  readonly #compressor: Compressor;
  readonly #sidecars = new Map<string, SidecarLook>();
  /** Paths whose real path was checked, with the file they named then. */
  readonly #resolved = new Map<string, Resolved>();
  /** The watcher and pages of `--watch`; undefined when off. */
  readonly #live: LiveReload | undefined;

  constructor(
    config: StaticConfig,
    tuning: StaticTuning,
    compressor: Compressor,
    hooks: StaticHooks,
  ) {
    this.#config = config;
    this.#tuning = tuning;
    this.#compressor = compressor;
    this.#root = resolve(config.root);
    this.#serves = extensionPolicy(config.allowExt);
    this.#files = new ByteLru(tuning.fileCacheBytes);
    this.#compressed = new ByteLru(tuning.compressedCacheBytes);
    this.#live = config.watch
      ? new LiveReload(this.#root, {
        denyDots: config.dotfiles !== "allow",
        signal: hooks.signal,
        tuning: hooks.liveReload,
      })
      : undefined;
  }

  async handle(req: ServerRequest): Promise<Reply> {
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
    try {
      return await this.#serve(req, path);
    } catch (err) {
      if (!(err instanceof FileChanged)) throw err;
      // The lookups behind the read are stale, whatever revalidateMs says:
      // trusting them again would meet the same changed file (a 503).
      this.#resolved.clear();
      this.#sidecars.clear(); // a sidecar may be what vanished
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
  }

  #serve(req: ServerRequest, path: string): Reply | Promise<Reply> {
    const found = this.#find(path);
    if (found === null) return this.#notFound(req, path);
    if (found.kind === "file") return this.#sendFile(req, found, path);
    if (path.endsWith("/") && req.query !== "") {
      const download = new URLSearchParams(req.query).get("download");
      if (download !== null) return this.#archive(req, found, path, download);
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
    const index = this.#find(`${path}index.html`);
    if (index?.kind === "file") {
      return this.#sendFile(req, index, `${path}index.html`);
    }
    if (this.#config.listDirs) return this.#listing(req, found, path);
    return this.#notFound(req, path);
  }

  /** Looks up a canonical path; null when it is not servable (treated as 404). */
  #find(path: string): Found | null {
    const deny = this.#config.dotfiles !== "allow";
    if (deny && isDotPath(path)) return null;
    // canonicalPath() left no "." or ".." segment, so this join stays under
    // the root lexically. Sync calls on purpose: for a local file they take a
    // few µs, their async forms ~14 µs each in thread hand-offs.
    const joined = this.#root + path;
    const known = this.#resolved.get(joined);
    const now = Date.now();
    if (
      known !== undefined && now - known.checkedAt < this.#tuning.revalidateMs
    ) {
      return known.found; // looked up a moment ago; opening it checks again
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(joined); // follows symlinks
    } catch (err) {
      if (known !== undefined) this.#resolved.delete(joined);
      return missing(err);
    }
    // The real path was checked before for this very file (same device,
    // inode, size, mtime): a swapped symlink shows another inode and is
    // checked afresh. So realPath() runs once per file version, not per request.
    if (
      known !== undefined && info.ino !== null &&
      kindOf(info) === known.found.kind && isVersion(info, known.found)
    ) {
      known.checkedAt = now; // stat'ed afresh just now: trust it for another while
      return known.found;
    }
    if (known !== undefined) this.#resolved.delete(joined);
    let realRoot: string;
    let real: string;
    let look: Look;
    try {
      // The root afresh too: a deploy may have re-pointed a root symlink.
      realRoot = Deno.realPathSync(this.#root);
      real = Deno.realPathSync(joined);
      if (!isBeneath(real, realRoot, deny)) return null;
      // realPath() walks the path one part at a time: a folder may have been
      // a symlink out for part of it. Prove the stat came from under the
      // root, as every open does, or mark the lookup unproven.
      look = lookBeneath(realRoot, real, now, true);
    } catch (err) {
      return missing(err);
    }
    if (look.kind === "changed") return null;
    info = look.info;
    const kind = kindOf(info);
    // Not sockets, FIFOs or devices (or a symlink swapped in): opening a FIFO
    // would hang the request.
    if (kind === null) return null;
    const { strictLinks } = this.#config;
    if (strictLinks && kind === "file" && (info.nlink ?? 1) > 1) return null;
    const found: Found = {
      kind,
      path: real,
      root: realRoot,
      strictLinks,
      proven: look.kind === "ok",
      ...versionOf(info),
    };
    if (!found.proven) return found; // looked up afresh next time
    if (this.#resolved.size >= MAX_RESOLVED) this.#resolved.clear();
    this.#resolved.set(joined, { found, checkedAt: now });
    return found;
  }

  /**
   * True when a real path lies in the upload folder (`--upload-files`),
   * itself resolved afresh: a deploy may re-point a link to it.
   */
  #takesUploads(real: string): boolean {
    const uploads = this.#config.uploads;
    if (uploads === undefined) return false;
    try {
      const dir = Deno.realPathSync(uploadFilesDir(this.#root, uploads.path));
      return isBeneath(real, dir, true);
    } catch {
      return false; // the folder is gone: nothing takes uploads
    }
  }

  /** Type, validators and policy of a file version: worked out once per version. */
  #metaOf(file: Found): FileMeta {
    if (file.meta !== undefined) return file.meta;
    const name = basename(file.path);
    const type = mediaTypeOf(name);
    const compressible = isCompressible(type);
    const { size, mtimeMs } = file;
    const identity = { etag: etagOf(size, mtimeMs), lastModifiedMs: mtimeMs };
    return file.meta = {
      name,
      allowed: this.#serves(name),
      type,
      contentType: contentTypeOf(type),
      compressible,
      validators: {
        identity,
        br: { etag: etagOf(size, mtimeMs, "br"), lastModifiedMs: mtimeMs },
        gzip: { etag: etagOf(size, mtimeMs, "gzip"), lastModifiedMs: mtimeMs },
      },
    };
  }

  async #sendFile(
    req: ServerRequest,
    file: Found,
    urlPath: string,
  ): Promise<Reply> {
    // Size and dates go out in headers before (or without) any read: a
    // lookup not yet proven under the root is proven by an open first (which
    // waits out the folder that changed), unless the memory cache holds this
    // very version, read through a proven open.
    if (!file.proven) {
      const hit = this.#files.get(file.path);
      if (hit === undefined || !sameVersion(hit, file)) {
        (await openChecked(file)).close();
      }
    }
    const meta = this.#metaOf(file);
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
      this.#takesUploads(file.path);
    if (this.#live !== undefined && meta.type === "text/html") {
      return this.#sendLive(req, file, meta, sandbox);
    }
    const headers = req.headers;
    const acceptEncoding = headers.getJoined("accept-encoding");

    // Which codings could we send? Only look when the client takes one.
    let available: readonly Coding[] = NO_CODINGS;
    let sidecars: Sidecars = NO_SIDECARS;
    if (
      meta.compressible &&
      negotiateEncoding(acceptEncoding, ALL_CODINGS) !== "identity"
    ) {
      sidecars = await this.#findSidecars(file);
      const { minCompressBytes, maxCompressBytes } = this.#tuning;
      const onTheFly = file.size >= minCompressBytes &&
        file.size <= maxCompressBytes;
      // Each coding, made on the fly or read from a sidecar.
      available = onTheFly && ON_THE_FLY.length === ALL_CODINGS.length
        ? ALL_CODINGS
        : ALL_CODINGS.filter((c) =>
          sidecars[c] !== undefined || (onTheFly && ON_THE_FLY.includes(c))
        );
    }
    let coding = negotiateEncoding(acceptEncoding, available) as
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
    const range = req.method === "GET" ? headers.get("range") : undefined;
    if (
      range !== undefined &&
      (coding === "identity" || negotiateEncoding(acceptEncoding, []) !== null)
    ) {
      ranges = parseRange(range, file.size);
      if (
        ranges !== null && !ifRangeHolds(headers, meta.validators.identity)
      ) ranges = null;
      if (ranges !== null) coding = "identity";
    }

    const rep = await this.#represent(file, meta, coding, sidecars);
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

    const verdict = evaluatePreconditions(req.method, headers, rep.validators);
    if (verdict === 412) throw preconditionFailed();
    if (verdict === 304) {
      return {
        status: STATUS.NotModified,
        headers: out.filter(([n]) => NOT_MODIFIED_FIELDS.has(n)),
      };
    }

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
        body: head ? null : await this.#body(rep, 0, rep.size),
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
        body: head ? null : await this.#body(rep, r.start, length),
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
    const verdict = evaluatePreconditions(req.method, req.headers, validators);
    if (verdict === 412) throw preconditionFailed();
    if (verdict === 304) {
      return {
        status: STATUS.NotModified,
        headers: out.filter(([n]) => NOT_MODIFIED_FIELDS.has(n)),
      };
    }
    out.push(["content-length", String(file.size + LIVE_RELOAD_BYTES)]);
    if (req.method === "HEAD") return { status: STATUS.OK, headers: out };
    const source = await this.#source(file);
    return {
      status: STATUS.OK,
      headers: out,
      body: source instanceof Uint8Array
        ? withLiveReload(source)
        : streamThenTail(source, this.#tuning.readChunkBytes, liveReloadTail()),
    };
  }

  /**
   * Picks the bytes or file behind a coding; falls back to identity when
   * compression does not pay or is busy making other files.
   */
  async #represent(
    file: Found,
    meta: FileMeta,
    coding: Coding | "identity",
    sidecars: Sidecars,
  ): Promise<Representation> {
    if (coding !== "identity") {
      const sidecar = sidecars[coding];
      if (sidecar !== undefined) {
        return {
          coding,
          validators: sidecar.validators,
          size: sidecar.size,
          source: await this.#source(sidecar),
        };
      }
      const bytes = await this.#compress(file, coding);
      if (bytes !== null) {
        return {
          coding,
          validators: meta.validators[coding],
          size: bytes.length,
          source: bytes,
        };
      }
    }
    return {
      coding: "identity",
      validators: meta.validators.identity,
      size: file.size,
      source: await this.#source(file),
    };
  }

  /** A small file's bytes from memory; a larger file is streamed from disk. */
  #source(file: OnDisk): Uint8Array | OnDisk | Promise<Uint8Array> {
    return file.size <= this.#tuning.maxCachedFileBytes
      ? this.#readCached(file)
      : file;
  }

  /** The body for `length` bytes from `start` of a representation. */
  async #body(
    rep: Representation,
    start: number,
    length: number,
  ): Promise<Reply["body"]> {
    if (rep.source instanceof Uint8Array) {
      return rep.source.subarray(start, start + length);
    }
    // The engine closes the file.
    return new FileBody(await openChecked(rep.source), start, length);
  }

  /** Small file contents from memory, read (once) when missing or stale. */
  #readCached(file: OnDisk): Uint8Array | Promise<Uint8Array> {
    const hit = this.#files.get(file.path);
    // A hit is answered at once: no promise, no turn of the event loop.
    if (hit !== undefined && sameVersion(hit, file)) return hit.bytes;
    return readWhole(file).then((bytes) => {
      const { dev, ino, size, mtimeMs } = file;
      const cost = bytes.length + 128;
      this.#files.set(file.path, { dev, ino, size, mtimeMs, bytes }, cost);
      return bytes;
    });
  }

  /**
   * The file compressed with `coding`, made once per version in a worker
   * thread. Null when that is not smaller, or when every compression slot
   * is taken (identity now; a later request finds a slot). A request for a
   * form being made waits for it: that costs no more work.
   */
  #compress(
    file: OnDisk,
    coding: Coding,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    const key = `${coding}\0${file.path}`;
    const hit = this.#compressed.get(key);
    if (hit !== undefined && sameVersion(hit, file)) return hit.bytes;
    const pending = this.#compressing.get(key);
    if (pending !== undefined && sameVersion(pending, file)) {
      return pending.bytes;
    }
    const { dev, ino, size, mtimeMs } = file;
    const packing = this.#compressor.tryRun(
      coding,
      () =>
        size <= this.#tuning.maxCachedFileBytes
          ? this.#readCached(file)
          : readWhole(file),
    );
    if (packing === undefined) return null;
    const job: Cached<Promise<Uint8Array | null>> = {
      dev,
      ino,
      size,
      mtimeMs,
      bytes: packing.then(
        (packed) => {
          const bytes = packed.length < size ? packed : null;
          const cost = (bytes?.length ?? 0) + 128;
          this.#compressed.set(key, { dev, ino, size, mtimeMs, bytes }, cost);
          return bytes;
        },
        (err) => {
          // The worker failed, and said so in the log: identity, not a 500.
          // Anything else (the file changed, EACCES) is the request's to answer.
          if (err instanceof CompressionFailed) return null;
          throw err;
        },
      ).finally(() => {
        // A newer version's job may have taken the key meanwhile.
        if (this.#compressing.get(key) === job) this.#compressing.delete(key);
      }),
    };
    this.#compressing.set(key, job);
    return job.bytes;
  }

  /** `x.br` and `x.gz` beside `x`: regular files (not symlinks), not older than `x`. */
  #findSidecars(file: OnDisk): Sidecars | Promise<Sidecars> {
    const look = this.#sidecars.get(file.path);
    if (
      look === undefined ||
      Date.now() - look.checkedAt >= this.#tuning.sidecarTtlMs
    ) return this.#lookForSidecars(file);
    if (look.forFile !== file) {
      look.forFile = file;
      look.fresh = freshSidecars(look.found, file);
    }
    return look.fresh;
  }

  async #lookForSidecars(file: OnDisk): Promise<Sidecars> {
    const checkedAt = Date.now();
    const found: Sidecars = {};
    let unsettled = false;
    await Promise.all(ALL_CODINGS.map(async (coding) => {
      const path = file.path + SIDECAR_SUFFIX[coding];
      try {
        await Deno.lstat(path); // most files have none: off the main thread
        // Its size and date go out in headers, maybe before any read: prove
        // it lies under the root (a symlink is "changed": not a sidecar).
        const look = lookBeneath(file.root, path, checkedAt, true);
        if (look.kind !== "ok") {
          unsettled ||= look.kind === "unsettled";
          return;
        }
        const info = look.info;
        if (!info.isFile) return;
        if (file.strictLinks && (info.nlink ?? 1) > 1) return;
        const version = versionOf(info);
        found[coding] = {
          path,
          root: file.root,
          strictLinks: file.strictLinks,
          ...version,
          validators: {
            etag: etagOf(version.size, version.mtimeMs, coding),
            lastModifiedMs: version.mtimeMs,
          },
        };
      } catch {
        // none
      }
    }));
    const fresh = freshSidecars(found, file);
    if (unsettled) return fresh; // not remembered: looked for afresh next time
    if (this.#sidecars.size >= 4096) this.#sidecars.clear(); // bounded, and cheap to refill
    this.#sidecars.set(file.path, { checkedAt, found, forFile: file, fresh });
    return fresh;
  }

  async #notFound(req: ServerRequest, path: string): Promise<Reply> {
    const html = acceptsHtml(req);
    if (html && this.#config.spa) {
      const index = this.#find("/index.html");
      if (index?.kind === "file") {
        return this.#sendFile(req, index, "/index.html");
      }
    }
    if (html) {
      const page = this.#find("/404.html");
      if (
        page?.kind === "file" && page.size <= this.#tuning.maxCachedFileBytes
      ) {
        let bytes = await this.#readCached(page);
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

  async #listing(
    req: ServerRequest,
    dir: Found,
    path: string,
  ): Promise<Reply> {
    // Checked before the folder is read: a bad query costs no I/O.
    const view = parseView(req.query, req.headers.getJoined("accept"));
    let entries: ListingEntry[];
    let truncated: boolean;
    for (let attempt = 1;; attempt++) {
      // Taken before the read: every walk of the path after it is proved.
      const sinceMs = Date.now();
      let untilMs: number;
      try {
        const read = await this.#readListing(dir, sinceMs);
        // The read went by path, so prove the folder read is this one, under
        // the root, and that no folder above it changed meanwhile (one
        // swapped for a symlink out and back), as openBeneath() does.
        const look = lookBeneath(dir.root, dir.path, sinceMs, false);
        if (
          look.kind === "changed" ||
          (look.kind === "ok" && !isSameNode(look.info, dir))
        ) throw new FileChanged(dir.path);
        untilMs = Math.max(
          read.untilMs,
          look.kind === "unsettled" ? look.untilMs : 0,
        );
        entries = read.entries;
        truncated = read.truncated;
      } catch (err) {
        if (err instanceof FileChanged) throw err;
        missing(err);
        return this.#notFound(req, path);
      }
      if (untilMs === 0) break;
      if (attempt === 2) throw new FileChanged(dir.path);
      // A folder on the path changed within the last second: wait until a
      // look can tell, then read again.
      await new Promise((r) => setTimeout(r, untilMs - Date.now()));
    }
    const shown = sortEntries(filterEntries(entries, view.filter), view);
    const json = view.format === "json";
    let bytes: Uint8Array = encoder.encode(
      json
        ? renderListingJson(path, shown, truncated)
        : renderListing(path, shown, view, {
          archive: this.#config.archiveMaxBytes > 0,
          truncated,
          upload: this.#takesUploads(dir.path)
            ? this.#config.uploads
            : undefined,
        }),
    );
    // A listing is a page too: a file added or removed reloads it.
    if (!json && this.#live !== undefined) bytes = withLiveReload(bytes);
    return {
      status: STATUS.OK,
      headers: {
        "content-type": json ? "application/json" : "text/html; charset=utf-8",
        "content-length": String(bytes.length),
        "cache-control": "no-cache",
        vary: "Accept",
      },
      body: req.method === "HEAD" ? null : bytes,
    };
  }

  /** `?download=zip` on a folder: the folder as one streamed zip. */
  async #archive(
    req: ServerRequest,
    dir: Found,
    path: string,
    download: string,
  ): Promise<Reply> {
    const { listDirs, archiveMaxBytes } = this.#config;
    if (!listDirs || archiveMaxBytes === 0) {
      throw new HttpError(STATUS.NotFound, "Folder archives are off", {
        expose: "Folder archives are not enabled on this server",
      });
    }
    if (download !== "zip") {
      const message = `Unknown download format "${download}": use zip`;
      throw new HttpError(STATUS.BadRequest, message, { expose: message });
    }
    const policy: ArchivePolicy = {
      root: dir.root,
      denyDots: this.#config.dotfiles !== "allow",
      strictLinks: dir.strictLinks,
      serves: (name) => this.#serves(name),
      maxBytes: archiveMaxBytes,
      maxEntries: this.#tuning.maxArchiveEntries,
      chunkBytes: this.#tuning.readChunkBytes,
      zip64FromBytes: this.#tuning.zip64FromBytes,
    };
    const top = path === "/"
      ? basename(dir.root) || "site"
      : basename(path.slice(0, -1));
    let walk;
    try {
      walk = await walkFolder(dir.path, top, policy);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      missing(err);
      return this.#notFound(req, path);
    }
    return {
      status: STATUS.OK,
      headers: {
        "content-type": "application/zip",
        "content-disposition": contentDisposition(`${top}.zip`),
        "cache-control": "no-store",
      },
      body: req.method === "HEAD" ? null : zipFolder(walk, policy),
    };
  }

  /**
   * The rows of a folder's listing, read by path: the caller proves which
   * folder that was. `untilMs` is non-zero when a symlink's target could
   * not be told apart from one swapped in (see lookBeneath()).
   */
  async #readListing(
    dir: Found,
    sinceMs: number,
  ): Promise<{ entries: ListingEntry[]; untilMs: number; truncated: boolean }> {
    const deny = this.#config.dotfiles !== "allow";
    const names: string[] = [];
    let truncated = false;
    for await (const entry of Deno.readDir(dir.path)) {
      if (deny && entry.name.startsWith(".")) continue;
      // A name no URL can reach (a backslash, a control byte) is not served.
      if (!isServableName(entry.name)) continue;
      if (names.length >= this.#tuning.maxListingEntries) {
        truncated = true;
        break;
      }
      names.push(entry.name);
    }
    const entries: ListingEntry[] = [];
    let untilMs = 0;
    // A few stats at a time: a huge folder must not open thousands at once.
    for (let i = 0; i < names.length; i += 64) {
      await Promise.all(
        names.slice(i, i + 64).map(async (name) => {
          try {
            const full = `${dir.path}/${name}`;
            // lstat: an entry swapped for a symlink since the read is seen.
            let info = await Deno.lstat(full);
            // A link is listed only if it would be served, under the extension
            // of what it points at, as #find() and #sendFile() see it.
            let served = name;
            if (info.isSymlink) {
              const real = await Deno.realPath(full);
              if (!isBeneath(real, dir.root, deny)) return;
              const look = lookBeneath(dir.root, real, sinceMs, true);
              if (look.kind === "unsettled") {
                untilMs = Math.max(untilMs, look.untilMs);
              }
              if (look.kind !== "ok") return;
              info = look.info;
              served = basename(real);
            }
            if (!info.isDirectory && !info.isFile) return;
            if (!info.isDirectory && !this.#serves(served)) return;
            // Files --strict-links would not serve are not listed either.
            if (dir.strictLinks && info.isFile && (info.nlink ?? 1) > 1) return;
            entries.push({
              name,
              isDirectory: info.isDirectory,
              size: info.size,
              mtimeMs: mtimeOf(info),
            });
          } catch {
            // a dangling symlink or a race with a delete: not listed
          }
        }),
      );
    }
    return { entries, untilMs, truncated };
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

/** Maps a file system error to "not there" (null); 403 for EACCES; rethrows the rest. */
function missing(err: unknown): null {
  if (err instanceof Deno.errors.PermissionDenied) {
    throw new HttpError(
      STATUS.Forbidden,
      "Permission denied by the file system",
      { cause: err },
    );
  }
  // NotFound, NotADirectory, FilesystemLoop, NotCapable (outside --allow-read),
  // ENAMETOOLONG: to the client each is just a file that is not there.
  if (err instanceof Error && (err.name in Deno.errors || "code" in err)) {
    return null;
  }
  throw err;
}

function mtimeOf(info: Deno.FileInfo): number {
  return Math.floor(info.mtime?.getTime() ?? 0);
}

function versionOf(info: Deno.FileInfo): FileVersion {
  return {
    dev: info.dev,
    ino: info.ino,
    size: info.size,
    mtimeMs: mtimeOf(info),
  };
}

/** True when `info` describes the very version `v`: same device, inode, size and mtime. */
function isVersion(info: Deno.FileInfo, v: FileVersion): boolean {
  return info.ino === v.ino && info.dev === v.dev && info.size === v.size &&
    mtimeOf(info) === v.mtimeMs;
}

/** Same device and inode: the same file or folder, whatever it holds now. */
function isSameNode(info: Deno.FileInfo, v: FileVersion): boolean {
  return info.ino === v.ino && info.dev === v.dev;
}

function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size &&
    a.mtimeMs === b.mtimeMs;
}

/** What the static handler serves of a stat'ed path; null for FIFOs, sockets, devices. */
function kindOf(info: Deno.FileInfo): Found["kind"] | null {
  return info.isFile ? "file" : info.isDirectory ? "dir" : null;
}

/** Strong ETag from size and mtime; a coding or the live-reload form gets its own tag. */
function etagOf(
  size: number,
  mtimeMs: number,
  form?: Coding | "live",
): string {
  const suffix = form === undefined ? "" : `-${form}`;
  return `"${size.toString(16)}-${mtimeMs.toString(16)}${suffix}"`;
}

/** Sidecars not older than `file`: an older one was made from an older file. */
function freshSidecars(found: Sidecars, file: OnDisk): Sidecars {
  const fresh: Sidecars = {};
  for (const coding of ALL_CODINGS) {
    const sidecar = found[coding];
    if (sidecar !== undefined && sidecar.mtimeMs >= file.mtimeMs) {
      fresh[coding] = sidecar;
    }
  }
  return fresh;
}

function acceptsHtml(req: ServerRequest): boolean {
  return req.headers.getJoined("accept")?.includes("text/html") ?? false;
}

/**
 * Opens a file found a moment ago and proves it is the version found, under
 * the root it was found under (see openBeneath()). Gone, not that version
 * (edited, renamed over) or not provably under the root (a folder on its path
 * swapped for a symlink): {@link FileChanged}, so the request looks again
 * rather than read a newcomer. This is the one place static bytes leave the
 * disk: streamed bodies, the memory cache, sidecars and compression sources.
 */
async function openChecked(file: OnDisk): Promise<Deno.FsFile> {
  let opened;
  try {
    // The version is checked before the open too, even within revalidateMs:
    // a FIFO put in the file's place would hold open() until a writer came.
    opened = await openBeneath(file.root, file.path, {
      accept: (info) => isVersion(info, file),
      strictLinks: file.strictLinks,
    });
  } catch (err) {
    missing(err); // EACCES: 403; an error not from the file system: rethrown
    // Gone, a loop, a file where a folder was: a fresh lookup will say which.
    throw new FileChanged(file.path, { cause: err });
  }
  if (opened === null) throw new FileChanged(file.path);
  return opened.file;
}

/** Reads a whole file, checking it is still the version that was found. */
async function readWhole(file: OnDisk): Promise<Uint8Array> {
  using opened = await openChecked(file);
  const bytes = new Uint8Array(file.size);
  for (let off = 0; off < bytes.length;) {
    const n = await opened.read(bytes.subarray(off));
    if (n === null) throw new FileChanged(file.path);
    off += n;
  }
  return bytes;
}

function preconditionFailed(): HttpError {
  return new HttpError(STATUS.PreconditionFailed, "Precondition failed", {
    expose: "A precondition (If-Match or If-Unmodified-Since) does not hold",
  });
}

/** A whole file read from disk, then `tail`; opened when the engine starts reading. */
async function* streamThenTail(
  source: OnDisk,
  chunkBytes: number,
  tail: Uint8Array,
): AsyncGenerator<Uint8Array> {
  using file = await openChecked(source);
  yield* readPieces(file, source.size, chunkBytes, source.path);
  yield tail;
}

/** `length` bytes of an open file from where it stands, piece by piece. */
async function* readPieces(
  file: Deno.FsFile,
  length: number,
  chunkBytes: number,
  path: string,
): AsyncGenerator<Uint8Array> {
  for (let left = length; left > 0;) {
    const buf = new Uint8Array(Math.min(chunkBytes, left));
    const n = await file.read(buf);
    // Shorter than its Content-Length promised: fail so the engine closes.
    if (n === null) throw new Error(`File shrank while being sent: ${path}`);
    yield n === buf.length ? buf : buf.subarray(0, n);
    left -= n;
  }
}

/** A multipart/byteranges body from bytes in memory. */
function joinParts(
  bytes: Uint8Array,
  ranges: readonly ByteRange[],
  layout: MultipartLayout,
): Uint8Array {
  const out = new Uint8Array(layout.length);
  let off = 0;
  ranges.forEach((r, i) => {
    out.set(layout.heads[i], off);
    off += layout.heads[i].length;
    out.set(bytes.subarray(r.start, r.end + 1), off);
    off += r.end - r.start + 1;
  });
  out.set(layout.tail, off);
  return out;
}

/**
 * A multipart/byteranges body read from a file. The file is opened only when
 * the engine starts reading and closed when it stops, however it stops.
 */
async function* streamParts(
  source: OnDisk,
  ranges: readonly ByteRange[],
  layout: MultipartLayout,
  chunkBytes: number,
): AsyncGenerator<Uint8Array> {
  // Checked like every other read; a change found here cuts the reply short.
  using file = await openChecked(source);
  for (let i = 0; i < ranges.length; i++) {
    yield layout.heads[i];
    await file.seek(ranges[i].start, Deno.SeekMode.Start);
    const length = ranges[i].end - ranges[i].start + 1;
    yield* readPieces(file, length, chunkBytes, source.path);
  }
  yield layout.tail;
}

/**
 * `attachment; filename="..."; filename*=UTF-8''...` (RFC 6266): an ASCII
 * fallback for old clients, the exact name percent-encoded for the rest.
 */
export function contentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  // RFC 8187 attr-char: encodeURIComponent also leaves '()* unencoded.
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
