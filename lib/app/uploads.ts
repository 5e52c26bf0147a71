/**
 * POST /upload: a JSON document stored as `<UTC time>-<random>.json`, written
 * crash-safe (temp file, fsync, link), within a per-upload limit (413) and a
 * quota on the whole folder (507). The folder's size is counted once, then
 * tracked in memory, with bytes of uploads in flight reserved up front; when
 * the quota looks full it is counted again, since files may have been
 * deleted on disk meanwhile. `--workers` engines share the counts (a
 * {@link QuotaLedger} in shared memory), so the quota is the folder's.
 */
import { join } from "node:path";
import { HttpError, STATUS } from "../http/errors.ts";
import type { Reply } from "../http/handler.ts";
import {
  isDiskFull,
  TEMP_PREFIX,
  writeAtomic,
  type WritePiece,
} from "./atomic_write.ts";
import { QuotaLedger } from "../shared/quota.ts";
import type { AppRequest } from "./request.ts";
import { json } from "./response.ts";
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

/**
 * A full folder is counted again at most this often: the count is a stat per
 * file, and a client posting to a full quota must not cause one per request.
 */
const RECOUNT_FULL_MS = 1000;

const decoder = new TextDecoder("utf-8", { fatal: true });

/** `20261121T120000.123Z-1a2b3c4d.json`: sorts by time, unguessable, portable. */
export function uploadName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, "");
  const rand = crypto.getRandomValues(new Uint32Array(1))[0];
  return `${stamp}-${rand.toString(16).padStart(8, "0")}.json`;
}

function storageFull(what: string): HttpError {
  return new HttpError(STATUS.InsufficientStorage, what, { expose: what });
}

/** The uploads folder and its quota. One per engine; engines may share a ledger. */
export class UploadStore {
  readonly dir: string;
  readonly quotaBytes: number;
  readonly #now: () => Date;
  readonly #write: WritePiece | undefined;
  readonly #ledger: QuotaLedger;
  #ready: Promise<void> | undefined;
  /** When a count last found the folder full, in ms since the epoch. */
  #foundFullAt = -Infinity;

  constructor(options: UploadOptions) {
    this.dir = options.dir;
    this.quotaBytes = options.quotaBytes;
    this.#now = options.now ?? (() => new Date());
    this.#write = options.write;
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
      .then(() => this.#ledger.counted ? undefined : this.#recount())
      .catch((err) => {
        this.#ready = undefined; // let the next upload try again
        throw err;
      });
  }

  #recount(): Promise<void> {
    return this.#ledger.recount(() => this.#count());
  }

  /** Bytes in the folder's files, temp files left out. */
  async #count(): Promise<number> {
    let used = 0;
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile || entry.name.startsWith(TEMP_PREFIX)) continue;
      try {
        used += (await Deno.stat(join(this.dir, entry.name))).size;
      } catch {
        // removed while we looked
      }
    }
    return used;
  }

  #fits(bytes: number): boolean {
    return this.#ledger.committedBytes + bytes <= this.quotaBytes;
  }

  /**
   * Throws 507 unless `bytes` more fit the quota (with uploads in flight).
   * When they seem not to, the folder is counted again first, at most once
   * a second while it stays full: files deleted on disk free their room.
   */
  async checkRoom(bytes: number): Promise<void> {
    await this.ready();
    if (this.#fits(bytes)) return;
    if (this.#now().getTime() - this.#foundFullAt >= RECOUNT_FULL_MS) {
      await this.#recount();
      if (this.#fits(bytes)) return;
      this.#foundFullAt = this.#now().getTime();
    }
    throw storageFull("Upload quota is full");
  }

  /**
   * Stores one validated document. Never leaves a partial or empty file:
   * on a full disk or any other failure the temp file is removed.
   *
   * @throws {HttpError} 507 when the quota or the disk is full.
   */
  async save(data: Uint8Array): Promise<{ file: string; bytes: number }> {
    await this.checkRoom(data.length);
    // Another upload may have taken the room while this one waited for a count.
    if (!this.#ledger.tryReserve(data.length, this.quotaBytes)) {
      throw storageFull("Upload quota is full");
    }
    let stored = false;
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
      this.#ledger.stored(data.length);
      stored = true;
      return { file: name, bytes: data.length };
    } catch (err) {
      if (isDiskFull(err)) throw storageFull("Disk is full");
      throw err;
    } finally {
      if (!stored) this.#ledger.unreserve(data.length);
    }
  }
}

/** Parses bytes as UTF-8 JSON; anything else is a 400 naming what failed. */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new HttpError(STATUS.BadRequest, "Upload is not UTF-8", {
      expose: "Request body is not valid UTF-8",
    });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(STATUS.BadRequest, "Upload is not valid JSON", {
      expose: `Request body is not valid JSON: ${(err as Error).message}`,
    });
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
    parseJsonBytes(bytes); // validate only: the client's bytes are stored as sent
    const saved = await store.save(bytes);
    return json(saved, {
      status: STATUS.Created,
      headers: { location: locationPrefix + saved.file },
    });
  };
}
