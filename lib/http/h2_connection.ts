/**
 * One HTTP/2 connection (RFC 9113): drives an {@link H2Session} over a
 * {@link Socket}. Reads feed the session; each request it reports runs the
 * same {@link Handler} an HTTP/1.1 connection runs, on a
 * {@link ServerRequest} whose body is an {@link H2Body}; each reply goes
 * back through `sendHeaders`/`sendData` with backpressure, and one writer
 * takes the session's output to the socket. Errors become replies through
 * the HTTP/1.1 engine's `toErrorReply`, and each stream writes one access
 * line. Deadlines are the server's: the sweeper calls `expire()`.
 */
import { getLogger } from "../npm/logtape.ts";
import type { Limits } from "../config.ts";
import { accessLog, clipForLog, NO_REPLY_STATUS } from "./access_log.ts";
import { batchNow } from "./clock.ts";
import {
  cancelBody,
  checkReply,
  isDisconnect,
  isLimitStatus,
  Phase,
  SERVER_ALLOW,
  toErrorReply,
} from "./connection.ts";
import { rateBudgetMs, type Timeouts } from "./deadlines.ts";
import { endedEarly } from "./body.ts";
import { HttpError, reasonPhrase, STATUS } from "./errors.ts";
import { H2Body } from "./h2_body.ts";
import { CLIENT_PREFACE, ERROR, errorName, H2Error } from "./h2/frames.ts";
import { NO_LENGTH } from "./h2/reply.ts";
import {
  type H2Event,
  type H2RejectEvent,
  type H2RequestEvent,
  type H2RequestHead,
  type H2ResetEvent,
  H2Session,
} from "./h2/session.ts";
import {
  FileBody,
  type Handler,
  type Reply,
  type ReplyBody,
  type ReplyHeaders,
  type ServerRequest,
} from "./handler.ts";
import type { HeaderFields } from "./headers.ts";
import { LINGER_MS } from "./linger.ts";
import { ownAddr, type Socket } from "./socket.ts";
import type { EngineStats } from "./stats.ts";

const log = getLogger(["spindle", "http"]);
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Where small text bodies are encoded; reused by every reply (no await in between). */
const SCRATCH = new Uint8Array(16 * 1024);
/** First read buffer: an idle connection holds no more. */
const READ_BYTES = 4 * 1024;
/** A read that fills its buffer gets one this big next: a TLS record, or many frames. */
const BUSY_READ_BYTES = 16 * 1024;
/** File bodies are read in pieces of this size, as over HTTP/1.1. */
const FILE_PIECE_BYTES = 256 * 1024;

/** What an {@link H2Connection} needs from its server. */
export interface H2ConnectionOptions {
  readonly limits: Limits;
  readonly handler: Handler;
  readonly stats: EngineStats;
  readonly secure: boolean;
  readonly accessLog: boolean;
  readonly timeouts: Timeouts;
  /** Called once when the socket is closed. */
  readonly onClose: (c: H2Connection) => void;
}

/**
 * Whether a new connection speaks HTTP/2: "h2" when TLS chose it by ALPN
 * or `first` opens with the client preface (prior knowledge), "more" while
 * `first` is a proper prefix of the preface, else null (HTTP/1.1).
 */
export function detectH2(
  socket: Socket,
  first: Uint8Array,
): "h2" | "more" | null {
  if (socket.alpnProtocol === "h2") return "h2";
  const n = Math.min(first.length, CLIENT_PREFACE.length);
  for (let i = 0; i < n; i++) if (first[i] !== CLIENT_PREFACE[i]) return null;
  return n === CLIENT_PREFACE.length ? "h2" : "more";
}

/** A request as a handler sees it, and as its access line shows it. */
class H2Request implements ServerRequest {
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly query: string;
  readonly headers: HeaderFields;
  readonly host: string;
  readonly remoteAddr: Deno.NetAddr;
  readonly secure: boolean;
  readonly body: H2Body;
  readonly startTime: number;
  readonly limits: Limits;
  user: string | undefined = undefined;
  errorAccept: string | undefined = undefined;

  constructor(
    head: H2RequestHead,
    body: H2Body,
    remoteAddr: Deno.NetAddr,
    secure: boolean,
    startTime: number,
    limits: Limits,
  ) {
    this.method = head.method;
    this.target = head.target;
    this.path = head.path;
    this.query = head.query;
    this.headers = head.headers;
    this.host = head.host;
    this.remoteAddr = remoteAddr;
    this.secure = secure;
    this.body = body;
    this.startTime = startTime;
    this.limits = limits;
  }

  get version(): "HTTP/2" {
    return "HTTP/2";
  }

  // For the access line: HTTP/2.0.
  get major(): number {
    return 2;
  }

  get minor(): number {
    return 0;
  }
}

/** One stream, from its request to the end of its reply. */
class Exchange {
  readonly id: number;
  readonly startTime: number;
  /** Undefined for a request the session refused (a `reject` event). */
  req: H2Request | undefined = undefined;
  /** The request's Accept field, to choose an error's format. */
  accept: string | undefined = undefined;
  status = 0;
  /** Bytes this stream put in the output: its frames, head and DATA. */
  bytes = 0;
  /** Why it was refused or ended early, for the log. */
  why: string | undefined = undefined;
  /** The stream is gone (reset, connection failed): nothing more is sent. */
  gone = false;
  /** Its access line is written and the session released it. */
  done = false;
  /** Reply bytes offered and not yet framed; `pendingEnd`: they end the stream. */
  pending: Uint8Array = EMPTY;
  pendingEnd = false;
  /** Settles the wait of a reply body that offered `pending`. */
  wake: (() => void) | undefined = undefined;
  fail: ((err: Error) => void) | undefined = undefined;
  /** Stops a reply stream or iterable that is waiting for its next piece. */
  stop: (() => void) | undefined = undefined;
  /** Since when its send window has been shut (0: it is not); for writeTimeoutMs. */
  stalledSince = 0;
  stalledMs = 0;
  sentBytes = 0;
  /** Since when a body read has waited for the client (0: none); for bodyTimeoutMs. */
  bodySince = 0;
  bodyWaitedMs = 0;
  bodyBytes = 0;

  constructor(id: number, startTime: number) {
    this.id = id;
    this.startTime = startTime;
  }
}

/** The body of every request that ended with its head. */
let noBody: H2Body | undefined;

/**
 * One HTTP/2 connection, from the client preface to the close. The server
 * creates it when a connection turns out to speak HTTP/2, with the bytes
 * already read, and calls {@link H2Connection.run}.
 */
export class H2Connection {
  readonly remoteAddr: Deno.NetAddr;
  readonly #socket: Socket;
  readonly #opts: H2ConnectionOptions;
  readonly #session: H2Session;
  readonly #exchanges = new Map<number, Exchange>();
  /** Exchanges with a deadline of their own: a shut window or a body read waiting. */
  readonly #waiting = new Set<Exchange>();
  /** Exchanges whose reply waits for room in the output queue. */
  readonly #queued = new Set<Exchange>();
  #first: Uint8Array;
  #requests = 0;
  #writing = false;
  #flushQueued = false;
  #closed = false;
  #lingering = false;
  #draining = false;
  #errorLogged = false;
  /** `Date.now()` of the last read, or of a stream's end. */
  #now: number;
  /** Since when a head has been awaited: the preface and first request, or a split header block. */
  #headSince: number;
  #readingHead = true;
  /** Since when no stream has been open. */
  #idleSince: number;
  /** The write in progress must progress by these; 0 when none runs. */
  #writeBy = 0;
  #writeByBusy = 0;
  #sendBytes = 0;
  #sendWaitedMs = 0;
  #lingerBy = 0;
  phase: Phase = Phase.Idle;
  /** `Date.now()` past which `expire()` acts; 0 for none. */
  deadline = 0;
  /** The same while the server is busy: tighter, never later. */
  busyDeadline = 0;

  /** `first`: the bytes read so far (the preface, maybe more); used at once. */
  constructor(socket: Socket, first: Uint8Array, opts: H2ConnectionOptions) {
    this.#socket = socket;
    this.#opts = opts;
    this.#first = first;
    this.remoteAddr = ownAddr(socket.remoteAddr);
    this.#session = new H2Session(opts.limits); // queues our SETTINGS
    this.#now = this.#headSince = this.#idleSince = Date.now();
  }

  /** Serves streams until the client or the server ends the connection. */
  async run(): Promise<void> {
    try {
      const first = this.#first;
      this.#first = EMPTY;
      this.#received(first);
      let buf = new Uint8Array(READ_BYTES);
      while (!this.#closed) {
        this.#arm();
        const n = await this.#socket.read(buf);
        if (n === null || this.#closed) break;
        if (this.#lingering) continue; // the GOAWAY is out: dropped
        this.#received(buf.subarray(0, n));
        // Grow for a busy connection; shrink again once it idles.
        if (n === buf.length && n < BUSY_READ_BYTES) {
          buf = new Uint8Array(BUSY_READ_BYTES);
        } else if (buf.length > READ_BYTES && this.#exchanges.size === 0) {
          buf = new Uint8Array(READ_BYTES);
        }
      }
    } catch (err) {
      if (!isDisconnect(err) && !this.#closed) {
        log.error("HTTP/2 connection failed: {error}", { error: err });
      }
    } finally {
      this.close();
    }
  }

  /** Feeds bytes read to the session and acts on what happened. */
  #received(bytes: Uint8Array): void {
    this.#now = batchNow();
    this.#opts.stats.bytesIn += bytes.length;
    const session = this.#session;
    const events = session.receive(bytes);
    for (let i = 0; i < events.length; i++) this.#dispatch(events[i]);
    const reading = session.readingHead;
    if (reading && !this.#readingHead) this.#headSince = this.#now;
    this.#readingHead = reading;
    if (session.error !== undefined && !this.#errorLogged) this.#logFailure();
    this.#flush();
  }

  #dispatch(e: H2Event): void {
    switch (e.type) {
      case "request":
        return this.#onRequest(e);
      case "data": {
        const body = this.#exchanges.get(e.streamId)?.req?.body;
        if (body === undefined || body === noBody) {
          this.#session.consume(e.streamId, e.data.length);
        } else body.push(e.data, e.endStream);
        return;
      }
      case "trailers":
        // Checked by the session; the handler API has no trailers: the body ends.
        this.#exchanges.get(e.streamId)?.req?.body.push(EMPTY, true);
        return;
      case "reject":
        return this.#onReject(e);
      case "reset":
        return this.#onReset(e);
      case "writable": {
        const ex = this.#exchanges.get(e.streamId);
        if (ex !== undefined) this.#push(ex);
        return;
      }
      case "goaway":
        // The client is leaving: streams in flight finish, then the session is finished.
        return;
    }
  }

  #onRequest(e: H2RequestEvent): void {
    const id = e.streamId;
    const now = this.#now;
    const ex = new Exchange(id, now);
    this.#exchanges.set(id, ex);
    this.#requests++;
    this.phase = Phase.Handler;
    if (!this.#session.isSendable(id)) {
      // Reset in the same read (rapid reset, CVE-2023-44487): no handler runs.
      ex.why = "Client reset the stream";
      return this.#end(ex, true);
    }
    const head = e.head;
    const body = e.endStream
      ? noBody ??= new H2Body(NO_HOST, -1, true, false, this.#opts.limits)
      : this.#bodyOf(ex, head);
    const req = ex.req = new H2Request(
      head,
      body,
      this.remoteAddr,
      this.#opts.secure,
      now,
      this.#opts.limits,
    );
    if (head.path === "*") {
      return this.#reply(ex, {
        status: STATUS.NoContent,
        headers: { allow: SERVER_ALLOW }, // OPTIONS *, as over HTTP/1.1
      });
    }
    let reply: Reply | Promise<Reply>;
    try {
      const r = this.#opts.handler(req);
      reply = r instanceof Promise
        ? r.then(checkReply).catch((err) => this.#errorReply(ex, err))
        : checkReply(r);
    } catch (err) {
      reply = this.#errorReply(ex, err);
    }
    if (reply instanceof Promise) reply.then((r) => this.#reply(ex, r));
    else this.#reply(ex, reply);
  }

  /** A body fed by DATA frames; reading it opens the client's window again. */
  #bodyOf(ex: Exchange, head: H2RequestHead): H2Body {
    const expect = head.headers.get("expect");
    return new H2Body(
      {
        consumed: (n) => {
          ex.bodyBytes += n;
          this.#session.consume(ex.id, n);
          this.#scheduleFlush(); // a WINDOW_UPDATE may be due
        },
        waiting: (on) => this.#bodyWaiting(ex, on),
        sendContinue: () => {
          if (ex.gone) return;
          try {
            this.#session.sendHeaders(ex.id, 100, undefined, false);
            this.#scheduleFlush();
          } catch {
            // the stream closed meanwhile: the read will say so
          }
        },
      },
      head.contentLength,
      false,
      expect !== undefined && expect.toLowerCase() === "100-continue",
      this.#opts.limits,
    );
  }

  #onReject(e: H2RejectEvent): void {
    const ex = new Exchange(e.streamId, this.#now);
    this.#exchanges.set(e.streamId, ex);
    this.#requests++;
    ex.accept = e.accept;
    this.#reply(ex, this.#errorReply(ex, e.error));
  }

  #onReset(e: H2ResetEvent): void {
    const ex = this.#exchanges.get(e.streamId);
    if (ex === undefined) {
      this.#session.release(e.streamId);
      return;
    }
    ex.why ??= e.message;
    this.#abandon(ex);
  }

  /** The stream is gone: its body and reply stop; it is released once its handler settles. */
  #abandon(ex: Exchange): void {
    if (ex.gone) return;
    ex.gone = true;
    this.#waiting.delete(ex);
    this.#queued.delete(ex);
    ex.req?.body.fail(endedEarly());
    ex.stop?.();
    const fail = ex.fail;
    ex.wake = ex.fail = undefined;
    fail?.(new StreamGone());
  }

  /** {@link toErrorReply}, noting an HttpError's message for the log lines. */
  #errorReply(ex: Exchange, err: unknown): Reply {
    if (err instanceof HttpError) ex.why = err.message;
    if (ex.gone) return { status: STATUS.InternalServerError }; // never sent
    const req = ex.req;
    return toErrorReply(
      err,
      req?.errorAccept ?? ex.accept ?? req?.headers.get("accept"),
    );
  }

  /** Sends a reply; ends the exchange once it is all framed, or failed. */
  #reply(ex: Exchange, reply: Reply): void {
    let sending: Promise<void> | undefined;
    try {
      sending = this.#respond(ex, reply, true);
    } catch (err) {
      return this.#sendFailed(ex, err);
    }
    if (sending === undefined) this.#end(ex, ex.gone);
    else {
      sending.then(
        () => this.#end(ex, ex.gone),
        (err) => this.#sendFailed(ex, err),
      );
    }
  }

  /**
   * Queues the reply head, and the body when it fits the windows and the
   * output queue; returns a promise when the rest must wait for them. A
   * field the session refuses becomes the error reply, once (`retry`).
   */
  #respond(
    ex: Exchange,
    reply: Reply,
    retry: boolean,
  ): Promise<void> | undefined {
    const body: ReplyBody = reply.body;
    if (ex.gone) {
      cancelBody(body);
      return undefined;
    }
    const status = reply.status;
    const isHead = ex.req !== undefined && ex.req.method === "HEAD";
    let data: Uint8Array | undefined;
    let length = -1; // -1: the handler's content-length, if any
    let declared = -1; // a stream's announced length, checked as it is sent
    if (typeof body === "string") {
      // Small text is encoded into a shared buffer: framing copies it out.
      data = body.length * 3 <= SCRATCH.length
        ? SCRATCH.subarray(0, encoder.encodeInto(body, SCRATCH).written)
        : encoder.encode(body);
      length = data.length;
    } else if (body instanceof Uint8Array) {
      data = body;
      length = body.length;
    } else if (body instanceof FileBody) length = body.length;
    else if (body === null || body === undefined) {
      // HEAD without a body: the handler's length, never a 0 GET would contradict.
      if (!isHead) length = 0;
    }
    const bodiless = status === 204 || status === 304;
    if (bodiless) length = NO_LENGTH;
    const endNow = isHead || bodiless || length === 0;
    const session = this.#session;
    const before = session.pendingOutputBytes;
    try {
      if (status < 200) throw new RangeError(`Invalid reply status ${status}`);
      if (!endNow && data === undefined && !(body instanceof FileBody)) {
        declared = replyContentLength(reply.headers);
      }
      session.sendHeaders(ex.id, status, reply.headers, endNow, length);
    } catch (err) {
      if (err instanceof H2Error) {
        // The stream closed under us: the client reset it or the connection failed.
        cancelBody(body);
        this.#abandon(ex);
        return undefined;
      }
      cancelBody(body);
      if (!retry) throw err;
      return this.#respond(ex, this.#errorReply(ex, err), false);
    }
    ex.status = status;
    ex.bytes += session.pendingOutputBytes - before;
    if (endNow) {
      cancelBody(body);
      return undefined;
    }
    if (data !== undefined) {
      const waiting = this.#send(ex, data, true);
      // What the windows left of a shared buffer must outlive this turn.
      if (waiting !== undefined && data.buffer === SCRATCH.buffer) {
        ex.pending = ex.pending.slice();
      }
      return waiting;
    }
    if (body instanceof FileBody) return this.#sendFile(ex, body);
    return this.#sendStream(
      ex,
      body as ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
      declared,
    );
  }

  /**
   * Offers `data` to the session: undefined when all of it was framed at
   * once, else a promise that settles once it is (or the stream is gone).
   * `data` must stay unchanged until then.
   */
  #send(
    ex: Exchange,
    data: Uint8Array,
    end: boolean,
  ): Promise<void> | undefined {
    if (ex.gone) return Promise.reject(new StreamGone());
    ex.pending = data;
    ex.pendingEnd = end;
    this.#push(ex);
    if (ex.pending === EMPTY && !ex.pendingEnd) return undefined;
    return new Promise<void>((resolve, reject) => {
      ex.wake = resolve;
      ex.fail = reject;
    });
  }

  /** Frames what the windows and the queue allow of `ex.pending`. */
  #push(ex: Exchange): void {
    if (ex.gone || (ex.pending === EMPTY && !ex.pendingEnd)) return;
    const session = this.#session;
    const before = session.pendingOutputBytes;
    const pending = ex.pending;
    let n: number;
    try {
      n = session.sendData(ex.id, pending, ex.pendingEnd);
    } catch {
      this.#abandon(ex); // closed by the client meanwhile
      return;
    }
    const framed = session.pendingOutputBytes - before;
    ex.bytes += framed;
    ex.sentBytes += n;
    if (framed > 0) this.#scheduleFlush();
    if (n === pending.length) {
      ex.pending = EMPTY;
      ex.pendingEnd = false;
      this.#queued.delete(ex);
      this.#unstall(ex);
      const wake = ex.wake;
      ex.wake = ex.fail = undefined;
      wake?.();
      return;
    }
    ex.pending = pending.subarray(n);
    if (session.sendWindow(ex.id) <= 0) {
      this.#queued.delete(ex);
      this.#stall(ex); // the client's window: a `writable` event resumes it
    } else {
      this.#unstall(ex);
      this.#queued.add(ex); // the output queue: the writer resumes it
    }
  }

  async #sendFile(ex: Exchange, fb: FileBody): Promise<void> {
    try {
      if (fb.start !== 0) await fb.file.seek(fb.start, Deno.SeekMode.Start);
      let left = fb.length;
      const piece = new Uint8Array(Math.min(left, FILE_PIECE_BYTES));
      while (left > 0) {
        const n = await fb.file.read(
          piece.subarray(0, Math.min(left, piece.length)),
        );
        if (n === null) {
          throw new Error("File ended before its announced length");
        }
        left -= n;
        // Framed means copied: `piece` is free again once this settles.
        await this.#send(ex, piece.subarray(0, n), left === 0);
      }
    } finally {
      try {
        fb.file.close();
      } catch {
        // already closed
      }
    }
  }

  /** A stream or iterable body, piece by piece; `declared` is its content-length or -1. */
  async #sendStream(
    ex: Exchange,
    body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
    declared: number,
  ): Promise<void> {
    // A reset must end a body that waits for its next piece (an event
    // stream): a stream's reader can be cancelled mid-read, an iterator
    // only asked to return once its pending piece comes.
    let next: () => Promise<IteratorResult<Uint8Array>>;
    let stop: () => Promise<unknown> | undefined;
    if (body instanceof ReadableStream) {
      const reader = body.getReader();
      next = () =>
        reader.read() as Promise<IteratorResult<Uint8Array, undefined>>;
      stop = () => reader.cancel();
    } else {
      const it = body[Symbol.asyncIterator]();
      next = () => it.next();
      stop = () => it.return?.();
    }
    ex.stop = () => void stop()?.catch(() => {});
    let sent = 0;
    try {
      for (;;) {
        const { value: chunk, done } = await next();
        if (done) break;
        if (ex.gone) throw new StreamGone();
        if (!(chunk instanceof Uint8Array)) {
          throw new TypeError("A reply stream must yield Uint8Array");
        }
        if (chunk.length === 0) continue;
        sent += chunk.length;
        if (declared !== -1 && sent > declared) {
          throw new Error("Reply stream is longer than its content-length");
        }
        await this.#send(ex, chunk, false);
      }
    } catch (err) {
      ex.stop = undefined;
      await stop()?.catch(() => {});
      throw err;
    }
    ex.stop = undefined;
    if (declared !== -1 && sent !== declared) {
      throw new Error("Reply stream is shorter than its content-length");
    }
    await this.#send(ex, EMPTY, true);
  }

  /** A reply body failed part-way (or its stream went): reset the stream. */
  #sendFailed(ex: Exchange, err: unknown): void {
    if (!ex.gone && !(err instanceof StreamGone)) {
      log.error("Reply failed on stream {stream}: {error}", {
        stream: ex.id,
        error: err,
      });
      ex.why ??= "Reply failed";
      this.#session.reset(ex.id, ERROR.INTERNAL_ERROR);
      this.#abandon(ex);
    }
    this.#end(ex, true);
  }

  /** The exchange is over: its access line, and its slot back to the session. */
  #end(ex: Exchange, aborted: boolean): void {
    if (ex.done) return;
    ex.done = true;
    this.#exchanges.delete(ex.id);
    this.#waiting.delete(ex);
    this.#queued.delete(ex);
    this.#session.release(ex.id); // resets it if the reply did not end it
    this.#log(ex, aborted);
    if (this.#exchanges.size === 0) {
      this.#idleSince = this.#now = Date.now();
      if (!this.#lingering) this.phase = Phase.Idle;
    }
    this.#scheduleFlush();
  }

  /** One access line for the stream, and a warning if a limit refused it. */
  #log(ex: Exchange, aborted: boolean): void {
    const stats = this.#opts.stats;
    stats.requests++;
    let status = ex.status;
    let bytes = ex.bytes;
    if (status === 0) {
      status = NO_REPLY_STATUS;
      bytes = 0;
    }
    const sink = this.#opts.accessLog ? accessLog() : undefined;
    const limit = isLimitStatus(status);
    if (sink === undefined && !limit) return;
    const req = ex.req;
    sink?.append(
      this.remoteAddr.hostname,
      req ?? "",
      status,
      bytes,
      ex.startTime,
      aborted,
      ex.why,
      req?.user,
    );
    if (limit) {
      log.warn("Refused {request} from {client}: {status} {reason}", {
        client: this.remoteAddr.hostname,
        request: req === undefined
          ? `stream ${ex.id}`
          : `${clipForLog(req.method)} ${clipForLog(req.target)}`,
        status,
        reason: clipForLog(ex.why ?? reasonPhrase(status)),
      });
    }
  }

  #logFailure(): void {
    this.#errorLogged = true;
    const err = this.#session.error!;
    const attack = err.code === ERROR.ENHANCE_YOUR_CALM;
    const fields = {
      client: this.remoteAddr.hostname,
      code: errorName(err.code),
      reason: clipForLog(err.message),
    };
    const text = "HTTP/2 connection from {client} ended: {code} {reason}";
    if (attack) log.warn(text, fields);
    else log.info(text, fields);
  }

  // Output.

  /** Writes the session's output soon: after the handlers that finish in this turn. */
  #scheduleFlush(): void {
    if (this.#flushQueued || this.#writing || this.#closed) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /** Starts the writer unless it runs; ends the connection once the session is finished. */
  #flush(): void {
    if (this.#writing || this.#closed) return;
    if (this.#session.pendingOutputBytes === 0) {
      this.#finishIfDone();
      this.#arm();
      return;
    }
    this.#writing = true;
    this.#writeLoop().catch((err) => {
      if (!isDisconnect(err) && !this.#closed) {
        log.error("HTTP/2 write failed: {error}", { error: err });
      }
      this.close();
    });
  }

  /** Writes the output until there is none; replies waiting for room frame more meanwhile. */
  async #writeLoop(): Promise<void> {
    const session = this.#session;
    try {
      for (;;) {
        const out = session.takeOutput();
        if (out.length === 0) break;
        // The queue is empty again: replies that waited for room fill it
        // while this part is written (the session keeps two buffers).
        for (const ex of this.#queued) this.#push(ex);
        await this.#write(out);
        if (this.#closed) return;
      }
    } finally {
      this.#writing = false;
    }
    if (this.#exchanges.size === 0) session.trimBuffers(); // idle: keep little
    this.#finishIfDone();
    this.#arm();
  }

  /** Writes every byte, under the write deadline and the minimum send rate. */
  async #write(bytes: Uint8Array): Promise<void> {
    const t = this.#opts.timeouts;
    let since = Date.now();
    for (let off = 0; off < bytes.length;) {
      const budget = (grace: number) =>
        rateBudgetMs(
          grace,
          t.sendMsPerByte,
          this.#sendBytes,
          this.#sendWaitedMs,
        );
      this.#writeBy = since + Math.min(t.writeGapMs, budget(t.graceMs));
      this.#writeByBusy = since +
        Math.min(t.writeGapBusyMs, budget(t.graceBusyMs));
      this.#arm();
      const n = await this.#socket.write(bytes.subarray(off));
      off += n;
      const now = Date.now();
      this.#sendWaitedMs += now - since;
      this.#sendBytes += n;
      since = now;
    }
    this.#writeBy = this.#writeByBusy = 0;
    this.#opts.stats.bytesOut += bytes.length;
  }

  /** The session is finished (GOAWAY out, no stream left): end our side, then linger. */
  #finishIfDone(): void {
    if (!this.#session.finished || this.#lingering || this.#closed) return;
    if (this.#draining) return this.close(); // shutting down: no time to linger
    this.#lingering = true;
    this.phase = Phase.Linger;
    this.#lingerBy = Date.now() + LINGER_MS;
    // Read on and drop, so the client reads our GOAWAY rather than a reset.
    this.#socket.closeWrite().catch(() => this.close());
  }

  // Deadlines.

  /** Since when `ex`'s send window is shut. */
  #stall(ex: Exchange): void {
    if (ex.stalledSince !== 0) return;
    ex.stalledSince = Date.now();
    this.#waiting.add(ex);
  }

  #unstall(ex: Exchange): void {
    if (ex.stalledSince === 0) return;
    ex.stalledMs += Date.now() - ex.stalledSince;
    ex.stalledSince = 0;
    if (ex.bodySince === 0) this.#waiting.delete(ex);
  }

  #bodyWaiting(ex: Exchange, on: boolean): void {
    const now = Date.now();
    if (on) {
      ex.bodySince = now;
      this.#waiting.add(ex);
    } else if (ex.bodySince !== 0) {
      ex.bodyWaitedMs += now - ex.bodySince;
      ex.bodySince = 0;
      if (ex.stalledSince === 0) this.#waiting.delete(ex);
    }
    this.#arm();
  }

  /** Sets `deadline` and `busyDeadline` to the earliest wait that can expire. */
  #arm(): void {
    if (this.#closed) return;
    if (this.#lingering) {
      this.deadline = this.busyDeadline = this.#lingerBy;
      return;
    }
    const t = this.#opts.timeouts;
    let plain = Infinity;
    let busy = Infinity;
    if (this.#writeBy !== 0) {
      plain = this.#writeBy;
      busy = this.#writeByBusy;
    }
    if (this.#requests === 0 || this.#readingHead) {
      plain = Math.min(plain, this.#headSince + t.headMs);
      busy = Math.min(busy, this.#headSince + t.headBusyMs);
    } else if (this.#exchanges.size === 0) {
      plain = Math.min(plain, this.#idleSince + t.keepAliveMs);
      busy = Math.min(busy, this.#idleSince + t.keepAliveBusyMs);
    }
    for (const ex of this.#waiting) {
      if (ex.stalledSince !== 0) {
        plain = Math.min(plain, this.#stallDeadline(ex, false));
        busy = Math.min(busy, this.#stallDeadline(ex, true));
      }
      if (ex.bodySince !== 0) {
        plain = Math.min(plain, this.#bodyDeadline(ex, false));
        busy = Math.min(busy, this.#bodyDeadline(ex, true));
      }
    }
    this.deadline = plain === Infinity ? 0 : plain;
    this.busyDeadline = busy === Infinity ? 0 : busy;
  }

  /** When `ex`'s shut window has waited too long: writeTimeoutMs, or sooner under the minimum send rate. */
  #stallDeadline(ex: Exchange, busy: boolean): number {
    const t = this.#opts.timeouts;
    const budget = rateBudgetMs(
      busy ? t.graceBusyMs : t.graceMs,
      t.sendMsPerByte,
      ex.sentBytes,
      ex.stalledMs,
    );
    return ex.stalledSince +
      Math.min(busy ? t.writeGapBusyMs : t.writeGapMs, budget);
  }

  /** When `ex`'s body read has waited too long: bodyTimeoutMs, or sooner under the minimum body rate. */
  #bodyDeadline(ex: Exchange, busy: boolean): number {
    const t = this.#opts.timeouts;
    const budget = rateBudgetMs(
      busy ? t.graceBusyMs : t.graceMs,
      t.bodyMsPerByte,
      ex.bodyBytes,
      ex.bodyWaitedMs,
    );
    return ex.bodySince +
      Math.min(busy ? t.bodyGapBusyMs : t.bodyGapMs, budget);
  }

  /**
   * Called by the sweeper: acts on every wait past its deadline (or its
   * busy deadline while the server is `busy`).
   */
  expire(now: number, busy = false): void {
    const deadline = busy ? this.busyDeadline : this.deadline;
    if (deadline === 0 || now < deadline || this.#closed) return;
    if (this.#lingering) return this.close();
    const t = this.#opts.timeouts;
    const client = this.remoteAddr.hostname;
    const writeBy = busy ? this.#writeByBusy : this.#writeBy;
    if (writeBy !== 0 && now >= writeBy) {
      log.warn("Write stalled to {client}", { client });
      return this.close(); // the socket takes nothing: no GOAWAY could go out
    }
    const session = this.#session;
    if (this.#requests === 0 || this.#readingHead) {
      if (now >= this.#headSince + (busy ? t.headBusyMs : t.headMs)) {
        log.warn("Head timeout from {client}", { client });
        session.goaway(ERROR.NO_ERROR, "Timed out waiting for a request");
        return this.#flush();
      }
    } else if (
      this.#exchanges.size === 0 &&
      now >= this.#idleSince + (busy ? t.keepAliveBusyMs : t.keepAliveMs)
    ) {
      session.shutdown(); // GOAWAY NO_ERROR: the client opens a new connection
      return this.#flush();
    }
    for (const ex of [...this.#waiting]) {
      if (ex.stalledSince !== 0 && now >= this.#stallDeadline(ex, busy)) {
        this.#stalled(ex);
        if (this.#closed || session.finished) break;
      }
      if (ex.bodySince !== 0 && now >= this.#bodyDeadline(ex, busy)) {
        log.warn("Body timeout from {client}", { client });
        // The handler's read throws; its error reply is a 408 on the stream.
        ex.req?.body.fail(
          new HttpError(
            STATUS.RequestTimeout,
            "Timed out waiting for the request body",
          ),
        );
        this.#bodyWaiting(ex, false);
      }
    }
    this.#flush();
  }

  /**
   * A reply waited past writeTimeoutMs (or under the minimum rate) for the
   * client to open its window: the zero-window stall. One stream's window:
   * reset that stream. The connection's: GOAWAY, since every stream waits.
   */
  #stalled(ex: Exchange): void {
    const client = this.remoteAddr.hostname;
    if (this.#session.connectionSendWindow <= 0) {
      log.warn("HTTP/2 connection window of {client} stayed shut", { client });
      this.#session.goaway(
        ERROR.ENHANCE_YOUR_CALM,
        "Connection window stayed shut",
      );
      for (const other of [...this.#exchanges.values()]) {
        other.why ??= "Write stalled";
        this.#abandon(other);
      }
      return;
    }
    log.warn("Write stalled to {client} on stream {stream}", {
      client,
      stream: ex.id,
    });
    ex.why ??= "Write stalled";
    this.#session.reset(ex.id, ERROR.CANCEL);
    this.#abandon(ex);
  }

  // What the server asks.

  /** True when closing it now loses the client nothing: no stream open, or lingering. */
  get reclaimable(): boolean {
    return (this.#exchanges.size === 0 && this.#requests > 0) ||
      this.#lingering;
  }

  /** Never: it sent a preface to be here. */
  get silent(): boolean {
    return false;
  }

  /** `Date.now()` when its last stream ended. */
  get idleSince(): number {
    return this.#idleSince;
  }

  /**
   * Graceful shutdown (RFC 9113 §6.8): GOAWAY with the last stream we
   * serve; streams in flight finish, then the connection closes.
   */
  drain(): void {
    if (this.#closed) return;
    this.#draining = true;
    if (this.#lingering) return this.close();
    this.#session.shutdown();
    this.#flush();
  }

  /** Closes the socket at once (idempotent); streams in flight are abandoned. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.deadline = this.busyDeadline = 0;
    for (const ex of this.#exchanges.values()) {
      ex.why ??= "Connection closed";
      this.#abandon(ex);
    }
    try {
      this.#socket.close();
    } catch {
      // already closed by the peer's reset
    }
    this.#opts.onClose(this);
  }
}

/** A reply's wait ends because its stream is gone; never logged as a failure. */
class StreamGone extends Error {
  override name = "StreamGone";
  constructor() {
    super("Stream closed");
  }
}

/** A body that never reads: requests that ended with their head. */
const NO_HOST = {
  consumed: () => {},
  waiting: () => {},
  sendContinue: () => {},
};

/** The handler's content-length field, or -1 (a reply streamed without one). */
function replyContentLength(headers: ReplyHeaders | undefined): number {
  if (headers === undefined || headers === null) return -1;
  let value: string | undefined;
  if (Array.isArray(headers)) {
    for (const [name, v] of headers as ReadonlyArray<[string, string]>) {
      if (name.toLowerCase() === "content-length") value = v;
    }
  } else {
    const record = headers as Readonly<Record<string, string>>;
    for (const name in record) {
      if (name.toLowerCase() === "content-length") value = record[name];
    }
  }
  if (value === undefined) return -1;
  const n = Number(value);
  if (!/^\d+$/.test(String(value).trim()) || !Number.isSafeInteger(n)) {
    throw new Error(`Invalid content-length in reply: ${value}`);
  }
  return n;
}
