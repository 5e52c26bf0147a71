/**
 * Whether a request asks for a WebSocket, and the field helpers the
 * handshake shares. Apart from handshake.ts so the router can look at
 * `Upgrade` without loading the WebSocket code (hashing, deflate, framing)
 * before a client asks for it.
 */
import { HttpError, STATUS } from "../errors.ts";
import type { HeaderFields } from "../headers.ts";

/** A field's value from our parsed fields or a web `Headers`; repeats joined. */
export function field(
  headers: HeaderFields | Headers,
  name: string,
): string | undefined {
  return headers instanceof Headers
    ? headers.get(name) ?? undefined
    : headers.getJoined(name);
}

/** A comma-separated list (RFC 9110 §5.6.1), trimmed, empty elements dropped. */
export function listOf(value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    if (item !== "") out.push(item);
  }
  return out;
}

/**
 * True when the comma-separated list `value` has an element equal to
 * `token` (lowercase) but for case: `listOf()` without making the list,
 * for the fields every upgrade checks.
 */
export function listHas(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (let from = 0; from <= value.length;) {
    let end = value.indexOf(",", from);
    if (end < 0) end = value.length;
    let start = from;
    let stop = end;
    while (start < stop && isListSpace(value.charCodeAt(start))) start++;
    while (stop > start && isListSpace(value.charCodeAt(stop - 1))) stop--;
    if (
      stop - start === token.length &&
      value.slice(start, stop).toLowerCase() === token
    ) {
      return true;
    }
    from = end + 1;
  }
  return false;
}

/** What `String.prototype.trim()` takes off a list element that a header field can hold. */
function isListSpace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** True when the request asks for a WebSocket (`Upgrade: websocket`), valid or not. */
export function isUpgradeRequest(headers: HeaderFields | Headers): boolean {
  return listHas(field(headers, "upgrade"), "websocket");
}

/**
 * The 426 for a request that should have asked for a WebSocket (RFC 9110
 * §15.5.22: it names the protocol to switch to, and `Connection` lists
 * the upgrade, §7.8): `detail` for the log, `expose` for the client.
 */
export function webSocketRequired(detail: string, expose: string): HttpError {
  return new HttpError(STATUS.UpgradeRequired, detail, {
    expose,
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });
}
