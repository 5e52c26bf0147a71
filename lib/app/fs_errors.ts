/**
 * File system errors as a client sees them, decided in one place for every
 * handler that touches files (static files, listings, archives, `/files`,
 * uploads): the same error gets the same status whichever route met it.
 */
import { HttpError, STATUS } from "../http/errors.ts";

/** What a file system error met while finding or reading a path says of it. */
export type ReadFault = "denied" | "missing";

/**
 * "denied" when the OS refused access (EACCES: 403); "missing" for all that
 * means nothing is there to serve (404): not found, a file where a folder
 * was, a symlink loop, a place outside `--allow-read` (NotCapable, issue #9,
 * once a 500), a name too long for the file system.
 *
 * @throws `err` itself when it is no file system error: a bug, a 500.
 */
export function readFault(err: unknown): ReadFault {
  if (err instanceof Deno.errors.PermissionDenied) return "denied";
  if (err instanceof Error && (err.name in Deno.errors || "code" in err)) {
    return "missing";
  }
  throw err;
}

/**
 * null for a path that is not there, for the caller to answer with its own
 * 404 (a page, a fallback); throws 403 for one the OS will not let the
 * server read, and rethrows what is no file system error.
 */
export function missingOrThrow(err: unknown): null {
  if (readFault(err) === "denied") {
    throw new HttpError(
      STATUS.Forbidden,
      "Permission denied by the file system",
      { cause: err },
    );
  }
  return null;
}

/** True for the OS saying the disk or the user's disk quota is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** 507 for a write that met a full disk or quota ({@link isDiskFull}). */
export function diskFull(cause: unknown): HttpError {
  return new HttpError(STATUS.InsufficientStorage, "Disk is full", {
    expose: "Disk is full",
    cause,
  });
}
