/**
 * The lingering close (RFC 9112 §9.6), one for every way a connection ends
 * with a reply: shut our sending side, then read and drop what the client
 * still sends for a while. Closing at once with its bytes unread makes the
 * kernel answer with a reset, which can destroy our reply before the
 * client reads it.
 */
import type { Socket } from "./socket.ts";

/**
 * How long a closing socket lingers. Enough for bytes already on their way
 * and a retransmit (Apache lingers 2 s too); short, since the socket holds
 * a descriptor meanwhile and the server reclaims lingering ones first.
 */
export const LINGER_MS = 2000;
/** Most bytes dropped while lingering: a client still streaming is not finishing. */
export const LINGER_BYTES = 1024 * 1024;

/**
 * Reads into `scratch` and drops it until the client closes or
 * LINGER_BYTES have come; the caller bounds the time (LINGER_MS). Throws
 * as `read()` does.
 */
export async function dropUntilClosed(
  socket: Socket,
  scratch: Uint8Array,
): Promise<void> {
  for (let total = 0; total < LINGER_BYTES;) {
    const n = await socket.read(scratch);
    if (n === null) return;
    total += n;
  }
}
