/**
 * Media types and the extension policy of the static handler: which files
 * are served, what Content-Type they get and which ones are worth compressing.
 */
import mime from "mime";

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
