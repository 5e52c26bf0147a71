/**
 * A multipart/form-data body streamed into a folder: each file part goes
 * to disk as it arrives (temp file, fsync, link; lib/app/atomic_write.ts),
 * never held whole; plain fields are kept in memory under a small limit.
 * A form is stored whole or not at all: when a later part fails (a limit,
 * a bad name, a client gone), the files already stored for it are removed.
 */
import { join } from "node:path";
import { HttpError, STATUS } from "../http/errors.ts";
import {
  FolderChanged,
  removeWritten,
  writeAtomic,
  type WritePiece,
} from "./atomic_write.ts";
import { checkFileName } from "./canonical_path.ts";
import { diskFull, isDiskFull } from "./fs_errors.ts";
import {
  boundaryOf,
  type MultipartEvent,
  type MultipartLimits,
  MultipartParser,
} from "./multipart.ts";

/** Room for uploads, counted as the bytes arrive (lib/app/folder_quota.ts). */
export interface UploadQuota {
  /**
   * Counts `bytes` more as being written. Throws (or rejects with) HttpError
   * 507 when they do not fit.
   */
  reserve(bytes: number): void | Promise<void>;
  /** Gives back bytes reserved for a file that was not stored after all. */
  release(bytes: number): void;
  /** Reserved bytes were stored under a name. */
  stored(bytes: number): void;
  /** A stored file went: replaced by an upload, or removed when its form failed. */
  freed(bytes: number): void;
}

export interface FormUploadOptions {
  /** Folder the files go to; created when missing unless `create` is false. */
  readonly dir: string;
  /** Make `dir` when it is missing (default: true). */
  readonly create?: boolean;
  /**
   * A real folder each file must provably be created under (`dir` being a
   * real path below it): see writeAtomic(). Unproved: 503.
   */
  readonly beneath?: string;
  /** Parser limits: `maxPartBytes` is the largest file, `maxBytes` the whole body. */
  readonly limits: MultipartLimits;
  /** Plain (non-file) fields, all together, in bytes: they are held in memory. Over: 413. */
  readonly maxFieldBytes: number;
  /** Replace a file of the same name; else such a form gets 409. */
  readonly overwrite: boolean;
  readonly quota?: UploadQuota;
  /**
   * Called with each checked name before its data is read; throws an
   * HttpError for a name this folder does not take (a type not served).
   */
  readonly checkName?: (name: string) => void;
  /** Piece writer (tests inject a failing one). */
  readonly write?: WritePiece;
}

/** One stored file. */
export interface SavedFile {
  /** The form field it came in. */
  readonly field: string;
  /** Its name in the folder: the client's, checked and in NFC. */
  readonly name: string;
  readonly bytes: number;
  /** As the client declared it; never trusted for serving. */
  readonly contentType: string;
  /** It replaced a file of the same name (`overwrite`). */
  readonly replaced: boolean;
}

/** What a form held: the files stored, and the plain fields in order. */
export interface SavedForm {
  readonly files: SavedFile[];
  readonly fields: [name: string, value: string][];
}

function conflict(message: string): HttpError {
  return new HttpError(STATUS.Conflict, message, { expose: message });
}

/** What is at `path` now (a symlink as itself), or undefined. */
async function lstatOrNone(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Reads a multipart/form-data body from `body` (the request's pieces) and
 * stores its files in `options.dir` under the names the client gave,
 * checked by `checkFileName()`. The media type and boundary are checked
 * before the first piece is read.
 *
 * @throws {HttpError} 415 for another media type; 400 for a malformed form
 *   or file name (or a body cut short); 409 for a name taken, or given twice
 *   in the form; 413 past a limit; 507 when the quota or the disk is full.
 *   Nothing of the form is left stored after a throw.
 */
export async function saveForm(
  body: AsyncIterable<Uint8Array>,
  contentType: string | undefined,
  options: FormUploadOptions,
): Promise<SavedForm> {
  const parser = new MultipartParser(boundaryOf(contentType), options.limits);
  const dir = options.dir;
  if (options.create !== false) await Deno.mkdir(dir, { recursive: true });
  const source = body[Symbol.asyncIterator]();
  let ended = false;

  /** The next event, reading more of the body as the parser needs it. */
  const nextEvent = async (): Promise<MultipartEvent | undefined> => {
    for (;;) {
      const event = parser.next();
      if (event !== undefined) return event;
      if (ended) return undefined;
      const piece = await source.next();
      if (piece.done) {
        ended = true;
        parser.end(); // 400 unless the final boundary came
      } else parser.feed(piece.value);
    }
  };

  /** Bytes of the file being written, reserved against the quota. */
  let reserved = 0;
  const quota = options.quota;
  /** One part's data as it arrives, counted against the quota. */
  async function* partData(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const event = await nextEvent();
      if (event?.type === "end") return;
      if (event?.type !== "data") throw new Error("Multipart part never ended");
      const bytes = event.bytes;
      if (quota !== undefined) {
        const waited = quota.reserve(bytes.length);
        if (waited !== undefined) await waited;
        reserved += bytes.length;
      }
      yield bytes;
    }
  }

  const files: SavedFile[] = [];
  /** What each stored file is (device, inode), for a safe removal. */
  const written: Deno.FileInfo[] = [];
  const fields: [string, string][] = [];
  const names = new Set<string>();
  let fieldBytes = 0;
  try {
    for (let event = await nextEvent(); event !== undefined;) {
      if (event.type !== "part") { // "done": the epilogue is read and dropped
        event = await nextEvent();
        continue;
      }
      const { name: field, filename, contentType: type } = event.part;
      if (filename === undefined) {
        // UTF-8, the only charset forms are sent in; decoded as it comes.
        const decoder = new TextDecoder("utf-8", { fatal: true });
        let value = "";
        try {
          for await (const piece of fieldData()) {
            value += decoder.decode(piece, { stream: true });
          }
          value += decoder.decode();
        } catch (err) {
          if (!(err instanceof TypeError)) throw err;
          const message = "Cannot parse form: a field is not UTF-8";
          throw new HttpError(STATUS.BadRequest, message, { expose: message });
        }
        fields.push([field, value]);
      } else if (filename === "") {
        // A file input left empty: browsers send the part with no content.
        if (!(await partData().next()).done) {
          throw new HttpError(STATUS.BadRequest, "File part without a name", {
            expose: "Cannot accept file name: empty",
          });
        }
      } else {
        const name = checkFileName(filename);
        options.checkName?.(name);
        if (names.has(name)) {
          throw conflict(`Two files named ${name} in one form`);
        }
        names.add(name);
        // Checked before any data is read; link() settles a race later.
        const there = await lstatOrNone(join(dir, name));
        if (there !== undefined && !(options.overwrite && there.isFile)) {
          throw conflict(
            there.isFile
              ? `A file named ${name} exists already`
              : `Something other than a file is named ${name}`,
          );
        }
        const saved = await writeAtomic(dir, name, partData(), {
          replace: options.overwrite,
          write: options.write,
          beneath: options.beneath,
        });
        quota?.stored(reserved);
        reserved = 0;
        const replaced = there !== undefined;
        if (replaced) quota?.freed(there.size);
        files.push({
          field,
          name,
          bytes: saved.bytes,
          contentType: type,
          replaced,
        });
        written.push(saved.info);
      }
      event = await nextEvent();
    }
    return { files, fields };
  } catch (err) {
    // Not stored after all: remove what this form published, give its room
    // back. A file that replaced another stays: the one it replaced is gone.
    quota?.release(reserved);
    await Promise.all(files.map(async (f, i) => {
      if (f.replaced) return;
      if (await removeWritten(join(dir, f.name), written[i])) {
        quota?.freed(f.bytes);
      }
    }));
    if (err instanceof Deno.errors.AlreadyExists) {
      throw conflict("A file of that name appeared while uploading");
    }
    if (isDiskFull(err)) throw diskFull(err);
    if (err instanceof FolderChanged) {
      // A folder on the way was being swapped (an attack, or a deploy): try later.
      throw new HttpError(STATUS.ServiceUnavailable, err.message, {
        expose: "The folder changed while uploading; try again",
        headers: { "retry-after": "1" },
        close: true,
      });
    }
    throw err;
  }

  /** A plain field's data, under the limit on all fields together. */
  async function* fieldData(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const event = await nextEvent();
      if (event?.type === "end") return;
      if (event?.type !== "data") throw new Error("Multipart part never ended");
      fieldBytes += event.bytes.length;
      if (fieldBytes > options.maxFieldBytes) {
        throw new HttpError(
          STATUS.ContentTooLarge,
          "Form fields over the limit",
          {
            expose:
              `Form is too large: fields of more than ${options.maxFieldBytes} bytes`,
            close: true,
          },
        );
      }
      yield event.bytes;
    }
  }
}
