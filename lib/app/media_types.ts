/**
 * Media types: what a file name's type is, the Content-Type it is sent
 * with and whether it is worth compressing; the type a Content-Type field
 * names, and whether it matches a route's list.
 */
import mime from "../npm/mime.ts";

// Types whose text is best read as UTF-8 when no charset is given.
const TEXT_TYPES = new Set([
  "application/javascript",
  "application/json",
  "application/xml",
  "application/manifest+json",
  "application/ld+json",
  "application/rss+xml",
  "application/atom+xml",
  "image/svg+xml",
]);

// Compressible besides text: JSON, XML, SVG, WebAssembly, source maps...
const COMPRESSIBLE_TYPES = new Set([
  ...TEXT_TYPES,
  "application/wasm",
  "application/x-javascript",
  "image/bmp",
  "image/vnd.microsoft.icon",
  "image/x-icon",
  "font/ttf",
  "font/otf",
  "application/vnd.ms-fontobject",
]);

/** The lower-case extension of a file name, without the dot; "" if none. */
export function extensionOf(name: string): string {
  const slash = name.lastIndexOf("/");
  const dot = name.lastIndexOf(".");
  return dot > slash + 1 ? name.slice(dot + 1).toLowerCase() : "";
}

/** The media type of a file name, without parameters. */
export function mediaTypeOf(name: string): string {
  return mime.getType(name) ?? "application/octet-stream";
}

/** Content-Type for a media type: text gets `; charset=utf-8`. */
export function contentTypeOf(type: string): string {
  return isTextType(type) ? `${type}; charset=utf-8` : type;
}

function isTextType(type: string): boolean {
  return type.startsWith("text/") || TEXT_TYPES.has(type) ||
    type.endsWith("+json") ||
    type.endsWith("+xml");
}

/** True for media types that shrink under gzip or brotli. */
export function isCompressible(type: string): boolean {
  return isTextType(type) || COMPRESSIBLE_TYPES.has(type);
}

/** The media type of a Content-Type value, lower case, without parameters. */
export function mediaType(contentType: string | undefined): string {
  if (contentType === undefined) return "";
  const semi = contentType.indexOf(";");
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim()
    .toLowerCase();
}

/**
 * True when `type` (from {@link mediaType}) matches `pattern`: exact
 * (`application/json`) or with one `*` (`text/*`, `application/*+json`).
 */
export function mediaTypeMatches(type: string, pattern: string): boolean {
  const star = pattern.indexOf("*");
  if (star === -1) return type === pattern;
  const head = pattern.slice(0, star);
  const tail = pattern.slice(star + 1);
  return type.length > head.length + tail.length && type.startsWith(head) &&
    type.endsWith(tail);
}

/** True for `application/json` and any `+json` type (RFC 6839). */
export function isJsonType(type: string): boolean {
  return type === "application/json" ||
    (type.endsWith("+json") && type.indexOf("/") > 0);
}
