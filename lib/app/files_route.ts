/**
 * GET and POST /files/{name}: raw files in one flat folder (`--directory`),
 * as in the CodeCrafters HTTP server course. Names are single plain segments;
 * a write goes through a temp file and a rename, so readers never see half.
 * A read is contained as a static file's is: a symlink is followed only to a
 * file under the folder, proved after the open (openBeneath()).
 */
import { join } from "node:path";
import { HttpError, STATUS } from "../http/errors.ts";
import { FileBody, type Reply } from "../http/handler.ts";
import { writeAtomic } from "./atomic_write.ts";
import { diskFull, isDiskFull, readFault } from "./fs_errors.ts";
import { isBeneath, openBeneath } from "./open_beneath.ts";
import type { AppHandler } from "./router.ts";

/** Longest name most file systems take (NAME_MAX), in UTF-8 bytes. */
const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();

/**
 * Checks a file name from the path: one segment, no separator, NUL, or dot
 * segment, and no leading dot (temp files and dotfiles stay private).
 *
 * @throws {HttpError} 400 naming what is wrong; 404 for an empty name.
 */
function checkFileName(name: string): string {
  if (name === "") throw new HttpError(STATUS.NotFound, "No file name given");
  let why: string | undefined;
  if (name.includes("/") || name.includes("\\")) {
    why = "contains a path separator";
  } else if (name === "." || name === "..") why = "is a dot segment";
  else if (name.startsWith(".")) why = "starts with a dot";
  else if (name.includes("\0")) why = "contains NUL";
  // NAME_MAX counts bytes, and the OS's ENAMETOOLONG would be a 500. A UTF-16
  // unit is at most 3 bytes, so most names need no encoding to pass.
  else if (
    name.length > MAX_NAME_BYTES / 3 &&
    encoder.encode(name).length > MAX_NAME_BYTES
  ) why = "is too long";
  if (why !== undefined) {
    const message = `File name ${why}`;
    throw new HttpError(STATUS.BadRequest, message, { expose: message });
  }
  return name;
}

/** A file system error as the client sees it (see readFault()): 403 or 404. */
function notServed(err: unknown, name: string): HttpError {
  return readFault(err) === "denied"
    ? new HttpError(STATUS.Forbidden, `Cannot read ${name}`, { cause: err })
    : new HttpError(STATUS.NotFound, `No file ${name}`, { cause: err });
}

export interface GetFileOptions {
  /** Content-Type of every reply; default `application/octet-stream`. */
  readonly contentType?: string;
  /** 404 for a file with more than one name (`--strict-links`). */
  readonly strictLinks?: boolean;
}

/** GET (and HEAD) /files/{*name}: the file as bytes, 404 when missing or not under `dir`. */
export function getFile(
  dir: string,
  options: GetFileOptions = {},
): AppHandler {
  const contentType = options.contentType ?? "application/octet-stream";
  const strictLinks = options.strictLinks ?? false;
  return async (req): Promise<Reply> => {
    const name = checkFileName(req.params.name ?? "");
    let opened;
    try {
      // The folder's real path afresh, as the static root's: a deploy may
      // re-point it. A symlink in it is followed only to a file under it,
      // with no dot segment on the way (temp files stay private).
      const realDir = await Deno.realPath(dir);
      const real = await Deno.realPath(join(dir, name));
      opened = isBeneath(real, realDir, true)
        ? await openBeneath(realDir, real, { strictLinks })
        : null;
    } catch (err) {
      throw notServed(err, name);
    }
    if (opened === null) {
      throw new HttpError(
        STATUS.NotFound,
        `${name} is not a file under the folder`,
      );
    }
    return {
      status: STATUS.OK,
      headers: { "content-type": contentType },
      // The length of what was opened; the engine closes it.
      body: new FileBody(opened.file, 0, opened.info.size),
    };
  };
}

/** POST /files/{*name}: stores the raw body (streamed to a temp file), 201. */
export function postFile(dir: string): AppHandler {
  return async (req): Promise<Reply> => {
    const name = checkFileName(req.params.name ?? "");
    let bytes: number;
    try {
      ({ bytes } = await writeAtomic(dir, name, req.chunks(), {
        replace: true,
      }));
    } catch (err) {
      if (isDiskFull(err)) throw diskFull(err);
      if (!(err instanceof Deno.errors.IsADirectory)) throw err;
      const message = "File name is taken by a folder";
      throw new HttpError(STATUS.Conflict, message, { expose: message });
    }
    return {
      status: STATUS.Created,
      headers: {
        location: `/files/${encodeURIComponent(name)}`,
        "content-type": "text/plain; charset=utf-8",
      },
      body: `Stored ${bytes} bytes\n`,
    };
  };
}
