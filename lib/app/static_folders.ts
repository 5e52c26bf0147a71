/**
 * What a folder under the static root answers when it has no index.html:
 * its listing (HTML or JSON, `--list-dirs`), or with `?download=zip` the
 * whole folder as one streamed zip (`--archive-max`). Both show what the
 * static handler would serve, read through lib/app/folder_entries.ts.
 */
import { basename } from "node:path";
import type { StaticConfig } from "./settings.ts";
import { HttpError, STATUS } from "../http/errors.ts";
import type { Reply, ServerRequest } from "../http/handler.ts";
import {
  filterEntries,
  type ListingEntry,
  parseView,
  renderListing,
  renderListingJson,
  sortEntries,
} from "./dir_listing.ts";
import { FileChanged, mtimeOf } from "./file_version.ts";
import { type ArchivePolicy, walkFolder, zipFolder } from "./folder_archive.ts";
import { readFolder } from "./folder_entries.ts";
import { missingOrThrow } from "./fs_errors.ts";
import { withLiveReload } from "./live_reload.ts";
import { contentDisposition } from "./replies.ts";
import type { Found } from "./static_lookup.ts";

/**
 * Sizes of folder replies; tests shrink them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FolderTuning } from "@spindle/server";
 *
 * const folders: Partial<FolderTuning> = { maxListingEntries: 500, maxArchiveEntries: 10_000 };
 * assert.equal(folders.maxListingEntries, 500);
 * ```
 */
export interface FolderTuning {
  /** A listing shows at most this many entries. */
  readonly maxListingEntries: number;
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

/** What folder replies need of the static handler. */
export interface FolderOptions {
  readonly config: StaticConfig;
  readonly tuning: FolderTuning;
  /** True when the extension policy serves a file of this (real) name. */
  readonly serves: (name: string) => boolean;
  /** `--watch`: a listing is a page too, reloaded when a file comes or goes. */
  readonly liveReload: boolean;
  /** True when a real path lies in the upload folder (`--upload-files`). */
  readonly takesUploads: (real: string) => boolean;
}

const encoder = new TextEncoder();

/** Listings and archives of the folders of one static handler. */
export class StaticFolders {
  readonly #options: FolderOptions;

  constructor(options: FolderOptions) {
    this.#options = options;
  }

  /**
   * The listing of a folder found under the root; null when it is not there
   * after all (the caller's 404).
   *
   * @throws {HttpError} 400 for a bad view query; {@link FileChanged} when
   *   the read cannot be proved to be of this folder under the root.
   */
  async listing(
    req: ServerRequest,
    dir: Found,
    path: string,
  ): Promise<Reply | null> {
    const { config, tuning, liveReload } = this.#options;
    // Checked before the folder is read: a bad query costs no I/O.
    const view = parseView(req.query, req.headers.getJoined("accept"));
    let read;
    try {
      read = await readFolder(dir.path, this.#policy(dir), {
        maxEntries: tuning.maxListingEntries,
        node: dir, // the folder found, not one put in its place since
      });
    } catch (err) {
      return missingOrThrow(err);
    }
    if (read === null) throw new FileChanged(dir.path);
    const entries = read.entries.map((e): ListingEntry => ({
      name: e.name,
      isDirectory: e.info.isDirectory,
      size: e.info.size,
      mtimeMs: mtimeOf(e.info),
    }));
    const shown = sortEntries(filterEntries(entries, view.filter), view);
    const json = view.format === "json";
    let bytes: Uint8Array = encoder.encode(
      json
        ? renderListingJson(path, shown, read.truncated)
        : renderListing(path, shown, view, {
          archive: config.archiveMaxBytes > 0,
          truncated: read.truncated,
          upload: this.#options.takesUploads(dir.path)
            ? config.uploads
            : undefined,
        }),
    );
    if (!json && liveReload) bytes = withLiveReload(bytes);
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

  /**
   * `?download=zip` on a folder: the folder as one streamed zip; null when
   * it is not there after all (the caller's 404).
   *
   * @throws {HttpError} 404 when archives are off, 400 for another format,
   *   413 past a limit, 503 while the folder keeps changing.
   */
  async archive(
    req: ServerRequest,
    dir: Found,
    path: string,
    download: string,
  ): Promise<Reply | null> {
    const { config, tuning } = this.#options;
    const { listDirs, archiveMaxBytes } = config;
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
      ...this.#policy(dir),
      maxBytes: archiveMaxBytes,
      maxEntries: tuning.maxArchiveEntries,
      chunkBytes: tuning.readChunkBytes,
      zip64FromBytes: tuning.zip64FromBytes,
    };
    const top = path === "/"
      ? basename(dir.root) || "site"
      : basename(path.slice(0, -1));
    let walk;
    try {
      walk = await walkFolder(dir.path, top, policy);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      return missingOrThrow(err);
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

  #policy(dir: Found) {
    return {
      root: dir.root,
      denyDots: this.#options.config.dotfiles !== "allow",
      strictLinks: dir.strictLinks,
      serves: this.#options.serves,
    };
  }
}
