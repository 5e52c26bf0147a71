/**
 * GET and POST /files/{name}: raw files in one flat folder (`--directory`),
 * as in the CodeCrafters HTTP server course. Names are single plain segments;
 * a write goes through a temp file and a rename, so readers never see half.
 */
import { join } from "node:path";
import { HttpError, STATUS } from "../http/errors.ts";
import { FileBody, type Reply } from "../http/handler.ts";
import { isDiskFull, writeAtomic } from "./atomic_write.ts";
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

/** A file system error as the client sees it: 403, 404, or rethrown as is. */
function notServed(err: unknown, name: string): unknown {
  if (err instanceof Deno.errors.PermissionDenied) {
    return new HttpError(STATUS.Forbidden, `Cannot read ${name}`, {
      cause: err,
    });
  }
  if (
    err instanceof Deno.errors.NotFound ||
    err instanceof Deno.errors.NotADirectory
  ) return new HttpError(STATUS.NotFound, `No file ${name}`);
  return err;
}

/** GET (and HEAD) /files/{*name}: the file as bytes, 404 when missing. */
export function getFile(
  dir: string,
  contentType = "application/octet-stream",
): AppHandler {
  return async (req): Promise<Reply> => {
    const name = checkFileName(req.params.name ?? "");
    const path = join(dir, name);
    let file: Deno.FsFile;
    try {
      // Stat first: opening a FIFO for reading blocks until a writer comes.
      if (!(await Deno.stat(path)).isFile) {
        throw new HttpError(STATUS.NotFound, `${name} is not a file`);
      }
      file = await Deno.open(path, { read: true });
    } catch (err) {
      throw notServed(err, name);
    }
    try {
      const info = await file.stat(); // the length of what we opened
      if (!info.isFile) {
        throw new HttpError(STATUS.NotFound, `${name} is not a file`);
      }
      return {
        status: STATUS.OK,
        headers: { "content-type": contentType },
        body: new FileBody(file, 0, info.size), // the engine closes it
      };
    } catch (err) {
      file.close();
      throw err;
    }
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
      if (isDiskFull(err)) {
        throw new HttpError(STATUS.InsufficientStorage, "Disk is full", {
          expose: "Disk is full",
        });
      }
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
