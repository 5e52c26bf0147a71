/**
 * One client socket: read, parse, dispatch, write, keep-alive. The only
 * place an error becomes a reply (`toErrorReply`). Deadlines are plain
 * fields; the server's sweeper calls `expire()` when one has passed.
 */
import { getLogger } from "@logtape/logtape";
import { DEFAULT_LIMITS, type Limits } from "../config.ts";
import { BodyReader, type ByteSource } from "./body.ts";
import { HttpError, reasonPhrase, renderError, STATUS } from "./errors.ts";
import {
  FileBody,
  type Handler,
  type Reply,
  type ReplyBody,
  type ServerRequest,
} from "./handler.ts";
import type { HeaderFields } from "./headers.ts";
import { CR, findHeadEnd, LF, parseHead, type RequestHead } from "./parser.ts";
import { scanHeaders, serializeHead } from "./response.ts";
import type { EngineStats } from "./stats.ts";

const log = getLogger(["spindle", "http"]);
const accessLog = getLogger(["spindle", "access"]);
const encoder = new TextEncoder();
/** Strings that are their own UTF-8 encoding. */
const ASCII = /^[^\u0080-\uffff]*$/; // no char above 0x7f
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

/** First read buffer; grows up to the head limit only when a head needs it. */
const INITIAL_READ_BYTES = 4096;
/** Output is gathered up to this size before a write (pipelined replies). */
const GATHER_BYTES = 64 * 1024;
/** Bodies up to this size are copied next to the head: one write, one packet. */
const COPY_BYTES = 16 * 1024;
/** File bodies are read and written in pieces of this size. */
const FILE_PIECE_BYTES = 256 * 1024;
/** An unread body up to this size is read and dropped to keep the connection. */
const DRAIN_BYTES = 64 * 1024;
/** After a reply with close: how long and how much we read and drop (lingering close). */
const LINGER_MS = 2000;
const LINGER_BYTES = 1024 * 1024;

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
  /** Waiting for a write to progress. Deadline: close. */
  Write,
  /** Closing: reading and dropping what the client still sends. */
  Linger,
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
  /** True while connections wait in the queue for a slot. */
  readonly waiting: () => boolean;
}

class IncomingRequest implements ServerRequest {
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly query: string;
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  readonly headers: HeaderFields;
  readonly host: string;
  readonly remoteAddr: Deno.NetAddr;
  readonly secure: boolean;
  readonly body: BodyReader;
  readonly startTime: number;

  constructor(
    startTime: number,
    head: RequestHead,
    body: BodyReader,
    remoteAddr: Deno.NetAddr,
    secure: boolean,
  ) {
    this.method = head.method;
    this.target = head.target;
    this.path = head.path;
    this.query = head.query;
    this.version = head.minor === 1 ? "HTTP/1.1" : "HTTP/1.0";
    this.headers = head.headers;
    this.host = head.host;
    this.remoteAddr = remoteAddr;
    this.secure = secure;
    this.body = body;
    this.startTime = startTime;
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
 * The one place an error becomes a reply. HttpErrors show their status and
 * exposed text; anything else is logged with its stack and shows a bare 500.
 */
export function toErrorReply(err: unknown, accept: string | undefined): Reply {
  let status: number = STATUS.InternalServerError;
  let message = "Internal Server Error";
  let extra: Readonly<Record<string, string>> | undefined;
  if (err instanceof HttpError) {
    status = err.status;
    message = err.expose ?? reasonPhrase(status);
    extra = err.headers;
    if (status >= 500) {
      log.error("{status} {message}", {
        status,
        message: err.message,
        error: err,
      });
    } else {log.warn("Rejected request: {status} {message}", {
        status,
        message: err.message,
      });}
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

export class Connection implements ByteSource {
  readonly #conn: Deno.Conn;
  readonly #opts: ConnectionOptions;
  readonly #limits: Limits;
  readonly remoteAddr: Deno.NetAddr;
  #buf: Uint8Array = new Uint8Array(INITIAL_READ_BYTES);
  #start = 0;
  #end = 0;
  /** Where `findHeadEnd()` resumes. */
  #scanFrom = 0;
  #headStartedAt = 0;
  #out: Uint8Array | undefined;
  #outLen = 0;
  #writing = false;
  #requests = 0;
  #continuePending = false;
  #draining = false;
  /** Dropping an unread body after its reply. */
  #discarding = false;
  #closed = false;
  /** Bytes queued or written for the current reply (access log). */
  #sent = 0;
  phase: Phase = Phase.Idle;
  /** `Date.now()` when the last read completed. */
  #now = Date.now();
  /** `Date.now()` past which `expire()` acts; 0 for none. */
  deadline = 0;

  constructor(conn: Deno.Conn, opts: ConnectionOptions) {
    this.#conn = conn;
    this.#opts = opts;
    this.#limits = opts.limits;
    this.remoteAddr = conn.remoteAddr as Deno.NetAddr;
  }

  /** Serves requests until the client or the server ends the connection. */
  async run(): Promise<void> {
    try {
      await this.#loop();
    } catch (err) {
      if (!isDisconnect(err) && !this.#closed) {
        log.error("Connection failed: {error}", { error: err });
      }
    } finally {
      this.close();
    }
  }

  async #loop(): Promise<void> {
    for (;;) {
      let head: RequestHead | undefined;
      try {
        head = this.#parseNext();
        while (head === undefined) {
          if (this.#outLen > 0) await this.#flush();
          if (this.#start === this.#end) {
            // Idle between requests: give the slot up if shutting down or if
            // a connection is waiting for one.
            if (
              this.#draining || (this.#requests > 0 && this.#opts.waiting())
            ) return;
          }
          if (!(await this.#readHead())) return;
          head = this.#parseNext();
        }
      } catch (err) {
        if (this.#closed || !(err instanceof HttpError)) throw err;
        // A head we could not parse: answer, then close; never hunt for the next request.
        const reply = toErrorReply(err, undefined);
        const startTime = Date.now();
        await this.#writeReply(reply, undefined, false);
        this.#opts.stats.requests++;
        if (this.#opts.accessLog) {
          this.#logAccess("-", "-", reply.status, startTime);
        }
        await this.#linger();
        return;
      }
      if (!(await this.#serve(head))) {
        await this.#linger();
        return;
      }
    }
  }

  /** The next complete head in the buffer, or undefined if more bytes are needed. */
  #parseNext(): RequestHead | undefined {
    const buf = this.#buf;
    let start = this.#start;
    const end = this.#end;
    // RFC 9112 §2.2: ignore empty lines before a request line.
    while (start < end && (buf[start] === CR || buf[start] === LF)) start++;
    if (start === end) {
      this.#start = this.#end = this.#scanFrom = 0;
      return undefined;
    }
    this.#start = start;
    const limits = this.#limits;
    const headEnd = findHeadEnd(buf, Math.max(this.#scanFrom, start), end);
    if (headEnd === -1) {
      this.#scanFrom = Math.max(start, end - 3);
      if (end - start >= limits.maxHeadBytes) throw this.#headTooLarge();
      return undefined;
    }
    if (headEnd - start > limits.maxHeadBytes) throw this.#headTooLarge();
    const head = parseHead(buf, start, headEnd, limits);
    this.#start = this.#scanFrom = headEnd;
    this.#headStartedAt = 0;
    return head;
  }

  #headTooLarge(): HttpError {
    const buf = this.#buf;
    const lf = buf.indexOf(LF, this.#start);
    // No end of the request line yet: it is the target that is too long.
    if (
      (lf === -1 || lf >= this.#end) &&
      this.#end - this.#start > this.#limits.maxTargetBytes
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

  /** Makes room at the end of the read buffer, compacting or growing it. */
  #makeRoom(maxBytes: number): void {
    const used = this.#end - this.#start;
    if (
      this.#buf.length - this.#end >= 512 ||
      (this.#end < this.#buf.length && used >= maxBytes)
    ) return;
    if (this.#start > 0 && this.#buf.length - used >= 512) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, 1024));
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = bigger;
    }
    this.#scanFrom -= this.#start;
    this.#end = used;
    this.#start = 0;
  }

  async #readHead(): Promise<boolean> {
    const limits = this.#limits;
    // #headStartedAt is 0 until a byte of the next head arrives; skipped empty
    // lines count, so "\r\n" now and then cannot re-arm the idle deadline.
    if (this.#headStartedAt === 0 && this.#start === this.#end) {
      this.phase = Phase.Idle;
      // A new connection that sends nothing is a slowloris too.
      this.deadline = Date.now() +
        (this.#requests === 0
          ? limits.headTimeoutMs
          : limits.keepAliveTimeoutMs);
    } else {
      this.phase = Phase.Head;
      // A head pipelined behind a slow request: its clock starts now, when we
      // begin to wait for the rest, not when the request before it arrived.
      if (this.#headStartedAt === 0) this.#headStartedAt = Date.now();
      this.deadline = this.#headStartedAt + limits.headTimeoutMs;
    }
    this.#makeRoom(limits.maxHeadBytes);
    const n = await this.#conn.read(
      this.#end === 0 ? this.#buf : this.#buf.subarray(this.#end),
    );
    if (n === null || this.#closed) return false;
    this.#now = Date.now(); // one clock read serves this batch of requests
    if (this.#headStartedAt === 0) this.#headStartedAt = this.#now;
    this.#end += n;
    this.#opts.stats.bytesIn += n;
    return true;
  }

  // ByteSource, for the body reader.

  buffered(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  consume(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = this.#scanFrom = 0;
    else this.#scanFrom = this.#start;
  }

  async fill(): Promise<boolean> {
    if (this.#outLen > 0) await this.#flush();
    this.#makeRoom(
      Math.max(this.#limits.maxTrailerBytes, this.#limits.maxChunkLineBytes) +
        2,
    );
    this.phase = Phase.Body;
    this.deadline = Date.now() + this.#limits.bodyTimeoutMs;
    const n = await this.#conn.read(
      this.#end === 0 ? this.#buf : this.#buf.subarray(this.#end),
    );
    this.phase = Phase.Handler;
    this.deadline = 0;
    if (n === null) return false;
    this.#end += n;
    this.#opts.stats.bytesIn += n;
    return true;
  }

  async readDirect(into: Uint8Array): Promise<number | null> {
    if (this.#outLen > 0) await this.#flush();
    this.phase = Phase.Body;
    this.deadline = Date.now() + this.#limits.bodyTimeoutMs;
    const n = await this.#conn.read(into);
    this.phase = Phase.Handler;
    this.deadline = 0;
    if (n !== null) this.#opts.stats.bytesIn += n;
    return n;
  }

  async sendContinue(): Promise<void> {
    if (!this.#continuePending) return;
    this.#continuePending = false;
    this.#queue(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    await this.#flush();
  }

  /** Handles one request; true to keep the connection for another. */
  async #serve(head: RequestHead): Promise<boolean> {
    const limits = this.#limits;
    const stats = this.#opts.stats;
    this.#requests++;
    const body = head.contentLength <= 0 && !head.chunked
      ? NO_BODY // most requests: no reader to build
      : new BodyReader(this, head.contentLength, head.chunked, limits);
    this.#continuePending = head.expectContinue && !body.consumed;
    const req = new IncomingRequest(
      this.#now,
      head,
      body,
      this.remoteAddr,
      this.#opts.secure,
    );
    this.phase = Phase.Handler;
    this.deadline = 0;
    let reply: Reply;
    let keep = head.keepAlive;
    if (head.path === "*") {
      reply = { status: STATUS.NoContent, headers: { allow: SERVER_ALLOW } }; // OPTIONS *
    } else {
      try {
        const r = this.#opts.handler(req);
        if (r instanceof Promise) {
          reply = await r;
          this.#now = Date.now(); // the Date header must not predate a slow handler
        } else reply = r;
        if (
          reply === null || typeof reply !== "object" ||
          !Number.isInteger(reply.status)
        ) {
          throw new TypeError("Handler returned no valid reply");
        }
      } catch (err) {
        if (this.#closed) return false;
        reply = toErrorReply(err, head.headers.get("accept"));
        if (err instanceof HttpError && err.close) keep = false;
      }
    }
    if (this.#closed) return false;
    if (this.#draining || this.#requests >= limits.maxRequestsPerConnection) {
      keep = false;
    }
    // An unread body: drop a small one after replying, else close (RFC 9112 §9.3).
    let drain = false;
    if (!body.consumed) {
      if (
        body.started || this.#continuePending || body.unread < 0 ||
        body.unread > DRAIN_BYTES
      ) keep = false;
      else drain = true;
    }
    this.#continuePending = false;
    keep = await this.#writeReply(reply, head, keep);
    stats.requests++;
    if (this.#opts.accessLog) {
      this.#logAccess(head.method, head.target, reply.status, req.startTime);
    }
    if (keep && drain) {
      // The reply is out: a stall now gets a quiet close, not a stray 408.
      this.#discarding = true;
      try {
        await body.discard();
      } catch {
        return false;
      } finally {
        this.#discarding = false;
      }
    }
    return keep;
  }

  #logAccess(
    method: string,
    target: string,
    status: number,
    startTime: number,
  ): void {
    accessLog.info('{client} "{method} {target}" {status} {bytes} {ms}ms', {
      client: this.remoteAddr.hostname,
      method,
      target,
      status,
      bytes: this.#sent,
      ms: Date.now() - startTime,
    });
  }

  /**
   * Writes a reply, framing its body. Returns whether the connection may
   * be kept. `head` is undefined for a reply to an unparsable request.
   */
  async #writeReply(
    reply: Reply,
    head: RequestHead | undefined,
    keep: boolean,
  ): Promise<boolean> {
    this.#sent = 0;
    let scan;
    try {
      scan = scanHeaders(reply.headers);
      if (reply.status < 200 || reply.status > 599) {
        throw new RangeError(`Invalid reply status ${reply.status}`);
      }
    } catch (err) {
      cancelBody(reply.body);
      reply = toErrorReply(err, head?.headers.get("accept"));
      scan = scanHeaders(reply.headers);
    }
    if (scan.close) keep = false;
    const status = reply.status;
    const isHead = head?.method === "HEAD";
    const minor = head?.minor ?? 1;
    const body: ReplyBody = reply.body;
    let bytes: Uint8Array | undefined;
    let contentLength = -1;
    let chunked = false;
    // A short ASCII body rides in the head's text: one encode, one copy.
    let asciiBody: string | undefined;
    if (typeof body === "string") {
      if (body.length <= COPY_BYTES && ASCII.test(body)) asciiBody = body;
      else bytes = encoder.encode(body);
    } else if (body instanceof Uint8Array) bytes = body;
    if (asciiBody !== undefined) contentLength = asciiBody.length;
    else if (bytes !== undefined) contentLength = bytes.length;
    else if (body instanceof FileBody) contentLength = body.length;
    else if (body === null || body === undefined) {
      // HEAD without a body: the handler's length if it gave one, else none,
      // never a 0 that GET would contradict (RFC 9110 §8.6).
      contentLength = isHead ? scan.contentLength : 0;
    } else if (scan.contentLength !== -1) contentLength = scan.contentLength;
    else if (minor === 1) chunked = true;
    else keep = false; // HTTP/1.0: the close marks the end
    const bodiless = status === 204 || status === 304;
    if (bodiless) {
      contentLength = -1;
      chunked = false;
    }
    const headText = serializeHead(status, reply.headers, this.#now, {
      contentLength,
      chunked,
      close: !keep,
      keepAlive: keep && minor === 0,
    });
    this.#queueText(
      asciiBody === undefined || isHead || bodiless
        ? headText
        : headText + asciiBody,
    );
    if (isHead || bodiless) {
      cancelBody(body);
    } else if (asciiBody !== undefined) {
      // already queued with the head
    } else if (bytes !== undefined) {
      await this.#writeBytes(bytes);
    } else if (body instanceof FileBody) {
      await this.#writeFile(body);
    } else if (body !== null && body !== undefined) {
      await this.#writeStream(
        body as AsyncIterable<Uint8Array>,
        chunked,
        contentLength,
      );
    }
    // Gather replies to pipelined requests into one write; flush before any wait.
    if (!keep || this.#start === this.#end || this.#outLen >= GATHER_BYTES) {
      await this.#flush();
    }
    return keep;
  }

  #queueText(text: string): void {
    let out = this.#out;
    // Header text is ASCII or Latin-1: at most 3 bytes a char as UTF-8.
    const need = this.#outLen + text.length * 3;
    if (out === undefined || out.length < need) out = this.#growOut(need);
    const { written } = encoder.encodeInto(text, out.subarray(this.#outLen));
    this.#outLen += written;
    this.#sent += written;
  }

  #queue(bytes: Uint8Array): void {
    let out = this.#out;
    const need = this.#outLen + bytes.length;
    if (out === undefined || out.length < need) out = this.#growOut(need);
    out.set(bytes, this.#outLen);
    this.#outLen += bytes.length;
    this.#sent += bytes.length;
  }

  #growOut(need: number): Uint8Array {
    let size = this.#out?.length ?? 2048;
    while (size < need) size *= 2;
    const out = new Uint8Array(size);
    if (this.#out !== undefined) out.set(this.#out.subarray(0, this.#outLen));
    return this.#out = out;
  }

  async #writeBytes(bytes: Uint8Array): Promise<void> {
    if (bytes.length <= COPY_BYTES) return this.#queue(bytes);
    await this.#flush();
    await this.#write(bytes);
    this.#sent += bytes.length;
  }

  /** Writes what is queued. Not async itself: one promise layer less per reply. */
  #flush(): Promise<void> | undefined {
    if (this.#outLen === 0) return undefined;
    const n = this.#outLen;
    this.#outLen = 0;
    const out = this.#out!;
    // A big reply grew the buffer; do not keep it for an idle connection.
    if (out.length > GATHER_BYTES * 2) this.#out = undefined;
    return this.#write(out.subarray(0, n));
  }

  /** Writes every byte; `conn.write()` alone may stop part-way. */
  async #write(bytes: Uint8Array): Promise<void> {
    const phase = this.phase;
    this.phase = Phase.Write;
    this.#writing = true;
    const timeout = this.#limits.writeTimeoutMs;
    this.deadline = Date.now() + timeout;
    // Partial writes are rare; on a throw the connection is done anyway.
    let off = await this.#conn.write(bytes);
    while (off < bytes.length) {
      this.deadline = Date.now() + timeout;
      off += await this.#conn.write(bytes.subarray(off));
    }
    this.#writing = false;
    this.phase = phase;
    this.deadline = 0;
    this.#opts.stats.bytesOut += bytes.length;
  }

  async #writeFile(fb: FileBody): Promise<void> {
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
        await this.#writeBytes(
          n === piece.length ? piece : piece.subarray(0, n),
        );
        if (this.#outLen > 0) await this.#flush(); // `piece` is reused
      }
    } finally {
      try {
        fb.file.close();
      } catch {
        // already closed
      }
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
      if (chunked) this.#queueText(chunk.length.toString(16) + "\r\n");
      await this.#writeBytes(chunk);
      if (chunked) this.#queueText("\r\n");
      await this.#flush();
    }
    if (contentLength !== -1 && sent !== contentLength) {
      throw new Error("Reply stream is shorter than its content-length");
    }
    if (chunked) this.#queueText("0\r\n\r\n");
  }

  /** Closes our side, then reads and drops what the client still sends, briefly. */
  async #linger(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#flush();
      await this.#conn.closeWrite();
      this.phase = Phase.Linger;
      this.deadline = Date.now() + LINGER_MS;
      const scratch = this.#buf;
      for (let total = 0; total < LINGER_BYTES;) {
        const n = await this.#conn.read(scratch);
        if (n === null) break;
        total += n;
      }
    } catch {
      // the peer is gone, which is what we wanted
    }
  }

  /** Called by the sweeper: acts if the deadline has passed. */
  expire(now: number): void {
    if (this.deadline === 0 || now < this.deadline || this.#closed) return;
    const phase = this.phase;
    if (phase === Phase.Head || (phase === Phase.Body && !this.#discarding)) {
      log.warn("{what} timeout from {client}", {
        what: phase === Phase.Head ? "Head" : "Body",
        client: this.remoteAddr.hostname,
      });
      if (!this.#writing && this.#outLen === 0) {
        const reply = toErrorReply(
          new HttpError(
            STATUS.RequestTimeout,
            "Timed out waiting for the request",
            { close: true },
          ),
          undefined,
        );
        const bytes = encoder.encode(
          serializeHead(reply.status, reply.headers, now, {
            contentLength: encoder.encode(reply.body as string).length,
            chunked: false,
            close: true,
            keepAlive: false,
          }) + reply.body,
        );
        this.#closed = true;
        this.deadline = 0;
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

  /** Graceful shutdown: close now if idle, else after the reply in progress. */
  drain(): void {
    this.#draining = true;
    // Lingering is idle too: the last reply is out, we only wait for the peer.
    if (this.phase === Phase.Idle || this.phase === Phase.Linger) this.close();
  }

  #socketClosed = false;

  /** Closes the socket at once (idempotent). */
  close(): void {
    this.#closed = true;
    if (this.#socketClosed) return;
    this.#socketClosed = true;
    this.deadline = 0;
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer's reset
    }
    this.#opts.onClose(this);
  }
}

function cancelBody(body: ReplyBody): void {
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
