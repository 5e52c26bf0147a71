/**
 * POST /upload: a JSON document stored as `<UTC time>-<random>.json`, written
 * crash-safe (temp file, fsync, link), within a per-upload limit (413) and a
 * quota on the whole folder (507). The folder's size is scanned once, then
 * tracked in memory, with bytes of uploads in flight reserved up front.
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
import type { AppRequest } from "./request.ts";
import { json } from "./response.ts";
import type { AppHandler } from "./router.ts";

export interface UploadOptions {
  /** Folder the documents go to; created when missing. */
  readonly dir: string;
  /** Total bytes the folder may hold. Over: 507. */
  readonly quotaBytes: number;
  /** Clock for file names (tests inject one). */
  readonly now?: () => Date;
  /** Piece writer (tests inject a failing one). */
  readonly write?: WritePiece;
}

/** A temp file older than this is a crash leftover, not an upload in flight. */
const STALE_TEMP_MS = 60 * 60 * 1000;

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

/** The uploads folder and its quota. One per process. */
export class UploadStore {
  readonly dir: string;
  readonly quotaBytes: number;
  readonly #now: () => Date;
  readonly #write: WritePiece | undefined;
  #used = 0;
  /** Bytes of uploads being written now, counted against the quota. */
  #reserved = 0;
  #ready: Promise<void> | undefined;

  constructor(options: UploadOptions) {
    this.dir = options.dir;
    this.quotaBytes = options.quotaBytes;
    this.#now = options.now ?? (() => new Date());
    this.#write = options.write;
  }

  /** Bytes stored, once {@link ready} resolved. */
  get usedBytes(): number {
    return this.#used;
  }

  /** Scans the folder once (creating it if missing); later calls share the scan. */
  ready(): Promise<void> {
    return this.#ready ??= this.#scan().catch((err) => {
      this.#ready = undefined; // let the next upload try again
      throw err;
    });
  }

  async #scan(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    let used = 0;
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile) continue;
      const path = join(this.dir, entry.name);
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(path);
      } catch {
        continue; // removed while we looked
      }
      if (entry.name.startsWith(TEMP_PREFIX)) {
        const age = Date.now() - (info.mtime?.getTime() ?? 0);
        if (age > STALE_TEMP_MS) await Deno.remove(path).catch(() => {});
        continue;
      }
      used += info.size;
    }
    this.#used = used;
  }

  /** Throws 507 unless `bytes` more fit the quota (with uploads in flight). */
  checkRoom(bytes: number): void {
    if (this.#used + this.#reserved + bytes > this.quotaBytes) {
      throw storageFull("Upload quota is full");
    }
  }

  /**
   * Stores one validated document. Never leaves a partial or empty file:
   * on a full disk or any other failure the temp file is removed.
   *
   * @throws {HttpError} 507 when the quota or the disk is full.
   */
  async save(data: Uint8Array): Promise<{ file: string; bytes: number }> {
    await this.ready();
    this.checkRoom(data.length);
    this.#reserved += data.length;
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
      this.#used += data.length;
      return { file: name, bytes: data.length };
    } catch (err) {
      if (isDiskFull(err)) throw storageFull("Disk is full");
      throw err;
    } finally {
      this.#reserved -= data.length;
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
    await store.ready();
    const declared = req.raw.body.length;
    if (declared !== null) store.checkRoom(declared);
    const bytes = await req.bytes();
    parseJsonBytes(bytes); // validate only: the client's bytes are stored as sent
    const saved = await store.save(bytes);
    return json(saved, {
      status: STATUS.Created,
      headers: { location: locationPrefix + saved.file },
    });
  };
}
