/**
 * The app's view of a WebSocket: the web `WebSocket` shape that
 * `Deno.upgradeWebSocket()` hands a server (events and `on*` handlers,
 * `send()`, `close()`, `readyState`, `bufferedAmount`), over a
 * {@link WsSession}, and messages as an async iterator. No I/O here: the
 * engine writes the session's output, calls `opened()` once the 101 reply
 * is on the wire, and pauses reading while `backlog()` says so.
 */
import { MAX_CLOSE_REASON_BYTES } from "./frame.ts";
import type { WsEvent, WsSession } from "./session.ts";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/**
 * An `on*` event handler of a {@link ServerWebSocket}, or null for none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WsEventHandler } from "@spindle/server";
 *
 * const log: string[] = [];
 * const onmessage: WsEventHandler<MessageEvent> = (e) => log.push(String(e.data));
 * onmessage?.call(undefined as never, new MessageEvent("message", { data: "hi" }));
 * assert.deepEqual(log, ["hi"]);
 * ```
 */
export type WsEventHandler<E extends Event> =
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
  /**
   * Messages the iterator may hold unread before `backlog()` asks the
   * engine to stop reading, in bytes (at least one message is always
   * taken). Default: no pause.
   */
  readonly maxBacklogBytes?: number;
}

/**
 * A message as the iterator yields it: text as a string, binary as bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Router, serve, type WsMessage } from "@spindle/server";
 *
 * const size = (m: WsMessage) => typeof m === "string" ? m.length : m.byteLength;
 * const app = new Router().ws("/size", async (ws) => {
 *   for await (const message of ws) ws.send(String(size(message)));
 * });
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/size`);
 * const reply = new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
 * ws.onopen = () => ws.send(new Uint8Array(3));
 * assert.equal(await reply, "3");
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export type WsMessage = string | Uint8Array;

/**
 * Handlers called with plain values instead of events, as Bun's and
 * uWebSockets' servers take them: no `MessageEvent` (nor `ArrayBuffer` or
 * `Blob` copy) is made per message (~5% of a small message's CPU over
 * sockets, bench case 15a against 15d). `arg` is what
 * {@link ServerWebSocket.handleWith} was given (the request, from the
 * router). What a handler throws fails the connection with 1011, as an
 * `on*` handler's throw does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type AppRequest, Router, serve, type WsHandlers } from "@spindle/server";
 *
 * const room: WsHandlers<AppRequest> = {
 *   open: (ws, req) => ws.send(`welcome to ${req.params.room}`),
 *   message: (ws, data) => ws.send(data),
 * };
 * const app = new Router().ws("/chat/{room}", room);
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/chat/lobby`);
 * const got: unknown[] = [];
 * const two = new Promise((resolve) =>
 *   ws.onmessage = (e) => got.push(e.data) === 2 && resolve(got)
 * );
 * ws.onopen = () => ws.send("hi");
 * assert.deepEqual(await two, ["welcome to lobby", "hi"]);
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export interface WsHandlers<A = unknown> {
  /** The socket is open (its 101 written): `send()` works from here. */
  open?(ws: ServerWebSocket, arg: A): void;
  /**
   * Each message: text as a string, binary as a `Uint8Array` the handler
   * may keep (whatever `binaryType` says).
   */
  message?(ws: ServerWebSocket, data: WsMessage): void;
  /** The socket closed: the code and reason its close event has. */
  close?(ws: ServerWebSocket, code: number, reason: string): void;
}

const encoder = new TextEncoder();
/**
 * The one init dict of every "message" event: the constructor copies what
 * it reads of it, so no dict is made per message.
 */
const MESSAGE_INIT: MessageEventInit = { data: undefined };

/** The event an on* handler is being called with now, and its socket. */
let firing: Event | undefined;
let firingAt: ServerWebSocket | undefined;

// deno-lint-ignore no-explicit-any -- a mixin's constructor takes any[]
type EventClass = new (...args: any[]) => Event;

/**
 * `Base`'s events as a socket fires them: while the socket's on* handler
 * runs, `target` and `currentTarget` are the socket and `eventPhase` is
 * AT_TARGET, as in a dispatch, without dispatchEvent()'s cost (~0.1 µs, a
 * quarter of what the server adds to a message) when nothing else
 * listens. Afterwards the event is dispatched (which sets its own
 * `target` for good), so listeners and an event kept by the app see what
 * a dispatched event shows.
 */
function firedBySocket<B extends EventClass>(Base: B) {
  return class extends Base {
    override get target(): EventTarget | null {
      return firing === this ? firingAt! : super.target;
    }
    override get currentTarget(): EventTarget | null {
      return firing === this ? firingAt! : super.currentTarget;
    }
    override get eventPhase(): number {
      return firing === this ? Event.AT_TARGET : super.eventPhase;
    }
    override composedPath(): EventTarget[] {
      return firing === this ? [firingAt!] : super.composedPath();
    }
  };
}

/** A "message" event: a MessageEvent. */
const SocketMessageEvent = firedBySocket(MessageEvent);
/** "open" and "error". */
const SocketEvent = firedBySocket(Event);
/** "close": a CloseEvent. */
const SocketCloseEvent = firedBySocket(CloseEvent);

/**
 * A server-side WebSocket with the web API's shape. Events are
 * dispatched to `on*` handlers first, then to listeners, at the socket
 * (`target` and `currentTarget`, as Deno's WebSocket has them). What an
 * `on*` handler throws fails the connection with 1011 and reaches the
 * engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Router, serve, type ServerWebSocket } from "@spindle/server";
 *
 * function echo(ws: ServerWebSocket) {
 *   ws.onmessage = (e) => ws.send(`echo: ${e.data}`);
 * }
 * const app = new Router().ws("/echo", echo);
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/echo`);
 * const reply = new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
 * ws.onopen = () => ws.send("hi");
 * assert.equal(await reply, "echo: hi");
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export class ServerWebSocket extends EventTarget {
  /** readyState before the handshake ends (never seen by a handler). */
  static readonly CONNECTING: 0 = CONNECTING;
  /** readyState while messages flow. */
  static readonly OPEN: 1 = OPEN;
  /** readyState once a close frame was sent or received. */
  static readonly CLOSING: 2 = CLOSING;
  /** readyState once the connection is closed. */
  static readonly CLOSED: 3 = CLOSED;
  // A browser's WebSocket has these four on its prototype (below the
  // class), not in each socket.
  /** readyState before the handshake ends (never seen by a handler). */
  declare readonly CONNECTING: 0;
  /** readyState while messages flow. */
  declare readonly OPEN: 1;
  /** readyState once a close frame was sent or received. */
  declare readonly CLOSING: 2;
  /** readyState once the connection is closed. */
  declare readonly CLOSED: 3;

  // What a message touches first (the handler, its send, the backlog
  // check), then the rest.
  /** Set by handleWith(): called with plain values. */
  // deno-lint-ignore no-explicit-any
  #handlers: WsHandlers<any> | undefined;
  /** Called with each message; `data` is a string, or binary as `binaryType` says. */
  onmessage: WsEventHandler<MessageEvent> = null;
  /** How binary messages arrive: "blob" (the web default) or "arraybuffer". */
  binaryType: BinaryType = "blob";
  readonly #session: WsSession;
  #readyState = CONNECTING;
  /** Sends waiting behind a Blob being read, so messages keep their order. */
  #queued = 0;
  /** Listeners were added: events go through dispatchEvent() too. */
  #listened = false;
  // The iterator: messages not yet taken, their bytes, and who waits.
  #inbox: WsMessage[] | undefined;
  #inboxBytes = 0;
  readonly #maxBacklogBytes: number;
  /** The URL the client asked for, as `ws://host/path?query` (`wss:` over TLS). */
  readonly url: string;
  /** The subprotocol agreed, or "". */
  readonly protocol: string;
  /** The extensions agreed (`permessage-deflate`), or "". */
  readonly extensions: string;
  /** Called once the socket is open. */
  onopen: WsEventHandler<Event> = null;
  /** Called when the connection fails (a protocol error, a limit), before close. */
  onerror: WsEventHandler<Event> = null;
  /** Called once closed, with the close code and reason. */
  onclose: WsEventHandler<CloseEvent> = null;
  /** What handleWith() gave for `open`'s second argument, until "open". */
  #handlersArg: unknown;
  #wakeReader: (() => void) | undefined;
  #roomMade: Promise<void> | undefined;
  #makeRoom: (() => void) | undefined;
  #queue: Promise<void> | undefined;

  /**
   * Takes over `session.onEvent` and `session.onMessage` (the engine's
   * session calls `message()` itself).
   */
  constructor(session: WsSession, init: ServerWebSocketInit) {
    super();
    this.#session = session;
    this.url = init.url;
    this.protocol = init.protocol;
    this.extensions = init.extensions;
    this.#maxBacklogBytes = init.maxBacklogBytes ?? Infinity;
    session.onEvent = (e) => this.#onSessionEvent(e);
    session.onMessage = (data) => this.message(data);
  }

  /** CONNECTING, OPEN, CLOSING or CLOSED, as on a browser's WebSocket. */
  get readyState(): number {
    return this.#readyState;
  }

  /** Bytes queued for the peer and not yet written. */
  get bufferedAmount(): number {
    return this.#session.bufferedAmount;
  }

  /**
   * Messages in order as they arrive, until the socket closes: text as
   * strings, binary as bytes (whatever `binaryType` says). Messages that
   * arrived before the iteration began are not seen, as with `onmessage`,
   * so start it before the first `await`. While more than
   * `maxBacklogBytes` wait unread, the engine stops reading (the peer is
   * slowed by TCP). One iterator per socket; `break` stops it without
   * closing the socket.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<WsMessage> {
    if (this.#inbox !== undefined) {
      throw new TypeError("This WebSocket is being iterated already");
    }
    const inbox: WsMessage[] = this.#inbox = [];
    const stop = (): IteratorResult<WsMessage> => {
      if (this.#inbox === inbox) this.#inbox = undefined;
      this.#inboxBytes = 0;
      this.#roomFor();
      return { done: true, value: undefined };
    };
    const iterator: AsyncIterableIterator<WsMessage> = {
      next: async () => {
        while (inbox.length === 0) {
          if (this.#readyState === CLOSED || this.#inbox !== inbox) {
            return stop();
          }
          await new Promise<void>((resolve) => this.#wakeReader = resolve);
        }
        const value = inbox.shift()!;
        this.#inboxBytes -= sizeOf(value);
        if (this.#inboxBytes <= this.#maxBacklogBytes) this.#roomFor();
        return { done: false, value };
      },
      return: () => {
        inbox.length = 0;
        return Promise.resolve(stop());
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * For the engine: a promise while the iterator holds more than
   * `maxBacklogBytes` unread; read no more until it settles.
   */
  backlog(): Promise<void> | undefined {
    if (this.#inboxBytes <= this.#maxBacklogBytes) return undefined;
    return this.#roomMade ??= new Promise<void>((resolve) =>
      this.#makeRoom = resolve
    );
  }

  #roomFor(): void {
    const resolve = this.#makeRoom;
    if (resolve === undefined) return;
    this.#roomMade = this.#makeRoom = undefined;
    resolve();
  }

  #toInbox(message: WsMessage): void {
    this.#inbox!.push(message);
    this.#inboxBytes += sizeOf(message);
    this.#wake();
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }

  /**
   * Calls `handlers`' methods as the socket opens, gets messages and
   * closes, with plain values and no event objects (see
   * {@link WsHandlers}); `arg` is `open`'s second argument. `on*`
   * handlers, listeners and the iterator still get theirs beside them. Once
   * per socket, before it opens (where `onmessage` would be set); else a
   * TypeError or an InvalidStateError.
   */
  handleWith<A>(handlers: WsHandlers<A>, arg: A): void {
    if (this.#handlers !== undefined) {
      throw new TypeError("This WebSocket has its handlers already");
    }
    if (this.#readyState !== CONNECTING) {
      throw new DOMException(
        "Handlers are set before the WebSocket opens",
        "InvalidStateError",
      );
    }
    this.#handlers = handlers;
    this.#handlersArg = arg;
  }

  /** For the engine: the 101 reply is written; "open" to the handlers, then the event. */
  opened(): void {
    if (this.#readyState !== CONNECTING) return;
    this.#readyState = OPEN;
    // The argument (the request, from the router) is for `open` only: an
    // idle socket does not keep it.
    const arg = this.#handlersArg;
    this.#handlersArg = undefined;
    this.#handlers?.open?.(this, arg);
    this.#fire(new SocketEvent("open"), this.onopen);
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
    // Most sends: text, with nothing waiting behind a Blob.
    if (typeof data === "string" && this.#queued === 0) {
      this.#session.send(data);
      return;
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

  /**
   * For the engine: a message, to the iterator's inbox if one runs, and
   * as a "message" event.
   */
  message(message: string | Uint8Array): void {
    if (this.#inbox !== undefined) this.#toInbox(message);
    this.#handlers?.message?.(this, message);
    // Nobody to hear it (an app that only iterates): no event, and no Blob
    // or ArrayBuffer copy for it (~0.15 µs and ~300 bytes a message).
    if (this.onmessage == null && !this.#listened) return;
    const data = typeof message === "string"
      ? message
      : this.binaryType === "arraybuffer"
      ? toArrayBuffer(message)
      : new Blob([message as Uint8Array<ArrayBuffer>]);
    MESSAGE_INIT.data = data;
    const event = new SocketMessageEvent("message", MESSAGE_INIT);
    MESSAGE_INIT.data = undefined; // not kept alive here
    this.#fire(event, this.onmessage);
  }

  #onSessionEvent(e: WsEvent): void {
    switch (e.type) {
      // Messages come through onMessage.
      case "close":
        this.#readyState = CLOSED;
        this.#wake(); // the iterator ends once its inbox is empty
        this.#roomFor();
        try {
          // A room's member list is cleaned up by it: told first, and
          // whatever an event's handler throws.
          this.#handlers?.close?.(this, e.code, e.reason);
        } finally {
          // As browsers do: a connection that failed says so before it closes.
          if (!e.wasClean) this.#fire(new SocketEvent("error"), this.onerror);
          this.#fire(
            new SocketCloseEvent("close", {
              code: e.code,
              reason: e.reason,
              wasClean: e.wasClean,
            }),
            this.onclose,
          );
        }
        return;
        // Pings are answered by the session; the web API shows neither.
    }
  }

  /** As EventTarget's; events go to listeners after the `on*` handler. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    this.#listened = true;
    super.addEventListener(type, listener, options);
  }

  /**
   * Calls `handler` with `event` at this socket (see firedBySocket()),
   * then dispatches it to listeners: with none, dispatchEvent() only sets
   * its target. What the handler throws goes to the caller, after that.
   */
  #fire<E extends Event>(event: E, handler: WsEventHandler<E>): void {
    const outer = firing;
    const outerAt = firingAt;
    firing = event;
    firingAt = this;
    try {
      handler?.call(this, event);
    } finally {
      // Another socket's event may be firing around this one (a handler
      // that sends to a socket that then fails).
      firing = outer;
      firingAt = outerAt;
      this.dispatchEvent(event);
    }
  }
}

for (
  const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })
) {
  Object.defineProperty(ServerWebSocket.prototype, name, {
    value,
    enumerable: true,
  });
}

/** A message's size for the backlog: bytes, or UTF-16 units of text. */
function sizeOf(message: WsMessage): number {
  return message.length;
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
