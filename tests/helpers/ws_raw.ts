/**
 * A WebSocket client over a raw socket, for tests that send what a real
 * client would not: the handshake as bytes, then frames built by
 * `clientFrame()`, and the server's frames read back one by one. Every
 * wait is bounded.
 */
import { OPCODE } from "../../lib/http/ws/frame.ts";
import {
  readClose,
  type ServerFrame,
  ServerFrameReader,
} from "../fixtures/ws_frames.ts";
import {
  connect,
  type RawReply,
  ReplyReader,
  send,
  WAIT_MS,
  withTimeout,
} from "./socket.ts";

/** A valid key (RFC 6455 §1.3's example). */
export const WS_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
/** The accept value for {@link WS_KEY}. */
export const WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/** An upgrade request for `path`, with extra header lines ending in CRLF. */
export function upgradeRequest(path = "/echo", extra = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\n` +
    `Sec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

/** One raw WebSocket connection after its handshake. */
export class RawWs implements Disposable {
  readonly conn: Deno.Conn;
  /** The server's answer to the handshake (101 unless refused). */
  readonly reply: RawReply;
  readonly #frames = new ServerFrameReader();
  #taken = 0;
  #eof = false;
  readonly #buf = new Uint8Array(64 * 1024);

  private constructor(conn: Deno.Conn, reply: RawReply, rest: Uint8Array) {
    this.conn = conn;
    this.reply = reply;
    if (rest.length > 0) this.#frames.push(rest);
  }

  /**
   * Connects (with `dial`, plain TCP by default) and sends `request` (an
   * upgrade) followed by `after` in the same write, then reads the
   * answer's head.
   */
  static async open(
    port: number,
    request = upgradeRequest(),
    after: Uint8Array = new Uint8Array(0),
    dial: (port: number) => Promise<Deno.Conn> = connect,
  ): Promise<RawWs> {
    const conn = await dial(port);
    try {
      const head = new TextEncoder().encode(request);
      const bytes = new Uint8Array(head.length + after.length);
      bytes.set(head);
      bytes.set(after, head.length);
      await send(conn, bytes);
      const reader = new ReplyReader(conn);
      const reply = await reader.readReply();
      return new RawWs(conn, reply, reader.buffered.slice());
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** Sends bytes as they are (frames from `clientFrame()`). */
  send(bytes: Uint8Array): Promise<void> {
    return send(this.conn, bytes);
  }

  /** The next frame from the server; fails if the connection ends first. */
  async frame(timeoutMs = WAIT_MS): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.frames.length <= this.#taken) {
      if (!(await this.#fill(deadline))) {
        throw new Error("Connection closed before the next frame");
      }
    }
    return this.#frames.frames[this.#taken++];
  }

  /** Skips pings and pongs; the next close frame's code and reason. */
  async closeFrame(timeoutMs = WAIT_MS): Promise<[number, string]> {
    for (;;) {
      const f = await this.frame(timeoutMs);
      if (f.opcode === OPCODE.Close) return readClose(f.payload);
      if (f.opcode !== OPCODE.Ping && f.opcode !== OPCODE.Pong) {
        throw new Error(`Expected a close frame, got opcode ${f.opcode}`);
      }
    }
  }

  /**
   * True once the server closed the socket (end of stream or reset),
   * frames read or not; then closes ours, as a client does (RFC 6455 §7.1.1).
   */
  async ended(timeoutMs = WAIT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (await this.#fill(deadline)) { /* drop */ }
    this[Symbol.dispose]();
    return this.#eof;
  }

  async #fill(deadline: number): Promise<boolean> {
    if (this.#eof) return false;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("Timed out reading frames");
    let n: number | null;
    try {
      n = await withTimeout(this.conn.read(this.#buf), left, "reading frames");
    } catch (err) {
      if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
      n = null;
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#frames.push(this.#buf.subarray(0, n));
    return true;
  }

  [Symbol.dispose](): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}
