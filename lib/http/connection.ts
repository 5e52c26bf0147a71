/**
 * One client socket: read, parse, dispatch, write, keep-alive. The only
 * place an error becomes a reply (`toErrorReply`). Deadlines are plain
 * fields, filed in the server's wheel, which calls `expire()` when one has
 * passed.
 */
import { getLogger } from "../npm/logtape.ts";
import { DEFAULT_LIMITS, type Limits } from "../config.ts";
import {
  accessLog,
  clipForLog,
  type LineHolder,
  NO_REPLY_STATUS,
  rawRequestLine,
} from "./access_log.ts";
import { BodyReader, type ByteSource } from "./body.ts";
import { BufferPool } from "./buffers.ts";
import { batchNow } from "./clock.ts";
import {
  type DeadlineWheel,
  rateBudgetMs,
  Timed,
  type Timeouts,
} from "./deadlines.ts";
import { HttpError, reasonPhrase, renderError, STATUS } from "./errors.ts";
import {
  FileBody,
  type Handler,
  type Reply,
  type ReplyBody,
  type ServerRequest,
  type Takeover,
} from "./handler.ts";
import type { HeaderFields } from "./headers.ts";
import {
  checkHeadSoFar,
  CR,
  findHeadEnd,
  LF,
  parseHead,
  type RequestHead,
} from "./parser.ts";
import {
  BODY_ABSENT,
  BODY_STREAMED,
  encodeClosingReply,
  type FieldScan,
  frameReply,
  isAscii,
  OutBuffer,
  writeFields,
  writeFraming,
  writeSwitchingHead,
} from "./response.ts";
import { dropUntilClosed, LINGER_MS } from "./linger.ts";
import { ReadBuffer } from "./read_buffer.ts";
import type { ReadTurns } from "./read_turns.ts";
import { ownAddr, type Socket } from "./socket.ts";
import type { EngineStats } from "./stats.ts";

const log = getLogger(["spindle", "http"]);
const encoder = new TextEncoder();
const CONTINUE = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");
/** The body of every request without one; never reads. */
const NO_BODY = new BodyReader(
  {
    buffered: () => new Uint8Array(0),
    consume: () => {},
    fill: () => Promise.resolve(false),
    readDirect: () => Promise.resolve(null),
    sendContinue: () => Promise.resolve(),
  },
  0,
  false,
  DEFAULT_LIMITS,
);

/** Output is gathered up to this size before a write (pipelined replies). */
const GATHER_BYTES = 64 * 1024;
/** Bodies up to this size are copied next to the head: one write, one packet. */
const COPY_BYTES = 16 * 1024;
/**
 * File bodies are read and written in pieces of this size: 4 reads per
 * MiB, each a trip to Deno's file thread and back.
 */
const FILE_PIECE_BYTES = 512 * 1024;
/**
 * A second piece per reply, read while the first is written, for clients
 * that keep up, while fewer than this many pieces are out in all (32 MiB).
 * A slow client gets one piece: reading ahead of it only holds memory.
 */
const READ_AHEAD_PIECES = 64;
/** Pieces kept for the next file replies: 8 MiB at most. Exported for tests. */
export const filePieces = new BufferPool(FILE_PIECE_BYTES, 16);
/** An unread body up to this size is read and dropped to keep the connection. */
const DRAIN_BYTES = 64 * 1024;

/**
 * A connection's life. Named states, each left by one method (llhttp style):
 *
 *   Sniffing --first bytes not HTTP/2----------> Open
 *   Sniffing --HTTP/2 preface (#handedTo)------> HandedOver  (it closes the socket)
 *   Open     --deadline with a 408 to send-----> Closing     (the 408 is written)
 *   Sniffing | Open | Closing --close()--------> Closed
 *
 * Sniffing only with an `upgrade` option, else a connection starts Open.
 * While Sniffing or Open, {@link Phase} says what it waits on. Beside
 * them, and independent of them: a write in flight (`#writing`: a streamed
 * reply may be written while its request body is read), a shutdown's
 * drain asked for (`#draining`), a `100 Continue` owed (`#continuePending`).
 * Ordered: from Closing on, nothing more is served (`>= Life.Closing`).
 */
const enum Life {
  Sniffing,
  Open,
  /** Serving is over; the socket stays open for a last reply. */
  Closing,
  Closed,
  /** Another connection owns the socket. */
  HandedOver,
}

/** What the connection is waiting for; the deadline's meaning depends on it. */
export const enum Phase {
  /** Between requests, nothing received. Deadline: close quietly. */
  Idle,
  /** Part of a head received. Deadline: 408 and close. */
  Head,
  /** The handler runs. No deadline of ours. */
  Handler,
  /** Waiting for body bytes. Deadline: 408 and close. */
  Body,
  /** Reading and dropping a small unread body after its reply. Deadline: close. */
  Discard,
  /** Waiting for a write to progress. Deadline: close. */
  Write,
  /** Closing: reading and dropping what the client still sends. */
  Linger,
  /** Switched protocols (101): a {@link Takeover} owns the socket and its deadlines. */
  Upgraded,
}

/** Methods the server answers `OPTIONS *` with. */
export const SERVER_ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

export interface ConnectionOptions {
  readonly limits: Limits;
  readonly handler: Handler;
  readonly stats: EngineStats;
  readonly secure: boolean;
  readonly accessLog: boolean;
  /** Called once when the socket is closed. */
  readonly onClose: (c: Connection) => void;
  /** Called once `run()` is over: nothing waits on the socket any more. */
  readonly onEnd?: (c: Connection) => void;
  /** Called when the last reply is out and the connection only lingers. */
  readonly onLinger?: (c: Connection) => void;
  /** The server's timeouts, plain and busy. */
  readonly timeouts: Timeouts;
  /** Where the connection files its deadlines. */
  readonly wheel: DeadlineWheel;
  /** Turns for the read of each next request, shared by the server's connections. */
  readonly turns?: ReadTurns;
  /**
   * Asked before a reply that would keep the connection: the idle time to
   * allow after it, or 0 to close instead and hand the slot to a waiting
   * connection. `idleNext`: no further request is already buffered.
   */
  readonly keepAliveMs: (c: Connection, idleNext: boolean) => number;
  /**
   * Another protocol on this socket (HTTP/2), asked with the bytes read
   * before the first request: null for HTTP/1.1, "more" to read more
   * first, or the promise of the connection that took the socket and these
   * bytes over. This one then ends with it, leaving the socket to it.
   */
  readonly upgrade?: (
    c: Connection,
    socket: Socket,
    first: Uint8Array,
  ) => Promise<void> | "more" | null;
}

/** What every request on one connection shares: made once per connection. */
interface ConnectionFacts {
  readonly remoteAddr: Deno.NetAddr;
  readonly secure: boolean;
  readonly limits: Limits;
}

/**
 * The handler's view of a request: the parsed head and the connection's
 * facts, read through, not copied, so a request costs few fields more than
 * its head. Valid for as long as the handler keeps it.
 */
class IncomingRequest implements ServerRequest {
  readonly #head: RequestHead;
  readonly #facts: ConnectionFacts;
  readonly body: BodyReader;
  readonly startTime: number;
  user: string | undefined = undefined;
  errorAccept: string | undefined = undefined;

  constructor(
    startTime: number,
    head: RequestHead,
    body: BodyReader,
    facts: ConnectionFacts,
  ) {
    this.#head = head;
    this.#facts = facts;
    this.body = body;
    this.startTime = startTime;
  }

  get method(): string {
    return this.#head.method;
  }
  get target(): string {
    return this.#head.target;
  }
  get path(): string {
    return this.#head.path;
  }
  get query(): string {
    return this.#head.query;
  }
  get version(): "HTTP/1.0" | "HTTP/1.1" {
    return this.#head.minor === 1 ? "HTTP/1.1" : "HTTP/1.0";
  }
  get headers(): HeaderFields {
    return this.#head.headers;
  }
  get host(): string {
    return this.#head.host;
  }
  get remoteAddr(): Deno.NetAddr {
    return this.#facts.remoteAddr;
  }
  get secure(): boolean {
    return this.#facts.secure;
  }
  get limits(): Limits {
    return this.#facts.limits;
  }
}

/** True for errors that only mean the peer went away. */
export function isDisconnect(err: unknown): boolean {
  return err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.ConnectionAborted ||
    err instanceof Deno.errors.BadResource ||
    err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.NotConnected ||
    (err instanceof Error && err.name === "InvalidData"); // TLS peer vanished
}

/**
 * Statuses that are logged as a warning besides the access line: a
 * timeout, a limit crossed, a full server. Any other 4xx (a bot's 404, a
 * malformed request) is only its access line; see {@link toErrorReply}.
 */
export function isLimitStatus(status: number): boolean {
  return status === 408 || status === 413 || status === 414 ||
    status === 429 || status === 431 || status === 503 || status === 507;
}

/**
 * The one place an error becomes a reply. HttpErrors show their status and
 * exposed text; anything else is logged with its stack and shows a bare 500.
 * An HttpError is logged only when the server failed (a 5xx other than 501,
 * 503 and 505, which answer the client's request or a full server): a
 * client's mistake is part of its access line, and a limit's warning is
 * written once the reply is out (`Connection`, server's refusal).
 */
export function toErrorReply(err: unknown, accept: string | undefined): Reply {
  let status: number = STATUS.InternalServerError;
  let message = "Internal Server Error";
  let extra: Readonly<Record<string, string>> | undefined;
  if (err instanceof HttpError) {
    status = err.status;
    message = err.expose ?? reasonPhrase(status);
    extra = err.headers;
    if (
      status >= 500 && !isLimitStatus(status) && status !== 501 &&
      status !== 505
    ) {
      log.error("{status} {reason}", {
        status,
        reason: err.message,
        error: err,
      });
    }
  } else {
    log.error("Unhandled error: {error}", { error: err });
  }
  const rendered = renderError(status, message, accept);
  return {
    status,
    headers: {
      ...extra,
      "content-type": rendered.contentType,
      "cache-control": "no-store",
    },
    body: rendered.body,
  };
}

/**
 * An access line whose reply still sits in the output buffer, gathered
 * behind a pipelined request's: written once the write that carries the
 * reply ends, with the bytes of it the socket took.
 */
interface HeldLine {
  request: RequestHead | string;
  status: number;
  /** The reply's first byte, and the byte past its last, in `#wrote`'s count. */
  start: number;
  end: number;
  startTime: number;
  why: string | undefined;
  user: string | undefined;
}

export class Connection extends Timed implements ByteSource, LineHolder {
  readonly #conn: Socket;
  readonly #opts: ConnectionOptions;
  readonly #limits: Limits;
  readonly remoteAddr: Deno.NetAddr;
  /** Handed to each request of this connection. */
  readonly #facts: ConnectionFacts;
  readonly #in = new ReadBuffer();
  #headStartedAt = 0;
  #out = new OutBuffer();
  #writing = false;
  #requests = 0;
  #continuePending = false;
  #draining = false;
  /** `Date.now()` when it last began to wait for a request. */
  #idleAt = Date.now();
  #life: Life;
  // Bytes out, for the access log: the client received `#wrote` bytes
  // in whole writes, plus `#partial` of the write in progress. The current
  // reply starts at `#replyAt` in that count.
  #wrote = 0;
  #partial = 0;
  #replyAt = 0;
  /** Access lines waiting for the write of their reply (reused), and how many wait. */
  #held: HeldLine[] | undefined;
  #heldCount = 0;
  /** The request between dispatch and its access line, and why it was refused. */
  #current: RequestHead | undefined;
  #why: string | undefined;
  /** The handler's view of the current request, for the user it signed in. */
  #incoming: IncomingRequest | undefined;
  /** The current request's body, its clock and the status it was sent. */
  #body: BodyReader = NO_BODY;
  #startTime = 0;
  #status = 0;
  /** The handler threw an HttpError that asks to close. */
  #closeAfter = false;
  /** The request body is unread but small: drop it after the reply. */
  #dropBody = false;
  phase: Phase = Phase.Idle;
  /** `Date.now()` when the last read completed. */
  #now = Date.now();
  /** `Date.now()` past which `expire()` acts; 0 for none. */
  deadline = 0;
  /** The same while the server is busy: tighter, never later. */
  busyDeadline = 0;
  /** Idle time allowed after the last reply. */
  #keepAliveMs: number;
  /** The body being timed: its request number, bytes and time waited on it. */
  #rateRequest = 0;
  #bodyBytes = 0;
  #bodyWaitedMs = 0;
  /** Writes that had to wait for the client to read (partial writes). */
  #stalls = 0;
  /** Bytes of the current reply written after waiting, and the time waited. */
  #sendBytes = 0;
  #sendWaitedMs = 0;
  /** What owns the socket once a 101 is queued (phase Upgraded once it is written). */
  #takeover: Takeover | undefined;
  /** A takeover to run once {@link #serve} is over (its 101 is queued). */
  #switched = false;
  /** False once {@link #serve} answered the last request: {@link #end} lingers. */
  #kept = true;

  /** The server's own record of this connection, for its callbacks. */
  readonly tag: unknown;

  constructor(conn: Socket, opts: ConnectionOptions, tag?: unknown) {
    super();
    this.#conn = conn;
    this.tag = tag;
    this.#opts = opts;
    this.#limits = opts.limits;
    this.#keepAliveMs = opts.timeouts.keepAliveMs;
    this.remoteAddr = ownAddr(conn.remoteAddr);
    this.#facts = {
      remoteAddr: this.remoteAddr,
      secure: opts.secure,
      limits: opts.limits,
    };
    // Asking `opts.upgrade` about each read until the first request.
    this.#life = opts.upgrade !== undefined ? Life.Sniffing : Life.Open;
  }

  /**
   * Serves requests until the client or the server ends the connection;
   * never rejects. The request loop, {@link #serve}, has no exception
   * handler, and what is rare happens in {@link #end}, once it is over (a
   * head that cannot be parsed, a failed read or write, the takeover): V8
   * deoptimizes a function the first time its optimized code reaches a
   * path it never ran, such as a `catch` entered by the first reset
   * connection, and the loop then runs unoptimized, then half-optimized,
   * for tens of thousands of requests (in-process: +600 ns a request, then
   * +80). No frame of its own: an idle connection holds only the loop's.
   */
  run(): Promise<void> {
    return this.#serve().then(
      Connection.#served,
      (err: unknown) => this.#end(true, err),
    );
  }

  /** The loop ended without an exception: shared, not made per connection. */
  static #served(c: Connection): Promise<void> {
    return c.#end(false, undefined);
  }

  /**
   * After the request loop: answers a head that could not be parsed
   * (`failed`, with what the loop threw), or hands the socket to a
   * takeover; then one access line for a reply cut short, and the close.
   */
  async #end(failed: boolean, err: unknown): Promise<void> {
    try {
      if (failed) {
        // A head we could not parse (nothing is dispatched while reading
        // one): answer, then close; never hunt for the next request.
        if (
          this.#life >= Life.Closing || !(err instanceof HttpError) ||
          this.#current !== undefined
        ) throw err;
        this.#startTime = Date.now();
        this.#body = NO_BODY;
        const done = this.#respond(undefined, this.#errorReply(err, undefined));
        if (typeof done !== "boolean") await done;
        await this.#flush();
        this.#finish(undefined, false);
        await this.#linger();
      } else if (!this.#kept) await this.#linger(); // the loop ended on a reply
      if (this.#switched) await this.#runTakeover();
    } catch (err) {
      if (!isDisconnect(err) && this.#life < Life.Closing) {
        log.error("Connection failed: {error}", { error: err });
      }
    } finally {
      // A reply cut short, or none at all: still one access line, after
      // those of the replies gathered before it, cut short too.
      if (this.#heldCount > 0) this.#release();
      if (this.#current !== undefined) this.#finish(this.#current, true);
      this.close();
      this.#opts.onEnd?.(this); // no read is pending any more
    }
  }

  /**
   * The request loop: reads, parses, dispatches and answers until the
   * connection is to close or a reply switched protocols (`#switched`:
   * {@link #end} starts the takeover, once this frame and the last request
   * it held are gone). Throws what a read, a write or the parse threw.
   */
  async #serve(): Promise<Connection> {
    const conn = this.#conn;
    for (;;) {
      let head = this.#parseNext();
      while (head === undefined) {
        if (this.#out.len > 0) await this.#flush();
        // Idle between requests, also while draining: closing here would
        // race with a client reusing the connection. A slot wanted by a
        // waiting connection was given up by the last reply's Connection:
        // close; a drain closes us once idle for reclaimIdleMs.
        // Read in turn with the other connections: see read_turns.ts.
        // Waiting holds no more than the pending read needs, and the few
        // connections that read at a time reuse the same, cache-warm
        // buffers (a reply's, a long head's).
        if (this.#in.empty) {
          this.#in.giveBack();
          this.#out.release();
        }
        let turn = this.#opts.turns?.take();
        if (turn instanceof Promise) turn = await turn;
        let n: number | null = null;
        try {
          if (this.#life < Life.Closing) {
            n = await conn.read(this.#readSpace());
          }
        } finally {
          if (turn !== undefined) this.#opts.turns!.give(turn);
        }
        if (n === null || this.#life >= Life.Closing) return this;
        this.#received(n);
        if (this.#life === Life.Sniffing) {
          const other = this.#opts.upgrade!(this, conn, this.buffered());
          if (other === "more") continue;
          this.#life = Life.Open;
          if (other !== null) {
            await this.#handedTo(other);
            return this;
          }
        }
        head = this.#parseNext();
      }
      // The common request has no await of ours but the write: a synchronous
      // handler and a small body make one buffered reply.
      let reply = this.#dispatch(head);
      if (reply instanceof Promise) reply = await reply;
      if (this.#life >= Life.Closing) {
        reply.upgrade?.cancel();
        return this;
      }
      if (reply.upgrade !== undefined) {
        reply = this.#switchProtocols(head, reply);
        if (reply.upgrade !== undefined) {
          this.#switched = true; // #end() hands the socket over
          return this;
        }
      }
      let keep = this.#respond(head, reply);
      if (typeof keep !== "boolean") keep = await keep;
      // Gather replies to pipelined requests into one write; flush before any wait.
      if (
        (!keep || this.#in.empty ||
          this.#out.len >= GATHER_BYTES) &&
        this.#out.len > 0
      ) {
        // #write() inlined: one promise layer less per reply.
        const bytes = this.#takeOut();
        const phase = this.#beginWrite(this.#now);
        const n = await conn.write(bytes);
        if (n < bytes.length) await this.#writeRest(bytes, n, this.#now);
        this.#endWrite(phase, bytes.length);
      }
      this.#finish(head, false);
      if (keep && this.#dropBody) keep = await this.#discardBody();
      // Lingering is #end()'s: a call made here only on a connection's
      // last request would deoptimize this loop the first time it ran, as
      // all the connections of a long warm-up reach the request limit.
      this.#kept = keep;
      if (!keep) return this;
    }
  }

  /**
   * Queues the 101 head of a reply with an upgrade, whose takeover `run()`
   * then starts. Returns the reply, or an error reply (the takeover
   * cancelled, the connection to close) for a request that cannot switch.
   */
  #switchProtocols(head: RequestHead, reply: Reply): Reply {
    const takeover = reply.upgrade!;
    const out = this.#out;
    const mark = out.len;
    try {
      if (reply.status !== 101) {
        throw new TypeError(
          `A reply with an upgrade has status ${reply.status}, not 101`,
        );
      }
      // RFC 9110 §7.8: no upgrade on HTTP/1.0; and unread body bytes would
      // be taken for the new protocol's.
      if (head.minor !== 1 || !this.#body.consumed) {
        throw new TypeError(
          "Only an HTTP/1.1 request with no body left can switch protocols",
        );
      }
      this.#replyAt = this.#wrote + mark;
      writeSwitchingHead(out, reply.headers);
    } catch (err) {
      out.len = mark;
      takeover.cancel();
      this.#closeAfter = true;
      return this.#failed(err, head);
    }
    this.#status = 101;
    this.#takeover = takeover;
    return reply;
  }

  /**
   * Writes the 101 and hands the socket over with the bytes read past the
   * request head. The connection stays counted until the takeover is done.
   */
  #runTakeover(): Promise<void> {
    const takeover = this.#takeover!;
    // Not async: an idle WebSocket would keep this frame suspended for good.
    return (this.#flush() ?? Promise.resolve()).then(
      () => this.#handOver(takeover),
      (err) => {
        takeover.cancel();
        throw err;
      },
    );
  }

  #handOver(takeover: Takeover): Promise<void> {
    this.#finish(this.#current!, false);
    const rest = this.#in.buffered().slice();
    // The takeover reads into its own buffer: an idle WebSocket keeps none of these.
    this.#in.release(false);
    this.#out.release();
    this.#body = NO_BODY;
    this.phase = Phase.Upgraded;
    this.#arm(this.#now, this.#now); // visited each tick from now on: expire()
    if (this.#draining) takeover.drain();
    return takeover.run(this.#conn, rest);
  }

  /**
   * Another protocol took the socket and the bytes read so far (a view of
   * the read buffer, its own now): this connection leaves the wheel and
   * waits for it to end.
   */
  #handedTo(other: Promise<void>): Promise<void> {
    this.#life = Life.HandedOver;
    this.#in.release(true);
    this.#out.release();
    this.deadline = this.busyDeadline = 0;
    this.#opts.wheel.remove(this);
    return other;
  }

  /** The next complete head in the buffer, or undefined if more bytes are needed. */
  #parseNext(): RequestHead | undefined {
    const rb = this.#in;
    const buf = rb.buf;
    let start = rb.start;
    const end = rb.end;
    // RFC 9112 §2.2: ignore empty lines before a request line.
    while (start < end && (buf[start] === CR || buf[start] === LF)) start++;
    if (start === end) {
      rb.clear();
      return undefined;
    }
    rb.start = start;
    const limits = this.#limits;
    let headEnd = end;
    // The usual read ends with a blank line: then no head in it can be
    // cut short, and the parse itself finds where the first one ends.
    if (
      end - start < 4 || end - start > limits.maxHeadBytes ||
      buf[end - 1] !== LF || buf[end - 2] !== CR || buf[end - 3] !== LF ||
      buf[end - 4] !== CR
    ) {
      const from = Math.max(rb.scanFrom, start);
      headEnd = findHeadEnd(buf, from, end);
      if (headEnd === -1) {
        // Refuse a head as soon as a line proves it bad, not at its end.
        checkHeadSoFar(buf, start, from, end, limits);
        rb.scanFrom = Math.max(start, end - 3);
        if (end - start >= limits.maxHeadBytes) throw this.#headTooLarge();
        return undefined;
      }
      if (headEnd - start > limits.maxHeadBytes) throw this.#headTooLarge();
    }
    const head = parseHead(buf, start, headEnd, limits);
    rb.start = rb.scanFrom = head.end;
    this.#headStartedAt = 0;
    return head;
  }

  #headTooLarge(): HttpError {
    const { buf, start, end } = this.#in;
    const lf = buf.indexOf(LF, start);
    // No end of the request line yet: it is the target that is too long.
    if (
      (lf === -1 || lf >= end) && end - start > this.#limits.maxTargetBytes
    ) {
      return new HttpError(STATUS.URITooLong, "Request line too long", {
        close: true,
      });
    }
    return new HttpError(
      STATUS.RequestHeaderFieldsTooLarge,
      "Request head too large",
      { close: true },
    );
  }

  /** Arms the head or idle deadline and returns where the next read goes. */
  #readSpace(): Uint8Array {
    const limits = this.#limits;
    // #headStartedAt is 0 until a byte of the next head arrives; skipped empty
    // lines count, so "\r\n" now and then cannot re-arm the idle deadline.
    // #now is the last read's clock: only synchronous work happened since.
    const t = this.#opts.timeouts;
    if (this.#headStartedAt === 0 && this.#in.empty) {
      this.phase = Phase.Idle;
      // When the reply went out, not when its request came: a drain
      // measures idleness from here. #now moved on past a slow handler,
      // body or write, so no second clock read is needed.
      this.#idleAt = this.#now;
      if (this.#requests === 0) {
        // A new connection that sends nothing (no TLS hello either) is a slowloris too.
        this.#arm(this.#now + t.headMs, this.#now + t.headBusyMs);
      } else {
        // As announced with the last reply: never shortened afterwards.
        const at = this.#now + this.#keepAliveMs;
        this.#arm(at, at);
      }
      if (this.#draining) this.#drainSoon();
    } else {
      this.phase = Phase.Head;
      // A head pipelined behind a slow request: its clock starts now, when we
      // begin to wait for the rest, not when the request before it arrived.
      if (this.#headStartedAt === 0) this.#headStartedAt = this.#now;
      this.#arm(
        this.#headStartedAt + t.headMs,
        this.#headStartedAt + t.headBusyMs,
      );
    }
    return this.#in.space(limits.maxHeadBytes);
  }

  /** Accounts for `n` bytes a read put at the end of the buffer. */
  #received(n: number): void {
    this.#now = batchNow(); // one clock read serves this batch of requests
    if (this.#headStartedAt === 0) this.#headStartedAt = this.#now;
    this.#in.received(n);
    this.#opts.stats.bytesIn += n;
  }

  // ByteSource, for the body reader.

  buffered(): Uint8Array {
    return this.#in.buffered();
  }

  consume(n: number): void {
    this.#in.consume(n);
  }

  async fill(): Promise<boolean> {
    if (this.#out.len > 0) await this.#flush();
    const rb = this.#in;
    rb.lend(); // a body: room for many pieces per read
    const into = rb.space(
      Math.max(this.#limits.maxTrailerBytes, this.#limits.maxChunkLineBytes) +
        2,
    );
    const since = this.#armBody();
    const n = await this.#conn.read(into);
    this.#bodyRead(since, n);
    if (n === null) return false;
    rb.received(n);
    this.#opts.stats.bytesIn += n;
    return true;
  }

  async readDirect(into: Uint8Array): Promise<number | null> {
    if (this.#out.len > 0) await this.#flush();
    const since = this.#armBody();
    const n = await this.#conn.read(into);
    this.#bodyRead(since, n);
    if (n !== null) this.#opts.stats.bytesIn += n;
    return n;
  }

  /**
   * Arms the body deadline for one read: the gap allowed between two
   * pieces, or sooner if the body is under its minimum rate. Returns the time.
   */
  #armBody(): number {
    const now = Date.now();
    if (this.#rateRequest !== this.#requests) {
      this.#rateRequest = this.#requests; // a new body: a new budget
      this.#bodyBytes = this.#bodyWaitedMs = 0;
    }
    const t = this.#opts.timeouts;
    if (this.phase !== Phase.Discard) this.phase = Phase.Body;
    this.#armWait(
      now,
      t.bodyGapMs,
      t.bodyGapBusyMs,
      t.bodyMsPerByte,
      this.#bodyBytes,
      this.#bodyWaitedMs,
    );
    return now;
  }

  #bodyRead(since: number, n: number | null): void {
    if (this.phase !== Phase.Discard) this.phase = Phase.Handler;
    this.deadline = this.busyDeadline = 0;
    this.#bodyWaitedMs += Date.now() - since;
    if (n !== null) this.#bodyBytes += n;
  }

  async sendContinue(): Promise<void> {
    if (!this.#continuePending) return;
    this.#continuePending = false;
    this.#out.bytes(CONTINUE);
    await this.#flush();
  }

  /**
   * Runs the handler. Returns its reply, or the error reply for what it
   * threw, synchronously when the handler was synchronous.
   */
  #dispatch(head: RequestHead): Reply | Promise<Reply> {
    this.#requests++;
    this.#current = head;
    this.#closeAfter = false;
    this.#startTime = this.#now;
    const body = this.#body = head.contentLength <= 0 && !head.chunked
      ? NO_BODY // most requests: no reader to build
      : new BodyReader(this, head.contentLength, head.chunked, this.#limits);
    this.#continuePending = head.expectContinue && !body.consumed;
    this.phase = Phase.Handler;
    this.deadline = this.busyDeadline = 0;
    if (head.path === "*") {
      return { status: STATUS.NoContent, headers: { allow: SERVER_ALLOW } }; // OPTIONS *
    }
    const req = this.#incoming = new IncomingRequest(
      this.#now,
      head,
      body,
      this.#facts,
    );
    try {
      const r = this.#opts.handler(req);
      if (r instanceof Promise) return this.#settle(r, head);
      return checkReply(r);
    } catch (err) {
      return this.#failed(err, head);
    }
  }

  async #settle(pending: Promise<Reply>, head: RequestHead): Promise<Reply> {
    try {
      const reply = checkReply(await pending);
      this.#now = Date.now(); // the Date header must not predate a slow handler
      return reply;
    } catch (err) {
      this.#now = Date.now();
      return this.#failed(err, head);
    }
  }

  #failed(err: unknown, head: RequestHead): Reply {
    if (err instanceof HttpError && err.close) this.#closeAfter = true;
    if (this.#life >= Life.Closing) {
      return { status: STATUS.InternalServerError }; // never sent
    }
    return this.#errorReply(
      err,
      this.#incoming?.errorAccept ?? head.headers.get("accept"),
    );
  }

  /** {@link toErrorReply}, noting an HttpError's message for the log lines. */
  #errorReply(err: unknown, accept: string | undefined): Reply {
    if (err instanceof HttpError) this.#why = err.message;
    return toErrorReply(err, accept);
  }

  /**
   * Queues the reply and decides whether the connection may be kept.
   * Synchronous for a reply that fits the output buffer; a big or streamed
   * body is written by the returned promise.
   */
  #respond(
    head: RequestHead | undefined,
    reply: Reply,
  ): boolean | Promise<boolean> {
    let keep = head !== undefined && head.keepAlive && !this.#closeAfter &&
      !this.#draining && this.#requests < this.#limits.maxRequestsPerConnection;
    // An unread body: drop a small one after replying, else close (RFC 9112 §9.3).
    const body = this.#body;
    this.#dropBody = false;
    if (!body.consumed) {
      if (
        body.started || this.#continuePending || body.unread < 0 ||
        body.unread > DRAIN_BYTES
      ) keep = false;
      else this.#dropBody = true;
    }
    this.#continuePending = false;
    this.#sendBytes = this.#sendWaitedMs = 0;
    if (keep) {
      const ms = this.#opts.keepAliveMs(this, this.#in.empty);
      if (ms === 0) keep = false; // the slot goes to a waiting connection
      else this.#keepAliveMs = ms;
    }
    return this.#queueReply(reply, head, keep);
  }

  /**
   * The request is done: one access line, and a warning if a limit refused
   * it. `head` is undefined for a request that could not be parsed; then
   * its first line is logged as sent. `aborted`: the reply did not complete
   * (its bytes are those the socket took) or never began.
   */
  #finish(head: RequestHead | undefined, aborted: boolean): void {
    this.#current = undefined;
    this.#opts.stats.requests++;
    let status = this.#status;
    this.#status = 0;
    let bytes = aborted
      ? this.#wrote + this.#partial - this.#replyAt
      : this.#wrote + this.#out.len - this.#replyAt;
    if (status === 0) {
      status = NO_REPLY_STATUS;
      bytes = 0;
    } else if (bytes < 0) bytes = 0;
    const why = this.#why;
    this.#why = undefined;
    const user = this.#incoming?.user;
    this.#incoming = undefined;
    const sink = this.#opts.accessLog ? accessLog() : undefined;
    if (sink === undefined && !isLimitStatus(status)) return;
    const request = head ??
      rawRequestLine(this.#in.buf, this.#in.start, this.#in.end);
    if (sink !== undefined && !aborted && this.#out.len > 0) {
      // Gathered, not sent yet: its line says what the write did.
      this.#hold(request, status, bytes, why, user);
    } else {
      // Ends on the batch clock: this line comes after its reply's write was
      // awaited (or after the loop ended), and the reading that served the
      // handler queued its expiry before that await, so a reading still
      // valid now was taken since, after the handler and the write (a slow
      // synchronous handler shows). One turn's lines share it, where
      // `Date.now()` was a runtime call a line (~30 ns over sockets).
      sink?.append(
        this.remoteAddr.hostname,
        request,
        status,
        bytes,
        this.#startTime,
        aborted,
        why,
        user,
        batchNow(),
      );
    }
    if (isLimitStatus(status)) {
      log.warn("Refused {request} from {client}: {status} {reason}", {
        client: this.remoteAddr.hostname,
        request: typeof request === "string"
          ? clipForLog(request)
          : `${clipForLog(request.method)} ${clipForLog(request.target)}`,
        status,
        reason: clipForLog(why ?? reasonPhrase(status)),
      });
    }
  }

  /** Keeps a finished request's line until the write of its queued reply ends. */
  #hold(
    request: RequestHead | string,
    status: number,
    bytes: number,
    why: string | undefined,
    user: string | undefined,
  ): void {
    const held = this.#held ??= [];
    if (this.#heldCount === 0) accessLog()?.hold(this);
    const start = this.#replyAt;
    let line = held[this.#heldCount];
    if (line === undefined) {
      line = held[this.#heldCount] = {
        request,
        status,
        start,
        end: start + bytes,
        startTime: this.#startTime,
        why,
        user,
      };
    } else {
      line.request = request;
      line.status = status;
      line.start = start;
      line.end = start + bytes;
      line.startTime = this.#startTime;
      line.why = why;
      line.user = user;
    }
    this.#heldCount++;
  }

  /**
   * Writes the held lines once their write ended, or failed: each with the
   * bytes of its reply the socket took, `aborted` if not all. One clock
   * read for them all: the write's end.
   */
  #release(): void {
    const held = this.#held!;
    const count = this.#heldCount;
    this.#heldCount = 0;
    const sink = accessLog();
    sink?.release(this);
    const took = this.#wrote + this.#partial;
    const now = Date.now();
    const client = this.remoteAddr.hostname;
    for (let i = 0; i < count; i++) {
      const line = held[i];
      const whole = took >= line.end;
      sink?.append(
        client,
        line.request,
        line.status,
        whole ? line.end - line.start : Math.max(0, took - line.start),
        line.startTime,
        !whole,
        line.why,
        line.user,
        now,
      );
      // An idle connection keeps no request alive.
      line.request = "";
      line.why = line.user = undefined;
    }
  }

  /** The process exits, or the log closes: the held lines now, as the socket has them. */
  appendHeld(): void {
    if (this.#heldCount > 0) this.#release();
  }

  async #discardBody(): Promise<boolean> {
    this.phase = Phase.Discard;
    try {
      await this.#body.discard();
      this.#now = Date.now();
      return true;
    } catch {
      return false;
    } finally {
      this.phase = Phase.Handler;
    }
  }

  /**
   * Queues the head of a reply, framing its body, and the body too when it
   * is small. Returns whether the connection may be kept, or a promise of
   * that when a big or streamed body is still to be written. `head` is
   * undefined for a reply to an unparsable request.
   */
  #queueReply(
    reply: Reply,
    head: RequestHead | undefined,
    keep: boolean,
  ): boolean | Promise<boolean> {
    const out = this.#out;
    const mark = out.len;
    this.#replyAt = this.#wrote + mark;
    let scan: FieldScan;
    try {
      scan = writeFields(out, reply.status, reply.headers, this.#now);
    } catch (err) {
      out.len = mark;
      cancelBody(reply.body);
      reply = toErrorReply(err, head?.headers.get("accept"));
      scan = writeFields(out, reply.status, reply.headers, this.#now);
    }
    const status = this.#status = reply.status;
    const isHead = head !== undefined && head.method === "HEAD";
    const minor = head === undefined ? 1 : head.minor;
    const body: ReplyBody = reply.body;
    let bytes: Uint8Array | undefined;
    let text: string | undefined; // an ASCII body, copied in after the head
    let bodyLength: number;
    if (typeof body === "string") {
      if (body.length <= COPY_BYTES && isAscii(body)) {
        text = body;
        bodyLength = body.length;
      } else {
        bytes = encoder.encode(body);
        bodyLength = bytes.length;
      }
    } else if (body instanceof Uint8Array) {
      bytes = body;
      bodyLength = bytes.length;
    } else if (body instanceof FileBody) bodyLength = body.length;
    else if (body === null || body === undefined) bodyLength = BODY_ABSENT;
    else bodyLength = BODY_STREAMED;
    keep &&= !scan.close;
    // A body of known length with a status that has one, the common reply:
    // its length is the Content-Length and nothing else changes, as
    // frameReply() would say (asked only for the rest: no object made).
    let contentLength = bodyLength;
    let chunked = false;
    let sendBody = !isHead;
    if (bodyLength < 0 || status === 204 || status === 304) {
      const framing = frameReply(
        status,
        isHead,
        minor,
        bodyLength,
        scan.contentLength,
        keep,
      );
      contentLength = framing.contentLength;
      chunked = framing.chunked;
      keep = framing.keep;
      sendBody = framing.sendBody;
    }
    writeFraming(
      out,
      contentLength,
      chunked,
      !keep,
      keep && minor === 0,
      this.#keepAliveMs,
    );
    if (!sendBody) {
      cancelBody(body);
    } else if (text !== undefined) {
      out.text(text);
    } else if (bytes !== undefined && bytes.length <= COPY_BYTES) {
      out.bytes(bytes);
    } else if (body !== null && body !== undefined) {
      return this.#writeBody(body, chunked, contentLength, keep);
    }
    return keep;
  }

  /** Writes a body too big to gather: file, stream or big bytes. */
  async #writeBody(
    body: ReplyBody,
    chunked: boolean,
    contentLength: number,
    keep: boolean,
  ): Promise<boolean> {
    if (body instanceof Uint8Array) {
      await this.#writeBytes(body);
    } else if (body instanceof FileBody) {
      await this.#writeFile(body);
    } else {
      await this.#writeStream(
        body as AsyncIterable<Uint8Array>,
        chunked,
        contentLength,
      );
    }
    this.#now = Date.now(); // deadlines after this reply start from its end
    return keep;
  }

  async #writeBytes(bytes: Uint8Array): Promise<void> {
    if (bytes.length <= COPY_BYTES) {
      this.#out.bytes(bytes);
      return;
    }
    await this.#flush();
    await this.#write(bytes);
  }

  /** Writes what is queued. Not async itself: one promise layer less. */
  #flush(): Promise<void> | undefined {
    if (this.#out.len === 0) return undefined;
    return this.#write(this.#takeOut());
  }

  /** The queued bytes, to write before anything else is queued. */
  #takeOut(): Uint8Array {
    const out = this.#out;
    // A big reply grew the buffer; do not keep it for an idle connection.
    if (out.buf.length > GATHER_BYTES * 2) this.#out = new OutBuffer();
    return out.take();
  }

  /** Writes every byte; `conn.write()` alone may stop part-way. */
  async #write(bytes: Uint8Array): Promise<void> {
    const since = Date.now();
    const phase = this.#beginWrite(since);
    const n = await this.#conn.write(bytes);
    if (n < bytes.length) await this.#writeRest(bytes, n, since);
    else this.#countSent(since, n, Date.now());
    this.#endWrite(phase, bytes.length);
  }

  /** Arms the write deadline; returns the phase to restore after. */
  #beginWrite(now: number): Phase {
    const phase = this.phase;
    this.phase = Phase.Write;
    this.#writing = true;
    this.#armWrite(now);
    return phase;
  }

  /**
   * The write deadline: the stall allowed for one write, or sooner if the
   * client takes this reply slower than its minimum rate.
   */
  #armWrite(now: number): void {
    const t = this.#opts.timeouts;
    if (this.#sendBytes === 0 && this.#sendWaitedMs === 0) {
      // A reply's first write, the common one: its budget is worked out.
      this.#arm(now + t.firstWriteMs, now + t.firstWriteBusyMs);
      return;
    }
    this.#armWait(
      now,
      t.writeGapMs,
      t.writeGapBusyMs,
      t.sendMsPerByte,
      this.#sendBytes,
      this.#sendWaitedMs,
    );
  }

  /**
   * Arms both deadlines of a wait on the client: the gap allowed, or sooner
   * once `bytes` moved in `waitedMs` of waiting fall under the minimum rate.
   */
  #armWait(
    now: number,
    gapMs: number,
    gapBusyMs: number,
    msPerByte: number,
    bytes: number,
    waitedMs: number,
  ): void {
    const t = this.#opts.timeouts;
    this.#arm(
      now +
        Math.min(gapMs, rateBudgetMs(t.graceMs, msPerByte, bytes, waitedMs)),
      now +
        Math.min(
          gapBusyMs,
          rateBudgetMs(t.graceBusyMs, msPerByte, bytes, waitedMs),
        ),
    );
  }

  /** Accounts for a write of `n` bytes that waited from `since` to `now`. */
  #countSent(since: number, n: number, now: number): void {
    this.#sendWaitedMs += now - since;
    this.#sendBytes += n;
  }

  /**
   * After a partial write (the client reads slower than we write): the
   * rest, each write re-arming the deadline and counting toward the rate.
   */
  async #writeRest(
    bytes: Uint8Array,
    off: number,
    since: number,
  ): Promise<void> {
    let now = Date.now();
    this.#countSent(since, off, now);
    this.#stalls++;
    while (off < bytes.length) {
      this.#partial = off;
      this.#armWrite(now);
      const n = await this.#conn.write(bytes.subarray(off));
      off += n;
      const end = Date.now();
      this.#countSent(now, n, end);
      now = end;
    }
    this.#now = now;
  }

  #endWrite(phase: Phase, bytes: number): void {
    this.#writing = false;
    this.phase = phase;
    this.deadline = this.busyDeadline = 0;
    this.#opts.stats.bytesOut += bytes;
    this.#wrote += bytes;
    this.#partial = 0;
    if (this.#heldCount > 0) this.#release();
  }

  async #writeFile(fb: FileBody): Promise<void> {
    const file = fb.file;
    let left = fb.length;
    let piece = filePieces.take();
    let spare: Uint8Array | undefined;
    let reading: Promise<number | null> | undefined;
    const read = (into: Uint8Array) =>
      file.read(into.subarray(0, Math.min(left, into.length)));
    try {
      if (fb.start !== 0) await file.seek(fb.start, Deno.SeekMode.Start);
      if (left > 0) reading = read(piece);
      let keepsUp = true;
      while (reading !== undefined) {
        const n = await reading;
        reading = undefined;
        if (n === null) {
          throw new Error("File ended before its announced length");
        }
        left -= n;
        const bytes = n === piece.length ? piece : piece.subarray(0, n);
        if (
          left > 0 && keepsUp &&
          (spare !== undefined || filePieces.lent < READ_AHEAD_PIECES)
        ) {
          spare ??= filePieces.take();
          [piece, spare] = [spare, piece];
          reading = read(piece); // the next piece, while this one is written
        }
        const stalls = this.#stalls;
        await this.#writeBytes(bytes);
        if (this.#out.len > 0) await this.#flush(); // `bytes` is reused
        keepsUp = this.#stalls === stalls;
        if (!keepsUp && spare !== undefined) {
          filePieces.give(spare); // a slow client: one piece is enough
          spare = undefined;
        }
        if (left > 0 && reading === undefined) reading = read(piece);
      }
    } finally {
      // A read still running fills its piece: let it end before the reuse.
      if (reading !== undefined) await reading.catch(() => null);
      try {
        file.close();
      } catch {
        // already closed
      }
      filePieces.give(piece);
      if (spare !== undefined) filePieces.give(spare);
    }
  }

  async #writeStream(
    stream: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
    chunked: boolean,
    contentLength: number,
  ): Promise<void> {
    let sent = 0;
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError("A reply stream must yield Uint8Array");
      }
      if (chunk.length === 0) continue;
      sent += chunk.length;
      if (contentLength !== -1 && sent > contentLength) {
        throw new Error("Reply stream is longer than its content-length");
      }
      if (chunked) this.#out.text(chunk.length.toString(16) + "\r\n");
      await this.#writeBytes(chunk);
      if (chunked) this.#out.text("\r\n");
      await this.#flush();
    }
    if (contentLength !== -1 && sent !== contentLength) {
      throw new Error("Reply stream is shorter than its content-length");
    }
    if (chunked) this.#out.text("0\r\n\r\n");
  }

  /** Closes our side, then reads and drops what the client still sends, briefly. */
  async #linger(): Promise<void> {
    if (this.#life >= Life.Closing) return;
    try {
      await this.#flush();
      await this.#conn.closeWrite();
      this.phase = Phase.Linger;
      const at = Date.now() + LINGER_MS;
      this.#arm(at, at);
      this.#opts.onLinger?.(this);
      await dropUntilClosed(this.#conn, this.#in.buf);
    } catch {
      // the peer is gone, which is what we wanted
    }
  }

  /** Sets both deadlines (the busy one never later) and files them. */
  #arm(deadline: number, busyDeadline: number): void {
    this.deadline = deadline;
    this.busyDeadline = busyDeadline;
    this.#opts.wheel.arm(this, busyDeadline);
  }

  /**
   * Called by the wheel: acts if the deadline has passed, or the busy
   * deadline while the server is `busy`.
   */
  expire(now: number, busy = false): void {
    if (this.phase === Phase.Upgraded) {
      // The takeover keeps its own times; it asked to be called every tick.
      this.#takeover!.expire(now);
      if (this.#life < Life.Closing) this.#arm(now, now);
      return;
    }
    const deadline = busy ? this.busyDeadline : this.deadline;
    if (deadline === 0 || now < deadline || this.#life >= Life.Closing) return;
    const phase = this.phase;
    if (phase === Phase.Head || phase === Phase.Body) {
      log.warn("{what} timeout from {client}", {
        what: phase === Phase.Head ? "Head" : "Body",
        client: this.remoteAddr.hostname,
      });
      if (!this.#writing && this.#out.len === 0) {
        const reply = toErrorReply(
          new HttpError(
            STATUS.RequestTimeout,
            "Timed out waiting for the request",
            { close: true },
          ),
          undefined,
        );
        const bytes = encodeClosingReply(
          reply.status,
          reply.headers,
          reply.body as string,
          now,
        );
        this.#life = Life.Closing;
        this.deadline = this.busyDeadline = 0;
        this.#conn.write(bytes).catch(() => {}).finally(() => this.close());
        return;
      }
    } else if (phase === Phase.Write) {
      log.warn("Write stalled to {client}", {
        client: this.remoteAddr.hostname,
      });
    }
    this.close();
  }

  /**
   * True between requests on a kept-alive connection (or while lingering
   * after a last reply): closing it now loses the client nothing.
   */
  get reclaimable(): boolean {
    return (this.phase === Phase.Idle && this.#requests > 0) ||
      this.phase === Phase.Linger;
  }

  /** True until the client sends its first byte of HTTP. */
  get silent(): boolean {
    return this.#requests === 0 && this.phase === Phase.Idle &&
      this.#headStartedAt === 0 && this.#in.end === 0;
  }

  /** `Date.now()` when an idle kept-alive connection went idle. */
  get idleSince(): number {
    return this.#now;
  }

  /**
   * Graceful shutdown: the reply in progress, or to a request arriving
   * soon, says Connection: close; a connection idle for `reclaimIdleMs`
   * (at once if it already was) is closed by the wheel. Closing a
   * connection just back from a reply would race with the client's next
   * request on it, which it then sees fail.
   */
  drain(): void {
    this.#draining = true;
    if (this.phase === Phase.Upgraded) return this.#takeover!.drain();
    // Lingering is idle too: the last reply is out, we only wait for the peer.
    if (this.phase === Phase.Linger) return this.close();
    if (this.phase === Phase.Idle) {
      if (Date.now() - this.#idleAt >= this.#limits.reclaimIdleMs) this.close();
      else this.#drainSoon();
    }
  }

  /** An idle draining connection: closed once idle for reclaimIdleMs. */
  #drainSoon(): void {
    const at = this.#idleAt + this.#limits.reclaimIdleMs;
    this.#arm(
      this.deadline === 0 ? at : Math.min(this.deadline, at),
      this.busyDeadline === 0 ? at : Math.min(this.busyDeadline, at),
    );
  }

  /** Closes the socket at once (idempotent). */
  close(): void {
    const life = this.#life;
    if (life === Life.Closed || life === Life.HandedOver) return;
    this.#life = Life.Closed;
    // Replies still queued are not sent: their lines say so now, before any
    // later line (a timeout or shutdown closes a connection mid-write).
    if (this.#heldCount > 0) this.#release();
    this.deadline = this.busyDeadline = 0;
    this.#opts.wheel.remove(this);
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer's reset
    }
    this.#opts.onClose(this);
  }
}

/** The handler's result, if it is a reply at all. */
export function checkReply(reply: Reply): Reply {
  if (
    reply === null || typeof reply !== "object" ||
    !Number.isInteger(reply.status)
  ) {
    throw new TypeError("Handler returned no valid reply");
  }
  return reply;
}

/** Releases a reply body that will not be sent: cancels a stream, closes a file. */
export function cancelBody(body: ReplyBody): void {
  if (body instanceof ReadableStream) body.cancel().catch(() => {});
  else if (body instanceof FileBody) {
    try {
      body.file.close();
    } catch {
      // already closed
    }
  } else if (
    body !== null && typeof body === "object" && !(body instanceof Uint8Array)
  ) {
    const it = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]?.();
    it?.return?.()?.catch?.(() => {});
  }
}
