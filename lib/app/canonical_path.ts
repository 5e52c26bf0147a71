/**
 * The one canonical form of a request path. The router, the middleware and the
 * static handler all call {@link canonicalPath}, so a path means the same thing
 * to every layer: decoded once, and refused (never repaired) when it holds
 * anything a file system or a later decoder could read differently.
 */
import { HttpError, STATUS } from "../http/errors.ts";

const SLASH = 0x2f;
const DOT = 0x2e;
const SPACE = 0x20;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const DEL = 0x7f;
const COLON = 0x3a;
const WINDOWS = Deno.build.os === "windows";
const WINDOWS_RESERVED = '<>"|?*';

// Windows device names: opening `nul.txt` or `COM1` there reaches a device,
// not a file, whatever the folder (CVE-2007-1342 style, Werkzeug 3.1.4-3.1.6).
const DEVICE_NAMES = new Set([
  "CON",
  "PRN",
  "AUX",
  "NUL",
  "CONIN$",
  "CONOUT$",
  "CLOCK$",
  ..."0123456789\u00b9\u00b2\u00b3".split("").flatMap((d) => [
    `COM${d}`,
    `LPT${d}`,
  ]),
]);

function refuse(what: string, subject = "path"): HttpError {
  const message = `Cannot accept ${subject}: ${what}`;
  return new HttpError(STATUS.BadRequest, message, { expose: message });
}

/**
 * Percent-decodes a raw request path once and checks it is safe to map onto
 * files: starts with "/", no NUL or control characters, no backslash, no
 * encoded "/", no "." or ".." segment, no empty segment ("//"), no segment
 * ending in "." or space and no Windows device name (`CON`, `nul.txt`).
 * A trailing "/" is kept. Fast path: a path without "%" is only checked.
 *
 * @throws {HttpError} 400 for any of the above, a malformed escape or bytes
 *   that are not UTF-8 (including overlong forms such as `%c0%ae`).
 */
export function canonicalPath(rawPath: string): string {
  // The static fallback asks again for the path the router just decoded:
  // the same string, so the answer is remembered (only ever a good one).
  if (rawPath === lastRaw) return lastPath;
  const path = decodePath(rawPath);
  lastRaw = rawPath;
  return lastPath = path;
}

/** The last path {@link canonicalPath} accepted, raw and decoded. */
let lastRaw: string | undefined;
let lastPath = "";

function decodePath(rawPath: string): string {
  // Most paths are plain names already: one pass says so.
  if (isPlainPath(rawPath)) return rawPath;
  return decodePathLong(rawPath);
}

/**
 * True when `path` is canonical as it stands: starts with "/", printable
 * ASCII without "%" or backslash, no empty segment (a trailing "/" aside),
 * no segment ending in "." or space, none that could be a device name.
 * One pass, no allocation; any other path takes {@link decodePathLong},
 * which accepts exactly these unchanged and says what is wrong with the rest.
 */
function isPlainPath(path: string): boolean {
  if (path.charCodeAt(0) !== SLASH) return false;
  let start = 1; // first character of the current segment
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : SLASH;
    if (c === SLASH) {
      if (i === start) return i === path.length; // "//" or a trailing "/"
      const last = path.charCodeAt(i - 1);
      if (last === DOT || last === SPACE || mayBeDevice(path, start, i)) {
        return false;
      }
      start = i + 1;
    } else if (
      c < SPACE || c >= DEL || c === PERCENT || c === BACKSLASH
    ) return false;
  }
  return true;
}

/**
 * False when path[start, end) cannot be a Windows device name, with or
 * without an extension: too short, not starting like one (CON, PRN, AUX,
 * NUL, COM, LPT, CLOCK$), or a stem too long. True leaves it to
 * {@link checkSegment}.
 */
function mayBeDevice(path: string, start: number, end: number): boolean {
  if (end - start < 3) return false;
  // The first three characters, lower-cased, as one number: no string made.
  const prefix = (path.charCodeAt(start) | 0x20) << 16 |
    (path.charCodeAt(start + 1) | 0x20) << 8 |
    (path.charCodeAt(start + 2) | 0x20);
  if (!DEVICE_PREFIXES.includes(prefix)) return false;
  for (let i = start + 3; i < end; i++) {
    if (path.charCodeAt(i) === DOT) return i - start <= 7;
  }
  return end - start <= 7;
}

/** How every device name starts, in lower case, as {@link mayBeDevice} packs it. */
const DEVICE_PREFIXES = ["con", "prn", "aux", "nul", "com", "lpt", "clo"].map(
  (p) => p.charCodeAt(0) << 16 | p.charCodeAt(1) << 8 | p.charCodeAt(2),
);

/**
 * {@link canonicalPath} the long way, every check in turn. Exported for the
 * property test that holds the one-pass way to it.
 *
 * @ignore
 */
export function decodePathLong(rawPath: string): string {
  if (rawPath.charCodeAt(0) !== SLASH) throw refuse("must start with /");
  let hasPercent = false;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === PERCENT) {
      hasPercent = true;
      // "%2f" would let one segment hold a "/" that a later decode splits;
      // checked before decoding because afterwards it looks like any "/".
      const next = rawPath.charCodeAt(i + 1);
      const last = rawPath.charCodeAt(i + 2) | 0x20;
      if (next === 0x32 && last === 0x66) throw refuse("encoded slash");
    } else if (c > 0x7e) {
      // RFC 3986 targets are ASCII; a client sending raw bytes is not a browser.
      throw refuse("raw non-ASCII character");
    }
  }
  let path = rawPath;
  if (hasPercent) {
    try {
      // Strict UTF-8: rejects overlong forms, surrogates and stray bytes.
      path = decodeURIComponent(rawPath);
    } catch {
      throw refuse("malformed percent-encoding or not UTF-8");
    }
  }
  checkSegments(path);
  return path;
}

/** Throws unless every segment of a decoded path is a plain, portable name. */
function checkSegments(path: string): void {
  let start = 1; // first character of the current segment
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : SLASH;
    if (c === SLASH) {
      if (i === start) {
        if (i === path.length) return; // trailing "/" (or the root "/")
        throw refuse("empty segment");
      }
      checkSegment(path, start, i);
      start = i + 1;
    } else if (c < SPACE || c === DEL || (c >= 0x80 && c <= 0x9f)) {
      throw refuse("control character");
    } else if (c === BACKSLASH) {
      throw refuse("backslash"); // a separator on Windows
    }
  }
}

/** Checks path[start, end), a non-empty segment; `subject` names it in errors. */
function checkSegment(
  path: string,
  start: number,
  end: number,
  subject = "path",
): void {
  const last = path.charCodeAt(end - 1);
  if (last === DOT) {
    // "." and "..", and "name." which Windows opens as "name".
    throw refuse(
      end - start <= 2 && path.charCodeAt(start) === DOT
        ? "dot segment"
        : "segment ends in a dot",
      subject,
    );
  }
  if (last === SPACE) throw refuse("segment ends in a space", subject);
  const len = end - start;
  if (len < 3) return;
  // Every device name starts with A, C, L, N or P: most segments stop here.
  const first = path.charCodeAt(start) | 0x20;
  if (
    first !== 0x61 && first !== 0x63 && first !== 0x6c && first !== 0x6e &&
    first !== 0x70
  ) return;
  // Device names count with any extension: "nul.txt", "COM1.tar.gz".
  let stem = end;
  for (let i = start; i < end; i++) {
    if (path.charCodeAt(i) === DOT) {
      stem = i;
      break;
    }
  }
  if (stem - start > 7) return;
  const name = path.slice(start, stem).trimEnd().toUpperCase();
  if (DEVICE_NAMES.has(name)) throw refuse("reserved device name", subject);
}

/** A file name's bytes on disk: ext4, APFS, NTFS and most others stop at 255. */
const MAX_NAME_BYTES = 255;
const encoder = new TextEncoder();

/**
 * Checks a file name from a client (an upload form's `filename`) by the
 * rules URL segments follow, so the stored file can be served back by its
 * name: Unicode NFC first, then refused when empty, longer than 255 UTF-8
 * bytes, holding a separator (`/`, `\\`, and `:` for Windows drives and
 * streams), an encoded separator or NUL (`%2F`, `%5C`, `%00`), a control
 * or bidi-override character (a name that displays as another), starting
 * with a dot (dotfiles, `.`, `..`), ending in a dot or space, or a Windows
 * device name (`CON`, `nul.txt`). On Windows `<>"|?*` are refused too.
 *
 * @returns the name in NFC, as it should be stored.
 * @throws {HttpError} 400 naming the rule broken.
 */
export function checkFileName(raw: string): string {
  const subject = "file name";
  const name = raw.normalize("NFC");
  if (name === "") throw refuse("empty", subject);
  if (encoder.encode(name).length > MAX_NAME_BYTES) {
    throw refuse(`longer than ${MAX_NAME_BYTES} bytes`, subject);
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === SLASH || c === BACKSLASH || c === COLON) {
      throw refuse("path separator", subject);
    }
    if (c < SPACE || c === DEL || (c >= 0x80 && c <= 0x9f)) {
      throw refuse("control character", subject);
    }
    // Bidi embeddings, overrides and isolates: "gpj.exe" shown as "exe.jpg".
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) {
      throw refuse("bidirectional control character", subject);
    }
    if (WINDOWS && WINDOWS_RESERVED.includes(name[i])) {
      throw refuse("character Windows does not allow", subject);
    }
  }
  if (/%(?:2f|5c|00)/i.test(name)) throw refuse("encoded separator", subject);
  if (name.charCodeAt(0) === DOT) throw refuse("starts with a dot", subject);
  checkSegment(name, 0, name.length, subject);
  return name;
}

/** True when any segment starts with "." (`/.env`, `/a/.git/config`). */
export function isDotPath(path: string): boolean {
  return path.charCodeAt(0) === DOT || path.includes("/.");
}
