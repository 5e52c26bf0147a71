/**
 * `--upload-files`: a multipart/form-data POST to a folder's URL (`/photos/`)
 * stores its files in that folder under the static root, the way a listing
 * shows it. Only folders inside the upload folder take uploads, proved by
 * their real paths; each file is written crash-safe and proved to be created
 * under the upload folder (writeAtomic()'s `beneath`), so a folder swapped
 * for a symlink out is never written through. Browsers get a 303 back to the
 * listing; API clients get 201 with the stored names.
 */
import { join } from "node:path";
import type { Limits } from "../config.ts";
import { type UploadFilesConfig, uploadFilesDir } from "./settings.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import type { Reply } from "../http/handler.ts";
import { removeDeadTempFiles } from "./atomic_write.ts";
import { isDotPath } from "./canonical_path.ts";
import { encodeSegment } from "./dir_listing.ts";
import { FolderQuota } from "./folder_quota.ts";
import type { QuotaLedger } from "../shared/quota.ts";
import { readFault } from "./fs_errors.ts";
import { type SavedFile, saveForm } from "./save_form.ts";
import { isBeneath } from "./open_beneath.ts";
import type { AppRequest } from "./app_request.ts";
import { json } from "./replies.ts";

/** Methods an upload folder answers. */
export const UPLOAD_ALLOW = "GET, HEAD, OPTIONS, POST";
/** Methods any other static path answers (the static handler's). */
const STATIC_ALLOW = "GET, HEAD, OPTIONS";
/** The metrics label of form uploads. */
export const UPLOAD_ROUTE = "upload-files";

/** Folders swept for dead temp files, remembered; past it, swept afresh. */
const MAX_SWEPT = 10_000;

export interface FolderUploadOptions {
  /** The static root, as configured. */
  readonly root: string;
  readonly upload: UploadFilesConfig;
  /** `maxFormBytes` and the multipart parser's limits. */
  readonly limits: Limits;
  /** `--cors` origins: listed ones may upload from their pages (`*` does not count). */
  readonly cors?: string;
  /** True for a file name the static layer serves (`--allow-ext`). */
  readonly serves: (name: string) => boolean;
  /** The quota's counts; default: this engine's own (`--workers` share one). */
  readonly ledger?: QuotaLedger;
}

function refuse(status: 403 | 404 | 405, message: string, expose: string) {
  return new HttpError(status, message, {
    expose,
    headers: status === 405 ? { allow: STATIC_ALLOW } : undefined,
  });
}

/** A file system error met while finding a folder (see readFault()): 403 or 404. */
function notThere(err: unknown, path: string): HttpError {
  return readFault(err) === "denied"
    ? refuse(403, `Cannot reach ${path}`, "This folder is not readable")
    : refuse(404, `No folder for ${path}`, "Folder not found");
}

/**
 * Checks the upload folder at start: a folder inside the root, by its real
 * path (a link to a folder elsewhere would let uploads out). Deno's write
 * permission for it is checked with every other folder (lib/access.ts).
 *
 * @throws {Error} saying what is wrong and how to fix it (main exits 2).
 */
export function checkUploadFolder(root: string, dir: string): void {
  let real: string;
  try {
    real = Deno.realPathSync(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new Error(
      `--upload-files: ${dir} does not exist; create it: mkdir -p '${dir}'`,
    );
  }
  if (!Deno.statSync(real).isDirectory) {
    throw new Error(`--upload-files: ${dir} is not a folder`);
  }
  if (!isBeneath(real, Deno.realPathSync(root), true)) {
    throw new Error(
      `--upload-files: ${dir} leads out of the root (${root}) or into a dot folder`,
    );
  }
}

/** The POST handler of upload folders. One per engine. */
export class FolderUploads {
  readonly #root: string;
  readonly #dir: string;
  readonly #upload: UploadFilesConfig;
  readonly #limits: Limits;
  readonly #origins: readonly string[];
  readonly #serves: (name: string) => boolean;
  readonly #quota: FolderQuota | undefined;
  readonly #swept = new Set<string>();

  constructor(options: FolderUploadOptions) {
    this.#root = options.root;
    this.#upload = options.upload;
    this.#dir = uploadFilesDir(options.root, options.upload.path);
    this.#limits = options.limits;
    this.#origins = (options.cors ?? "").split(",")
      .map((o) => o.trim().replace(/\/$/, ""))
      .filter((o) => o !== "" && o !== "*");
    this.#serves = options.serves;
    this.#quota = options.upload.quotaBytes === 0
      ? undefined
      : new FolderQuota({
        dir: this.#dir,
        quotaBytes: options.upload.quotaBytes,
        ledger: options.ledger,
      });
  }

  /**
   * The methods a path answers when it names a folder that may take
   * uploads (by its URL alone: the POST proves it); else undefined.
   */
  allowOn(path: string): string | undefined {
    return path.endsWith("/") && path.startsWith(this.#upload.path) &&
        !isDotPath(path)
      ? UPLOAD_ALLOW
      : undefined;
  }

  /**
   * POST to a folder: stores the form's files there.
   *
   * @throws {HttpError} 403 for a page of another site (CSRF) or a type not
   *   served; 404 for a folder that is not there (or a dot folder); 405 for
   *   a file or a folder outside the upload folder; 308 is returned for a
   *   folder named without its slash; and saveForm()'s 400, 409, 413, 415,
   *   507.
   */
  async post(req: AppRequest): Promise<Reply> {
    req.route = UPLOAD_ROUTE;
    const path = req.path;
    this.#checkOrigin(req);
    // Never into .git/ or .ssh/, whatever --dotfiles says for reading.
    if (isDotPath(path)) {
      throw refuse(404, `No uploads into ${path}`, "Folder not found");
    }
    const { real, scope } = this.#folderOf(path);
    if (!path.endsWith("/")) {
      // As GET /dir answers 301; 308 keeps the method and the body.
      const query = req.raw.query === "" ? "" : `?${req.raw.query}`;
      return {
        status: STATUS.PermanentRedirect,
        headers: { location: `${req.raw.path}/${query}` },
      };
    }
    const maxBytes = this.#limits.maxFormBytes;
    const declared = req.raw.body.length;
    if (declared !== null && declared > maxBytes) {
      throw new HttpError(STATUS.ContentTooLarge, "Form over the limit", {
        expose: `Form is larger than ${maxBytes} bytes`,
        close: true, // not worth reading a body we refused
      });
    }
    // From the declared length, before a byte is read (Expect: 100-continue).
    if (declared !== null) await this.#quota?.check(declared);
    this.#sweep(real);
    let saved;
    try {
      saved = await saveForm(
        req.raw.body.chunks(maxBytes),
        req.header("content-type"),
        {
          dir: real,
          create: false,
          beneath: scope,
          limits: {
            maxParts: this.#limits.maxFormParts,
            maxPartHeadBytes: this.#limits.maxPartHeadBytes,
            maxPartBytes: maxBytes,
            maxBytes,
          },
          maxFieldBytes: this.#limits.maxFormFieldBytes,
          overwrite: this.#upload.overwrite,
          quota: this.#quota,
          checkName: (name) => this.#checkName(real, path, name),
        },
      );
    } catch (err) {
      if (
        err instanceof Deno.errors.PermissionDenied ||
        err instanceof Deno.errors.NotCapable
      ) {
        throw new HttpError(STATUS.Forbidden, `Cannot write to ${real}`, {
          cause: err,
          expose: "The server may not write to this folder",
        });
      }
      throw err;
    }
    if (saved.files.length === 0) {
      const message = "Form holds no file";
      throw new HttpError(STATUS.BadRequest, message, { expose: message });
    }
    return this.#answer(req, saved.files);
  }

  /**
   * A form POST needs no preflight, so any page may send one with the
   * user's cookies or cached password, or from inside their network: only
   * pages of this server, or of an origin named by `--cors`, may upload.
   * Browsers send `Origin` with every POST; a client without one (curl) is
   * no browser acting for someone else.
   */
  #checkOrigin(req: AppRequest): void {
    const origin = req.header("origin");
    if (origin === undefined) {
      const site = req.header("sec-fetch-site");
      if (site === undefined || site === "same-origin" || site === "none") {
        return;
      }
    } else if (this.#origins.includes(origin)) return;
    else {
      try {
        // "null" (a sandboxed page, a file://) does not parse: refused.
        const url = new URL(origin);
        // Host alone, not the scheme: behind a TLS proxy this server sees
        // http while the page says https.
        const host = new URL(`${url.protocol}//${req.host}`).host;
        if (url.host === host) return;
      } catch {
        // not an origin: refused below
      }
    }
    throw new HttpError(
      STATUS.Forbidden,
      `Upload from another site refused: ${origin ?? "Sec-Fetch-Site"}`,
      { expose: "Uploads are accepted from this server's own pages only" },
    );
  }

  /**
   * The real path of the folder a URL path names, and of the upload folder
   * it must lie in (both resolved afresh: a deploy may re-point a link).
   */
  #folderOf(path: string): { real: string; scope: string } {
    let real: string;
    let realRoot: string;
    let info: Deno.FileInfo;
    try {
      realRoot = Deno.realPathSync(this.#root);
      // canonicalPath() left no "." or ".." segment: this join stays under the root.
      real = Deno.realPathSync(this.#root + path);
      info = Deno.lstatSync(real);
    } catch (err) {
      throw notThere(err, path);
    }
    // A link out of the root, or into a dot folder, is a folder not there.
    if (!isBeneath(real, realRoot, true)) {
      throw refuse(404, `${path} leads out of the root`, "Folder not found");
    }
    if (!info.isDirectory) {
      throw refuse(405, `POST to a file: ${path}`, "Only folders take uploads");
    }
    let scope: string;
    try {
      scope = Deno.realPathSync(this.#dir);
    } catch (err) {
      throw notThere(err, this.#upload.path);
    }
    if (!isBeneath(real, scope, true)) {
      throw refuse(
        405,
        `${path} is outside the upload folder ${this.#upload.path}`,
        "This folder does not take uploads",
      );
    }
    return { real, scope };
  }

  /**
   * Refuses a name the folder must not take: a type the server would not
   * serve (`--allow-ext`), or one the static layer would show in place of
   * another resource: `index.html` (the folder's listing), `404.html` in
   * the root (every missing page), `x.br` / `x.gz` beside a file `x` (what
   * clients that accept brotli or gzip get for `x`).
   */
  #checkName(real: string, path: string, name: string): void {
    if (!this.#serves(name)) {
      throw new HttpError(STATUS.Forbidden, `Type not served: ${name}`, {
        expose: "This type of file is not accepted here",
      });
    }
    const lower = name.toLowerCase();
    let shadows: string | undefined;
    if (lower === "index.html") shadows = "this folder's listing";
    else if (lower === "404.html" && path === "/") shadows = "the 404 page";
    else if (/\.(?:br|gz)$/.test(lower)) {
      const stem = name.slice(0, -3);
      try {
        if (Deno.statSync(join(real, stem)).isFile) shadows = stem;
      } catch {
        // no such file: nothing to shadow
      }
    }
    if (shadows !== undefined) {
      throw new HttpError(STATUS.Forbidden, `${name} would shadow ${shadows}`, {
        expose: `${name} would be served in place of ${shadows}`,
      });
    }
  }

  /**
   * The first upload into a folder in this engine's life removes the temp
   * files of writers that died there (SIGKILL, a power cut): one read of
   * that folder, rather than a walk of the whole tree at start.
   */
  #sweep(real: string): void {
    if (this.#swept.has(real)) return;
    if (this.#swept.size >= MAX_SWEPT) this.#swept.clear();
    this.#swept.add(real);
    removeDeadTempFiles(real);
  }

  /** 303 back to the listing for a browser; 201 (200 if all replaced) with JSON for the rest. */
  #answer(req: AppRequest, files: readonly SavedFile[]): Reply {
    const base = req.path.split("/").map(encodeSegment).join("/");
    const accept = req.header("accept") ?? "";
    if (accept.includes("text/html")) {
      // The listing the form came from, with its sort and filter.
      const query = req.raw.query === "" ? "" : `?${req.raw.query}`;
      return {
        status: STATUS.SeeOther,
        headers: { location: `${base}${query}`, "cache-control": "no-store" },
      };
    }
    const stored = files.map((f) => ({
      name: f.name,
      size: f.bytes,
      href: `${base}${encodeSegment(f.name)}`,
      replaced: f.replaced,
    }));
    const headers: Record<string, string> = { "cache-control": "no-store" };
    if (stored.length === 1) headers.location = stored[0].href;
    return json({ path: req.path, files: stored }, {
      status: files.every((f) => f.replaced) ? STATUS.OK : STATUS.Created,
      headers,
    });
  }
}
