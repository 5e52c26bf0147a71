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

// RFC 9110 §5.6.7: the three forms of an HTTP-date, all GMT, case-sensitive.
const IMF_FIXDATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/;
const RFC850_DATE =
  /^(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/;
const ASCTIME_DATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/;
const MONTHS = new Map(
  "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ")
    .map((name, i) => [name, i]),
);

/**
 * An HTTP-date in ms, or NaN when the value is not one. Strict on purpose
 * (§13.1.3: a recipient MUST ignore an invalid date): Date.parse would read
 * "12:00 PST" as 12:00 GMT, roll "31 Feb" into March and skip leading junk.
 */
function parseHttpDate(value: string): number {
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return utc(+m[3], m[2], +m[1], +m[4], +m[5], +m[6]);
  m = ASCTIME_DATE.exec(value);
  if (m !== null) return utc(+m[6], m[1], +m[2], +m[3], +m[4], +m[5]);
  m = RFC850_DATE.exec(value);
  if (m === null) return NaN;
  // A two-digit year more than 50 years ahead is the last such year past.
  const now = new Date().getUTCFullYear();
  let year = now - (now % 100) + Number(m[3]);
  if (year > now + 50) year -= 100;
  return utc(year, m[2], +m[1], +m[4], +m[5], +m[6]);
}

/** ms since the epoch of a calendar date and time; NaN if there is no such. */
function utc(
  year: number,
  monthName: string,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number {
  const month = MONTHS.get(monthName);
  if (month === undefined || hour > 23 || minute > 59 || second > 60) {
    return NaN;
  }
  // Second 60 is a leap second: the last second of that minute will do.
  const ms = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  // Date.UTC rolls 31 Feb over into March: a day that does not exist is no date.
  return new Date(ms).getUTCDate() === day ? ms : NaN;
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
  // Most requests have none of the four: one pass says so.
  if (!headers.hasPrefix("if-")) return 200;
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
