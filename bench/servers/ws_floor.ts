/**
 * The WebSocket floor for any server on `Deno.listen`: the handshake, then
 * per message the least an echo costs. No limits, no checks, no deadlines,
 * no events, no fragments or control frames (a close frame is echoed as if
 * it were data): correct only for a client that sends one masked frame and
 * waits for its echo, as cases 15a and 15b do. Not a server: a measure of
 * what a message costs on `conn.read()` and `conn.write()` with the least
 * work a server must do between them.
 *
 * - A frame under 126 bytes (15a): one read, unmasked in the read buffer,
 *   echoed from it with one write (the whole frame must come in that read).
 * - A bigger one (15b): what any server must pay that hands its app the
 *   message as bytes the app owns. The header is read (with the first
 *   bytes of the payload, copied over), a fresh `new Uint8Array(length)` is
 *   made for the payload (the app keeps its message, so no pooled buffer)
 *   and the rest of the payload is read straight into it; it is unmasked
 *   by the engine's own `unmask()` (lib/http/ws/unmask.ts, whatever is
 *   fastest there), then copied behind an echo header into a buffer kept
 *   per socket (as Deno's `send()` copies) and written in one write. Not
 *   done: the UTF-8 check of text, a size limit, a message event.
 *
 * Listens on 127.0.0.1 and the port given as the first argument; stops on
 * SIGTERM.
 */
import { frameHeadSize, writeFrameHead } from "../../lib/http/ws/frame.ts";
import { unmask } from "../../lib/http/ws/unmask.ts";

/** Bytes of the first read of each message: a small frame's whole read. */
const READ_BYTES = 4096;

/** What the floor's loop needs of a socket (bench/ws_layers.ts hands it a fake one). */
export type FloorConn = Pick<Deno.Conn, "read" | "write">;

/** The 101 for the one key the bench's client sends, or any other. */
async function accept(key: string): Promise<Uint8Array> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`),
  );
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  return new TextEncoder().encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
}

export async function writeAll(
  conn: FloorConn,
  bytes: Uint8Array,
): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Reads into `buf` from `from` until it is full; the client went away: throws. */
async function readFull(
  conn: FloorConn,
  buf: Uint8Array,
  from: number,
): Promise<void> {
  while (from < buf.length) {
    const n = await conn.read(buf.subarray(from));
    if (n === null) throw new Error("Client closed mid-frame");
    from += n;
  }
}

/**
 * Echoes one frame of 126 bytes or more whose first `n` bytes are in
 * `buf`, as the doc comment above says. Returns the kept echo buffer:
 * `kept`, or a larger one when this frame did not fit it.
 */
async function echoLarge(
  conn: FloorConn,
  buf: Uint8Array,
  n: number,
  kept: Uint8Array,
): Promise<Uint8Array> {
  // 2 bytes, a 16- or 64-bit length, the mask key.
  const headBytes = (buf[1] & 0x7f) === 126 ? 8 : 14;
  if (n < headBytes) {
    await readFull(conn, buf.subarray(0, headBytes), n);
    n = headBytes;
  }
  let length = 0;
  for (let i = 2; i < headBytes - 4; i++) length = length * 256 + buf[i];
  const payload = new Uint8Array(length);
  // What the first read took past the header, then the rest in place.
  const early = Math.min(n - headBytes, length);
  payload.set(buf.subarray(headBytes, headBytes + early));
  await readFull(conn, payload, early);
  unmask(payload, buf.subarray(headBytes - 4, headBytes));
  const size = frameHeadSize(length) + length;
  const out = kept.length >= size ? kept : new Uint8Array(size);
  out.set(payload, writeFrameHead(out, 0, buf[0] & 0x0f, length));
  await writeAll(conn, out.subarray(0, size));
  return out;
}

/**
 * The floor's loop after the handshake: echoes each frame `conn` sends, as
 * the doc comment above says, until it closes. `buf` is the socket's read
 * buffer (a small frame must fit it). Throws when a big frame is cut off.
 */
export async function echoFrames(
  conn: FloorConn,
  buf: Uint8Array,
): Promise<void> {
  let kept: Uint8Array = new Uint8Array(0);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return;
    const len = buf[1] & 0x7f;
    if (len >= 126) {
      kept = await echoLarge(conn, buf, n, kept);
      continue;
    }
    // One masked frame with a payload under 126 bytes, as the load sends:
    // the reply is its payload, unmasked, behind a 2-byte header, written
    // over the 4 bytes of the client's mask.
    for (let i = 0; i < len; i++) buf[6 + i] ^= buf[2 + (i & 3)];
    buf[4] = buf[0];
    buf[5] = len;
    await writeAll(conn, buf.subarray(4, 6 + len));
  }
}

/**
 * Listens on 127.0.0.1:`port`; for each connection reads the handshake,
 * writes the 101, then hands the socket and its read buffer (a small
 * frame's whole read) to `loop` until it returns or the client goes away.
 */
export async function listenAndEcho(
  port: number,
  loop: (conn: FloorConn, buf: Uint8Array) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  for await (const conn of listener) {
    handshakeThen(conn as Deno.TcpConn, loop);
  }
}

async function handshakeThen(
  conn: Deno.TcpConn,
  loop: (conn: FloorConn, buf: Uint8Array) => Promise<void>,
): Promise<void> {
  conn.setNoDelay(true);
  const buf = new Uint8Array(READ_BYTES);
  try {
    const n = await conn.read(buf);
    if (n === null) return;
    const head = new TextDecoder().decode(buf.subarray(0, n));
    const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
    await writeAll(conn, await accept(key));
    await loop(conn, buf);
  } catch {
    // the client went away
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

if (import.meta.main) {
  await listenAndEcho(Number(Deno.args[0] ?? 0), echoFrames);
}
