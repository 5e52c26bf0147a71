/**
 * What a folder under the static root answers when it has no index.html:
 * its listing (HTML or JSON, `--list-dirs`), or with `?download=zip` the
 * whole folder as one streamed zip (`--archive-max`). Both show what the
 * static handler would serve.
 */
import { basename } from "node:path";
import type { StaticConfig } from "../config.ts";
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
import { FileChanged, mtimeOf, sameNode } from "./file_version.ts";
import {
  type ArchivePolicy,
  isServableName,
  walkFolder,
  zipFolder,
} from "./folder_archive.ts";
import { missingOrThrow } from "./fs_errors.ts";
import { withLiveReload } from "./live_reload.ts";
import { isBeneath, lookBeneath } from "./open_beneath.ts";
import { contentDisposition } from "./replies.ts";
import type { Found } from "./static_lookup.ts";

/** Sizes of folder replies; tests shrink them. */
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
    const { config, liveReload } = this.#options;
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
          (look.kind === "ok" && !sameNode(look.info, dir))
        ) throw new FileChanged(dir.path);
        untilMs = Math.max(
          read.untilMs,
          look.kind === "unsettled" ? look.untilMs : 0,
        );
        entries = read.entries;
        truncated = read.truncated;
      } catch (err) {
        if (err instanceof FileChanged) throw err;
        return missingOrThrow(err);
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
          archive: config.archiveMaxBytes > 0,
          truncated: truncated,
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

  /**
   * The rows of a folder's listing, read by path: the caller proves which
   * folder that was. `untilMs` is non-zero when a symlink's target could
   * not be told apart from one swapped in (see lookBeneath()).
   */
  async #readListing(
    dir: Found,
    sinceMs: number,
  ): Promise<{ entries: ListingEntry[]; untilMs: number; truncated: boolean }> {
    const deny = this.#options.config.dotfiles !== "allow";
    const names: string[] = [];
    let truncated = false;
    for await (const entry of Deno.readDir(dir.path)) {
      if (deny && entry.name.startsWith(".")) continue;
      // A name no URL can reach (a backslash, a control byte) is not served.
      if (!isServableName(entry.name)) continue;
      if (names.length >= this.#options.tuning.maxListingEntries) {
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
            if (!info.isDirectory && !this.#options.serves(served)) return;
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

  #policy(dir: Found) {
    return {
      root: dir.root,
      denyDots: this.#options.config.dotfiles !== "allow",
      strictLinks: dir.strictLinks,
      serves: this.#options.serves,
    };
  }
}
