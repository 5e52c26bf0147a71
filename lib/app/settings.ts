/**
 * The default application's settings and their defaults: the static site,
 * uploads, passwords. The command line (lib/cli.ts) fills them in; the
 * engine's limits are in lib/config.ts.
 */

/**
 * How the static site is served (issue: static files).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STATIC, type StaticConfig } from "@spindle/server";
 *
 * const site: StaticConfig = {
 *   ...DEFAULT_STATIC,
 *   root: "public",
 *   listDirs: true, // folders without index.html get a listing
 *   headers: [["x-frame-options", "DENY"]],
 * };
 * assert.equal(site.dotfiles, "deny");
 * ```
 */
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

/**
 * What the static layer shows and guards of `--upload-files`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STATIC, type StaticConfig, type StaticUploads } from "@spindle/server";
 *
 * const uploads: StaticUploads = { path: "/inbox/", maxBytes: 1 << 30, overwrite: false };
 * const site: StaticConfig = { ...DEFAULT_STATIC, listDirs: true, uploads };
 * assert.equal(site.uploads?.path, "/inbox/");
 * ```
 */
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

/**
 * What `deno task serve` serves: `resources/`, no listings, no uploads. Spread it and set `root` to serve another folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STATIC, serve, staticFiles } from "@spindle/server";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/index.html`, "<h1>hi</h1>");
 * {
 *   await using server = serve(
 *     { port: 0, accessLog: false },
 *     staticFiles({ ...DEFAULT_STATIC, root }),
 *   );
 *   const res = await fetch(`http://127.0.0.1:${server.port}/`);
 *   assert.equal(await res.text(), "<h1>hi</h1>");
 * }
 * await Deno.remove(root, { recursive: true });
 * ```
 */
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

/** Strict-Transport-Security's max-age when `--hsts` names none: a year, as Caddy and nginx guides use. */
export const DEFAULT_HSTS_MAX_AGE_S = 365 * 24 * 60 * 60;

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
