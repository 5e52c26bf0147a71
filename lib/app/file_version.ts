/**
 * One version of a file on disk, and reads of exactly that version. A file
 * found a moment ago may since have been edited, renamed over or swapped
 * for a symlink out of the root: {@link openChecked} proves what it opened
 * is the version found, under the root it was found under, or throws
 * {@link FileChanged} so the request looks again. Every static byte leaves
 * the disk through it: streamed bodies, the memory cache, sidecars and
 * compression sources.
 */
import { missingOrThrow } from "./fs_errors.ts";
import { openBeneath } from "./open_beneath.ts";

/** One version of one file: an edit, a rename over it or a swap changes a field. */
export interface FileVersion {
  readonly dev: number;
  /** null where the platform has none (Windows): then never trusted by inode. */
  readonly ino: number | null;
  readonly size: number;
  readonly mtimeMs: number;
}

/** A file to read, and the version it must still be when opened. */
export interface OnDisk extends FileVersion {
  /** Its real path, under `root`. */
  readonly path: string;
  /** The real root it was found under: what is opened must lie under it. */
  readonly root: string;
  /** Refuse it when it has more than one name (`--strict-links`). */
  readonly strictLinks: boolean;
}

/** The file changed between stat and read; the request is tried once more. */
export class FileChanged extends Error {
  override name = "FileChanged";
}

/** Modification time in whole ms; 0 where the platform gives none. */
export function mtimeOf(info: Deno.FileInfo): number {
  return Math.floor(info.mtime?.getTime() ?? 0);
}

/** The version a stat describes. */
export function versionOf(info: Deno.FileInfo): FileVersion {
  return {
    dev: info.dev,
    ino: info.ino,
    size: info.size,
    mtimeMs: mtimeOf(info),
  };
}

/** The very same version: same device, inode, size and mtime. */
export function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size &&
    a.mtimeMs === b.mtimeMs;
}

/** Same device and inode: the same file or folder, whatever it holds now. */
export function sameNode(
  a: { readonly dev: number; readonly ino: number | null },
  b: { readonly dev: number; readonly ino: number | null },
): boolean {
  return a.ino === b.ino && a.dev === b.dev;
}

/**
 * Opens a file found a moment ago and proves it is the version found, under
 * the root it was found under (see openBeneath()). Gone, not that version
 * (edited, renamed over) or not provably under the root (a folder on its path
 * swapped for a symlink): {@link FileChanged}, so the request looks again
 * rather than read a newcomer. EACCES: HttpError 403.
 */
export async function openChecked(file: OnDisk): Promise<Deno.FsFile> {
  let opened;
  try {
    // The version is checked before the open too, even within revalidateMs:
    // a FIFO put in the file's place would hold open() until a writer came.
    opened = await openBeneath(file.root, file.path, {
      accept: (info) => sameVersion(versionOf(info), file),
      strictLinks: file.strictLinks,
    });
  } catch (err) {
    missingOrThrow(err); // EACCES: 403; an error not from the file system: rethrown
    // Gone, a loop, a file where a folder was: a fresh lookup will say which.
    throw new FileChanged(file.path, { cause: err });
  }
  if (opened === null) throw new FileChanged(file.path);
  return opened.file;
}

/** Reads a whole file, checking it is still the version that was found. */
export async function readWhole(file: OnDisk): Promise<Uint8Array> {
  using opened = await openChecked(file);
  const bytes = new Uint8Array(file.size);
  for (let off = 0; off < bytes.length;) {
    const n = await opened.read(bytes.subarray(off));
    if (n === null) throw new FileChanged(file.path);
    off += n;
  }
  return bytes;
}

/**
 * Up to `length` bytes of an open file from where it stands, piece by
 * piece, at most `chunkBytes` each; returns how many it read, short only
 * when the file ended first. With `reuse` (at least `chunkBytes` long) each
 * piece is a view of it, valid until the next is asked for; else each is
 * the caller's to keep.
 */
export async function* readPieces(
  file: Deno.FsFile,
  length: number,
  chunkBytes: number,
  reuse?: Uint8Array,
): AsyncGenerator<Uint8Array, number> {
  let read = 0;
  while (read < length) {
    const want = Math.min(chunkBytes, length - read);
    const buf = reuse === undefined
      ? new Uint8Array(want)
      : reuse.subarray(0, want);
    const n = await file.read(buf);
    if (n === null) break;
    yield n === buf.length ? buf : buf.subarray(0, n);
    read += n;
  }
  return read;
}
