/**
 * A canonical URL path to the file or folder it names under the static
 * root, refused rather than repaired: dot paths when denied, anything whose
 * real path leads out of the root (a symlink out, a folder swapped for one),
 * FIFOs, sockets and devices, and hard-linked files under `--strict-links`.
 * A lookup is remembered per file version, so realPath() runs once per
 * version, not per request.
 */
import { type StaticConfig, uploadFilesDir } from "./settings.ts";
import { batchNow } from "../http/clock.ts";
import { isDotPath } from "./canonical_path.ts";
import { type OnDisk, sameVersion, versionOf } from "./file_version.ts";
import { missingOrThrow } from "./fs_errors.ts";
import { isBeneath, type Look, lookBeneath } from "./open_beneath.ts";

/** A file or folder found under the root; `path` is its real path, inside the real root. */
export interface Found extends OnDisk {
  readonly kind: "file" | "dir";
  /**
   * False when a folder on the path changed too recently to prove the lookup
   * did not go through a symlink swapped in and out (see lookBeneath()):
   * size and dates must not be sent before an open proves the file.
   */
  readonly proven: boolean;
}

/** A lookup (stat and checked real path) of one path, and when it was made. */
interface Resolved {
  readonly found: Found;
  checkedAt: number;
}

/** Checked real paths remembered; past it the memory starts afresh. */
const MAX_RESOLVED = 10_000;

/** Finds paths under one static root; one per static handler. */
export class StaticLookup {
  /** The root as configured, absolute: its real path is taken afresh each lookup. */
  readonly root: string;
  readonly #config: Pick<StaticConfig, "dotfiles" | "strictLinks" | "uploads">;
  readonly #revalidateMs: number;
  /**
   * Paths whose real path was checked, with the file they named then. By
   * canonical path, not joined to the root: a path asked again is most
   * often the very string canonicalPath() returned last time, whose hash
   * is known, where a join would be a new string to hash each request.
   */
  readonly #resolved = new Map<string, Resolved>();

  /**
   * `revalidateMs`: how long a found path is trusted before it is stat'ed
   * again (a missing path is always looked up afresh).
   */
  constructor(
    root: string,
    config: Pick<StaticConfig, "dotfiles" | "strictLinks" | "uploads">,
    revalidateMs: number,
  ) {
    this.root = root;
    this.#config = config;
    this.#revalidateMs = revalidateMs;
  }

  /** Looks up a canonical path; null when it is not servable (treated as 404). */
  find(path: string): Found | null {
    // A path remembered passed the dot test below when it was looked up.
    const known = this.#resolved.get(path);
    const now = batchNow();
    if (known !== undefined && now - known.checkedAt < this.#revalidateMs) {
      return known.found; // looked up a moment ago; opening it checks again
    }
    const deny = this.#config.dotfiles !== "allow";
    if (deny && isDotPath(path)) return null;
    // canonicalPath() left no "." or ".." segment, so this join stays under
    // the root lexically. Sync calls on purpose: for a local file they take a
    // few µs, their async forms ~14 µs each in thread hand-offs.
    const joined = this.root + path;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(joined); // follows symlinks
    } catch (err) {
      if (known !== undefined) this.#resolved.delete(path);
      return missingOrThrow(err);
    }
    // The real path was checked before for this very file (same device,
    // inode, size, mtime): a swapped symlink shows another inode and is
    // checked afresh. So realPath() runs once per file version, not per request.
    if (
      known !== undefined && info.ino !== null &&
      kindOf(info) === known.found.kind &&
      sameVersion(versionOf(info), known.found)
    ) {
      known.checkedAt = now; // stat'ed afresh just now: trust it for another while
      return known.found;
    }
    if (known !== undefined) this.#resolved.delete(path);
    let realRoot: string;
    let real: string;
    let look: Look;
    try {
      // The root afresh too: a deploy may have re-pointed a root symlink.
      realRoot = Deno.realPathSync(this.root);
      real = Deno.realPathSync(joined);
      if (!isBeneath(real, realRoot, deny)) return null;
      // realPath() walks the path one part at a time: a folder may have been
      // a symlink out for part of it. Prove the stat came from under the
      // root, as every open does, or mark the lookup unproven.
      look = lookBeneath(realRoot, real, now, true);
    } catch (err) {
      return missingOrThrow(err);
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
    this.#resolved.set(path, { found, checkedAt: now });
    return found;
  }

  /** Forgets every lookup: one of them met a file that changed. */
  forget(): void {
    this.#resolved.clear();
  }

  /**
   * True when a real path lies in the upload folder (`--upload-files`),
   * itself resolved afresh: a deploy may re-point a link to it.
   */
  takesUploads(real: string): boolean {
    const uploads = this.#config.uploads;
    if (uploads === undefined) return false;
    try {
      const dir = Deno.realPathSync(uploadFilesDir(this.root, uploads.path));
      return isBeneath(real, dir, true);
    } catch {
      return false; // the folder is gone: nothing takes uploads
    }
  }
}

/** What the static handler serves of a stat'ed path; null for FIFOs, sockets, devices. */
function kindOf(info: Deno.FileInfo): Found["kind"] | null {
  return info.isFile ? "file" : info.isDirectory ? "dir" : null;
}
