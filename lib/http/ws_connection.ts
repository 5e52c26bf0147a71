/**
 * WebSocket on the engine: `upgradeWebSocket()` turns an upgrade request
 * into a 101 reply and a web-API-shaped socket, and {@link WsConnection}
 * serves the socket once the engine has written that 101. It is the I/O
 * around the sans-I/O {@link WsSession}, as its subclass: reads go to
 * `receive()`, the session's output is written with backpressure, and the
 * three timers the session asks for (idle ping, close, write) run off the
 * engine's sweeper.
 */
import { getLogger } from "../npm/logtape.ts";
import type { Limits } from "../config.ts";
import { isDisconnect } from "./connection.ts";
import { HttpError, STATUS } from "./errors.ts";
import type { Reply, ServerRequest, Takeover } from "./handler.ts";
import { Pool } from "./buffers.ts";
import type { Socket } from "./socket.ts";
import { CLOSE } from "./ws/frame.ts";
import { acceptUpgrade, type UpgradeOptions } from "./ws/handshake.ts";
import { BIG_BUFFERS, WsSession, type WsSessionOptions } from "./ws/session.ts";
import { ServerWebSocket } from "./ws/socket.ts";

const log = getLogger(["spindle", "ws"]);

/**
 * What an idle socket reads into: most messages of a chat or a dashboard
 * fit, and 10,000 idle sockets hold 5 MiB, not the 640 MiB of a big buffer each.
 */
const SMALL_READ_BYTES = 512;
/**
 * Small read buffers are cut from shared slabs of this size: a socket
 * holds a view, not an ArrayBuffer of its own, whose object and native
 * record cost about half as much again as its 512 bytes.
 */
const SLAB_BYTES = 64 * 1024;
/** Small buffers of closed sockets kept for the next ones (1 MiB). */
const SMALL_KEPT = 2048;
let slab = new Uint8Array(0);
let slabUsed = 0;

/** The next small buffer of the current slab, or of a new one. */
function cutSmallBuffer(): Uint8Array {
  if (slabUsed === slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const at = slabUsed;
  slabUsed += SMALL_READ_BYTES;
  return new Uint8Array(slab.buffer, at, SMALL_READ_BYTES);
}

/** Sockets' small read buffers: taken at the first read, given back once the socket is closed. */
export const SMALL_BUFFERS: Pool<Uint8Array> = new Pool(
  cutSmallBuffer,
  SMALL_KEPT,
);
/**
 * After our last frame: what we read and drop while the peer closes its
 * side (and `wsCloseTimeoutMs`). A client refused for a big message sends
 * the rest of it before it reads our close frame (Deno's client does);
 * closing under it would reset the connection and lose the frame, so up
 * to Deno's own message limit is read away first, as nginx's lingering
 * close does.
 */
const LINGER_BYTES = 64 * 1024 * 1024;

const NO_BYTES = new Uint8Array(0);

/** A web-API-shaped socket and the 101 reply that hands the connection to it. */
export interface WebSocketUpgrade {
  /** Opens ("open" event) once the engine has written the reply. */
  readonly socket: ServerWebSocket;
  /** Return it from the handler: status 101 with the handshake's fields. */
  readonly reply: Reply & { readonly upgrade: WsConnection };
}

/**
 * Accepts a WebSocket upgrade request (RFC 6455 §4.2). Throws HttpError
 * 400 for a request that is not a valid upgrade (or has a body), 403 for
 * an origin not in `opts.origins`, 426 for a version other than 13. The
 * socket's session is held to `req.limits`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "./server.ts";
 * import { upgradeWebSocket } from "./ws_connection.ts";
 *
 * await using server = serve({ port: 0, accessLog: false }, (req) => {
 *   const { socket, reply } = upgradeWebSocket(req);
 *   socket.onmessage = (e) => socket.send(`got ${e.data}`);
 *   return reply;
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
 * await new Promise((resolve) => ws.onopen = resolve);
 * ws.send("hi");
 * const answer = await new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
 * assert.equal(answer, "got hi");
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export function upgradeWebSocket(
  req: ServerRequest,
  opts: UpgradeOptions = {},
): WebSocketUpgrade {
  if (req.body.length !== 0) {
    const message = "Cannot upgrade to WebSocket: the request has a body";
    throw new HttpError(STATUS.BadRequest, message, { expose: message });
  }
  const upgrade = acceptUpgrade(req, opts);
  const limits = req.limits;
  const takeover = new WsConnection(limits, {
    ...upgrade,
    client: req.remoteAddr.hostname,
  });
  const query = req.query === "" ? "" : `?${req.query}`;
  const socket = new ServerWebSocket(takeover, {
    url: ownString(
      `${req.secure ? "wss" : "ws"}://${req.host}${req.path}${query}`,
    ),
    protocol: upgrade.protocol,
    extensions: upgrade.headers.find(([name]) =>
      name === "Sec-WebSocket-Extensions"
    )?.[1] ?? "",
    maxBacklogBytes: limits.wsMaxMessageBytes,
  });
  takeover.attach(socket);
  return {
    socket,
    reply: { status: 101, headers: upgrade.headers, upgrade: takeover },
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `text` copied into a string of its own. The host and the path are
 * slices of the request head's string, and a string made of them keeps
 * the whole head (500 to 1500 bytes from a browser) alive for as long as
 * the socket is open.
 */
function ownString(text: string): string {
  return decoder.decode(encoder.encode(text));
}

/**
 * The app's side of a {@link WsConnection}, as methods (a
 * {@link ServerWebSocket} is one): no closures held per socket, and none
 * called per message.
 */
export interface WsApp {
  /** Called once the 101 is written, before any frame is read. */
  opened(): void;
  /** A whole message: text as a string, binary as bytes the app may keep. */
  message(data: string | Uint8Array): void;
  /** A promise while the app has more messages waiting than it wants: reading pauses until it settles. */
  backlog(): Promise<void> | undefined;
}

/** What {@link WsConnection} needs besides its limits: the session's options (an `Upgrade` fits) and the peer. */
export interface WsConnectionOptions extends WsSessionOptions {
  /** The peer's address, for log lines. */
  readonly client: string;
}

/**
 * Serves one WebSocket after the 101: the engine's {@link Takeover}, and
 * the socket's {@link WsSession} itself (a subclass that does the I/O
 * around the sans-I/O machine), so a message's read, parse, reply and
 * write go through one per-socket object rather than two and the
 * closures between them. The socket is closed FIN first after a clean
 * close, at once after a failure or a timeout: write (the peer stopped
 * reading), close (the peer did not answer our close frame) or idle (no
 * answer to a ping).
 */
export class WsConnection extends WsSession implements Takeover {
  // What a message's read and write touch first (they follow the
  // session's own fields in the one object), then what the sweeper and
  // the end use.
  /** Hears of the socket's opening and its messages; asked before every read. */
  #app: WsApp | undefined;
  #conn: Socket | undefined;
  /** Our own small read buffer, made when the socket first waits. */
  #small: Uint8Array | undefined;
  /** The last read filled its buffer: the next one takes a big shared one. */
  #big = false;
  /** Inside `session.receive()`: output is written after it returns. */
  #receiving = false;
  /** A write is in progress; what the session queues meanwhile follows it. */
  #writing = false;
  #flushQueued = false;
  /**
   * Writes started (or continued after partial progress): the sweeper
   * compares it with what it saw last, so a write costs no clock read.
   */
  #writes = 0;
  // The read and the write in progress; their callbacks are made once,
  // not per read or write.
  #readBuf: Uint8Array = NO_BYTES;
  #readInPlace = false;
  readonly #onRead = (n: number | null) => this.#readDone(n);
  readonly #onReadError = (err: unknown) => this.#readFailed(err);
  #writeBuf: Uint8Array = NO_BYTES;
  readonly #onWrote = (n: number) => this.#wrote(n);
  readonly #onWriteError = () => this.#writeFailed();
  #writesDoneResolve: (() => void) | undefined;
  #writesDonePromise: Promise<void> | undefined;
  readonly #limits: Limits;
  /** The peer's address, for log lines. */
  readonly #client: string;
  /** Settles run()'s promise; set by run(), cleared once reading ended. */
  #ran: ((done: Promise<void>) => void) | undefined;
  /** The sweeper's last look at a write in progress: `#writes` then, and since when. */
  #writesSeen = 0;
  #writeSince = 0;
  /** `Date.now()` when the sweeper first saw the session closing; 0 before. */
  #closingSince = 0;
  /** When `checkIdle()` runs next. */
  #idleAt = 0;
  /** After our last frame: close the socket at this time; 0 before. */
  #lingerUntil = 0;
  #draining = false;
  #socketClosed = false;

  constructor(limits: Limits, opts: WsConnectionOptions) {
    super(limits, opts);
    this.#limits = limits;
    this.#client = opts.client;
  }

  /** Sets the app that hears of the socket's opening and its messages (before `run()`). */
  attach(app: WsApp): void {
    this.#app = app;
  }

  /** A message goes straight to the app, if any (else as the session's). */
  protected override deliver(data: string | Uint8Array): void {
    const app = this.#app;
    if (app !== undefined) app.message(data);
    else super.deliver(data);
  }

  protected override outputStarted(): void {
    this.#queueFlush();
  }

  // The app's handler (the ServerWebSocket's) has had the close event;
  // then, if the session was dropped outside a read (a send to a peer that
  // does not read), the pending read is ended by closing the socket.
  protected override closeDispatched(): void {
    if (!this.#receiving) this.#closeSocket();
  }

  run(socket: Socket, head: Uint8Array): Promise<void> {
    this.#conn = socket;
    this.#idleAt = Date.now() + this.#limits.wsIdleTimeoutMs;
    // One promise, settled at the end of #finish(): an idle socket holds
    // it and its resolver, not a chain of them.
    const ran = new Promise<void>((resolve) => this.#ran = resolve);
    try {
      this.#app?.opened();
      if (this.#draining) this.drain();
      if (head.length > 0) this.#receive(head, -1);
      this.#readNext();
    } catch (err) {
      this.#readFailed(err);
    }
    return ran;
  }

  /** Reading ended (once): the last frames are written, then the socket closes. */
  #readsDone(): void {
    const ran = this.#ran;
    if (ran === undefined) return;
    this.#ran = undefined;
    // Settled as #finish() settles, a failure included: nothing rejects
    // unobserved, as a `.then(ran)` would.
    ran(this.#finish(this.#conn!));
  }

  /**
   * Starts the next read, or ends reading once the session is closed.
   * Callbacks, not an async loop: an idle socket then holds one pending
   * read, not a chain of suspended async frames (~2 KiB of heap).
   */
  #readNext(): void {
    if (this.state === "closed") return this.#readsDone();
    const backlog = this.#app?.backlog();
    if (backlog !== undefined) {
      backlog.then(() => this.#readNext());
      return;
    }
    // Replies the peer has not taken yet: read no more requests for them
    // (an echo of a client that never reads would grow forever).
    if (this.bufferedAmount > this.#limits.wsMaxQueuedBytes / 2) {
      this.#flush();
      this.#writesDone().then(() => this.#readNext());
      return;
    }
    // The rest of a big message goes straight into the buffer it is
    // delivered in.
    const space = this.payloadSpace();
    const buf = this.#readBuf = space ??
      (this.#big ? BIG_BUFFERS.take() : this.#small ??= SMALL_BUFFERS.take());
    this.#readInPlace = space !== undefined;
    this.#conn!.read(buf).then(this.#onRead, this.#onReadError);
  }

  #readDone(n: number | null): void {
    const buf = this.#readBuf;
    const inPlace = this.#readInPlace;
    this.#readBuf = NO_BYTES;
    if (n === null) {
      this.abort();
      return this.#readsDone();
    }
    if (inPlace) {
      // The next read starts the next message: a small one takes its
      // header and a few bytes, and a big message's rest then goes
      // straight into its buffer, not copied out of a big read buffer.
      this.#big = false;
      this.#receive(buf, n);
    } else {
      // The session copies what it keeps: the buffer is free once it returns.
      this.#receive(buf, -1, n);
      if (buf !== this.#small) BIG_BUFFERS.give(buf);
      // A full read inside a message: its rest is on the way, into a big
      // buffer. One that ended between messages may be the last for hours:
      // the socket then waits on its small buffer, not on 64 KiB.
      this.#big = n === buf.length && !this.betweenMessages;
    }
    this.#readNext();
  }

  #readFailed(err: unknown): void {
    if (!isDisconnect(err) && !this.#socketClosed) {
      log.error("WebSocket connection failed: {error}", { error: err });
    }
    this.abort();
    this.#readsDone();
  }

  /** After the last read: our last frames, FIN, then the peer's close. */
  async #finish(socket: Socket): Promise<void> {
    let big: Uint8Array | undefined;
    try {
      // What is left is our close frame, or the reply to the peer's.
      await this.#flushAll();
      if (this.#socketClosed) return;
      await socket.closeWrite();
      // FIN first, then wait for the peer's: closing with unread bytes
      // would send a reset, and the peer could lose our close frame.
      this.#lingerUntil = Date.now() + this.#limits.wsCloseTimeoutMs;
      // The small buffer for a peer that only answers; a big shared one
      // once a read fills it (the rest of a big message).
      let scratch = this.#small ??= SMALL_BUFFERS.take();
      for (let total = 0; total < LINGER_BYTES;) {
        const n = await socket.read(scratch);
        if (n === null) break;
        total += n;
        if (n === scratch.length && scratch === this.#small) {
          scratch = big = BIG_BUFFERS.take();
        }
      }
    } catch {
      // the peer is gone, which is what we wanted
    } finally {
      this.dispose();
      this.#closeSocket();
      // No read is pending any more: the buffers are free for another socket.
      if (this.#small !== undefined) SMALL_BUFFERS.give(this.#small);
      this.#small = undefined;
      if (big !== undefined) BIG_BUFFERS.give(big);
    }
  }

  /**
   * Feeds `bytes` up to `end` to the session, then writes what it queued
   * in reply. With `inPlace` >= 0, that many bytes were read into
   * `payloadSpace()` instead.
   */
  #receive(bytes: Uint8Array, inPlace: number, end = bytes.length): void {
    this.#receiving = true;
    try {
      if (inPlace < 0) this.receive(bytes, end);
      else this.receivedInPlace(inPlace);
    } catch (err) {
      // The session already failed the connection with 1011.
      log.error("WebSocket handler failed: {error}", { error: err });
    } finally {
      this.#receiving = false;
    }
    if (this.hasOutput) this.#flush();
  }

  /**
   * Output queued outside a read (a timer, another socket's message) is
   * written at the end of this turn's microtasks: sends made together go
   * in one write.
   */
  #queueFlush(): void {
    if (this.#receiving || this.#flushQueued || this.#writing) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /**
   * Starts writing the session's output unless a write is in progress
   * (it takes the rest when done). Plain callbacks, not an async loop:
   * the common write is one small frame, and each promise layer costs.
   */
  #flush(): void {
    if (this.#writing || this.#conn === undefined) return;
    const out = this.takeOutput();
    if (out === null) return;
    this.#writing = true;
    this.#write(out);
  }

  #write(out: Uint8Array): void {
    this.#writes++;
    this.#writeBuf = out;
    this.#conn!.write(out).then(this.#onWrote, this.#onWriteError);
  }

  #wrote(n: number): void {
    const out = this.#writeBuf;
    this.#writeBuf = NO_BYTES;
    this.written(n);
    if (n < out.length) return this.#write(out.subarray(n));
    const next = this.takeOutput();
    if (next !== null) return this.#write(next);
    this.#writing = false;
    this.#wakeWriteWaiters();
  }

  /** A failed write drops the connection. */
  #writeFailed(): void {
    this.#writeBuf = NO_BYTES;
    this.#writing = false;
    this.abort("Write failed");
    this.#closeSocket();
    this.#wakeWriteWaiters();
  }

  /** Settles once no write is in progress (at once if none is). */
  #writesDone(): Promise<void> {
    if (!this.#writing) return Promise.resolve();
    return this.#writesDonePromise ??= new Promise((resolve) =>
      this.#writesDoneResolve = resolve
    );
  }

  #wakeWriteWaiters(): void {
    const resolve = this.#writesDoneResolve;
    if (resolve === undefined) return;
    this.#writesDonePromise = this.#writesDoneResolve = undefined;
    resolve();
  }

  /** Writes everything queued, including output queued while writing. */
  async #flushAll(): Promise<void> {
    while (!this.#socketClosed) {
      if (!this.#writing) {
        if (!this.hasOutput) return;
        this.#flush();
      }
      await this.#writesDone();
    }
  }

  expire(now: number): void {
    if (this.#conn === undefined || this.#socketClosed) return;
    const limits = this.#limits;
    // A write in progress that made no progress since the sweeper last
    // looked: stalled since then.
    if (!this.#writing || this.#writes !== this.#writesSeen) {
      this.#writesSeen = this.#writes;
      this.#writeSince = now;
    } else if (now - this.#writeSince >= limits.writeTimeoutMs) {
      log.warn("WebSocket write stalled to {client}", {
        client: this.#client,
      });
      return this.#abort("Write timeout");
    }
    if (this.#lingerUntil !== 0) {
      if (now >= this.#lingerUntil) this.#closeSocket();
      return;
    }
    if (this.state === "closing") {
      if (this.#closingSince === 0) this.#closingSince = now;
      else if (now - this.#closingSince >= limits.wsCloseTimeoutMs) {
        return this.#abort("Close timeout");
      }
    }
    if (now >= this.#idleAt) {
      this.#idleAt = now + limits.wsIdleTimeoutMs;
      this.checkIdle();
    }
  }

  /** Graceful shutdown: close 1001, then the peer's answer or the close timeout. */
  drain(): void {
    this.#draining = true;
    if (this.#conn === undefined) return; // run() starts with it
    this.close(CLOSE.GoingAway, "Server is shutting down");
  }

  /**
   * Closes with 1011 for an app that failed (a WebSocket route's handler
   * that threw after the socket opened); the error goes to the log.
   */
  fail(err: unknown): void {
    log.error("WebSocket handler failed: {error}", { error: err });
    this.close(CLOSE.InternalError, "Internal error");
  }

  cancel(): void {
    this.abort("Upgrade cancelled");
    this.dispose();
  }

  #abort(reason: string): void {
    this.abort(reason);
    this.#closeSocket();
  }

  /** Closes the socket at once; a pending read or write then fails and run() ends. */
  #closeSocket(): void {
    if (this.#socketClosed || this.#conn === undefined) return;
    this.#socketClosed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer's reset
    }
  }
}
