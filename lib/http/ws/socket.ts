/**
 * The app's view of a WebSocket: the web `WebSocket` shape that
 * `Deno.upgradeWebSocket()` hands a server (events and `on*` handlers,
 * `send()`, `close()`, `readyState`, `bufferedAmount`), over a
 * {@link WsSession}. No I/O here: the engine writes the session's output,
 * and calls `opened()` once the 101 reply is on the wire.
 */
import { MAX_CLOSE_REASON_BYTES } from "./frame.ts";
import type { WsEvent, WsSession } from "./session.ts";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

type Handler<E extends Event> =
  | ((this: ServerWebSocket, ev: E) => unknown)
  | null;

/** What the handshake agreed, as the web API reports it. */
export interface ServerWebSocketInit {
  /** ws:// or wss:// URL of the request. */
  readonly url: string;
  /** The subprotocol agreed, or "". */
  readonly protocol: string;
  /** The Sec-WebSocket-Extensions reply value, or "". */
  readonly extensions: string;
}

const encoder = new TextEncoder();

/**
 * A server-side WebSocket with the web API's shape. Events are
 * dispatched to `on*` handlers first, then to listeners. What an `on*`
 * handler throws fails the connection with 1011 and reaches the engine.
 */
export class ServerWebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  readonly url: string;
  readonly protocol: string;
  readonly extensions: string;
  /** How binary messages arrive: "blob" (the web default) or "arraybuffer". */
  binaryType: BinaryType = "blob";
  onopen: Handler<Event> = null;
  onmessage: Handler<MessageEvent> = null;
  onerror: Handler<Event> = null;
  onclose: Handler<CloseEvent> = null;

  readonly #session: WsSession;
  #readyState = CONNECTING;
  /** Sends waiting behind a Blob being read, so messages keep their order. */
  #queue: Promise<void> | undefined;
  #queued = 0;

  /** Takes over `session.onEvent`. */
  constructor(session: WsSession, init: ServerWebSocketInit) {
    super();
    this.#session = session;
    this.url = init.url;
    this.protocol = init.protocol;
    this.extensions = init.extensions;
    session.onEvent = (e) => this.#onSessionEvent(e);
  }

  get readyState(): number {
    return this.#readyState;
  }

  /** Bytes queued for the peer and not yet written. */
  get bufferedAmount(): number {
    return this.#session.bufferedAmount;
  }

  /** For the engine: the 101 reply is written; fires "open". */
  opened(): void {
    if (this.#readyState !== CONNECTING) return;
    this.#readyState = OPEN;
    this.#fire(new Event("open"), this.onopen);
  }

  /**
   * Sends a message: strings as text, bytes and Blobs as binary. Throws
   * InvalidStateError before "open"; after close() it drops the message,
   * as the web API does.
   */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.#readyState === CONNECTING) {
      throw new DOMException("WebSocket is not open yet", "InvalidStateError");
    }
    if (data instanceof Blob || this.#queued > 0) {
      // A Blob is read asynchronously; what is sent after it waits for it.
      this.#queued++;
      this.#queue = (this.#queue ?? Promise.resolve()).then(async () => {
        const payload = data instanceof Blob
          ? new Uint8Array(await data.arrayBuffer())
          : data;
        this.#queued--;
        this.#session.send(toPayload(payload));
      }).catch(() => this.#session.abort("Cannot read a Blob to send"));
      return;
    }
    this.#session.send(toPayload(data));
  }

  /**
   * Starts the closing handshake. As the web API: `code` is 1000 or
   * 3000-4999 (else InvalidAccessError), `reason` at most 123 bytes of
   * UTF-8 (else SyntaxError).
   */
  close(code?: number, reason = ""): void {
    if (
      code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)
    ) {
      throw new DOMException(
        `Close code ${code} is not 1000 or 3000-4999`,
        "InvalidAccessError",
      );
    }
    if (encoder.encode(reason).length > MAX_CLOSE_REASON_BYTES) {
      throw new DOMException("Close reason over 123 bytes", "SyntaxError");
    }
    if (this.#readyState >= CLOSING) return;
    this.#readyState = CLOSING;
    this.#session.close(code ?? 1000, reason);
  }

  #onSessionEvent(e: WsEvent): void {
    switch (e.type) {
      case "text":
        this.#fire(
          new MessageEvent("message", { data: e.data }),
          this.onmessage,
        );
        return;
      case "binary": {
        const data = this.binaryType === "arraybuffer"
          ? toArrayBuffer(e.data)
          : new Blob([e.data as Uint8Array<ArrayBuffer>]);
        this.#fire(new MessageEvent("message", { data }), this.onmessage);
        return;
      }
      case "close":
        this.#readyState = CLOSED;
        // As browsers do: a connection that failed says so before it closes.
        if (!e.wasClean) this.#fire(new Event("error"), this.onerror);
        this.#fire(
          new CloseEvent("close", {
            code: e.code,
            reason: e.reason,
            wasClean: e.wasClean,
          }),
          this.onclose,
        );
        return;
        // Pings are answered by the session; the web API shows neither.
    }
  }

  #fire<E extends Event>(event: E, handler: Handler<E>): void {
    try {
      handler?.call(this, event);
    } finally {
      this.dispatchEvent(event);
    }
  }
}

function toPayload(
  data: string | ArrayBufferLike | ArrayBufferView,
): string | Uint8Array {
  if (typeof data === "string") return data;
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return new Uint8Array(data);
}

/** The bytes as an ArrayBuffer of their own, without a copy when they fill one. */
function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const buf = bytes.buffer as ArrayBuffer;
  return bytes.byteOffset === 0 && bytes.byteLength === buf.byteLength
    ? buf
    : buf.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}
