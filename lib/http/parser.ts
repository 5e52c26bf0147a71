/**
 * Bytes -> {@link RequestHead}, strictly by RFC 9112. No I/O here: the
 * connection finds the end of a head with `findHeadEnd()` as bytes arrive,
 * then `parseHead()` reads it in one pass over the buffer.
 */
import { Buffer } from "node:buffer";
import type { Limits } from "../config.ts";
import { badRequest, HttpError, STATUS } from "./errors.ts";
import { HeaderFields } from "./headers.ts";

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;
export const SLASH = 0x2f;
export const STAR = 0x2a;
const QUESTION = 0x3f;

/** 1 where a byte may appear in a token (RFC 9110 §5.6.2). */
export const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = TOKEN[c | 0x20] = 1;

/** 1 where a byte may appear in a field value (§5.5): HTAB, SP, VCHAR, obs-text. */
export const FIELD_VALUE = new Uint8Array(256);
FIELD_VALUE[HTAB] = 1;
for (let c = 0x20; c <= 0x7e; c++) FIELD_VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VALUE[c] = 1;

/** 1 where a byte may appear in a request target: visible ASCII but "#" (§3.2). */
export const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;
TARGET[0x23] = 0; // a fragment is never sent (RFC 9110 §4.2.5)

/** 1 where a byte may appear in a Host value: reg-name, IP literal, port. */
export const HOST = new Uint8Array(256);
for (const c of "-._~!$&'()*+,;=:[]%") HOST[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) HOST[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) HOST[c] = HOST[c | 0x20] = 1;

/** Methods we know (RFC 9110 §9, RFC 5789); others get 501. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "TRACE",
  "PATCH",
  "CONNECT",
]);

/** A parsed request line and header section. */
export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** Path of the target, still percent-encoded; "*" for asterisk-form. */
  readonly path: string;
  /** Query without "?"; "" when absent. */
  readonly query: string;
  /** 0 for HTTP/1.0; 1 for HTTP/1.1 and any higher 1.x (RFC 9110 §2.5). */
  readonly minor: 0 | 1;
  readonly headers: HeaderFields;
  /** Host field value, or the authority of an absolute-form target. */
  readonly host: string;
  /** Index just past the head in the buffer it was parsed from. */
  readonly end: number;
  /** Content-Length, or -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** What the request asks for the connection; the server may still close. */
  readonly keepAlive: boolean;
  /** `Expect: 100-continue` on an HTTP/1.1 request. */
  readonly expectContinue: boolean;
}

/**
 * Index just past the blank line that ends a head, or -1 if it has not
 * arrived. Also stops at a bare LF LF so the parser can refuse it. Pass the
 * previous `end - 3` (or the head's start) as `from` to resume, not rescan.
 */
export function findHeadEnd(
  buf: Uint8Array,
  from: number,
  end: number,
): number {
  let i = buf.indexOf(LF, from);
  while (i !== -1 && i < end) {
    const next = buf[i + 1];
    if (i + 1 < end && next === LF) return i + 2;
    if (i + 2 < end && next === CR && buf[i + 2] === LF) return i + 3;
    i = buf.indexOf(LF, i + 1);
  }
  return -1;
}

/**
 * Node's Buffer decodes Latin-1 natively and accepts any Uint8Array as
 * `this`: half the cost of a TextDecoder call on a small head.
 */
const latin1Slice = (Buffer.prototype as unknown as {
  latin1Slice?: (this: Uint8Array, start: number, end: number) => string;
}).latin1Slice;

/** Latin-1 text of `buf[start..end)`; header bytes are opaque octets (§5.5). */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  if (latin1Slice !== undefined) return latin1Slice.call(buf, start, end);
  if (end - start < 4096) {
    return String.fromCharCode.apply(
      null,
      buf.subarray(start, end) as unknown as number[],
    );
  }
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += latin1(buf, i, Math.min(i + 4096, end));
  }
  return s;
}

function methodName(buf: Uint8Array, start: number, end: number): string {
  // The common methods without building a string from bytes.
  const len = end - start;
  const c = buf[start];
  if (
    len === 3 && c === 0x47 && buf[start + 1] === 0x45 &&
    buf[start + 2] === 0x54
  ) return "GET";
  if (
    len === 4 && buf[start + 1] === 0x4f && buf[start + 2] === 0x53 &&
    buf[start + 3] === 0x54
  ) {
    if (c === 0x50) return "POST";
  }
  if (
    len === 4 && c === 0x48 && buf[start + 1] === 0x45 &&
    buf[start + 2] === 0x41 && buf[start + 3] === 0x44
  ) return "HEAD";
  return latin1(buf, start, end);
}

/** Offsets of each field's name and value, reused by every parse (no I/O between). */
let fieldOffsets = new Int32Array(4 * 64);

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** What {@link knownName} tells apart: the fields the parser itself reads. */
const OTHER = 0;
const HOST_FIELD = 1;
const CONTENT_LENGTH = 2;
const TRANSFER_ENCODING = 3;
const CONNECTION = 4;
const EXPECT = 5;

const nameEncoder = new TextEncoder();
const CONTENT_LENGTH_NAME = nameEncoder.encode("content-length");
const TRANSFER_ENCODING_NAME = nameEncoder.encode("transfer-encoding");
const CONNECTION_NAME = nameEncoder.encode("connection");
const EXPECT_NAME = nameEncoder.encode("expect");

/**
 * Which of the fields the parser reads the folded name of `length` bytes at
 * `buf[at]` is, if any: its length first, then its bytes, so another name
 * costs a switch and at most a byte or two.
 */
function knownName(buf: Uint8Array, at: number, length: number): number {
  switch (length) {
    case 4:
      return buf[at] === 0x68 && buf[at + 1] === 0x6f &&
          buf[at + 2] === 0x73 && buf[at + 3] === 0x74 // "host"
        ? HOST_FIELD
        : OTHER;
    case 6:
      return sameBytes(buf, at, EXPECT_NAME) ? EXPECT : OTHER;
    case 10:
      return sameBytes(buf, at, CONNECTION_NAME) ? CONNECTION : OTHER;
    case 14:
      return sameBytes(buf, at, CONTENT_LENGTH_NAME) ? CONTENT_LENGTH : OTHER;
    case 17:
      return sameBytes(buf, at, TRANSFER_ENCODING_NAME)
        ? TRANSFER_ENCODING
        : OTHER;
  }
  return OTHER;
}

/** True when `buf` holds `name`'s bytes at `at`. */
function sameBytes(buf: Uint8Array, at: number, name: Uint8Array): boolean {
  for (let k = 0; k < name.length; k++) {
    if (buf[at + k] !== name[k]) return false;
  }
  return true;
}

/**
 * Parses the head that starts at `buf[start]`. `end` is what `findHeadEnd()`
 * returned, or any later index when a blank line is known to come before
 * it: the parse stops at the first blank line, and `head.end` says where.
 * Throws {@link HttpError} for anything RFC 9112 does not allow. Folds
 * header names to lower case in place. With `complete` false, `end` is
 * just past a line of a head still arriving: what is missing is not judged.
 */
export function parseHead(
  buf: Uint8Array,
  start: number,
  end: number,
  limits: Limits,
  complete = true,
): RequestHead {
  // Request line: method SP request-target SP HTTP-version CRLF (§3).
  let i = start;
  while (TOKEN[buf[i]] === 1) i++;
  if (i === start || buf[i] !== SP) throw badRequest("malformed method");
  const method = methodName(buf, start, i);

  const targetStart = ++i;
  let question = -1; // where the query starts, found in the same scan
  for (let c = buf[i]; TARGET[c] === 1; c = buf[++i]) {
    if (c === QUESTION && question === -1) question = i;
  }
  const targetEnd = i;
  if (targetEnd - targetStart > limits.maxTargetBytes) {
    throw new HttpError(STATUS.URITooLong, "Request target too long", {
      close: true,
    });
  }
  if (targetEnd === targetStart) throw badRequest("missing request target");
  if (buf[i] !== SP) {
    throw badRequest(
      buf[i] === CR || buf[i] === LF
        ? "missing HTTP version"
        : "invalid byte in request target",
    );
  }
  i++;
  // "HTTP/" DIGIT "." DIGIT, then CRLF; no more, no less.
  if (
    buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 ||
    buf[i + 3] !== 0x50 || buf[i + 4] !== SLASH || !isDigit(buf[i + 5]) ||
    buf[i + 6] !== 0x2e || !isDigit(buf[i + 7])
  ) throw badRequest("malformed HTTP version");
  if (buf[i + 8] !== CR || buf[i + 9] !== LF) {
    throw badRequest(
      buf[i + 8] === LF ? "bare LF in request line" : "malformed HTTP version",
    );
  }
  const major = buf[i + 5] - 0x30;
  if (major !== 1) {
    throw new HttpError(
      STATUS.HTTPVersionNotSupported,
      `HTTP/${major}.${buf[i + 7] - 0x30} is not supported`,
      { expose: "Only HTTP/1.0 and HTTP/1.1 are supported", close: true },
    );
  }
  const minor = buf[i + 7] === 0x30 ? 0 : 1;
  i += 10;

  // Header fields (§5): field-name ":" OWS field-value OWS CRLF. The scan
  // only checks bytes and notes offsets; the head is decoded once, after.
  let count = 0;
  let linesEnd = i; // just past the last field line so far
  let badHost = false; // reported after the checks that come first
  while (i < end) {
    const line = i;
    if (buf[i] === CR) {
      if (buf[i + 1] !== LF) throw badRequest("bare CR in header section");
      i += 2;
      break;
    }
    for (let c = buf[i]; TOKEN[c] === 1; c = buf[++i]) {
      if (c <= 0x5a && c >= 0x41) buf[i] = c | 0x20; // fold A-Z while we look
    }
    // Also refuses "Name :" and obs-fold (a line starting with SP or HTAB).
    if (i === line || buf[i] !== COLON) {
      throw badRequest(
        buf[i] === LF ? "bare LF in header section" : "malformed field name",
      );
    }
    const nameEnd = i++;
    while (buf[i] === SP || buf[i] === HTAB) i++;
    const valueStart = i;
    // A Host value is scanned for the bytes a host may hold first: where
    // that stops is where a bad byte is, if before the trimmed end.
    let hostEnd = -1;
    if (
      nameEnd - line === 4 && buf[line] === 0x68 && buf[line + 1] === 0x6f &&
      buf[line + 2] === 0x73 && buf[line + 3] === 0x74 // "host"
    ) {
      while (HOST[buf[i]] === 1) i++;
      hostEnd = i;
    }
    while (FIELD_VALUE[buf[i]] === 1) i++;
    let valueEnd = i;
    if (buf[i] !== CR || buf[i + 1] !== LF) {
      throw badRequest(
        buf[i] === LF
          ? "bare LF in header section"
          : buf[i] === CR
          ? "bare CR in header section"
          : "control byte in field value",
      );
    }
    i += 2;
    linesEnd = i;
    while (
      valueEnd > valueStart &&
      (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)
    ) valueEnd--;
    if (hostEnd !== -1 && hostEnd < valueEnd) badHost = true;
    if (count === limits.maxHeaderCount) {
      throw new HttpError(
        STATUS.RequestHeaderFieldsTooLarge,
        "Too many header fields",
        { close: true },
      );
    }
    const k = count++ * 4;
    if (k + 4 > fieldOffsets.length) {
      const bigger = new Int32Array(fieldOffsets.length * 2);
      bigger.set(fieldOffsets);
      fieldOffsets = bigger;
    }
    fieldOffsets[k] = line - start;
    fieldOffsets[k + 1] = nameEnd - start;
    fieldOffsets[k + 2] = valueStart - start;
    fieldOffsets[k + 3] = valueEnd - start;
  }

  // Each field stays in the head's text, found by where its line starts;
  // only the fields framing and routing read are made into strings here,
  // spotted by their names' bytes (folded above).
  const text = latin1(buf, start, i);
  const starts: number[] = new Array(count + 1);
  let host: string | undefined;
  let hostCount = 0;
  let contentLength = -1;
  let transferEncoding: string | undefined;
  let connection: string | undefined;
  let expect: string | undefined;
  for (let n = 0; n < count; n++) {
    const k = n * 4;
    const line = fieldOffsets[k];
    starts[n] = line;
    const known = knownName(buf, start + line, fieldOffsets[k + 1] - line);
    if (known === OTHER) continue;
    const value = text.slice(fieldOffsets[k + 2], fieldOffsets[k + 3]);
    switch (known) {
      case HOST_FIELD:
        hostCount++;
        host = value;
        break;
      case CONTENT_LENGTH:
        contentLength = mergeContentLength(contentLength, value, limits);
        break;
      case TRANSFER_ENCODING:
        transferEncoding = transferEncoding === undefined
          ? value
          : `${transferEncoding}, ${value}`;
        break;
      case CONNECTION:
        connection = connection === undefined
          ? value
          : `${connection}, ${value}`;
        break;
      case EXPECT:
        expect = value;
        break;
    }
  }

  starts[count] = linesEnd - start;
  const target = text.slice(targetStart - start, targetEnd - start);
  let path: string;
  let query = "";
  const first = buf[targetStart];
  if (first === SLASH) {
    // origin-form, the common case (§3.2.1)
    if (question === -1) path = target;
    else {
      path = text.slice(targetStart - start, question - start);
      query = text.slice(question + 1 - start, targetEnd - start);
    }
  } else if (first === STAR && targetEnd - targetStart === 1) {
    if (method !== "OPTIONS") {
      throw badRequest("asterisk-form is only for OPTIONS");
    }
    path = "*";
  } else if (method === "CONNECT") {
    throw new HttpError(STATUS.NotImplemented, "CONNECT is not supported", {
      expose: "CONNECT is not supported",
      close: true,
    });
  } else {
    // absolute-form (§3.2.2): its authority replaces Host, which must still be valid (§3.2).
    const m = /^https?:\/\/([^/?]*)([^?]*)(?:\?(.*))?$/i.exec(target);
    if (m === null || m[1] === "") throw badRequest("malformed request target");
    if (badHost) throw badRequest("invalid Host header");
    host = m[1];
    checkHost(host);
    path = m[2] === "" ? "/" : m[2];
    query = m[3] ?? "";
  }

  if (
    method !== "GET" && method !== "POST" && method !== "HEAD" && // interned
    (!KNOWN_METHODS.has(method) || method === "CONNECT")
  ) {
    throw new HttpError(
      STATUS.NotImplemented,
      `Method ${method} is not implemented`,
      {
        expose: `Method ${method} is not implemented`,
        close: true,
      },
    );
  }

  if (hostCount > 1) throw badRequest("more than one Host header");
  if (hostCount === 0 && minor === 1 && complete) {
    throw badRequest("missing Host header");
  }
  if (badHost) throw badRequest("invalid Host header");
  host ??= "";

  // Message body framing (§6.1, §6.3).
  let chunked = false;
  if (transferEncoding !== undefined) {
    if (contentLength !== -1) {
      throw badRequest("both Content-Length and Transfer-Encoding");
    }
    if (minor === 0) {
      throw badRequest("Transfer-Encoding in an HTTP/1.0 request");
    }
    const codings = transferEncoding.toLowerCase().split(",");
    for (let k = 0; k < codings.length; k++) {
      // Trim OWS only: String#trim() also eats NBSP, and "chunked\xa0" is
      // a coding another server may not call chunked (request smuggling).
      const coding = trimOws(codings[k]);
      const last = k === codings.length - 1;
      if (coding === "chunked") {
        if (!last) throw badRequest("chunked is not the final transfer coding");
      } else if (coding === "" || !isToken(coding)) {
        throw badRequest("malformed Transfer-Encoding");
      } else {
        throw new HttpError(
          STATUS.NotImplemented,
          `Transfer coding ${coding} is not implemented`,
          {
            expose: "Only the chunked transfer coding is supported",
            close: true,
          },
        );
      }
    }
    chunked = true;
  }

  let keepAlive = minor === 1;
  if (connection !== undefined) {
    const options = connection.toLowerCase();
    if (hasToken(options, "close")) keepAlive = false;
    else if (minor === 0 && hasToken(options, "keep-alive")) keepAlive = true;
  }

  let expectContinue = false;
  if (expect !== undefined) {
    if (expect.toLowerCase() !== "100-continue") {
      throw new HttpError(
        STATUS.ExpectationFailed,
        `Unsupported expectation: ${expect}`,
        {
          expose: "Only Expect: 100-continue is supported",
          close: true,
        },
      );
    }
    expectContinue = minor === 1; // HTTP/1.0 clients never wait (RFC 9110 §10.1.1)
  }

  return {
    method,
    target,
    path,
    query,
    minor,
    headers: new HeaderFields(text, starts),
    host,
    end: i,
    contentLength,
    chunked,
    keepAlive,
    expectContinue,
  };
}

/**
 * Throws what {@link parseHead} will throw for the head that starts at
 * `buf[start]` as soon as the bytes in `[start, end)` prove it, before its
 * blank line arrives: every whole line is parsed, and the line still
 * arriving is checked for a bare CR or a leading space or tab (obs-fold).
 * Bytes before `from` were checked by the previous call; pass where it
 * stopped less 3, as for `findHeadEnd()`. Call only while no head end is
 * in `[start, end)`. Folds header names to lower case in place.
 */
export function checkHeadSoFar(
  buf: Uint8Array,
  start: number,
  from: number,
  end: number,
  limits: Limits,
): void {
  let lineEnd = -1; // just past the last LF that arrived
  for (let k = Math.max(from, start); k < end; k++) {
    const c = buf[k];
    if (c === LF) lineEnd = k + 1;
    else if (c === CR && k + 1 < end && buf[k + 1] !== LF) {
      throw badRequest("bare CR in request head");
    }
  }
  if (lineEnd === -1) return;
  const next = buf[lineEnd];
  if (lineEnd < end && (next === SP || next === HTAB)) {
    throw badRequest("whitespace at the start of a header line");
  }
  parseHead(buf, start, lineEnd, limits, false);
}

/** Folds one Content-Length value into `prev` (-1: none yet); throws 400 or 413. */
export function mergeContentLength(
  prev: number,
  value: string,
  limits: Limits,
): number {
  if (value.length === 0) throw badRequest("empty Content-Length");
  let n = 0;
  for (let k = 0; k < value.length; k++) {
    const c = value.charCodeAt(k);
    if (!isDigit(c)) throw badRequest("malformed Content-Length");
    n = n * 10 + (c - 0x30);
  }
  // A length that disagrees with an earlier one is how smuggling starts (§6.3).
  if (prev !== -1 && prev !== n) {
    throw badRequest("conflicting Content-Length values");
  }
  if (n > limits.maxBodyBytes) {
    throw new HttpError(
      STATUS.ContentTooLarge,
      `Body of ${value} bytes is over the limit`,
      {
        expose: `Request body is larger than ${limits.maxBodyBytes} bytes`,
        close: true,
      },
    );
  }
  return n;
}

/** Throws 400 unless every byte of `host` may appear in a Host value. */
export function checkHost(host: string): void {
  for (let k = 0; k < host.length; k++) {
    if (HOST[host.charCodeAt(k)] !== 1) throw badRequest("invalid Host header");
  }
}

/** `s` without leading and trailing SP and HTAB (OWS, RFC 9110 §5.6.3). */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === SP || s.charCodeAt(a) === HTAB)) a++;
  while (
    b > a && (s.charCodeAt(b - 1) === SP || s.charCodeAt(b - 1) === HTAB)
  ) {
    b--;
  }
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function isToken(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    if (TOKEN[s.charCodeAt(k)] !== 1) return false;
  }
  return true;
}

/** True when the comma-separated `list` holds `token` (already lower case). */
function hasToken(list: string, token: string): boolean {
  if (list === token) return true;
  if (!list.includes(token)) return false; // no list to split: the common case
  for (const part of list.split(",")) {
    if (trimOws(part) === token) return true;
  }
  return false;
}
