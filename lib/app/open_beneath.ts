/**
 * Opening a file so that what was opened provably lies under a root folder,
 * even while an attacker swaps folders on its path for symlinks out and back.
 *
 * Deno 2.9.6 opens by path only: no `openat`, `O_NOFOLLOW` or
 * `RESOLVE_BENEATH`, and no way to ask which path an open file has. Every
 * path call walks the path afresh, so checking a path before opening it, or
 * twice after, proves nothing about the walk the open made: a folder can be
 * a symlink out during the open and a plain folder again a microsecond later
 * (issue #9). {@link openBeneath} proves it after the open instead; its
 * comment gives the argument.
 */

/** Coarse clock: a change's ctime may lag real time by up to a tick (10 ms at HZ=100). */
const TICK_MS = 20;
/** Deno 2.9.6 reports ctime in whole seconds (mtime keeps its ms). */
const CTIME_STEP_MS = 1000;

/**
 * True when a real path may be served from under the real root: inside it
 * (not a symlink out) and, when `denyDots`, with no segment below the root
 * starting with "." (not a symlink inside pointing at ".env").
 */
export function isBeneath(
  real: string,
  realRoot: string,
  denyDots: boolean,
): boolean {
  if (real === realRoot) return true;
  const prefix = realRoot.endsWith("/") ? realRoot : `${realRoot}/`;
  if (!real.startsWith(prefix)) return false;
  return !denyDots || !real.includes("/.", prefix.length - 1);
}

/** What a look along a path found. */
export type Look =
  /** Every folder on the path is a plain folder, settled since the look began. */
  | { readonly kind: "ok"; readonly info: Deno.FileInfo }
  /** A symlink or a non-folder where a folder was, or the target is a symlink. */
  | { readonly kind: "changed" }
  /** A folder on the path changed too recently to tell; look again at `untilMs`. */
  | {
    readonly kind: "unsettled";
    readonly info: Deno.FileInfo;
    readonly untilMs: number;
  };

const CHANGED: Look = Object.freeze({ kind: "changed" });

/**
 * Looks at `real`, a real path under `realRoot`, and proves that every walk
 * of that path made since `sinceMs` went through the same plain folders.
 * `info` is the lstat of `real` itself (a symlink there is "changed"); it is
 * proved to come from under the root only when the look is "ok".
 *
 * `ownFolderMayChange`: when the caller compares what it opened by inode
 * with `info`, the folder holding `real` may change freely (a swap of `real`
 * itself shows as another inode); a folder read by path (a listing) must
 * not, so pass false.
 *
 * @throws what lstat throws (NotFound when a part of the path is gone).
 */
export function lookBeneath(
  realRoot: string,
  real: string,
  sinceMs: number,
  ownFolderMayChange: boolean,
): Look {
  const info = Deno.lstatSync(real);
  if (info.isSymlink) return CHANGED;
  if (real === realRoot) return { kind: "ok", info }; // the root is the boundary
  const rootEnd = realRoot.endsWith("/")
    ? realRoot.length - 1
    : realRoot.length;
  let untilMs = 0;
  let mayChange = ownFolderMayChange;
  // Upwards from the folder holding `real` to the root: the order matters
  // for the proof in openBeneath(). The root itself is trusted as a folder
  // (a deploy may re-point it); only whether it changed is asked.
  for (let cut = real.lastIndexOf("/");; cut = real.lastIndexOf("/", cut - 1)) {
    const atRoot = cut <= rootEnd;
    if (atRoot && mayChange) break;
    const folder = Deno.lstatSync(atRoot ? realRoot : real.slice(0, cut));
    if (!folder.isDirectory) return CHANGED; // a symlink where a folder was
    if (!mayChange) untilMs = Math.max(untilMs, settledAt(folder, sinceMs));
    mayChange = false;
    if (atRoot) break;
  }
  return untilMs === 0
    ? { kind: "ok", info }
    : { kind: "unsettled", info, untilMs };
}

/**
 * 0 when a folder's entries provably did not change from `sinceMs` until it
 * was stat'ed; else the time after which a fresh look can prove it. A change
 * of any entry (create, rename, unlink, symlink) sets the folder's ctime to
 * the kernel's coarse clock, and no one can set ctime back (utime sets it to
 * now), unlike mtime.
 */
function settledAt(folder: Deno.FileInfo, sinceMs: number): number {
  const ctime = folder.ctime?.getTime();
  // No ctime (Windows): nothing to prove with; the look is as good as the walk.
  if (ctime === undefined) return 0;
  // A change at or after sinceMs has ctime >= this whole second.
  const bound = Math.floor((sinceMs - TICK_MS) / CTIME_STEP_MS) * CTIME_STEP_MS;
  if (ctime < bound) return 0;
  // Ahead of the clock: set before the clock was stepped back, and a change
  // since would have brought it back to now.
  if (ctime > Date.now() + CTIME_STEP_MS) return 0;
  return Math.floor(ctime / CTIME_STEP_MS) * CTIME_STEP_MS + CTIME_STEP_MS +
    TICK_MS;
}

/** What {@link openBeneath} opened. */
export interface Opened {
  readonly file: Deno.FsFile;
  /** Its fstat. */
  readonly info: Deno.FileInfo;
}

export interface OpenBeneathOptions {
  /** Must hold for the file as stat'ed before and after the open (a version check). */
  readonly accept?: (info: Deno.FileInfo) => boolean;
  /** Refuse a file with more than one name (a hard link may lead out: `--strict-links`). */
  readonly strictLinks?: boolean;
}

/**
 * Opens `real`, a real path under `realRoot`, for reading, and proves what
 * was opened is a regular file with a name under the root. Resolves to null
 * when it is not (a symlink swapped in, a file swapped, a hard link under
 * `strictLinks`, or a folder on the path that would not settle); the caller
 * answers that as a file that is not there. Waits (at most about a second)
 * when a folder on the path changed just before.
 *
 * @throws what open or lstat throws: NotFound, PermissionDenied and the like.
 */
export async function openBeneath(
  realRoot: string,
  real: string,
  opts: OpenBeneathOptions = {},
): Promise<Opened | null> {
  for (let attempt = 1;; attempt++) {
    // Taken before the open: the open's walk happens at or after it.
    const sinceMs = Date.now();
    // Not a FIFO, socket or device: opening a FIFO would hang until a writer.
    if (!isWanted(Deno.lstatSync(real), opts)) return null;
    const file = await Deno.open(real);
    let look: Look;
    let info: Deno.FileInfo;
    try {
      // Why this proves containment (sync calls, one after another):
      // 1. fstat: the inode X actually opened, however the open walked.
      // 2. lookBeneath, in this order: lstat(real) must be a regular file,
      //    not a symlink, and X itself; then each folder from the one
      //    holding `real` up to the root must be a plain folder, and every
      //    folder above that one must not have changed since before the
      //    open (its ctime). Going up, each folder's stat comes after the
      //    stats of all below it; a folder settled until its own stat held
      //    the same entries when the stats below it were made. By induction
      //    from the root, when lstat(real) found X, every folder on the path
      //    was a plain folder inside the root. So X had a name under the root
      //    then, whatever path the open took. An attacker swapping a folder
      //    for a symlink changes the folder holding it, and is seen; one
      //    swapping `real` itself yields another inode than X. Only a name
      //    under the root that really is X passes: a hard link (see
      //    strictLinks, and the security model in the README).
      info = file.statSync();
      if (!isWanted(info, opts)) {
        file.close();
        return null;
      }
      look = lookBeneath(realRoot, real, sinceMs, true);
    } catch (err) {
      file.close();
      throw err;
    }
    if (look.kind === "ok" && look.info.isFile && sameInode(look.info, info)) {
      return { file, info };
    }
    file.close();
    if (look.kind !== "unsettled" || attempt === 2) return null;
    // A folder on the path changed within the last second (a deploy, an
    // upload, or an attack): wait until a look can tell, then open afresh.
    await new Promise((r) => setTimeout(r, look.untilMs - Date.now()));
  }
}

function isWanted(info: Deno.FileInfo, opts: OpenBeneathOptions): boolean {
  if (!info.isFile) return false;
  if (opts.strictLinks && (info.nlink ?? 1) > 1) return false;
  return opts.accept === undefined || opts.accept(info);
}

/**
 * Same device and inode. Where the platform has no inodes (Windows), same
 * size and mtime: the best it offers.
 */
export function sameInode(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  if (a.ino === null || b.ino === null) {
    return a.size === b.size && a.mtime?.getTime() === b.mtime?.getTime();
  }
  return a.ino === b.ino && a.dev === b.dev;
}
