/**
 * Status line and header fields -> text, the cached Date, and `writeAll()`.
 * The connection decides framing; this module only spells it.
 */
import { reasonPhrase } from "./errors.ts";
import type { ReplyHeaders } from "./handler.ts";

const statusLines = new Map<number, string>();

/** "HTTP/1.1 200 OK\r\n", built once per status. */
export function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
    statusLines.set(status, line);
  }
  return line;
}

let dateSecond = 0;
let dateLine = "";

/** "Date: <IMF-fixdate>\r\n", rebuilt at most once a second (RFC 9110 §6.6.1). */
export function dateHeader(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `Date: ${new Date(second * 1000).toUTCString()}\r\n`;
  }
  return dateLine;
}

/** How the engine frames a reply; it owns these fields, not the handler. */
export interface Framing {
  /** Content-Length to send, or -1 for none. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** Send `Connection: close`. */
  readonly close: boolean;
  /** Send `Connection: keep-alive` (HTTP/1.0 clients that asked for it). */
  readonly keepAlive: boolean;
}

/** What `serializeHead()` found among the handler's headers. */
export interface HeaderScan {
  /** Its content-length, or -1. */
  contentLength: number;
  /** It asked to close the connection. */
  close: boolean;
}

/**
 * Looks through reply headers for the fields the engine owns. Throws on a
 * CR, LF or NUL anywhere, which would split the response (CWE-113).
 */
export function scanHeaders(headers: ReplyHeaders | undefined): HeaderScan {
  const scan: HeaderScan = { contentLength: -1, close: false };
  if (headers === undefined) return scan;
  forEachHeader(headers, (name, value) => {
    checkField(name, value);
    const c = name.charCodeAt(0) | 0x20;
    if (c !== 0x63) return; // only "content-length" and "connection" matter here
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      const n = Number(value);
      if (value === "" || !Number.isSafeInteger(n) || n < 0) {
        throw new Error(`Invalid content-length in reply: ${value}`);
      }
      scan.contentLength = n;
    } else if (lower === "connection" && /(^|,)\s*close\s*(,|$)/i.test(value)) {
      scan.close = true;
    }
  });
  return scan;
}

/** Reply field names already found to be tokens; replies reuse a few names. */
const goodNames = new Set<string>();

function checkField(name: string, value: string): void {
  if (!goodNames.has(name)) {
    if (name.length === 0 || /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(name)) {
      throw new Error(`Invalid header name in reply: ${JSON.stringify(name)}`);
    }
    if (goodNames.size >= 1024) goodNames.clear(); // bounded, whatever handlers send
    goodNames.add(name);
  }
  if (/[\r\n\0]/.test(value)) {
    throw new Error(`Invalid header value in reply for ${name}`);
  }
}

function forEachHeader(
  headers: ReplyHeaders,
  fn: (name: string, value: string) => void,
): void {
  if (Array.isArray(headers)) {
    for (
      const [name, value] of headers as ReadonlyArray<readonly [string, string]>
    ) {
      fn(name, value);
    }
  } else {
    const record = headers as Readonly<Record<string, string>>;
    for (const name in record) fn(name, record[name]);
  }
}

/** Fields the engine writes itself; a handler's copies are dropped. */
const OWNED = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "date",
  "keep-alive",
]);

/** The whole head: status line, Date, the handler's fields, framing, CRLF. */
export function serializeHead(
  status: number,
  headers: ReplyHeaders | undefined,
  now: number,
  framing: Framing,
): string {
  let head = statusLine(status) + dateHeader(now);
  if (headers !== undefined) {
    forEachHeader(headers, (name, value) => {
      const c = name.charCodeAt(0) | 0x20;
      // content-length, connection, date, transfer-encoding, keep-alive
      if (
        (c === 0x63 || c === 0x64 || c === 0x74 || c === 0x6b) &&
        OWNED.has(name.toLowerCase())
      ) {
        return;
      }
      head += `${name}: ${value}\r\n`;
    });
  }
  if (framing.contentLength !== -1) {
    head += `Content-Length: ${framing.contentLength}\r\n`;
  }
  if (framing.chunked) head += "Transfer-Encoding: chunked\r\n";
  if (framing.close) head += "Connection: close\r\n";
  else if (framing.keepAlive) head += "Connection: keep-alive\r\n";
  return head + "\r\n";
}

/** Writes every byte; `conn.write()` alone may stop part-way. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}
