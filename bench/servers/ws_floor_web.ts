/**
 * The web API's WebSocket floor on `Deno.listen`: ws_floor.ts's loop plus
 * what any server must do per message to hand it to an app through the web
 * `WebSocket` API (`onmessage` and `send()`), as Spindle's web-API socket
 * and `Deno.serve`'s both do, and nothing else:
 *
 * - the text checked as UTF-8 and made a string (one pass over the unmasked
 *   bytes when they are ASCII, as ours does; `TextDecoder` with `fatal`
 *   otherwise), a binary message copied into an `ArrayBuffer` the app owns;
 * - a `MessageEvent` with it as `data`, given to the app's `onmessage`;
 * - `send()`: the string encoded into a frame (a char-code pass when ASCII,
 *   `TextEncoder` otherwise) in a buffer kept per socket, then written.
 *
 * Not done: limits, fragments, control frames, compression, a close
 * handshake, `bufferedAmount`, a queue for a send during a write. For a
 * client that sends one masked frame under 126 bytes and waits for its echo
 * (case 15a). Listens on 127.0.0.1 and the port given as the first
 * argument; stops on SIGTERM.
 */
import { type FloorConn, listenAndEcho, writeAll } from "./ws_floor.ts";

const FATAL = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();
/**
 * `WEBFLOOR_PLAIN=1` (needs --allow-env): `onmessage` gets a plain `{ data }`
 * instead of a `MessageEvent`, to see what the event costs.
 */
const PLAIN = Deno.permissions.querySync({ name: "env" }).state === "granted" &&
  Deno.env.get("WEBFLOOR_PLAIN") === "1";

/** The least of the web `WebSocket` an echo app uses: `onmessage` and `send()`. */
class FloorSocket {
  binaryType = "arraybuffer";
  onmessage: ((e: MessageEvent) => void) | null = null;
  /** The next frame to write, built by `send()`, and its length. */
  out = new Uint8Array(128);
  outBytes = 0;

  send(data: string | ArrayBuffer): void {
    const out = this.out;
    if (typeof data === "string") {
      let ascii = data.length < 126;
      for (let i = 0; ascii && i < data.length; i++) {
        const c = data.charCodeAt(i);
        if (c > 0x7f) ascii = false;
        else out[2 + i] = c;
      }
      if (ascii) {
        out[0] = 0x81;
        out[1] = data.length;
        this.outBytes = 2 + data.length;
        return;
      }
      const bytes = ENCODER.encode(data);
      this.#frame(0x81, bytes);
      return;
    }
    this.#frame(0x82, new Uint8Array(data));
  }

  #frame(first: number, bytes: Uint8Array): void {
    if (bytes.length >= 126) throw new Error("the web floor sends < 126 bytes");
    this.out[0] = first;
    this.out[1] = bytes.length;
    this.out.set(bytes, 2);
    this.outBytes = 2 + bytes.length;
  }
}

/** Echoes each small frame `conn` sends through `socket`'s `onmessage`. */
async function echoFramesWeb(
  conn: FloorConn,
  buf: Uint8Array,
  socket: FloorSocket,
): Promise<void> {
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return;
    const len = buf[1] & 0x7f;
    if (len >= 126) throw new Error("the web floor reads < 126 bytes");
    let high = 0;
    for (let i = 0; i < len; i++) high |= buf[6 + i] ^= buf[2 + (i & 3)];
    const payload = buf.subarray(6, 6 + len);
    const data = (buf[0] & 0x0f) === 0x2
      ? payload.slice().buffer
      : high < 0x80
      ? String.fromCharCode.apply(null, payload as unknown as number[])
      : FATAL.decode(payload);
    socket.onmessage?.(
      PLAIN ? { data } as MessageEvent : new MessageEvent("message", { data }),
    );
    if (socket.outBytes > 0) {
      const bytes = socket.outBytes;
      socket.outBytes = 0;
      await writeAll(conn, socket.out.subarray(0, bytes));
    }
  }
}

if (import.meta.main) {
  await listenAndEcho(Number(Deno.args[0] ?? 0), (conn, buf) => {
    const socket = new FloorSocket();
    // The app, as a web-standard app and the Deno.serve reference are written.
    socket.onmessage = (e) => socket.send(e.data);
    return echoFramesWeb(conn, buf, socket);
  });
}
