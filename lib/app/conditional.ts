/**
 * Conditional requests (RFC 9110 §13): If-Match, If-Unmodified-Since,
 * If-None-Match, If-Modified-Since and If-Range, evaluated in the order of
 * §13.2.2 against one representation's validators.
 */
import type { HeaderFields } from "../http/headers.ts";

/** The validators of the representation a reply would carry. */
export interface Validators {
  /** Strong entity tag with its quotes, e.g. `"1a2-18c0f3"`. */
  readonly etag: string;
  /** Last modification, in ms since the epoch (sub-second part ignored). */
  readonly lastModifiedMs: number;
}

/** One entity tag of a list: its opaque part (quotes included) and weakness. */
interface EntityTag {
  readonly opaque: string;
  readonly weak: boolean;
}

/**
 * Parses an entity-tag list (`"a", W/"b"`) or `*`. Returns "*" for a lone
 * star; stops at the first malformed member, keeping the ones before it.
 */
function parseEntityTags(value: string): EntityTag[] | "*" {
  const tags: EntityTag[] = [];
  let i = 0;
  const n = value.length;
  while (i < n) {
    const c = value[i];
    if (c === " " || c === "\t" || c === ",") {
      i++;
      continue;
    }
    if (c === "*") return tags.length === 0 ? "*" : tags;
    let weak = false;
    if (c === "W" && value[i + 1] === "/") {
      weak = true;
      i += 2;
    }
    if (value[i] !== '"') break;
    // etagc excludes DQUOTE but allows ",", so scan to the closing quote.
    const close = value.indexOf('"', i + 1);
    if (close === -1) break;
    tags.push({ opaque: value.slice(i, close + 1), weak });
    i = close + 1;
  }
  return tags;
}

/** Splits our own tag (`"x"` or `W/"x"`) the same way. */
function ownTag(etag: string): EntityTag {
  return etag.startsWith("W/")
    ? { opaque: etag.slice(2), weak: true }
    : { opaque: etag, weak: false };
}

/** True when a tag list matches `etag`; `strong` also needs both tags strong. */
function listMatches(value: string, etag: string, strong: boolean): boolean {
  const tags = parseEntityTags(value);
  if (tags === "*") return true; // a current representation exists
  const own = ownTag(etag);
  if (strong && own.weak) return false;
  return tags.some((t) => t.opaque === own.opaque && !(strong && t.weak));
}

/** An HTTP-date in ms, or NaN when the value is not one. */
function parseHttpDate(value: string): number {
  // Date.parse accepts IMF-fixdate, RFC 850 and asctime forms, and junk like
  // "1" too; an HTTP-date always names a weekday or a month in letters.
  if (!/[a-z]{3}/i.test(value)) return NaN;
  // asctime has no zone; every HTTP-date is GMT, never the server's local time.
  return Date.parse(/GMT|UTC|[+-]\d{4}/.test(value) ? value : `${value} GMT`);
}

/** Seconds resolution, as Last-Modified carries. */
function toSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * Evaluates the preconditions of a request (RFC 9110 §13.2.2) against the
 * selected representation: 412 when If-Match or If-Unmodified-Since fails (or
 * If-None-Match matches on a method other than GET/HEAD), 304 when
 * If-None-Match matches or, without If-None-Match, nothing changed since
 * If-Modified-Since; otherwise 200 (go on and answer normally). If-Range is
 * separate: see {@link ifRangeHolds}.
 */
export function evaluatePreconditions(
  method: string,
  headers: HeaderFields,
  validators: Validators,
): 200 | 304 | 412 {
  const modified = toSeconds(validators.lastModifiedMs);
  const ifMatch = headers.getJoined("if-match");
  if (ifMatch !== undefined) {
    // Step 1: strong comparison.
    if (!listMatches(ifMatch, validators.etag, true)) return 412;
  } else {
    // Step 2: only without If-Match; an invalid date is ignored.
    const value = headers.get("if-unmodified-since");
    if (value !== undefined) {
      const since = parseHttpDate(value);
      if (!Number.isNaN(since) && modified > toSeconds(since)) return 412;
    }
  }
  const safe = method === "GET" || method === "HEAD";
  const ifNoneMatch = headers.getJoined("if-none-match");
  if (ifNoneMatch !== undefined) {
    // Step 3: weak comparison.
    if (listMatches(ifNoneMatch, validators.etag, false)) {
      return safe ? 304 : 412;
    }
  } else if (safe) {
    // Step 4: If-Modified-Since counts only without If-None-Match.
    const value = headers.get("if-modified-since");
    if (value !== undefined) {
      const since = parseHttpDate(value);
      // A date in the future is not a valid answer to "since when".
      if (
        !Number.isNaN(since) && since <= Date.now() &&
        modified <= toSeconds(since)
      ) {
        return 304;
      }
    }
  }
  return 200;
}

/**
 * True when a Range may be honoured under If-Range (RFC 9110 §13.1.5): no
 * If-Range, or it names the current strong entity tag, or it is exactly the
 * Last-Modified date. Otherwise the whole representation is sent with 200.
 */
export function ifRangeHolds(
  headers: HeaderFields,
  validators: Validators,
): boolean {
  const value = headers.get("if-range");
  if (value === undefined) return true;
  const trimmed = value.trim();
  if (trimmed.startsWith('"') || trimmed.startsWith("W/")) {
    // One strong entity-tag and nothing else: character for character ours.
    const own = ownTag(validators.etag);
    return !own.weak && trimmed === own.opaque;
  }
  const date = parseHttpDate(trimmed);
  return !Number.isNaN(date) &&
    toSeconds(date) === toSeconds(validators.lastModifiedMs);
}

/** Formats a Last-Modified value (IMF-fixdate) from ms since the epoch. */
export function httpDate(ms: number): string {
  // Files keep their mtime for many requests: format each second once.
  const second = Math.floor(ms / 1000);
  let text = httpDates.get(second);
  if (text === undefined) {
    text = new Date(second * 1000).toUTCString();
    if (httpDates.size >= 4096) httpDates.clear();
    httpDates.set(second, text);
  }
  return text;
}

const httpDates = new Map<number, string>();
