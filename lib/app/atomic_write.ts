/**
 * Crash-safe file writes: write a hidden temp file in the target folder,
 * fsync it, then publish it under its name in one step (rename, or link for
 * create-only). On any error, a client that went away included, the temp
 * file is removed: readers see the whole file or none, never a part.
 */
import { join } from "node:path";

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
}

/** Prefix of temp files; the dot hides them from listings and static serving. */
export const TEMP_PREFIX = ".tmp-";

/** True for the OS saying the disk or the user's disk quota is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}
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
): Promise<{ name: string; bytes: number }> {
  const write = options.write ?? writePiece;
  const temp = join(dir, `${TEMP_PREFIX}${randomHex(8)}`);
  // createNew: never reuse (or follow a planted symlink at) an existing path.
  const file = await Deno.open(temp, {
    write: true,
    createNew: true,
    mode: 0o644,
  });
  let bytes = 0;
  try {
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
    } finally {
      file.close();
    }
    const final = await publish(dir, temp, name, options.replace);
    await syncDir(dir); // and the new name survives a power cut
    return { name: final, bytes };
  } catch (err) {
    await removeQuietly(temp);
    throw err;
  }
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
