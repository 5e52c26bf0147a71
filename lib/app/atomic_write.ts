/**
 * Crash-safe file writes: write a hidden temp file in the target folder,
 * fsync it, then publish it under its name in one step (rename, or link for
 * create-only). On any error, a client that went away included, the temp
 * file is removed: readers see the whole file or none, never a part.
 *
 * A process killed mid-write cannot remove its temp file, so each one is
 * named `.tmp-<pid>-<random>` and held under an exclusive lock (flock) for
 * as long as it exists. The kernel drops the lock when the process dies,
 * however it dies: a temp file nobody holds belongs to a dead writer, and
 * {@link removeDeadTempFiles} removes it. A live writer in another process
 * or another engine thread of this one keeps its lock, and its file.
 */
import { getLogger } from "../npm/logtape.ts";
import { join } from "node:path";
import { lookBeneath, sameInode } from "./open_beneath.ts";

const log = getLogger(["spindle", "app", "files"]);

/** Writes one piece to an open file; tests swap it to fail like a full disk. */
export type WritePiece = (
  file: Deno.FsFile,
  piece: Uint8Array,
) => Promise<void>;

/** Writes every byte; `file.write()` alone may stop part-way. */
export const writePiece: WritePiece = async (file, piece) => {
  for (let off = 0; off < piece.length;) {
    off += await file.write(piece.subarray(off));
  }
};

export interface AtomicWriteOptions {
  /** Overwrite an existing file (rename); else never clobber (link, retry names). */
  readonly replace: boolean;
  /** Called for each piece; the default writes it whole. */
  readonly write?: WritePiece;
  /**
   * A real folder the temp file must provably be created under, `dir`
   * being a real path below it: the file is checked after the create as
   * openBeneath() checks a read, so a folder on the path swapped for a
   * symlink out is seen before a byte is written. Unproved:
   * {@link FolderChanged}.
   */
  readonly beneath?: string;
}

/** What {@link writeAtomic} stored. */
export interface Written {
  /** The name it was published under. */
  readonly name: string;
  readonly bytes: number;
  /** The file's fstat before publishing: its device and inode name it. */
  readonly info: Deno.FileInfo;
}

/** A folder on the path changed while a write began; nothing was written. */
export class FolderChanged extends Error {
  override name = "FolderChanged";
}

/** Prefix of temp files; the dot hides them from listings and static serving. */
export const TEMP_PREFIX = ".tmp-";

/**
 * Where locks are not to be had (some network file systems), a temp file
 * older than this is taken for a crash leftover, not an upload in flight.
 */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** Attempts at a temp file that a sweep in another process did not take. */
const TEMP_ATTEMPTS = 4;

/** Attempts at a fresh name when create-only publishing meets an existing one. */
const NAME_ATTEMPTS = 8;

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes `data` to `dir` under `name` (or a fresh `name()` when create-only),
 * atomically and durably. Resolves to the final name and the byte count.
 *
 * @throws whatever writing threw (the temp file is gone by then), or
 *   `Deno.errors.AlreadyExists` when create-only names kept colliding.
 */
export async function writeAtomic(
  dir: string,
  name: string | (() => string),
  data: Uint8Array | AsyncIterable<Uint8Array>,
  options: AtomicWriteOptions,
): Promise<Written> {
  const write = options.write ?? writePiece;
  const { file, temp } = options.beneath === undefined
    ? await createTemp(dir)
    : await createTempBeneath(dir, options.beneath);
  let bytes = 0;
  try {
    if (data instanceof Uint8Array) {
      await write(file, data);
      bytes = data.length;
    } else {
      for await (const piece of data) {
        await write(file, piece);
        bytes += piece.length;
      }
    }
    await file.sync(); // the data is on disk before the name points at it
    const info = await file.stat();
    const final = await publish(dir, temp, name, options.replace);
    await syncDir(dir); // and the new name survives a power cut
    return { name: final, bytes, info };
  } catch (err) {
    await removeQuietly(temp);
    throw err;
  } finally {
    // Only now: the lock tells a sweep the temp name is ours until it is gone.
    file.close();
  }
}

/** A new temp file in `dir`, opened and locked: see the module comment. */
async function createTemp(
  dir: string,
): Promise<{ file: Deno.FsFile; temp: string }> {
  for (let attempt = 1;; attempt++) {
    const temp = join(dir, `${TEMP_PREFIX}${Deno.pid}-${randomHex(8)}`);
    // createNew: never reuse (or follow a planted symlink at) an existing path.
    const file = await Deno.open(temp, {
      write: true,
      createNew: true,
      mode: 0o644,
    });
    try {
      if (holdTemp(file, temp)) return { file, temp };
    } catch (err) {
      file.close();
      throw err;
    }
    // A sweep starting in another process took the file for a dead one's,
    // between our open and our lock: it has removed it or is about to.
    file.close();
    if (attempt === TEMP_ATTEMPTS) {
      throw new Error(`Cannot keep a temp file in ${dir}`);
    }
  }
}

/**
 * {@link createTemp}, then the proof that the file made lies under
 * `beneath` (see openBeneath() for the argument): its inode is the one a
 * fresh lstat finds at its name, and every folder from the one holding it
 * up to `beneath` is a plain folder that did not change since before the
 * create. A folder that changed within the last second is waited out once.
 */
async function createTempBeneath(
  dir: string,
  beneath: string,
): Promise<{ file: Deno.FsFile; temp: string }> {
  for (let attempt = 1;; attempt++) {
    const sinceMs = Date.now(); // before the create: its walk came after
    const made = await createTemp(dir);
    let untilMs = 0;
    try {
      const info = made.file.statSync();
      const look = lookBeneath(beneath, made.temp, sinceMs, true);
      if (look.kind === "ok" && sameInode(look.info, info)) return made;
      if (look.kind === "unsettled") untilMs = look.untilMs;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        made.file.close();
        await removeQuietly(made.temp);
        throw err;
      }
    }
    // Made somewhere we cannot vouch for: gone before a byte is written. By
    // path, as Deno has no unlinkat; a name 16 hex digits long is no one's.
    made.file.close();
    await removeQuietly(made.temp);
    if (untilMs === 0 || attempt === 2) {
      throw new FolderChanged(`Cannot prove a new file lies under ${beneath}`);
    }
    await new Promise((r) => setTimeout(r, untilMs - Date.now()));
  }
}

/**
 * Removes a file this module published, by path, only while the path
 * still names that very file (device and inode): a folder swapped for a
 * symlink meanwhile must not make it remove someone else's file of the
 * same name. True when removed.
 */
export async function removeWritten(
  path: string,
  written: Deno.FileInfo,
): Promise<boolean> {
  try {
    if (!sameInode(await Deno.lstat(path), written)) return false;
    await Deno.remove(path);
    return true;
  } catch {
    return false; // gone already, or not ours to remove
  }
}

/**
 * Locks a new temp file; false when a sweep got to it first. Without locks
 * (the file system has none) the file is kept all the same: sweeps then go
 * by age alone.
 */
function holdTemp(file: Deno.FsFile, temp: string): boolean {
  try {
    if (!file.tryLockSync(true)) return false;
  } catch {
    return true;
  }
  // Locked, but a sweep may have locked, removed and let go of it before.
  try {
    const named = Deno.lstatSync(temp);
    const held = file.statSync();
    return named.ino === held.ino && named.dev === held.dev;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Removes the temp files in `dir` that no live writer holds: those of a
 * process that died mid-write (SIGKILL, a power cut). Where locks are not
 * supported, removes those older than an hour. Synchronous on purpose: it
 * runs once at start, before the first request. Returns how many went;
 * errors (no folder, no permission) count as none removed.
 */
export function removeDeadTempFiles(dir: string): number {
  let removed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return 0; // no folder yet, or not ours to read: nothing to sweep
  }
  for (const entry of entries) {
    if (!entry.isFile || !entry.name.startsWith(TEMP_PREFIX)) continue;
    const path = join(dir, entry.name);
    let file: Deno.FsFile | undefined;
    try {
      file = Deno.openSync(path, { read: true });
      let dead: boolean;
      try {
        dead = file.tryLockSync(true); // the lock is free: its writer is gone
      } catch {
        const mtime = file.statSync().mtime?.getTime() ?? 0;
        dead = Date.now() - mtime > STALE_TEMP_MS;
      }
      if (dead) {
        Deno.removeSync(path); // still locked by us: no writer can take it now
        removed++;
      }
    } catch {
      // gone meanwhile, or not ours to remove
    } finally {
      file?.close();
    }
  }
  if (removed > 0) {
    log.info("Removed {removed} temp files of writes cut short in {dir}", {
      removed,
      dir,
    });
  }
  return removed;
}

async function publish(
  dir: string,
  temp: string,
  name: string | (() => string),
  replace: boolean,
): Promise<string> {
  if (typeof name === "string" && replace) {
    await Deno.rename(temp, join(dir, name));
    return name;
  }
  // link() fails if the name exists, unlike rename(): create-only for free,
  // even against another process writing the same folder.
  for (let attempt = 1;; attempt++) {
    const candidate = typeof name === "string" ? name : name();
    try {
      await Deno.link(temp, join(dir, candidate));
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      if (typeof name === "string" || attempt === NAME_ATTEMPTS) throw err;
      continue;
    }
    await removeQuietly(temp);
    return candidate;
  }
}

/** fsync a folder so a rename in it is durable; best effort where unsupported. */
async function syncDir(dir: string): Promise<void> {
  try {
    using handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // Some platforms cannot open or sync a folder; the data itself is synced.
  }
}

/**
 * Removes a temp file, ignoring any failure: the error that got us here is
 * the one to report, and a leftover dot-file is swept by the next scan.
 */
async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // already gone, or not ours to remove any more
  }
}
