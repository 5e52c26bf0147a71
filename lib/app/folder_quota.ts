/**
 * A quota on the bytes a folder and its subfolders hold. The folder is
 * counted once (at the first upload), then tracked in memory: bytes of
 * uploads in flight are reserved as they arrive, stored bytes are added
 * when a file is published, replaced or removed files give theirs back.
 * When the quota looks full the folder is counted again, at most once a
 * second while it stays full, since files may have been deleted on disk.
 * The counts live in a {@link QuotaLedger}: this engine's own, or one in
 * memory every `--workers` engine shares, so the quota is the folder's.
 */
import { join } from "node:path";
import { HttpError, STATUS } from "../http/errors.ts";
import { QuotaLedger } from "../shared/quota.ts";
import { TEMP_PREFIX } from "./atomic_write.ts";

/**
 * A full folder is counted again at most this often: the count is a stat per
 * file, and a client posting to a full quota must not cause one per request.
 */
const RECOUNT_FULL_MS = 1000;

export interface FolderQuotaOptions {
  /** The folder; created when missing. */
  readonly dir: string;
  /** Total bytes it may hold. Over: 507. */
  readonly quotaBytes: number;
  /** Clock for recounts, in ms (tests inject one). */
  readonly now?: () => number;
  /** The counts; default: this engine's own. Engines sharing the folder share one. */
  readonly ledger?: QuotaLedger;
}

function storageFull(what: string): HttpError {
  return new HttpError(STATUS.InsufficientStorage, what, { expose: what });
}

/** The bytes a folder tree holds, tracked against a quota. One per folder and engine. */
export class FolderQuota {
  readonly dir: string;
  readonly quotaBytes: number;
  readonly #now: () => number;
  readonly #ledger: QuotaLedger;
  #ready: Promise<void> | undefined;
  /** When a count last found the folder full, in ms since the epoch. */
  #foundFullAt = -Infinity;

  constructor(options: FolderQuotaOptions) {
    this.dir = options.dir;
    this.quotaBytes = options.quotaBytes;
    this.#now = options.now ?? Date.now;
    this.#ledger = options.ledger ?? new QuotaLedger();
  }

  /** Bytes stored, once {@link ready} resolved. */
  get usedBytes(): number {
    return this.#ledger.usedBytes;
  }

  /**
   * Counts the folder once (creating it if missing); later calls share the
   * count, and so do engines sharing the ledger.
   */
  ready(): Promise<void> {
    return this.#ready ??= Deno.mkdir(this.dir, { recursive: true })
      .then(() => this.#ledger.counted ? undefined : this.#count())
      .catch((err) => {
        this.#ready = undefined; // let the next upload try again
        throw err;
      });
  }

  /** Counts the folder; one engine at a time, the others wait for its count. */
  #count(): Promise<void> {
    return this.#ledger.recount(() => sizeOfTree(this.dir));
  }

  #fits(bytes: number): boolean {
    return this.#ledger.committedBytes + bytes <= this.quotaBytes;
  }

  /**
   * Throws 507 unless `bytes` more fit the quota (with uploads in flight).
   * When they seem not to, the folder is counted again first, at most once
   * a second while it stays full: files deleted on disk free their room.
   */
  async check(bytes: number): Promise<void> {
    await this.ready();
    if (this.#fits(bytes)) return;
    if (this.#now() - this.#foundFullAt >= RECOUNT_FULL_MS) {
      await this.#count();
      if (this.#fits(bytes)) return;
      this.#foundFullAt = this.#now();
    }
    throw storageFull("Upload quota is full");
  }

  /**
   * Counts `bytes` more as being written. Returns at once when they fit;
   * otherwise checks (and maybe recounts) first. Throws 507 when they do not.
   */
  reserve(bytes: number): void | Promise<void> {
    if (
      this.#ready !== undefined && this.#ledger.counted &&
      this.#ledger.tryReserve(bytes, this.quotaBytes)
    ) return;
    return this.check(bytes).then(() => {
      // Another upload may have taken the room while this one waited for a count.
      if (!this.#ledger.tryReserve(bytes, this.quotaBytes)) {
        throw storageFull("Upload quota is full");
      }
    });
  }

  /** Gives back bytes reserved for a file that was not stored after all. */
  release(bytes: number): void {
    this.#ledger.unreserve(bytes);
  }

  /** Reserved bytes were stored under a name: they now count as the folder's. */
  stored(bytes: number): void {
    this.#ledger.stored(bytes);
  }

  /** A stored file went (replaced by an upload, or removed by one that failed). */
  freed(bytes: number): void {
    this.#ledger.freed(bytes);
  }
}

/**
 * Bytes of the regular files in a folder and its subfolders, temp files
 * left out. Symlinks are not followed: what they point at is counted where
 * it lies, or not at all.
 */
async function sizeOfTree(dir: string): Promise<number> {
  let used = 0;
  const folders = [dir];
  for (
    let folder = folders.pop();
    folder !== undefined;
    folder = folders.pop()
  ) {
    try {
      for await (const entry of Deno.readDir(folder)) {
        const path = join(folder, entry.name);
        if (entry.isDirectory) folders.push(path);
        if (!entry.isFile || entry.name.startsWith(TEMP_PREFIX)) continue;
        try {
          used += (await Deno.lstat(path)).size;
        } catch {
          // removed while we looked
        }
      }
    } catch (err) {
      // A subfolder removed or unreadable while we looked; the top one must be there.
      if (folder === dir) throw err;
    }
  }
  return used;
}
