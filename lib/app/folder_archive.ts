/**
 * A folder under the static root as one streamed `.zip`: walked first (so a
 * folder over the size or entry limit is refused before a byte is sent),
 * then each file opened with {@link openBeneath} and sent as it is read,
 * with backpressure: memory holds one read buffer and ~100 bytes per entry.
 *
 * Why zip and not .tar.gz: Windows, macOS, iOS and Android open a zip with
 * no extra tool. Entries are stored, not deflated: most of what folders
 * shared this way holds (photos, video, archives) does not shrink, and
 * compressing on the event loop would slow every other client; stored, a
 * download runs at disk speed.
 */
import { crc32 } from "node:zlib";
import { HttpError, STATUS } from "../http/errors.ts";
import { formatSize } from "./dir_listing.ts";
import { mtimeOf, readPieces } from "./file_version.ts";
import { type FolderPolicy, readFolder } from "./folder_entries.ts";
import { openBeneath } from "./open_beneath.ts";
import { ZipWriter } from "./zip_stream.ts";

/** What may go in an archive: what the static handler would serve, within limits. */
export interface ArchivePolicy extends FolderPolicy {
  /** Most bytes of file contents. Over: 413. */
  readonly maxBytes: number;
  /** Most entries (files and folders). Over: 413. */
  readonly maxEntries: number;
  /** Read size per file read. */
  readonly chunkBytes: number;
  /** Files this big or bigger get Zip64 records (tests lower it). */
  readonly zip64FromBytes?: number;
}

/** One file or folder to archive: its name in the archive, where it is. */
interface WalkEntry {
  /** Path inside the archive, "/"-separated, without a trailing "/". */
  readonly name: string;
  /** Real path under the root. */
  readonly real: string;
  readonly directory: boolean;
  readonly mtimeMs: number;
}

/** A walked folder, ready to send. */
export interface FolderWalk {
  readonly entries: readonly WalkEntry[];
  /** Bytes of file contents, as walked. */
  readonly bytes: number;
}

function tooLarge(what: string, flag: string): HttpError {
  return new HttpError(STATUS.ContentTooLarge, `Archive refused: ${what}`, {
    expose:
      `This folder is too large to download as one archive: ${what} (${flag})`,
  });
}

/**
 * Walks the folder at `dir` (a real path under `policy.root`), leaving out
 * what the static handler would not serve: dotfiles when denied, links out
 * of the root or to dotfiles, files outside the extension policy, hard-linked
 * files under `strictLinks`, sockets, FIFOs and devices, and names no URL
 * can name. Each folder read is proved to be under the root after the read,
 * as a listing is. Folders reached twice (a link to a parent) are walked
 * once. Throws HttpError 413 as soon as the folder passes a limit.
 */
export async function walkFolder(
  dir: string,
  top: string,
  policy: ArchivePolicy,
): Promise<FolderWalk> {
  const entries: WalkEntry[] = [];
  const seen = new Set<string>();
  let bytes = 0;
  const stack: { real: string; name: string }[] = [{ real: dir, name: top }];
  const add = (entry: WalkEntry, size: number) => {
    entries.push(entry);
    if (entries.length > policy.maxEntries) {
      throw tooLarge(
        `more than ${policy.maxEntries} files and folders`,
        "entry limit",
      );
    }
    bytes += size;
    if (bytes > policy.maxBytes) {
      throw tooLarge(
        `more than ${formatSize(policy.maxBytes)}`,
        "--archive-max",
      );
    }
  };
  while (stack.length > 0) {
    const folder = stack.pop()!;
    const info = await Deno.stat(folder.real);
    const key = `${info.dev}:${info.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const read = await readFolder(folder.real, policy);
    if (read === null && entries.length === 0) {
      // The folder asked for: as a listing would, say so rather than send an empty zip.
      throw new HttpError(
        STATUS.ServiceUnavailable,
        `Folder changed while being read: ${folder.real}`,
        {
          expose: "This folder is changing; try again",
          headers: { "retry-after": "1" },
        },
      );
    }
    if (read === null) continue; // not provably under the root: left out
    add({
      name: folder.name,
      real: folder.real,
      directory: true,
      mtimeMs: mtimeOf(info),
    }, 0);
    const children = read.entries.sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    );
    // Pushed in reverse so the walk goes in name order, depth first.
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i];
      const name = `${folder.name}/${child.name}`;
      if (child.info.isDirectory) {
        stack.push({ real: child.real, name });
      } else {
        add({
          name,
          real: child.real,
          directory: false,
          mtimeMs: mtimeOf(child.info),
        }, child.info.size);
      }
    }
  }
  // Folders were added when reached; put each before its contents in name order.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { entries, bytes };
}

/**
 * The zip of a walked folder, piece by piece. Each file is opened when its
 * turn comes and proved under the root ({@link openBeneath}); one that is
 * gone or no longer provably inside is left out. A file is sent as it is
 * when opened, at most the size its fstat gave; if files grew since the walk
 * past the limit, the stream fails (the client sees a cut download).
 */
export function zipFolder(
  walk: FolderWalk,
  policy: ArchivePolicy,
): AsyncGenerator<Uint8Array> {
  return coalesce(zipPieces(walk, policy), COALESCE_BYTES);
}

/**
 * Headers and small files are gathered into writes of about this size: a
 * folder of 10,000 small files is then ~500 writes, not 30,000.
 */
const COALESCE_BYTES = 64 * 1024;

/**
 * Joins pieces smaller than `bytes` into one; larger pieces pass as they
 * are. A small piece is copied when taken: its buffer may be reused.
 */
async function* coalesce(
  pieces: AsyncGenerator<Uint8Array>,
  bytes: number,
): AsyncGenerator<Uint8Array> {
  let held: Uint8Array[] = [];
  let length = 0;
  const join = () => {
    const out = new Uint8Array(length);
    let at = 0;
    for (const p of held) {
      out.set(p, at);
      at += p.length;
    }
    held = [];
    length = 0;
    return out;
  };
  for await (const piece of pieces) {
    if (piece.length >= bytes) {
      if (length > 0) yield join();
      yield piece;
      continue;
    }
    held.push(piece.slice());
    length += piece.length;
    if (length >= bytes) yield join();
  }
  if (length > 0) yield join();
}

async function* zipPieces(
  walk: FolderWalk,
  policy: ArchivePolicy,
): AsyncGenerator<Uint8Array> {
  const zip = new ZipWriter({ zip64FromBytes: policy.zip64FromBytes });
  let total = 0;
  // One read buffer for the whole archive: the engine writes each piece
  // before it asks for the next (for await), and coalesce() copies what it
  // holds. Fresh buffers cost ~70 MiB more peak memory per archive, all
  // garbage waiting for V8 to count it (2 GiB sent, measured).
  const reuse = new Uint8Array(policy.chunkBytes);
  for (const entry of walk.entries) {
    if (entry.directory) {
      yield zip.directory(entry.name, entry.mtimeMs);
      continue;
    }
    let opened;
    try {
      opened = await openBeneath(policy.root, entry.real, {
        strictLinks: policy.strictLinks,
      });
    } catch {
      opened = null; // gone, or unreadable now
    }
    if (opened === null) continue;
    using file = opened.file;
    const size = opened.info.size;
    if (total + size > policy.maxBytes) {
      throw new Error(`Folder grew past the archive limit: ${entry.real}`);
    }
    yield zip.beginFile(
      entry.name,
      mtimeOf(opened.info),
      (opened.info.mode ?? 0o644) & 0o7777,
      size,
    );
    let crc = 0;
    let sent = 0;
    // Shrunk since the walk: the descriptor records what was sent.
    for await (
      const piece of readPieces(file, size, policy.chunkBytes, reuse)
    ) {
      crc = crc32(piece, crc);
      sent += piece.length;
      yield piece;
    }
    total += sent;
    yield zip.endFile(crc, sent);
  }
  yield zip.finish();
}
