/**
 * The WebSocket opening handshake (RFC 6455 §4.2): checks an upgrade
 * request's head, computes `Sec-WebSocket-Accept`, picks a subprotocol and
 * negotiates permessage-deflate (RFC 7692 §7.1). No I/O here: it reads
 * header fields and returns what the 101 reply carries, or throws an
 * {@link HttpError} (400; 403 for an origin not allowed; 426 for a
 * version other than 13).
 */
import { createHash } from "node:crypto";
import { HttpError, STATUS } from "../errors.ts";
import type { HeaderFields } from "../headers.ts";
import { TOKEN } from "../parser.ts";
import {
  DEFAULT_DEFLATE_LEVEL,
  DEFAULT_DEFLATE_MIN_BYTES,
  deflateAvailable,
  type DeflateParams,
} from "./deflate.ts";
import { field, isUpgradeRequest, listHas, listOf } from "./upgrade_request.ts";

export { isUpgradeRequest };

/** RFC 6455 §1.3: appended to the key before hashing. */
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** 16 bytes in canonical base64: 21 free characters, one with 2 bits, "==". */
const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * What the app allows for permessage-deflate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { DeflateOptions, WsRouteOptions } from "@spindle/server";
 *
 * const deflate: DeflateOptions = { serverNoContextTakeover: true, level: 1 };
 * const options: WsRouteOptions = { compression: deflate };
 * assert.equal(options.compression, deflate);
 * ```
 */
export interface DeflateOptions {
  /** Empty the server's window after each message: less memory, worse ratio. */
  readonly serverNoContextTakeover?: boolean;
  /** Ask the client to empty its window after each message (frees our inflater between messages). */
  readonly clientNoContextTakeover?: boolean;
  /** Largest window for our compressor, 8..15 (memory grows with it). */
  readonly serverMaxWindowBits?: number;
  /** Largest window the client may use, 8..15, when it lets us choose. */
  readonly clientMaxWindowBits?: number;
  /** zlib level 0..9 for what we send; default 6. */
  readonly level?: number;
  /** Messages shorter than this are sent uncompressed; default 1024 bytes. */
  readonly minBytes?: number;
}

/**
 * What the app accepts in the handshake.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { UpgradeOptions } from "@spindle/server";
 *
 * const options: UpgradeOptions = {
 *   protocols: ["chat.v2", "chat.v1"], // ours, most preferred first
 *   origins: ["https://app.example"], // other browser pages get 403
 * };
 * assert.equal(options.protocols?.[0], "chat.v2");
 * ```
 */
export interface UpgradeOptions {
  /** Subprotocols the app speaks, most preferred first; the first the client also offers wins. */
  readonly protocols?: readonly string[];
  /** Negotiate permessage-deflate when the client offers it. Default: off. */
  readonly compression?: boolean | DeflateOptions;
  /**
   * Origins allowed to connect, as browsers send them
   * (`https://example.com`); others get 403. Unset: any. Browsers send
   * cookies with a WebSocket upgrade from any site, so an app that trusts
   * cookies should set this (cross-site WebSocket hijacking).
   */
  readonly origins?: readonly string[];
}

/** The request head fields the handshake reads. */
export interface UpgradeHead {
  readonly method: string;
  /** "HTTP/1.1"; anything else is refused with 400. */
  readonly version: string;
  /** Our parsed fields, or a web `Headers` (the fetch adapter's). */
  readonly headers: HeaderFields | Headers;
}

/** An accepted upgrade: what the 101 reply says and what the session needs. */
export interface Upgrade {
  /** Header fields of the 101 reply, in order. */
  readonly headers: readonly (readonly [string, string])[];
  /** The subprotocol agreed, or "" for none. */
  readonly protocol: string;
  /** permessage-deflate as agreed, or null when off. */
  readonly deflate: DeflateParams | null;
  /** Compression level and threshold for what the server sends. */
  readonly deflateLevel: number;
  readonly deflateMinBytes: number;
}

function isToken(s: string): boolean {
  if (s === "") return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f || TOKEN[c] === 0) return false;
  }
  return true;
}

function refuse(what: string): HttpError {
  const message = `Cannot upgrade to WebSocket: ${what}`;
  return new HttpError(STATUS.BadRequest, message, { expose: message });
}

/** `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  // node:crypto hashes synchronously in ~1.5 µs; WebCrypto's digest() is a
  // promise that took ~54 µs in Deno 2.9.6 (busy machine).
  return createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
}

/**
 * Checks a WebSocket upgrade request and agrees on its terms. Throws
 * HttpError 400 for a request that is not a valid upgrade, 403 for an
 * origin not in `opts.origins`, and 426 with `Sec-WebSocket-Version: 13`
 * for another protocol version.
 */
export function acceptUpgrade(
  head: UpgradeHead,
  opts: UpgradeOptions = {},
): Upgrade {
  const { headers } = head;
  if (head.method !== "GET") throw refuse(`method is ${head.method}, not GET`);
  if (head.version !== "HTTP/1.1") {
    throw refuse(`${head.version} has no upgrade; use HTTP/1.1`);
  }
  if (!isUpgradeRequest(headers)) {
    throw refuse("Upgrade header does not name websocket");
  }
  if (!listHas(field(headers, "connection"), "upgrade")) {
    throw refuse("Connection header does not name upgrade");
  }
  const version = field(headers, "sec-websocket-version");
  if (version?.trim() !== "13") {
    const message =
      "Cannot upgrade to WebSocket: Sec-WebSocket-Version must be 13";
    throw new HttpError(STATUS.UpgradeRequired, message, {
      expose: message,
      headers: { "Sec-WebSocket-Version": "13" },
    });
  }
  const key = field(headers, "sec-websocket-key")?.trim();
  if (key === undefined) throw refuse("Sec-WebSocket-Key is missing");
  if (!KEY_PATTERN.test(key)) {
    throw refuse("Sec-WebSocket-Key is not 16 bytes of base64");
  }
  if (opts.origins !== undefined) {
    const origin = field(headers, "origin");
    // No Origin: not a browser, so no ambient cookies to abuse.
    if (origin !== undefined && !opts.origins.includes(origin)) {
      const message =
        `Cannot upgrade to WebSocket: origin ${origin} is not allowed`;
      throw new HttpError(STATUS.Forbidden, message, { expose: message });
    }
  }

  const out: [string, string][] = [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Accept", acceptKey(key)],
  ];
  const protocol = pickProtocol(
    listOf(field(headers, "sec-websocket-protocol")),
    opts.protocols ?? [],
  );
  if (protocol !== "") out.push(["Sec-WebSocket-Protocol", protocol]);

  let deflate: DeflateParams | null = null;
  const dopts = opts.compression === true ? {} : opts.compression || undefined;
  if (dopts !== undefined && deflateAvailable()) {
    const offers = field(headers, "sec-websocket-extensions");
    const agreed = offers === undefined
      ? null
      : negotiateDeflate(offers, dopts);
    if (agreed !== null) {
      deflate = agreed.params;
      out.push(["Sec-WebSocket-Extensions", agreed.response]);
    }
  }
  return {
    headers: out,
    protocol,
    deflate,
    deflateLevel: dopts?.level ?? DEFAULT_DEFLATE_LEVEL,
    deflateMinBytes: dopts?.minBytes ?? DEFAULT_DEFLATE_MIN_BYTES,
  };
}

/** The app's most preferred protocol that the client offered, or "". */
function pickProtocol(
  offered: string[],
  supported: readonly string[],
): string {
  for (const p of offered) {
    // RFC 6455 §4.1: each element is a token.
    if (!isToken(p)) throw refuse("Sec-WebSocket-Protocol is malformed");
  }
  for (const p of supported) if (offered.includes(p)) return p;
  return "";
}

/** One extension offer: its name and parameters as sent (values unquoted). */
interface ExtensionOffer {
  readonly name: string;
  readonly params: [string, string | undefined][];
}

/**
 * Parses `Sec-WebSocket-Extensions` (RFC 6455 §9.1): offers separated by
 * commas, parameters by semicolons, values tokens or quoted strings.
 * Returns null when the field is malformed.
 */
export function parseExtensions(value: string): ExtensionOffer[] | null {
  const offers: ExtensionOffer[] = [];
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n) {
      const c = value.charCodeAt(i);
      if (c > 0x7f || TOKEN[c] === 0) break;
      i++;
    }
    return value.slice(start, i);
  };
  for (;;) {
    skipSpace();
    const name = readToken();
    if (name === "") return null;
    const params: [string, string | undefined][] = [];
    skipSpace();
    while (value[i] === ";") {
      i++;
      skipSpace();
      const attr = readToken().toLowerCase();
      if (attr === "") return null;
      skipSpace();
      let val: string | undefined;
      if (value[i] === "=") {
        i++;
        skipSpace();
        if (value[i] === '"') {
          // quoted-string; RFC 7692 §7.1 still wants a token inside.
          const end = value.indexOf('"', i + 1);
          if (end < 0) return null;
          val = value.slice(i + 1, end);
          i = end + 1;
          if (!isToken(val)) return null;
        } else {
          val = readToken();
          if (val === "") return null;
        }
        skipSpace();
      }
      params.push([attr, val]);
    }
    offers.push({ name: name.toLowerCase(), params });
    if (i === n) return offers;
    if (value[i] !== ",") return null;
    i++;
  }
}

/** "8".."15" as a number, else undefined (no signs, no leading zeros). */
function windowBits(value: string | undefined): number | undefined {
  if (value === undefined || !/^(?:[89]|1[0-5])$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Accepts the first valid permessage-deflate offer (RFC 7692 §5, §7.1):
 * an offer with an unknown, repeated or malformed parameter is skipped.
 * Returns the agreed parameters and the response element, or null.
 */
export function negotiateDeflate(
  header: string,
  opts: DeflateOptions,
): { params: DeflateParams; response: string } | null {
  const offers = parseExtensions(header);
  if (offers === null) return null;
  for (const offer of offers) {
    if (offer.name !== "permessage-deflate") continue;
    const agreed = acceptOffer(offer, opts);
    if (agreed !== null) return agreed;
  }
  return null;
}

function acceptOffer(
  offer: ExtensionOffer,
  opts: DeflateOptions,
): { params: DeflateParams; response: string } | null {
  let serverNoTakeover = false;
  let clientNoTakeover = false;
  let serverBits: number | undefined;
  /** null: offered without a value; undefined: not offered. */
  let clientBits: number | null | undefined;
  const seen = new Set<string>();
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return null; // §7.1: a repeated parameter declines the offer
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
        if (value !== undefined) return null;
        serverNoTakeover = true;
        break;
      case "client_no_context_takeover":
        if (value !== undefined) return null;
        clientNoTakeover = true;
        break;
      case "server_max_window_bits":
        serverBits = windowBits(value);
        if (serverBits === undefined) return null;
        break;
      case "client_max_window_bits":
        if (value === undefined) {
          clientBits = null;
        } else {
          clientBits = windowBits(value);
          if (clientBits === undefined) return null;
        }
        break;
      default:
        return null;
    }
  }

  const response = ["permessage-deflate"];
  serverNoTakeover ||= opts.serverNoContextTakeover === true;
  if (serverNoTakeover) response.push("server_no_context_takeover");
  // §7.1.1.2: the server may ask this of any client; a client that offered
  // it has promised it anyway, and saying so lets us free the inflater.
  clientNoTakeover ||= opts.clientNoContextTakeover === true;
  if (clientNoTakeover) response.push("client_no_context_takeover");

  const ourServerBits = opts.serverMaxWindowBits ?? 15;
  const serverWindow = Math.min(serverBits ?? 15, ourServerBits);
  // §7.1.2.1: answer a requested limit with one at most as large; a
  // smaller window of our own may be announced unasked.
  if (serverBits !== undefined || serverWindow < 15) {
    response.push(`server_max_window_bits=${serverWindow}`);
  }

  let clientWindow = 15;
  // §7.1.2.2: only a client that sent client_max_window_bits may be told a
  // limit, and never a larger one than it named.
  if (clientBits !== undefined) {
    clientWindow = Math.min(clientBits ?? 15, opts.clientMaxWindowBits ?? 15);
    if (clientBits !== null || clientWindow < 15) {
      response.push(`client_max_window_bits=${clientWindow}`);
    }
  }
  return {
    params: {
      serverNoContextTakeover: serverNoTakeover,
      clientNoContextTakeover: clientNoTakeover,
      serverMaxWindowBits: serverWindow,
      clientMaxWindowBits: clientWindow,
    },
    response: response.join("; "),
  };
}
