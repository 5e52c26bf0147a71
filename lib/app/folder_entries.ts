/**
 * What a folder under the static root holds that the static handler would
 * serve, read once for listings and archives alike. Left out: dotfiles when
 * denied, names no URL can reach, links out of the root or into a dot
 * folder, files outside the extension policy, hard-linked files under
 * `--strict-links`, sockets, FIFOs and devices. The read goes by path, so it
 * is proved afterwards to be of that folder under the root, as openBeneath()
 * proves an open.
 */
import { basename } from "node:path";
import { canonicalPath } from "./canonical_path.ts";
import { sameNode } from "./file_version.ts";
import { isBeneath, lookBeneath } from "./open_beneath.ts";

/** What may be shown of a folder, as the static handler would serve it. */
export interface FolderPolicy {
  /** The real root: every entry must lie under it. */
  readonly root: string;
  /** Leave out dotfiles and dot-folders. */
  readonly denyDots: boolean;
  /** Leave out files with more than one hard link. */
  readonly strictLinks: boolean;
  /** True for a (real) file name the extension policy serves. */
  readonly serves: (name: string) => boolean;
}

/** One servable entry of a folder. */
export interface FolderEntry {
  /** Its name in the folder. */
  readonly name: string;
  /** Real path: the entry itself, or where its link leads (under the root). */
  readonly real: string;
  /** lstat of the entry, or stat of a link's target. */
  readonly info: Deno.FileInfo;
}

export interface ReadFolderOptions {
  /** Entries read at most; past it `truncated` is set. Default: all. */
  readonly maxEntries?: number;
  /** The folder must be this one (device and inode), as found before. */
  readonly node?: { readonly dev: number; readonly ino: number | null };
}

/** A folder's servable entries, in the order the folder lists them. */
export interface FolderRead {
  readonly entries: FolderEntry[];
  /** More entries than `maxEntries` were there. */
  readonly truncated: boolean;
}

/** Entries stat'ed at once: a huge folder must not open thousands at once. */
const STAT_BATCH = 64;

/** True for a name a URL can reach: listings and archives hold what the site serves. */
export function isServableName(name: string): boolean {
  try {
    canonicalPath(`/${encodeURIComponent(name)}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * The servable entries of the folder at `real`, a real path under
 * `policy.root`. Null when the read cannot be proved to be of that folder
 * under the root: a folder on its path swapped for a symlink while it was
 * read, another folder in its place (`node`), or a folder on the path that
 * changed within the last second twice running (waited out once).
 *
 * @throws what reading the folder throws (NotFound, PermissionDenied...).
 */
export async function readFolder(
  real: string,
  policy: FolderPolicy,
  options: ReadFolderOptions = {},
): Promise<FolderRead | null> {
  const maxEntries = options.maxEntries ?? Infinity;
  for (let attempt = 1;; attempt++) {
    // Taken before the read: every walk of the path after it is proved.
    const sinceMs = Date.now();
    const names: string[] = [];
    let truncated = false;
    for await (const entry of Deno.readDir(real)) {
      if (policy.denyDots && entry.name.startsWith(".")) continue;
      // A name no URL can reach (a backslash, a control byte) is not served.
      if (!isServableName(entry.name)) continue;
      if (names.length >= maxEntries) {
        truncated = true;
        break;
      }
      names.push(entry.name);
    }
    const entries: FolderEntry[] = [];
    let untilMs = 0;
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = await Promise.all(
        names.slice(i, i + STAT_BATCH).map(async (name) => {
          const look = await lookAtEntry(real, name, policy, sinceMs);
          if (typeof look === "number") {
            untilMs = Math.max(untilMs, look);
            return null;
          }
          return look;
        }),
      );
      for (const entry of batch) if (entry !== null) entries.push(entry);
    }
    // The read went by path: prove it read this folder, under the root, and
    // that no folder above it changed meanwhile (one swapped for a symlink
    // out and back).
    const look = lookBeneath(policy.root, real, sinceMs, false);
    if (
      look.kind === "changed" ||
      (look.kind === "ok" && options.node !== undefined &&
        !sameNode(look.info, options.node))
    ) return null;
    if (look.kind === "unsettled") untilMs = Math.max(untilMs, look.untilMs);
    if (untilMs === 0) return { entries, truncated };
    if (attempt === 2) return null;
    // A folder on the path changed within the last second: read again once
    // a look can tell.
    await new Promise((r) => setTimeout(r, untilMs - Date.now()));
  }
}

/**
 * One entry as served, null when it is not; a number when a link's target
 * could not be told apart from one swapped in until then (see
 * lookBeneath()).
 */
async function lookAtEntry(
  folder: string,
  name: string,
  policy: FolderPolicy,
  sinceMs: number,
): Promise<FolderEntry | null | number> {
  try {
    const path = `${folder}/${name}`;
    // lstat: an entry swapped for a symlink since the read is seen.
    let info = await Deno.lstat(path);
    let real = path;
    // A link is shown only if it would be served, under the extension of
    // what it points at, as the static handler sees it.
    let served = name;
    if (info.isSymlink) {
      real = await Deno.realPath(path);
      if (!isBeneath(real, policy.root, policy.denyDots)) return null;
      const look = lookBeneath(policy.root, real, sinceMs, true);
      if (look.kind === "unsettled") return look.untilMs;
      if (look.kind !== "ok") return null;
      info = look.info;
      served = basename(real);
    }
    if (info.isFile) {
      if (!policy.serves(served)) return null;
      // Files --strict-links would not serve are not shown either.
      if (policy.strictLinks && (info.nlink ?? 1) > 1) return null;
    } else if (!info.isDirectory) return null; // sockets, FIFOs, devices
    return { name, real, info };
  } catch {
    return null; // a dangling symlink or a race with a delete: not shown
  }
}
