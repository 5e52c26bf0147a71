/**
 * gzip for dynamic replies. Only whole bodies (strings and bytes) up to
 * `maxBytes` are compressed, buffered so the reply keeps a Content-Length;
 * streams, files, ranges, larger bodies and replies that already have a
 * Content-Encoding pass untouched.
 */
import { negotiateEncoding } from "../encoding.ts";
import { type AppRequest, mediaType } from "../request.ts";
import { replyHeader, withHeaders } from "../response.ts";
import type { Middleware } from "../router.ts";
import { gzipBytes } from "../static_compress.ts";
import { isCompressible as isCompressibleType } from "../static_mime.ts";
import type { Reply } from "../../http/handler.ts";

export interface CompressionOptions {
  /**
   * Smallest body worth compressing, in bytes. Below ~1 KiB the gzip header
   * and lost Content-Length reuse cost more than they save (Hono's threshold).
   */
  readonly minBytes?: number;
  /**
   * Largest body compressed, in bytes; larger ones are sent as they are.
   * gzip runs on the event loop, ~1 ms per 32 KiB: 64 KiB caps it at ~2 ms
   * a reply, where a 1 MiB body would stall every client for ~30 ms.
   */
  readonly maxBytes?: number;
}

const DEFAULT_MIN_BYTES = 1024;
const DEFAULT_MAX_BYTES = 64 * 1024;
const encoder = new TextEncoder();

/** True for a Content-Type worth compressing: the static handler's list. */
export function isCompressible(contentType: string | undefined): boolean {
  return contentType !== undefined &&
    isCompressibleType(mediaType(contentType));
}

/** The body as bytes when it is whole (string or bytes), else undefined. */
function wholeBody(reply: Reply): Uint8Array | undefined {
  const body = reply.body;
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  return undefined;
}

/** A strong ETag names the identity bytes; the gzip bytes need their own. */
function gzipEtag(etag: string): string {
  return etag.endsWith('"') ? `${etag.slice(0, -1)}-gzip"` : etag;
}

/** `reply` gzipped for `req` if it qualifies and the client accepts gzip. */
export async function compressReply(
  req: AppRequest,
  reply: Reply,
  minBytes = DEFAULT_MIN_BYTES,
  maxBytes = DEFAULT_MAX_BYTES,
): Promise<Reply> {
  const status = reply.status;
  if (status < 200 || status === 204 || status === 206 || status === 304) {
    return reply;
  }
  if (
    replyHeader(reply, "content-encoding") !== undefined ||
    replyHeader(reply, "content-range") !== undefined ||
    /\bno-transform\b/i.test(replyHeader(reply, "cache-control") ?? "") ||
    !isCompressible(replyHeader(reply, "content-type"))
  ) return reply;
  const bytes = wholeBody(reply);
  if (
    bytes === undefined || bytes.length < minBytes || bytes.length > maxBytes
  ) return reply;
  // The reply depends on Accept-Encoding whether or not this client gets gzip.
  const priorVary = replyHeader(reply, "vary");
  const vary = priorVary === undefined
    ? "Accept-Encoding"
    : `${priorVary}, Accept-Encoding`;
  if (negotiateEncoding(req.header("accept-encoding"), ["gzip"]) !== "gzip") {
    return withHeaders(reply, { vary });
  }
  const gzipped = await gzipBytes(bytes);
  const headers: Record<string, string> = {
    "content-encoding": "gzip",
    "content-length": String(gzipped.length),
    vary,
  };
  const etag = replyHeader(reply, "etag");
  if (etag !== undefined) headers.etag = gzipEtag(etag);
  return withHeaders({ ...reply, body: gzipped }, headers);
}

/**
 * Middleware form of {@link compressReply}, for routed replies only: the
 * fallback (static files) negotiates its own codings and ETags, and a second
 * pass would redo work it chose not to do and break its 304s.
 */
export function compression(options: CompressionOptions = {}): Middleware {
  const minBytes = options.minBytes ?? DEFAULT_MIN_BYTES;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  return (req, next) =>
    req.matched === "fallback"
      ? next()
      : next().then((reply) => compressReply(req, reply, minBytes, maxBytes));
}
