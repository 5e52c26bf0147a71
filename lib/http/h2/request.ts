/**
 * A decoded HTTP/2 header list -> a request head, by RFC 9113 §8 and as
 * strictly as the HTTP/1.1 parser reads a head: the same byte tables, the
 * same Host check and the same statuses. No I/O. Throws {@link HttpError};
 * the session answers it on the stream, as the engine answers any error.
 */
import type { Limits } from "../../config.ts";
import { badRequest, HttpError, STATUS } from "../errors.ts";
import { HeaderFields } from "../headers.ts";
import {
  checkHost,
  FIELD_VALUE,
  KNOWN_METHODS,
  mergeContentLength,
  TARGET,
  TOKEN,
} from "../parser.ts";
import type { HeaderList } from "./hpack.ts";

const COLON = 0x3a;
const SP = 0x20;
const HTAB = 0x09;

/** A request's pseudo-header fields and header fields, checked. */
export interface H2RequestHead {
  readonly method: string;
  /** "http" or "https", as the client sent it. */
  readonly scheme: string;
  /** `:path` exactly as sent (origin-form, or "*" for OPTIONS). */
  readonly target: string;
  /** Path part of the target, still percent-encoded; "*" for asterisk-form. */
  readonly path: string;
  /** Query without "?"; "" when absent. */
  readonly query: string;
  /** `:authority`, or the Host field when it is absent (RFC 9113 §8.3.1). */
  readonly host: string;
  /** Header fields without pseudo-header fields; cookie crumbs joined (§8.2.3). */
  readonly headers: HeaderFields;
  /** Content-Length, or -1 when absent. */
  readonly contentLength: number;
}

/** Fields that only mean something to one HTTP/1.1 connection (§8.2.2). */
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

/** 431 for a list past h2MaxHeaderListBytes or maxHeaderCount. */
function tooLarge(what: string): HttpError {
  return new HttpError(STATUS.RequestHeaderFieldsTooLarge, what);
}

/**
 * Checks a request's header list and returns its head. Throws
 * {@link HttpError}: 400 for a malformed request (§8.1.1), 431 past the
 * header limits, 413 for a Content-Length past maxBodyBytes, 414 for a
 * long `:path`, 501 for CONNECT and unknown methods.
 */
export function checkRequest(list: HeaderList, limits: Limits): H2RequestHead {
  if (list.overflow) tooLargeList(list, limits);
  const { names: allNames, values: allValues } = list;
  let method: string | undefined;
  let scheme: string | undefined;
  let target: string | undefined;
  let authority: string | undefined;
  let host: string | undefined;
  let hostCount = 0;
  let contentLength = -1;
  let cookie: string | undefined;
  let cookieAt = -1;
  const names: string[] = [];
  const values: string[] = [];
  let i = 0;
  // Pseudo-header fields come first, each at most once (§8.3).
  for (; i < allNames.length; i++) {
    const name = allNames[i];
    if (name.charCodeAt(0) !== COLON) break;
    const value = allValues[i];
    checkValue(value, "pseudo-header");
    switch (name) {
      case ":method":
        if (method !== undefined) throw twice(name);
        method = value;
        break;
      case ":scheme":
        if (scheme !== undefined) throw twice(name);
        scheme = value;
        break;
      case ":path":
        if (target !== undefined) throw twice(name);
        target = value;
        break;
      case ":authority":
        if (authority !== undefined) throw twice(name);
        authority = value;
        break;
      default:
        throw badRequest(`unknown pseudo-header field ${name}`);
    }
  }
  for (; i < allNames.length; i++) {
    const name = allNames[i];
    const value = allValues[i];
    if (name.charCodeAt(0) === COLON) {
      throw badRequest("pseudo-header field after a regular field");
    }
    checkName(name);
    checkValue(value, "field");
    switch (name) {
      case "host":
        hostCount++;
        host = value;
        break;
      case "content-length":
        contentLength = mergeContentLength(contentLength, value, limits);
        break;
      case "te":
        // §8.2.2: "trailers" is the one TE value HTTP/2 carries.
        if (value.toLowerCase() !== "trailers") {
          throw badRequest("TE other than trailers");
        }
        break;
      case "cookie":
        // §8.2.3: crumbs sent as separate fields make one field again.
        if (cookieAt === -1) {
          cookieAt = names.length;
          cookie = value;
        } else cookie += `; ${value}`;
        continue;
      default:
        if (CONNECTION_SPECIFIC.has(name)) {
          throw badRequest(`connection-specific field ${name}`);
        }
    }
    names.push(name);
    values.push(value);
  }
  if (cookieAt !== -1) {
    names.splice(cookieAt, 0, "cookie");
    values.splice(cookieAt, 0, cookie!);
  }
  if (names.length > limits.maxHeaderCount) {
    throw tooLarge("Too many header fields");
  }

  if (method === undefined) throw badRequest("missing :method");
  if (!isToken(method)) throw badRequest("malformed method");
  if (method === "CONNECT") {
    // §8.5: CONNECT names only an authority. Well formed, it is still 501.
    if (scheme !== undefined || target !== undefined) {
      throw badRequest("CONNECT with :scheme or :path");
    }
    if (authority === undefined) throw badRequest("CONNECT without :authority");
    throw notImplemented("CONNECT is not supported");
  }
  if (scheme === undefined) throw badRequest("missing :scheme");
  if (target === undefined) throw badRequest("missing :path");
  if (scheme !== "https" && scheme !== "http") {
    throw badRequest(`unsupported :scheme ${scheme}`);
  }
  if (target.length > limits.maxTargetBytes) {
    throw new HttpError(STATUS.URITooLong, "Request target too long");
  }
  for (let k = 0; k < target.length; k++) {
    if (TARGET[target.charCodeAt(k)] !== 1) {
      throw badRequest("invalid byte in request target");
    }
  }
  let path: string;
  let query = "";
  if (target.charCodeAt(0) === 0x2f) {
    const q = target.indexOf("?");
    path = q === -1 ? target : target.slice(0, q);
    if (q !== -1) query = target.slice(q + 1);
  } else if (target === "*" && method === "OPTIONS") {
    path = "*";
  } else {
    // §8.3.1: never empty, and absolute-form belongs in :authority.
    throw badRequest(
      target === "*"
        ? "asterisk-form is only for OPTIONS"
        : "malformed request target",
    );
  }
  if (!KNOWN_METHODS.has(method)) {
    throw notImplemented(`Method ${method} is not implemented`);
  }

  if (hostCount > 1) throw badRequest("more than one Host header");
  if (authority !== undefined) {
    if (authority === "") throw badRequest("empty :authority");
    checkHost(authority);
    // §8.3.1: a Host naming another authority is malformed.
    if (host !== undefined && host.toLowerCase() !== authority.toLowerCase()) {
      throw badRequest("Host differs from :authority");
    }
    host = authority;
  } else if (host === undefined) {
    throw badRequest("missing Host header");
  } else checkHost(host);

  return {
    method,
    scheme,
    target,
    path,
    query,
    host,
    headers: HeaderFields.fromLists(names, values),
    contentLength,
  };
}

/**
 * Checks a trailer section (§8.1): no pseudo-header fields, field rules as
 * in a head, at most `maxTrailerBytes` counted as HPACK counts. Throws 400
 * or 431.
 */
export function checkTrailers(list: HeaderList, limits: Limits): HeaderFields {
  if (list.overflow || list.bytes > limits.maxTrailerBytes) {
    throw tooLarge("Trailer section too large");
  }
  const { names, values } = list;
  if (names.length > limits.maxHeaderCount) {
    throw tooLarge("Too many trailer fields");
  }
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    if (name.charCodeAt(0) === COLON) {
      throw badRequest("pseudo-header field in trailers");
    }
    checkName(name);
    checkValue(values[i], "trailer field");
    if (CONNECTION_SPECIFIC.has(name)) {
      throw badRequest(`connection-specific field ${name}`);
    }
  }
  return HeaderFields.fromLists(names, values);
}

function tooLargeList(list: HeaderList, limits: Limits): never {
  throw new HttpError(
    STATUS.RequestHeaderFieldsTooLarge,
    `Header list of at least ${list.bytes} bytes is over ${limits.h2MaxHeaderListBytes}`,
  );
}

/** §8.2.1: a token in lower case (upper case is malformed in HTTP/2). */
function checkName(name: string): void {
  if (name.length === 0) throw badRequest("empty field name");
  for (let k = 0; k < name.length; k++) {
    const c = name.charCodeAt(k);
    if (TOKEN[c] !== 1) throw badRequest("malformed field name");
    if (c >= 0x41 && c <= 0x5a) throw badRequest("upper case in field name");
  }
}

/** §8.2.1 and RFC 9110 §5.5: no control bytes, no white space at either end. */
function checkValue(value: string, what: string): void {
  const n = value.length;
  if (n === 0) return;
  for (let k = 0; k < n; k++) {
    if (FIELD_VALUE[value.charCodeAt(k)] !== 1) {
      throw badRequest(`control byte in ${what} value`);
    }
  }
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  if (first === SP || first === HTAB || last === SP || last === HTAB) {
    throw badRequest(`white space around a ${what} value`);
  }
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let k = 0; k < s.length; k++) {
    if (TOKEN[s.charCodeAt(k)] !== 1) return false;
  }
  return true;
}

function twice(name: string): HttpError {
  return badRequest(`${name} more than once`);
}

function notImplemented(message: string): HttpError {
  return new HttpError(STATUS.NotImplemented, message, { expose: message });
}
