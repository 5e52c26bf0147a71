/**
 * Reply fields -> an HPACK header block, with what HTTP/2 asks of a
 * sender (RFC 9113 §8.2): lower-case names, no connection-specific fields,
 * no CR, LF or NUL in a value, no white space at either end. Every field
 * is checked before the first one is encoded: a block dropped half-way
 * would leave the client's table out of step with ours. No I/O.
 */
import type { ReplyHeaders } from "../handler.ts";
import { TOKEN } from "../parser.ts";
import type { OutBuffer } from "../response.ts";
import {
  type HpackEncoder,
  INDEX,
  type IndexPolicy,
  NEVER_INDEX,
  NO_INDEX,
} from "./hpack.ts";

const encoder = new TextEncoder();

const KEEP = 0;
/** Dropped: HTTP/2 has no such field (§8.2.2), or the session writes its own. */
const DROP = 1;
/** content-length: kept unless the engine states the length itself. */
const LENGTH = 2;

interface NameRule {
  readonly name: string;
  readonly policy: IndexPolicy;
  readonly kind: typeof KEEP | typeof DROP | typeof LENGTH;
}

/** Values a table entry would not be reused for, or must not hold (RFC 7541 §7.1.3). */
const POLICIES: Readonly<Record<string, IndexPolicy>> = {
  "set-cookie": NEVER_INDEX,
  "cookie": NEVER_INDEX,
  "authorization": NEVER_INDEX,
  "proxy-authorization": NEVER_INDEX,
  "www-authenticate": NEVER_INDEX,
  "content-length": NO_INDEX,
  "content-range": NO_INDEX,
  "etag": NO_INDEX,
  "last-modified": NO_INDEX,
  "expires": NO_INDEX,
  "age": NO_INDEX,
  "location": NO_INDEX,
  "content-disposition": NO_INDEX,
};

const DROPPED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "date",
  "x-content-type-options", // always nosniff, as over HTTP/1.1
]);

/**
 * `contentLength` for a reply that has no body and says no length (204,
 * 304): a handler's content-length is dropped too. -1 keeps the handler's.
 */
export const NO_LENGTH = -2;

/** Rules per name as a handler spells it, checked once; bounded: handlers may invent names. */
const rules = new Map<string, NameRule>();

function ruleOf(name: string): NameRule {
  const known = rules.get(name);
  if (known !== undefined) return known;
  if (name.length === 0) throw badName(name);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 0xff || TOKEN[c] !== 1) throw badName(name);
  }
  const lower = name.toLowerCase();
  const rule: NameRule = {
    name: lower,
    policy: POLICIES[lower] ?? INDEX,
    kind: DROPPED.has(lower)
      ? DROP
      : lower === "content-length"
      ? LENGTH
      : KEEP,
  };
  if (rules.size >= 1024) rules.clear();
  rules.set(name, rule);
  return rule;
}

/**
 * A value as the octets HPACK carries: trimmed of SP and HTAB at the
 * ends, non-ASCII as UTF-8 spelled in Latin-1 (as the HTTP/1.1 writer
 * sends it). Throws on CR, LF or NUL (CWE-113).
 */
function octets(name: string, value: string): string {
  if (typeof value !== "string") value = String(value);
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0x00) throw badValue(name);
    if (c >= 0x80) ascii = false;
  }
  let a = 0;
  let b = value.length;
  while (a < b && isWhite(value.charCodeAt(a))) a++;
  while (b > a && isWhite(value.charCodeAt(b - 1))) b--;
  if (a !== 0 || b !== value.length) value = value.slice(a, b);
  if (ascii) return value;
  let s = "";
  for (const byte of encoder.encode(value)) s += String.fromCharCode(byte);
  return s;
}

function isWhite(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Fields checked and waiting to be encoded; reused by every block (no I/O between). */
const pendingNames: string[] = [];
const pendingValues: string[] = [];
const pendingPolicies: IndexPolicy[] = [];

/** Checks every field of `headers`, keeping what goes in the block. Returns the count. */
function checkFields(
  headers: ReplyHeaders | undefined,
  dropLength: boolean,
): number {
  pendingNames.length = pendingValues.length = pendingPolicies.length = 0;
  if (headers === undefined || headers === null) return 0;
  if (Array.isArray(headers)) {
    for (const [name, value] of headers as ReadonlyArray<[string, string]>) {
      checkField(name, value, dropLength);
    }
  } else {
    const record = headers as Readonly<Record<string, string>>;
    for (const name in record) checkField(name, record[name], dropLength);
  }
  return pendingNames.length;
}

function checkField(name: string, value: string, dropLength: boolean): void {
  const rule = ruleOf(name);
  const v = octets(name, value);
  if (rule.kind === DROP) return;
  if (rule.kind === LENGTH) {
    if (!/^\d+$/.test(v)) {
      throw new Error(`Invalid content-length in reply: ${value}`);
    }
    if (dropLength) return;
  }
  pendingNames.push(rule.name);
  pendingValues.push(v);
  pendingPolicies.push(rule.policy);
}

/** Status codes as strings, made once each. */
const STATUS_TEXT: string[] = [];

let dateSecond = -1;
let dateValue = "";

/** IMF-fixdate for `now`, rebuilt once a second (RFC 9110 §6.6.1). */
function httpDate(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}

/**
 * Writes the header block of a reply: `:status`, `date` and
 * `x-content-type-options: nosniff` (not for 1xx), the handler's fields,
 * and `content-length` when `contentLength` is 0 or more (a handler's own
 * is then dropped; see also {@link NO_LENGTH}). Throws before writing
 * anything if a field is invalid.
 */
export function writeReplyBlock(
  out: OutBuffer,
  hpack: HpackEncoder,
  status: number,
  headers: ReplyHeaders | undefined,
  contentLength: number,
  now: number,
): void {
  if (
    !Number.isInteger(status) || status < 100 || status > 599 || status === 101
  ) {
    // §8.6: HTTP/2 has no 101 (Switching Protocols).
    throw new RangeError(`Invalid reply status ${status}`);
  }
  const count = checkFields(headers, contentLength !== -1);
  hpack.beginBlock(out);
  hpack.writeField(
    out,
    ":status",
    STATUS_TEXT[status] ??= String(status),
    INDEX,
  );
  if (status >= 200) {
    hpack.writeField(out, "date", httpDate(now), INDEX);
    // A browser must not guess a script out of a text file or an upload.
    hpack.writeField(out, "x-content-type-options", "nosniff", INDEX);
  }
  for (let i = 0; i < count; i++) {
    hpack.writeField(
      out,
      pendingNames[i],
      pendingValues[i],
      pendingPolicies[i],
    );
  }
  if (contentLength >= 0) {
    hpack.writeField(out, "content-length", String(contentLength), NO_INDEX);
  }
}

/** Writes a trailer block: the fields only (§8.1). Throws before writing on a bad field. */
export function writeTrailerBlock(
  out: OutBuffer,
  hpack: HpackEncoder,
  headers: ReplyHeaders,
): void {
  const count = checkFields(headers, false);
  hpack.beginBlock(out);
  for (let i = 0; i < count; i++) {
    hpack.writeField(
      out,
      pendingNames[i],
      pendingValues[i],
      pendingPolicies[i],
    );
  }
}

function badName(name: string): Error {
  return new Error(`Invalid header name in reply: ${JSON.stringify(name)}`);
}

function badValue(name: string): Error {
  return new Error(`Invalid header value in reply for ${name}`);
}
