/**
 * POST /upload: a JSON document stored as `<UTC time>-<random>.json`, written
 * crash-safe (temp file, fsync, link), within a per-upload limit (413) and a
 * quota on the whole folder (507, lib/app/folder_quota.ts).
 */
import { parseJsonBytes } from "../http/body.ts";
import { STATUS } from "../http/errors.ts";
import type { Reply } from "../http/handler.ts";
import { writeAtomic, type WritePiece } from "./atomic_write.ts";
import { FolderQuota } from "./folder_quota.ts";
import type { QuotaLedger } from "../shared/quota.ts";
import { diskFull, isDiskFull } from "./fs_errors.ts";
import type { AppRequest } from "./app_request.ts";
import { json } from "./replies.ts";
import type { AppHandler } from "./router.ts";

export interface UploadOptions {
  /** Folder the documents go to; created when missing. */
  readonly dir: string;
  /** Total bytes the folder may hold. Over: 507. */
  readonly quotaBytes: number;
  /** Clock for file names and recounts (tests inject one). */
  readonly now?: () => Date;
  /** Piece writer (tests inject a failing one). */
  readonly write?: WritePiece;
  /**
   * The quota's counts; default: this engine's own. `--workers` engines
   * share one, so the quota holds for the folder, not per engine.
   */
  readonly ledger?: QuotaLedger;
}

/** `20261121T120000.123Z-1a2b3c4d.json`: sorts by time, unguessable, portable. */
export function uploadName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, "");
  const rand = crypto.getRandomValues(new Uint32Array(1))[0];
  return `${stamp}-${rand.toString(16).padStart(8, "0")}.json`;
}

/** The uploads folder and its quota. One per engine. */
export class UploadStore {
  readonly dir: string;
  readonly quotaBytes: number;
  readonly #now: () => Date;
  readonly #write: WritePiece | undefined;
  readonly #quota: FolderQuota;

  constructor(options: UploadOptions) {
    this.dir = options.dir;
    this.quotaBytes = options.quotaBytes;
    const now = this.#now = options.now ?? (() => new Date());
    this.#write = options.write;
    this.#quota = new FolderQuota({
      dir: options.dir,
      quotaBytes: options.quotaBytes,
      now: () => now().getTime(),
      ledger: options.ledger,
    });
  }

  /** Bytes stored, once {@link ready} resolved. */
  get usedBytes(): number {
    return this.#quota.usedBytes;
  }

  /** Counts the folder once (creating it if missing); later calls share the count. */
  ready(): Promise<void> {
    return this.#quota.ready();
  }

  /**
   * Throws 507 unless `bytes` more fit the quota (with uploads in flight).
   * When they seem not to, the folder is counted again first, at most once
   * a second while it stays full: files deleted on disk free their room.
   */
  checkRoom(bytes: number): Promise<void> {
    return this.#quota.check(bytes);
  }

  /**
   * Stores one validated document. Never leaves a partial or empty file:
   * on a full disk or any other failure the temp file is removed.
   *
   * @throws {HttpError} 507 when the quota or the disk is full.
   */
  async save(data: Uint8Array): Promise<{ file: string; bytes: number }> {
    await this.#quota.reserve(data.length);
    try {
      const { name } = await writeAtomic(
        this.dir,
        () => uploadName(this.#now()),
        data,
        {
          replace: false,
          write: this.#write,
        },
      );
      this.#quota.stored(data.length);
      return { file: name, bytes: data.length };
    } catch (err) {
      this.#quota.release(data.length);
      throw isDiskFull(err) ? diskFull(err) : err;
    }
  }
}

/**
 * The POST /upload handler. The route's contract has already checked the
 * media type and a declared length; a declared length past the quota is
 * refused here, still before the body is read.
 *
 * @param locationPrefix URL path the stored files are served under (`/uploads/`).
 */
export function uploadHandler(
  store: UploadStore,
  locationPrefix: string,
): AppHandler {
  return async (req: AppRequest): Promise<Reply> => {
    const declared = req.raw.body.length;
    await store.checkRoom(declared ?? 0);
    const bytes = await req.bytes();
    // The body reader's parse, on the bytes the route's limit let in:
    // validate only, the client's bytes are stored as sent.
    parseJsonBytes(bytes);
    const saved = await store.save(bytes);
    return json(saved, {
      status: STATUS.Created,
      headers: { location: locationPrefix + saved.file },
    });
  };
}
