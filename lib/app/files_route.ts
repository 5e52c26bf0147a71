/**
 * GET and POST /files/{name}: raw files in one flat folder (`--directory`),
 * as in the CodeCrafters HTTP server course. Names are single plain segments;
 * a write goes through a temp file and a rename, so readers never see half.
 */
import { join } from "node:path";
import { HttpError, STATUS } from "../http/errors.ts";
import { FileBody, type Reply } from "../http/handler.ts";
import { writeAtomic } from "./atomic_write.ts";
import type { AppHandler } from "./router.ts";

/** Longest name most file systems take, in UTF-16 units (bytes checked by the OS). */
const MAX_NAME_LENGTH = 255;

/**
 * Checks a file name from the path: one segment, no separator, NUL, or dot
 * segment, and no leading dot (temp files and dotfiles stay private).
 *
 * @throws {HttpError} 400 naming what is wrong; 404 for an empty name.
 */
export function checkFileName(name: string): string {
  if (name === "") throw new HttpError(STATUS.NotFound, "No file name given");
  let why: string | undefined;
  if (name.includes("/") || name.includes("\\")) {
    why = "contains a path separator";
  } else if (name === "." || name === "..") why = "is a dot segment";
  else if (name.startsWith(".")) why = "starts with a dot";
  else if (name.includes("\0")) why = "contains NUL";
  else if (name.length > MAX_NAME_LENGTH) why = "is too long";
  if (why !== undefined) {
    const message = `File name ${why}`;
    throw new HttpError(STATUS.BadRequest, message, { expose: message });
  }
  return name;
}

/** GET (and HEAD) /files/{*name}: the file as bytes, 404 when missing. */
export function getFile(
  dir: string,
  contentType = "application/octet-stream",
): AppHandler {
  return async (req): Promise<Reply> => {
    const name = checkFileName(req.params.name ?? "");
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(dir, name), { read: true });
    } catch (err) {
      if (
        err instanceof Deno.errors.NotFound ||
        err instanceof Deno.errors.NotADirectory
      ) {
        throw new HttpError(STATUS.NotFound, `No file ${name}`);
      }
      throw err;
    }
    try {
      const info = await file.stat();
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
    const { bytes } = await writeAtomic(dir, name, req.chunks(), {
      replace: true,
    });
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
