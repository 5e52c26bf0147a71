/**
 * Whether a request asks for a WebSocket, and the field helpers the
 * handshake shares. Apart from handshake.ts so the router can look at
 * `Upgrade` without loading the WebSocket code (hashing, deflate, framing)
 * before a client asks for it.
 */
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

/** True when the request asks for a WebSocket (`Upgrade: websocket`), valid or not. */
export function isUpgradeRequest(headers: HeaderFields | Headers): boolean {
  return listOf(field(headers, "upgrade")).some((p) =>
    p.toLowerCase() === "websocket"
  );
}
