/**
 * gzip for dynamic replies. Only whole bodies (strings and bytes) up to
 * `maxBytes` are compressed, buffered so the reply keeps a Content-Length;
 * streams, files, ranges, larger bodies and replies that already have a
 * Content-Encoding pass untouched.
 */
import { gzipBytes } from "../compress.ts";
import { negotiateEncoding } from "../encoding.ts";
import type { AppRequest } from "../app_request.ts";
import { headerValue, mergeHeaders } from "../replies.ts";
import type { Middleware } from "../chain.ts";
import {
  isCompressible as isCompressibleType,
  mediaType,
} from "../media_types.ts";
import type { Reply, ReplyHeaders } from "../../http/handler.ts";

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
const GZIP = ["gzip"];
const encoder = new TextEncoder();

/** True for a Content-Type worth compressing: the static handler's list. */
export function isCompressible(contentType: string | undefined): boolean {
  return contentType !== undefined &&
    isCompressibleType(mediaType(contentType));
}

/**
 * UTF-8 length of `s` if it could fall in [min, max], else `s.length`
 * (which then falls outside too): the bounds alone decide most bodies.
 */
function sizeOf(s: string, min: number, max: number): number {
  const n = s.length; // UTF-8 takes 1 to 3 bytes per UTF-16 unit
  if (n > max || n * 3 < min || (n >= min && n * 3 <= max)) return n;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(s, i + 1)) {
      i++;
      bytes += 2; // a pair: 4 bytes for 2 units
    } else bytes += 2; // 3 bytes; a lone surrogate becomes U+FFFD, 3 bytes too
  }
  return bytes;
}

function isLowSurrogate(s: string, i: number): boolean {
  const c = s.charCodeAt(i); // NaN past the end
  return c >= 0xdc00 && c <= 0xdfff;
}

/** A strong ETag names the identity bytes; the gzip bytes need their own. */
function gzipEtag(etag: string): string {
  return etag.endsWith('"') ? `${etag.slice(0, -1)}-gzip"` : etag;
}

/** What a reply's header fields allow: gzip, and with which Vary; null when they forbid it. */
interface Plan {
  /** Vary with Accept-Encoding in it. */
  readonly vary: string;
  /** The fields with that Vary, for a reply sent as it is. */
  readonly identity: ReplyHeaders;
  /** The fields of the gzipped reply; its `content-length` is a placeholder. */
  readonly gzip: ReplyHeaders;
}

/** Plans of frozen header records: a handler's constant fields are read once. */
const plans = new WeakMap<object, Plan | null>();

// The last frozen record looked up and its plan: one route's replies in a row.
let lastHeaders: object | undefined;
let lastPlan: Plan | null = null;

function planOf(headers: ReplyHeaders | undefined): Plan | null {
  if (headers === lastHeaders) return lastPlan;
  if (headers === undefined) return null; // no Content-Type: not compressible
  if (Array.isArray(headers) || !Object.isFrozen(headers)) {
    return makePlan(headers, false);
  }
  let plan = plans.get(headers);
  if (plan === undefined) plans.set(headers, plan = makePlan(headers, true));
  lastHeaders = headers;
  return lastPlan = plan;
}

function makePlan(headers: ReplyHeaders, frozen: boolean): Plan | null {
  if (
    headerValue(headers, "content-encoding") !== undefined ||
    headerValue(headers, "content-range") !== undefined ||
    /\bno-transform\b/i.test(headerValue(headers, "cache-control") ?? "") ||
    !isCompressible(headerValue(headers, "content-type"))
  ) return null;
  // The reply depends on Accept-Encoding whether or not this client gets gzip.
  const prior = headerValue(headers, "vary");
  let vary = "Accept-Encoding";
  let identity = headers;
  if (prior === undefined || !/(^|,)\s*accept-encoding\s*(,|$)/i.test(prior)) {
    if (prior !== undefined) vary = `${prior}, ${vary}`;
    identity = mergeHeaders(headers, { vary });
    if (frozen) Object.freeze(identity);
  } else vary = prior; // an inner layer (or the handler) said it already
  const coded: Record<string, string> = {
    "content-encoding": "gzip",
    "content-length": "0",
    vary,
  };
  const etag = headerValue(headers, "etag");
  if (etag !== undefined) coded.etag = gzipEtag(etag);
  return { vary, identity, gzip: mergeHeaders(headers, coded) };
}

/** `fields` with `content-length: length`, in place of the placeholder. */
function withLength(fields: ReplyHeaders, length: number): ReplyHeaders {
  const value = String(length);
  if (!Array.isArray(fields)) {
    return { ...fields, "content-length": value };
  }
  const pairs = fields as ReadonlyArray<readonly [string, string]>;
  return pairs.map(([name, v]): [string, string] =>
    name === "content-length" ? [name, value] : [name, v]
  );
}

// The last text gzipped, with its gzip and the fields sent with it: a route
// that answers the same text again (a constant body) compresses it once,
// and its frozen fields are encoded once by the engine.
let lastText = "";
let lastGzip: Uint8Array = new Uint8Array(0);
let lastPlanGzipped: Plan | undefined;
let lastFields: ReplyHeaders = [];

/** The gzipped form of `body` and its fields. */
function gzipped(
  body: string | Uint8Array,
  plan: Plan,
): [Uint8Array, ReplyHeaders] {
  if (typeof body !== "string") {
    const bytes = gzipBytes(body);
    return [bytes, withLength(plan.gzip, bytes.length)];
  }
  if (body !== lastText || lastPlanGzipped === undefined) {
    lastGzip = gzipBytes(encoder.encode(body));
    lastText = body;
    lastPlanGzipped = undefined;
  }
  if (lastPlanGzipped !== plan) {
    lastFields = Object.freeze(withLength(plan.gzip, lastGzip.length));
    lastPlanGzipped = plan;
  }
  return [lastGzip, lastFields];
}

/**
 * `reply` gzipped for `req` if it qualifies and the client accepts gzip;
 * otherwise `reply` itself, with `Vary: Accept-Encoding` when gzip was on
 * offer. Synchronous: a request without Accept-Encoding costs a size check
 * and, for a frozen header record, one cached lookup.
 */
export function compressReply(
  req: AppRequest,
  reply: Reply,
  minBytes = DEFAULT_MIN_BYTES,
  maxBytes = DEFAULT_MAX_BYTES,
): Reply {
  const status = reply.status;
  if (status < 200 || status === 204 || status === 206 || status === 304) {
    return reply;
  }
  const body = reply.body;
  let size: number;
  if (typeof body === "string") size = sizeOf(body, minBytes, maxBytes);
  else if (body instanceof Uint8Array) size = body.length;
  else return reply; // streams and files pass untouched
  if (size < minBytes || size > maxBytes) return reply;
  const plan = planOf(reply.headers);
  if (plan === null) return reply;
  const accept = req.header("accept-encoding");
  if (accept === undefined || negotiateEncoding(accept, GZIP) !== "gzip") {
    if (plan.identity === reply.headers) return reply;
    return { ...reply, headers: plan.identity };
  }
  const [bytes, headers] = gzipped(body, plan);
  return { ...reply, headers, body: bytes };
}

/**
 * Middleware form of {@link compressReply}, for routed replies only: the
 * fallback (static files) negotiates its own codings and ETags, and a second
 * pass would redo work it chose not to do and break its 304s.
 */
export function compression(options: CompressionOptions = {}): Middleware {
  const minBytes = options.minBytes ?? DEFAULT_MIN_BYTES;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  return {
    after: (req, reply) => compressReply(req, reply, minBytes, maxBytes),
    routesOnly: true,
  };
}
