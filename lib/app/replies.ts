/**
 * Reply builders for handlers: `json`, `text`, `html`, `bytes`, `stream`,
 * `redirect`, and the header helpers middleware uses to read and extend a
 * {@link Reply} without caring whether its headers are a record or pairs,
 * and `contentDisposition` for a download's name.
 */
import { HttpError } from "../http/errors.ts";
import type { Reply, ReplyHeaders } from "../http/handler.ts";

/**
 * Status and extra headers for a reply builder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { json, type ReplyInit } from "@spindle/server";
 *
 * const init: ReplyInit = { status: 202, headers: { "retry-after": "5" } };
 * assert.equal(json({ queued: true }, init).status, 202);
 * ```
 */
export interface ReplyInit {
  /** The status; default 200. */
  readonly status?: number;
  /** Header fields, added to the content-type (which one named here replaces). */
  readonly headers?: Readonly<Record<string, string>>;
}

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";
const BYTES_TYPE = "application/octet-stream";

/** `{ "content-type": type }`, one frozen record per built-in type. */
const TYPE_ONLY = new Map<string, Readonly<Record<string, string>>>(
  [JSON_TYPE, TEXT_TYPE, HTML_TYPE, BYTES_TYPE].map((type) => [
    type,
    Object.freeze({ "content-type": type }),
  ]),
);

function build(
  contentType: string,
  body: Reply["body"],
  init: ReplyInit | undefined,
): Reply {
  // A frozen record the engine sees again and again is copied as bytes it
  // encoded the first time; middleware (compression) caches on it too.
  const headers = init?.headers === undefined
    ? TYPE_ONLY.get(contentType) ?? { "content-type": contentType }
    : { "content-type": contentType, ...lowerKeys(init.headers) };
  return { status: init?.status ?? 200, headers, body };
}

function lowerKeys(
  headers: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) out[name.toLowerCase()] = headers[name];
  return out;
}

/**
 * A JSON reply; `value` goes through `JSON.stringify` and gets a final newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { json } from "@spindle/server";
 *
 * const reply = json({ ok: true }, { status: 201 });
 * assert.equal(reply.status, 201);
 * assert.equal(reply.body, '{"ok":true}\n');
 * ```
 */
export function json(value: unknown, init?: ReplyInit): Reply {
  return build(JSON_TYPE, (JSON.stringify(value) ?? "null") + "\n", init);
}

/**
 * A `text/plain; charset=utf-8` reply.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { text } from "@spindle/server";
 *
 * const reply = text("hello");
 * assert.deepEqual(reply.headers, { "content-type": "text/plain; charset=utf-8" });
 * ```
 */
export function text(body: string, init?: ReplyInit): Reply {
  return build(TEXT_TYPE, body, init);
}

/**
 * A `text/html; charset=utf-8` reply; the caller escapes what it interpolates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { html } from "@spindle/server";
 *
 * const reply = html("<h1>hi</h1>", { headers: { "cache-control": "no-store" } });
 * assert.equal(reply.status, 200);
 * ```
 */
export function html(body: string, init?: ReplyInit): Reply {
  return build(HTML_TYPE, body, init);
}

/** A binary reply, `application/octet-stream` unless `contentType` says otherwise. */
export function bytes(
  body: Uint8Array,
  init?: ReplyInit & { readonly contentType?: string },
): Reply {
  return build(init?.contentType ?? BYTES_TYPE, body, init);
}

/** A streamed reply, sent chunked unless `init.headers` has a content-length. */
export function stream(
  body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  init?: ReplyInit & { readonly contentType?: string },
): Reply {
  return build(init?.contentType ?? BYTES_TYPE, body, init);
}

/**
 * A redirect (302 unless told) to `location`, with an empty body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redirect } from "@spindle/server";
 *
 * const reply = redirect("/login", 303);
 * assert.deepEqual([reply.status, reply.headers], [303, { location: "/login" }]);
 * assert.throws(() => redirect("/a\r\nSet-Cookie: x=1")); // no header splitting
 * ```
 */
export function redirect(
  location: string,
  status: 301 | 302 | 303 | 307 | 308 = 302,
): Reply {
  // A raw CR or LF would split the header: refuse rather than encode.
  if (/[\r\n]/.test(location)) throw new TypeError("Location holds CR or LF");
  return { status, headers: { location }, body: null };
}

/** The first value of header `name` (lower case) in a reply, or undefined. */
export function replyHeader(reply: Reply, name: string): string | undefined {
  return headerValue(reply.headers, name);
}

/** The first value of field `name` (lower case) in reply headers, or undefined. */
export function headerValue(
  headers: ReplyHeaders | undefined,
  name: string,
): string | undefined {
  if (headers === undefined) return undefined;
  if (isPairs(headers)) {
    for (const [key, value] of headers) {
      if (key.toLowerCase() === name) return value;
    }
    return undefined;
  }
  if (name in headers) return headers[name];
  for (const key in headers) {
    if (key.toLowerCase() === name) return headers[key];
  }
  return undefined;
}

/**
 * A copy of `reply` with `extra` headers set; a name present in both takes
 * the value from `extra` (names compared case-insensitively). Repeated names
 * in a pair list (set-cookie) survive unless `extra` names them. A record
 * stays a record, a pair list a list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { text, withHeaders } from "@spindle/server";
 *
 * const reply = withHeaders(text("hi"), { "cache-control": "max-age=60" });
 * assert.equal(reply.status, 200);
 * assert.ok(JSON.stringify(reply.headers).includes("max-age=60"));
 * ```
 */
export function withHeaders(
  reply: Reply,
  extra: Readonly<Record<string, string>>,
): Reply {
  const headers = reply.headers;
  if (headers === undefined) return { ...reply, headers: extra };
  return { ...reply, headers: mergeHeaders(headers, extra) };
}

/** `headers` with `extra` set, as {@link withHeaders} does; the inputs are not changed. */
export function mergeHeaders(
  headers: ReplyHeaders,
  extra: Readonly<Record<string, string>>,
): ReplyHeaders {
  // A short list beats a Set for the few names middleware adds.
  const replaced: string[] = [];
  for (const name in extra) replaced.push(name.toLowerCase());
  if (isPairs(headers)) {
    const pairs: [string, string][] = [];
    for (const [name, value] of headers) {
      if (!replaced.includes(name.toLowerCase())) pairs.push([name, value]);
    }
    for (const name in extra) pairs.push([name, extra[name]]);
    return pairs;
  }
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (!replaced.includes(name.toLowerCase())) out[name] = headers[name];
  }
  for (const name in extra) out[name] = extra[name];
  return out;
}

function isPairs(
  headers: ReplyHeaders,
): headers is ReadonlyArray<readonly [string, string]> {
  return Array.isArray(headers);
}

/**
 * A copy of `err` that also carries `extra` headers (its own win), so
 * middleware can add RateLimit or CORS fields to an error a later layer threw.
 */
export function errorWithHeaders(
  err: HttpError,
  extra: Readonly<Record<string, string>>,
): HttpError {
  return new HttpError(err.status, err.message, {
    expose: err.expose,
    close: err.close,
    headers: { ...extra, ...err.headers },
    cause: err.cause,
  });
}

/**
 * `attachment; filename="..."; filename*=UTF-8''...` (RFC 6266): an ASCII
 * fallback for old clients, the exact name percent-encoded for the rest.
 */
export function contentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  // RFC 8187 attr-char: encodeURIComponent also leaves '()* unencoded.
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
