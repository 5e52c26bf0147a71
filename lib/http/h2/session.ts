/**
 * One HTTP/2 server connection without I/O (RFC 9113): bytes in through
 * {@link H2Session.receive}, events out; replies in through `sendHeaders`,
 * `sendData` and `sendTrailers`, bytes out through `takeOutput`. The engine
 * owns the socket, the timers and the handlers; this owns the protocol:
 * stream states, HPACK, both directions of flow control, and the limits
 * that keep one client from taking more than its share.
 *
 * The engine's loop, in outline:
 *
 * ```ts ignore
 * const session = new H2Session(limits); // queues our SETTINGS
 * await writeAll(conn, session.takeOutput());
 * for (;;) {
 *   const n = await conn.read(buf);
 *   if (n === null) break;
 *   for (const event of session.receive(buf.subarray(0, n))) dispatch(event);
 *   await writeAll(conn, session.takeOutput());
 *   if (session.finished) break;
 * }
 * ```
 */
import type { Limits } from "../../config.ts";
import { badRequest, type HttpError } from "../errors.ts";
import type { HeaderFields } from "../headers.ts";
import type { ReplyHeaders } from "../handler.ts";
import { OutBuffer } from "../response.ts";
import {
  CLIENT_PREFACE,
  type ContinuationFrame,
  type DataFrame,
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  ERROR,
  errorName,
  FLAG,
  FRAME,
  FRAME_HEADER_BYTES,
  frameLength,
  type GoawayFrame,
  H2Error,
  type HeadersFrame,
  MAX_FRAME_LIMIT,
  MAX_STREAM_ID,
  MAX_WINDOW,
  parseFrame,
  type PingFrame,
  putFrameHeader,
  type RstStreamFrame,
  SETTING,
  type SettingsFrame,
  UNKNOWN_FRAME,
  type WindowUpdateFrame,
  writeData,
  writeGoaway,
  writePing,
  writeRstStream,
  writeSettings,
  writeWindowUpdate,
} from "./frames.ts";
import {
  type HeaderList,
  HpackDecoder,
  HpackEncoder,
  HpackError,
} from "./hpack.ts";
import { writeReplyBlock, writeTrailerBlock } from "./reply.ts";
import { checkRequest, checkTrailers, type H2RequestHead } from "./request.ts";

export type { H2RequestHead } from "./request.ts";

/** A stream's request head arrived and passed RFC 9113 §8: run the handler. */
export interface H2RequestEvent {
  readonly type: "request";
  readonly streamId: number;
  readonly head: H2RequestHead;
  /** No body follows. */
  readonly endStream: boolean;
}

/**
 * A request the session will not hand to a handler (malformed, too large,
 * 501): answer `error.status` on the stream and end it, as for any error.
 */
export interface H2RejectEvent {
  readonly type: "reject";
  readonly streamId: number;
  readonly error: HttpError;
  /** The request's Accept field, if it got that far, to choose the error's format. */
  readonly accept: string | undefined;
}

/** Request body bytes; the engine's to keep. Call `consume()` once the handler read them. */
export interface H2DataEvent {
  readonly type: "data";
  readonly streamId: number;
  readonly data: Uint8Array;
  /** The body is complete. */
  readonly endStream: boolean;
}

/** Request trailers; the body is complete. */
export interface H2TrailersEvent {
  readonly type: "trailers";
  readonly streamId: number;
  readonly trailers: HeaderFields;
}

/**
 * The stream ended before its exchange did: the client reset it, it broke
 * a rule (we reset it), or the connection failed. Stop its handler, then
 * call `release()`: until then it counts against h2MaxConcurrentStreams.
 */
export interface H2ResetEvent {
  readonly type: "reset";
  readonly streamId: number;
  readonly code: number;
  /** What happened, for the log. */
  readonly message: string;
}

/** A stream that `sendData()` left short may send again: its window grew. */
export interface H2WritableEvent {
  readonly type: "writable";
  readonly streamId: number;
}

/** The client is going away; streams in flight may finish. */
export interface H2GoawayEvent {
  readonly type: "goaway";
  readonly lastStreamId: number;
  readonly code: number;
  readonly debug: string;
}

export type H2Event =
  | H2RequestEvent
  | H2RejectEvent
  | H2DataEvent
  | H2TrailersEvent
  | H2ResetEvent
  | H2WritableEvent
  | H2GoawayEvent;

/** One stream the client opened. Closed on both sides and released: forgotten. */
class Stream {
  /** The client may still send DATA or trailers. */
  remoteOpen: boolean;
  /** We may still send. */
  localOpen = true;
  /** The engine has not released it: it counts against the concurrency limit. */
  held = true;
  /** We sent RST_STREAM: frames still in flight are ignored (§5.1). */
  resetByUs = false;
  /** A `reject` event: its body is dropped, its reply does not earn credit. */
  rejected = false;
  /** The final reply head went out. */
  headersSent = false;
  /** Bytes the client may still send before we open the window. */
  recvWindow: number;
  /** Bytes read by the handler and not yet given back in a WINDOW_UPDATE. */
  recvUnacked = 0;
  /** Bytes handed out in data events and not yet consumed. */
  recvBuffered = 0;
  /** DATA payload received, to hold against Content-Length (§8.1.1). */
  received = 0;
  contentLength = -1;
  /** Bytes we may still send before the client opens the window. */
  sendWindow: number;
  /** `sendData()` took less than offered; a `writable` event is owed. */
  blocked = false;

  constructor(
    readonly id: number,
    endStream: boolean,
    recvWindow: number,
    sendWindow: number,
  ) {
    this.remoteOpen = !endStream;
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }
}

/** Closed streams remembered, to tell "closed" from "never opened" (§5.1). */
const CLOSED_MEMORY = 64;
/** Buffers past this size are dropped by `trimBuffers()`. */
const TRIM_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * A sans-I/O HTTP/2 server connection. Create it once the client chose h2
 * (ALPN "h2" or prior knowledge); it queues our SETTINGS at once. Any
 * protocol error of the client becomes GOAWAY with the RFC's error code in
 * the output, {@link H2Session.error} says why, and
 * {@link H2Session.finished} turns true: write the output, then close.
 *
 * Limits (all in {@link Limits}): h2MaxConcurrentStreams counts streams
 * until the engine is done with them, so a client resetting streams whose
 * handlers still run opens no new ones (CVE-2023-44487); h2MaxResetStreams
 * ends a connection that keeps cancelling; h2MaxCheapFrames one that sends
 * frames without work; h2MaxQueuedControlFrames one that does not read its
 * acks; h2MaxHeaderBlockBytes and h2MaxContinuationFrames cap header blocks
 * (CVE-2024-27316); h2MaxHeaderListBytes stops keeping decoded fields (HPACK
 * bomb) and answers 431.
 *
 * Timeouts are the engine's, with what this exposes:
 * - headTimeoutMs while {@link H2Session.readingHead};
 * - keepAliveTimeoutMs while {@link H2Session.activeStreams} is 0, then `shutdown()`;
 * - bodyTimeoutMs per stream waiting for data, then `reset(id, CANCEL)` (or a 408 reply);
 * - writeTimeoutMs while a stream waits with `sendWindow(id) <= 0` (a client that
 *   stopped reading: the zero-window stall), then `reset(id, CANCEL)`, or
 *   `goaway(ERROR.ENHANCE_YOUR_CALM)` when it is the connection's window;
 * - shutdownTimeoutMs after `shutdown()`, then `goaway()` and close.
 */
export class H2Session {
  readonly #limits: Limits;
  readonly #decoder: HpackDecoder;
  readonly #encoder: HpackEncoder;
  readonly #streams = new Map<number, Stream>();
  /** Streams left short by `sendData()`, owed a `writable` event. */
  readonly #blocked = new Set<Stream>();
  #events: H2Event[] = [];

  // Output: two buffers, so the one being written is never written into.
  #out = new OutBuffer();
  #spare = new OutBuffer();

  // Input: the part of a frame that has arrived.
  #prefaceLeft = CLIENT_PREFACE.length;
  #settingsSeen = false;
  #in = EMPTY;
  #inLen = 0;

  // A header block in progress (HEADERS then CONTINUATION).
  #blockStream = 0;
  #blockEndStream = false;
  #block = EMPTY;
  #blockLen = 0;
  #continuations = 0;
  /** A stream error the HEADERS frame showed, answered once its block is decoded. */
  #blockError: string | undefined;

  // Stream ids.
  #lastClientId = 0;
  #opened = 0;
  readonly #closedIds = new Int32Array(CLOSED_MEMORY);
  readonly #closedByReset = new Uint8Array(CLOSED_MEMORY);
  #closedNext = 0;

  // Settings.
  #settingsAcked = false;
  #localWindow = DEFAULT_WINDOW;
  #peerWindow = DEFAULT_WINDOW;
  #peerMaxFrame = DEFAULT_MAX_FRAME;

  // Connection flow control.
  #connSendWindow = DEFAULT_WINDOW;
  #connRecvWindow: number;
  #connUnacked = 0;

  // Budgets against abuse.
  #resets = 0;
  #cheap = 0;
  #movedBytes = 0;
  #controlQueued = 0;

  // Ending.
  #goawaySent = false;
  #goawayLastId = MAX_STREAM_ID;
  #peerGone = false;
  #error: H2Error | undefined;

  constructor(limits: Limits) {
    if (
      limits.h2MaxFrameBytes < DEFAULT_MAX_FRAME ||
      limits.h2MaxFrameBytes > MAX_FRAME_LIMIT
    ) {
      throw new RangeError("h2MaxFrameBytes must be 16384 to 16777215");
    }
    if (
      limits.h2StreamWindowBytes > MAX_WINDOW ||
      limits.h2ConnectionWindowBytes > MAX_WINDOW
    ) {
      throw new RangeError("HTTP/2 windows must be under 2^31");
    }
    this.#limits = limits;
    // Until the client acks our SETTINGS it may still use the 4096 default.
    this.#decoder = new HpackDecoder(Math.max(4096, limits.h2HeaderTableBytes));
    this.#encoder = new HpackEncoder(limits.h2HeaderTableBytes);
    const settings: [number, number][] = [
      [SETTING.MAX_CONCURRENT_STREAMS, limits.h2MaxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, limits.h2StreamWindowBytes],
      [SETTING.MAX_FRAME_SIZE, limits.h2MaxFrameBytes],
      [SETTING.MAX_HEADER_LIST_SIZE, limits.h2MaxHeaderListBytes],
      [SETTING.NO_RFC7540_PRIORITIES, 1], // RFC 9218: we ignore priorities
    ];
    if (limits.h2HeaderTableBytes !== 4096) {
      settings.push([SETTING.HEADER_TABLE_SIZE, limits.h2HeaderTableBytes]);
    }
    writeSettings(this.#out, settings);
    this.#connRecvWindow = Math.max(
      DEFAULT_WINDOW,
      limits.h2ConnectionWindowBytes,
    );
    if (this.#connRecvWindow > DEFAULT_WINDOW) {
      writeWindowUpdate(this.#out, 0, this.#connRecvWindow - DEFAULT_WINDOW);
    }
  }

  /** Why the connection failed, once it has: the GOAWAY we sent and its cause. */
  get error(): H2Error | undefined {
    return this.#error;
  }

  /** Nothing more will happen: write the last output, then close the socket. */
  get finished(): boolean {
    if (this.#error !== undefined) return true;
    return (this.#goawaySent || this.#peerGone) && this.#activeCount() === 0 &&
      this.#blockStream === 0;
  }

  /** Streams the engine holds: open, or reset but not yet released. */
  get activeStreams(): number {
    return this.#activeCount();
  }

  /** The client preface or a header block is part-way in: headTimeoutMs runs. */
  get readingHead(): boolean {
    return this.#prefaceLeft > 0 || !this.#settingsSeen ||
      this.#blockStream !== 0;
  }

  /** Output bytes queued and not yet taken. */
  get pendingOutputBytes(): number {
    return this.#out.len;
  }

  /**
   * True while we may still send on `streamId`: false once it ended, or
   * the client reset it (perhaps in the same read as its request).
   */
  isSendable(streamId: number): boolean {
    return this.#error === undefined &&
      this.#streams.get(streamId)?.localOpen === true;
  }

  /** Bytes the client lets us send on the connection, all streams together. */
  get connectionSendWindow(): number {
    return this.#connSendWindow;
  }

  /**
   * Bytes `sendData()` could frame now for `streamId` by the flow-control
   * windows alone; 0 or less while the client keeps the window shut.
   */
  sendWindow(streamId: number): number {
    const stream = this.#streams.get(streamId);
    if (stream === undefined || !stream.localOpen) return 0;
    return Math.min(stream.sendWindow, this.#connSendWindow);
  }

  /** Bytes the session's own buffers hold (their capacity); only tests read it. */
  get bufferBytes(): number {
    return this.#out.buf.length + this.#spare.buf.length + this.#in.length +
      this.#block.length;
  }

  /**
   * Lets go of buffers a burst grew (output queues, a partial frame), so an
   * idle connection keeps a few KiB rather than what its biggest reply
   * needed. Bytes already taken stay valid; call it when nothing is queued.
   */
  trimBuffers(): void {
    if (this.#out.len === 0 && this.#out.buf.length > TRIM_BYTES) {
      this.#out = new OutBuffer();
    }
    if (this.#spare.buf.length > TRIM_BYTES) this.#spare = new OutBuffer();
    if (this.#inLen === 0 && this.#in.length > TRIM_BYTES) this.#in = EMPTY;
  }

  /**
   * Takes the bytes to write. They stay valid until the next call, so
   * write them before asking for more; an empty array when there are none.
   */
  takeOutput(): Uint8Array {
    this.#controlQueued = 0;
    if (this.#out.len === 0) return EMPTY;
    const out = this.#out;
    this.#out = this.#spare;
    this.#spare = out;
    return out.take();
  }

  /**
   * Feeds bytes read from the socket: any split is fine. Returns what
   * happened, in order. A client error ends in GOAWAY in the output, not
   * in a throw. `bytes` is not kept: data events carry copies.
   */
  receive(bytes: Uint8Array): H2Event[] {
    const events: H2Event[] = this.#events = [];
    if (this.#error !== undefined) return events;
    try {
      this.#feed(bytes);
    } catch (err) {
      if (err instanceof H2Error) this.#fail(err);
      else if (err instanceof HpackError) {
        this.#fail(new H2Error(ERROR.COMPRESSION_ERROR, err.message));
      } else throw err;
    }
    return events;
  }

  /**
   * Sends a reply head: `:status`, `date`, `fields` and, when 0 or more,
   * `content-length` (`NO_LENGTH`: none, the handler's dropped too). A 1xx status may come before the final one.
   * Throws if the stream is closed or reset (the client went away) or a
   * field is invalid (nothing is sent then).
   */
  sendHeaders(
    streamId: number,
    status: number,
    fields: ReplyHeaders | undefined,
    endStream: boolean,
    contentLength = -1,
    now: number = Date.now(),
  ): void {
    const stream = this.#sendable(streamId);
    if (stream.headersSent) {
      throw new Error(`Stream ${streamId} already has a reply head`);
    }
    if (status < 200 && endStream) {
      throw new RangeError("An informational reply cannot end the stream");
    }
    const out = this.#out;
    const start = this.#openBlock();
    try {
      writeReplyBlock(out, this.#encoder, status, fields, contentLength, now);
    } catch (err) {
      out.len = start;
      throw err;
    }
    this.#closeBlock(start, streamId, endStream);
    if (status >= 200) stream.headersSent = true;
    if (endStream) this.#endLocal(stream);
  }

  /**
   * Frames as much of `data` as the windows and the output queue allow and
   * returns how many bytes it took. END_STREAM goes out only with the last
   * byte. When it takes less, offer the rest after a `writable` event
   * (`sendWindow(id) <= 0`: the client's window) or after the next
   * `takeOutput()` (the queue was full).
   */
  sendData(streamId: number, data: Uint8Array, endStream: boolean): number {
    const stream = this.#sendable(streamId);
    if (!stream.headersSent) {
      throw new Error(`Stream ${streamId} has no reply head yet`);
    }
    if (data.length === 0 && !endStream) return 0;
    const out = this.#out;
    const room = Math.min(
      stream.sendWindow,
      this.#connSendWindow,
      this.#limits.h2MaxQueuedOutputBytes - out.len,
    );
    const n = Math.max(0, Math.min(data.length, room));
    if (n === 0 && data.length > 0) {
      this.#markBlocked(stream);
      return 0;
    }
    const last = n === data.length && endStream;
    const max = this.#peerMaxFrame;
    let at = 0;
    do {
      const end = Math.min(at + max, n);
      writeData(out, streamId, data, at, end, last && end === n);
      at = end;
    } while (at < n);
    stream.sendWindow -= n;
    this.#connSendWindow -= n;
    this.#moved(n);
    if (n < data.length) this.#markBlocked(stream);
    else if (endStream) this.#endLocal(stream);
    return n;
  }

  /** Ends the stream with trailer fields (§8.1). Throws as `sendHeaders()` does. */
  sendTrailers(streamId: number, fields: ReplyHeaders): void {
    const stream = this.#sendable(streamId);
    if (!stream.headersSent) {
      throw new Error(`Stream ${streamId} has no reply head yet`);
    }
    const out = this.#out;
    const start = this.#openBlock();
    try {
      writeTrailerBlock(out, this.#encoder, fields);
    } catch (err) {
      out.len = start;
      throw err;
    }
    this.#closeBlock(start, streamId, true);
    this.#endLocal(stream);
  }

  /**
   * The handler read `bytes` of the body: the client may send that much
   * more. WINDOW_UPDATEs go out once half a window is owed.
   */
  consume(streamId: number, bytes: number): void {
    const stream = this.#streams.get(streamId);
    if (stream === undefined || bytes <= 0 || this.#error !== undefined) return;
    bytes = Math.min(bytes, stream.recvBuffered);
    stream.recvBuffered -= bytes;
    this.#creditConnection(bytes);
    if (!stream.remoteOpen) return;
    this.#creditStream(stream, bytes);
  }

  /**
   * Resets a stream (RST_STREAM with `code`) and releases it: the handler
   * failed, or the engine gave up on it (timeouts). A no-op on a stream
   * already gone.
   */
  reset(streamId: number, code: number = ERROR.CANCEL): void {
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return;
    if (stream.remoteOpen || stream.localOpen) {
      if (this.#error === undefined) writeRstStream(this.#out, streamId, code);
      stream.remoteOpen = stream.localOpen = false;
      stream.resetByUs = true;
    }
    this.#drop(stream);
  }

  /**
   * The engine is done with a stream it got a `reset` event for (its
   * handler settled). Until then the stream counts against
   * h2MaxConcurrentStreams. On a stream still open, this resets it.
   */
  release(streamId: number): void {
    this.reset(streamId, ERROR.CANCEL);
  }

  /**
   * Graceful shutdown (§6.8): GOAWAY with the last stream we will serve;
   * streams in flight finish, newer ones are ignored, and `finished` turns
   * true when the last one ends.
   */
  shutdown(): void {
    if (this.#goawaySent || this.#error !== undefined) return;
    this.#goawaySent = true;
    this.#goawayLastId = this.#lastClientId;
    writeGoaway(this.#out, this.#lastClientId, ERROR.NO_ERROR);
  }

  /**
   * Ends the connection now with GOAWAY `code` (a timeout, a write error,
   * shutdownTimeoutMs): `finished` turns true; streams are not told.
   */
  goaway(
    code: number = ERROR.NO_ERROR,
    message = "Connection closed by the server",
  ): void {
    if (this.#error !== undefined) return;
    this.#error = new H2Error(code, message);
    writeGoaway(this.#out, this.#lastClientId, code, encoder.encode(message));
  }

  // Input.

  #feed(bytes: Uint8Array): void {
    let at = 0;
    const end = bytes.length;
    if (this.#prefaceLeft > 0) {
      const from = CLIENT_PREFACE.length - this.#prefaceLeft;
      const n = Math.min(this.#prefaceLeft, end);
      for (let i = 0; i < n; i++) {
        if (bytes[i] !== CLIENT_PREFACE[from + i]) {
          throw new H2Error(
            ERROR.PROTOCOL_ERROR,
            "Not an HTTP/2 client preface",
          );
        }
      }
      this.#prefaceLeft -= n;
      at = n;
      if (this.#prefaceLeft > 0) return;
    }
    if (this.#inLen > 0) {
      at = this.#fillPartial(bytes, at, end);
      if (at < 0) return;
    }
    while (at < end && this.#error === undefined) {
      const used = this.#frameAt(bytes, at, end);
      if (used === 0) break;
      at += used;
    }
    if (at < end && this.#error === undefined) {
      this.#keep(bytes, at, end);
    }
  }

  /** Completes the buffered part of a frame from `bytes[at..]`; -1 if it still is not whole. */
  #fillPartial(bytes: Uint8Array, at: number, end: number): number {
    if (this.#inLen < FRAME_HEADER_BYTES) {
      const n = Math.min(FRAME_HEADER_BYTES - this.#inLen, end - at);
      this.#keep(bytes, at, at + n);
      at += n;
      if (this.#inLen < FRAME_HEADER_BYTES) return -1;
    }
    const length = frameLength(this.#in, 0);
    if (length > this.#limits.h2MaxFrameBytes) {
      // Refused on its header, before its payload is buffered (§4.2).
      parseFrame(this.#in, 0, this.#inLen, this.#limits.h2MaxFrameBytes); // throws FRAME_SIZE_ERROR
    }
    const total = FRAME_HEADER_BYTES + length;
    const n = Math.min(total - this.#inLen, end - at);
    this.#keep(bytes, at, at + n);
    at += n;
    if (this.#inLen < total) return -1;
    this.#inLen = 0;
    this.#frameAt(this.#in, 0, total);
    return at;
  }

  /** Appends `bytes[from..to)` to the partial frame buffer (at most one frame). */
  #keep(bytes: Uint8Array, from: number, to: number): void {
    const need = this.#inLen + to - from;
    if (need > this.#in.length) {
      const size = Math.max(
        need,
        Math.min(
          this.#in.length * 2,
          FRAME_HEADER_BYTES + this.#limits.h2MaxFrameBytes,
        ),
        256,
      );
      const bigger = new Uint8Array(size);
      bigger.set(this.#in.subarray(0, this.#inLen));
      this.#in = bigger;
    }
    this.#in.set(bytes.subarray(from, to), this.#inLen);
    this.#inLen = need;
  }

  /** Handles the frame at `buf[at]` and returns its size, or 0 if it is not all there. */
  #frameAt(buf: Uint8Array, at: number, end: number): number {
    let frame;
    try {
      frame = parseFrame(buf, at, end, this.#limits.h2MaxFrameBytes);
    } catch (err) {
      // A stream error the frame alone shows (PRIORITY of the wrong size,
      // WINDOW_UPDATE of 0): that stream only, unless a block is open.
      if (
        !(err instanceof H2Error) || err.streamId === 0 ||
        this.#blockStream !== 0
      ) throw err;
      this.#streamError(err.streamId, err.code, err.message);
      return FRAME_HEADER_BYTES + frameLength(buf, at);
    }
    if (frame === null) return 0;
    const size = FRAME_HEADER_BYTES + frameLength(buf, at);
    if (this.#blockStream !== 0 && frame.type !== FRAME.CONTINUATION) {
      throw new H2Error(ERROR.PROTOCOL_ERROR, "Frame inside a header block");
    }
    if (!this.#settingsSeen && frame.type !== FRAME.SETTINGS) {
      throw new H2Error(ERROR.PROTOCOL_ERROR, "First frame is not SETTINGS");
    }
    const f = frame;
    switch (f.type) {
      case UNKNOWN_FRAME:
        this.#cheapFrame(); // ignored (§5.5), yet not free
        break;
      case FRAME.DATA:
        this.#onData(f);
        break;
      case FRAME.HEADERS:
        this.#onHeaders(f);
        break;
      case FRAME.CONTINUATION:
        this.#onContinuation(f);
        break;
      case FRAME.PRIORITY:
        this.#cheapFrame();
        if (f.priority.dependency === f.streamId) {
          this.#streamError(
            f.streamId,
            ERROR.PROTOCOL_ERROR,
            "Stream depends on itself",
          );
        }
        break;
      case FRAME.RST_STREAM:
        this.#onRstStream(f);
        break;
      case FRAME.SETTINGS:
        this.#onSettings(f);
        break;
      case FRAME.PUSH_PROMISE:
        throw new H2Error(ERROR.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      case FRAME.PING:
        this.#onPing(f);
        break;
      case FRAME.GOAWAY:
        this.#onGoaway(f);
        break;
      case FRAME.WINDOW_UPDATE:
        this.#onWindowUpdate(f);
        break;
    }
    return size;
  }

  #onSettings(f: SettingsFrame): void {
    if (f.ack) {
      if (this.#settingsAcked) return this.#cheapFrame();
      // Our SETTINGS hold from here (§6.5.3).
      this.#settingsAcked = true;
      this.#decoder.setLimit(this.#limits.h2HeaderTableBytes);
      const delta = this.#limits.h2StreamWindowBytes - this.#localWindow;
      this.#localWindow = this.#limits.h2StreamWindowBytes;
      for (const stream of this.#streams.values()) stream.recvWindow += delta;
      return;
    }
    if (this.#settingsSeen) this.#cheapFrame();
    this.#settingsSeen = true;
    for (const [id, value] of f.settings) {
      switch (id) {
        case SETTING.HEADER_TABLE_SIZE:
          this.#encoder.setPeerLimit(value);
          break;
        case SETTING.INITIAL_WINDOW_SIZE:
          this.#setPeerWindow(value);
          break;
        case SETTING.MAX_FRAME_SIZE:
          this.#peerMaxFrame = value;
          break;
      }
    }
    writeSettings(this.#out, [], true);
    this.#queuedControl();
  }

  /** §6.9.2: a new initial window moves every stream's window by the difference. */
  #setPeerWindow(value: number): void {
    const delta = value - this.#peerWindow;
    this.#peerWindow = value;
    for (const stream of this.#streams.values()) {
      if (stream.sendWindow + delta > MAX_WINDOW) {
        throw new H2Error(
          ERROR.FLOW_CONTROL_ERROR,
          "SETTINGS_INITIAL_WINDOW_SIZE takes a window past 2^31 - 1",
        );
      }
      stream.sendWindow += delta;
    }
    if (delta > 0) this.#unblock();
  }

  #onPing(f: PingFrame): void {
    this.#cheapFrame();
    if (f.ack) return; // we send no PINGs: an ack of nothing
    writePing(this.#out, f.data, true);
    this.#queuedControl();
  }

  #onGoaway(f: GoawayFrame): void {
    this.#cheapFrame();
    this.#peerGone = true;
    this.#events.push({
      type: "goaway",
      lastStreamId: f.lastStreamId,
      code: f.code,
      debug: new TextDecoder().decode(f.debug),
    });
    if (f.code !== ERROR.NO_ERROR) {
      // The client saw an error of ours: its streams are gone with it.
      this.#fail(
        new H2Error(f.code, `Client sent GOAWAY ${errorName(f.code)}`),
        false,
      );
    }
  }

  #onWindowUpdate(f: WindowUpdateFrame): void {
    this.#cheapFrame();
    if (f.streamId === 0) {
      if (this.#connSendWindow + f.increment > MAX_WINDOW) {
        throw new H2Error(
          ERROR.FLOW_CONTROL_ERROR,
          "Connection window past 2^31 - 1",
        );
      }
      this.#connSendWindow += f.increment;
      this.#unblock();
      return;
    }
    const stream = this.#streams.get(f.streamId);
    if (stream === undefined) {
      this.#checkNotIdle(f.streamId, "WINDOW_UPDATE");
      return; // closed: a window for data we will not send
    }
    if (!stream.localOpen) return;
    if (stream.sendWindow + f.increment > MAX_WINDOW) {
      this.#streamError(
        f.streamId,
        ERROR.FLOW_CONTROL_ERROR,
        "Stream window past 2^31 - 1",
      );
      return;
    }
    stream.sendWindow += f.increment;
    if (stream.blocked && stream.sendWindow > 0 && this.#connSendWindow > 0) {
      this.#writable(stream);
    }
  }

  #onRstStream(f: RstStreamFrame): void {
    const stream = this.#streams.get(f.streamId);
    if (stream === undefined || (!stream.remoteOpen && !stream.localOpen)) {
      if (stream === undefined) this.#checkNotIdle(f.streamId, "RST_STREAM");
      this.#cheapFrame();
      return;
    }
    const early = stream.localOpen;
    stream.remoteOpen = stream.localOpen = false;
    this.#blocked.delete(stream);
    this.#events.push({
      type: "reset",
      streamId: stream.id,
      code: f.code,
      message: `Client reset the stream (${errorName(f.code)})`,
    });
    // Rapid reset (CVE-2023-44487): cancelling before the reply is done
    // costs us a handler and the client one frame.
    if (early) this.#unproductive();
  }

  #onHeaders(f: HeadersFrame): void {
    if (f.streamId % 2 === 0) {
      throw new H2Error(ERROR.PROTOCOL_ERROR, "HEADERS on an even stream id");
    }
    this.#blockStream = f.streamId;
    this.#blockEndStream = f.endStream;
    this.#blockLen = 0;
    this.#continuations = 0;
    // A stream cannot depend on itself (RFC 7540 §5.3.1). The block is
    // decoded all the same, to keep the table in step (§4.3).
    this.#blockError = f.priority?.dependency === f.streamId
      ? "Stream depends on itself"
      : undefined;
    if (f.endHeaders) {
      // The common case: the whole block in one frame, decoded in place.
      this.#endBlock(f.fragment, 0, f.fragment.length);
      return;
    }
    if (f.fragment.length === 0) this.#cheapFrame();
    this.#appendBlock(f.fragment);
  }

  #onContinuation(f: ContinuationFrame): void {
    if (this.#blockStream !== f.streamId) {
      throw new H2Error(
        ERROR.PROTOCOL_ERROR,
        "CONTINUATION without its HEADERS",
      );
    }
    // CONTINUATION flood (CVE-2024-27316): bounded in count and in bytes.
    if (++this.#continuations > this.#limits.h2MaxContinuationFrames) {
      throw new H2Error(
        ERROR.ENHANCE_YOUR_CALM,
        `More than ${this.#limits.h2MaxContinuationFrames} CONTINUATION frames`,
      );
    }
    this.#appendBlock(f.fragment);
    if (f.endHeaders) this.#endBlock(this.#block, 0, this.#blockLen);
    else if (f.fragment.length === 0) this.#cheapFrame();
  }

  #appendBlock(fragment: Uint8Array): void {
    const need = this.#blockLen + fragment.length;
    if (need > this.#limits.h2MaxHeaderBlockBytes) {
      throw new H2Error(
        ERROR.ENHANCE_YOUR_CALM,
        `Header block over ${this.#limits.h2MaxHeaderBlockBytes} bytes`,
      );
    }
    if (need > this.#block.length) {
      const bigger = new Uint8Array(
        Math.min(
          Math.max(need, this.#block.length * 2, 1024),
          this.#limits.h2MaxHeaderBlockBytes,
        ),
      );
      bigger.set(this.#block.subarray(0, this.#blockLen));
      this.#block = bigger;
    }
    this.#block.set(fragment, this.#blockLen);
    this.#blockLen = need;
  }

  /** A whole header block arrived: decode it, whatever becomes of its stream (§4.3). */
  #endBlock(block: Uint8Array, start: number, end: number): void {
    const id = this.#blockStream;
    const endStream = this.#blockEndStream;
    this.#blockStream = 0;
    const list = this.#decoder.decode(
      block,
      start,
      end,
      this.#limits.h2MaxHeaderListBytes,
    );
    if (end - start > 4096) this.#block = EMPTY; // do not keep a big buffer for one big block
    if (this.#blockError !== undefined) {
      // §5.3.1 of RFC 7540: a stream error, on a stream now past idle.
      if (id > this.#lastClientId) this.#lastClientId = id;
      this.#streamError(id, ERROR.PROTOCOL_ERROR, this.#blockError);
      return;
    }
    if (id > this.#lastClientId) return this.#openStream(id, list, endStream);
    const stream = this.#streams.get(id);
    if (stream !== undefined && stream.remoteOpen) {
      return this.#onTrailers(stream, list, endStream);
    }
    if (stream?.resetByUs || this.#wasResetByUs(id)) return; // frames in flight after our RST_STREAM
    if (stream !== undefined || this.#wasClosed(id)) {
      if (stream !== undefined && stream.localOpen) {
        // Half-closed (remote): the client already ended its side (§5.1).
        this.#streamError(
          id,
          ERROR.STREAM_CLOSED,
          "HEADERS after the end of the request",
        );
        return;
      }
      throw new H2Error(ERROR.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    }
    // §5.1.1: ids only grow; a lower unused one is closed for good.
    throw new H2Error(
      ERROR.PROTOCOL_ERROR,
      `Stream id ${id} reused or going backwards`,
    );
  }

  #openStream(id: number, list: HeaderList, endStream: boolean): void {
    this.#lastClientId = id;
    if (this.#goawaySent && id > this.#goawayLastId) {
      // §6.8: after our GOAWAY, newer streams are not served; the client retries them.
      this.#remember(id, true);
      return;
    }
    if (this.#activeCount() >= this.#limits.h2MaxConcurrentStreams) {
      writeRstStream(this.#out, id, ERROR.REFUSED_STREAM);
      this.#remember(id, true);
      this.#queuedControl();
      this.#unproductive();
      return;
    }
    const stream = new Stream(
      id,
      endStream,
      this.#localWindow,
      this.#peerWindow,
    );
    this.#streams.set(id, stream);
    this.#opened++;
    if (this.#cheap > 0) this.#cheap--; // a request is work worth a cheap frame
    let head: H2RequestHead;
    try {
      head = checkRequest(list, this.#limits);
      // §8.1.1: the DATA frames (none) must add up to Content-Length.
      if (endStream && head.contentLength > 0) {
        throw badRequest("Content-Length on a request without a body");
      }
    } catch (err) {
      if (!(err instanceof Error) || err.name !== "HttpError") throw err;
      stream.rejected = true;
      this.#events.push({
        type: "reject",
        streamId: id,
        error: err as HttpError,
        accept: acceptOf(list),
      });
      this.#unproductive();
      this.#afterOpen(id);
      return;
    }
    stream.contentLength = head.contentLength;
    this.#events.push({ type: "request", streamId: id, head, endStream });
    this.#afterOpen(id);
  }

  /** maxRequestsPerConnection, or stream ids running out (§5.1.1): GOAWAY, gracefully. */
  #afterOpen(id: number): void {
    if (
      this.#opened >= this.#limits.maxRequestsPerConnection ||
      (MAX_STREAM_ID - id) / 2 < this.#limits.h2MaxConcurrentStreams
    ) this.shutdown();
  }

  #onTrailers(stream: Stream, list: HeaderList, endStream: boolean): void {
    if (!endStream) {
      this.#streamError(
        stream.id,
        ERROR.PROTOCOL_ERROR,
        "Trailers without END_STREAM",
      );
      return;
    }
    let trailers: HeaderFields;
    try {
      trailers = checkTrailers(list, this.#limits);
      if (
        stream.contentLength !== -1 && stream.received !== stream.contentLength
      ) {
        throw new Error("Body shorter than its Content-Length");
      }
    } catch (err) {
      this.#streamError(
        stream.id,
        ERROR.PROTOCOL_ERROR,
        (err as Error).message,
      );
      return;
    }
    stream.remoteOpen = false;
    if (!stream.rejected) {
      this.#events.push({ type: "trailers", streamId: stream.id, trailers });
    }
  }

  #onData(f: DataFrame): void {
    // Flow control counts the whole payload, padding too (§6.9.1).
    if (f.flowLength > this.#connRecvWindow) {
      throw new H2Error(
        ERROR.FLOW_CONTROL_ERROR,
        "DATA past the connection window",
      );
    }
    this.#connRecvWindow -= f.flowLength;
    const stream = this.#streams.get(f.streamId);
    if (stream === undefined || !stream.remoteOpen) {
      this.#creditConnection(f.flowLength);
      this.#cheapFrame();
      if (stream === undefined) this.#checkNotIdle(f.streamId, "DATA");
      const byUs = stream === undefined
        ? this.#wasResetByUs(f.streamId)
        : stream.resetByUs;
      if (!byUs && (stream !== undefined || this.#wasClosed(f.streamId))) {
        this.#streamError(
          f.streamId,
          ERROR.STREAM_CLOSED,
          "DATA after the end of the request",
        );
      }
      return;
    }
    if (f.flowLength > stream.recvWindow) {
      this.#creditConnection(f.flowLength);
      this.#streamError(
        stream.id,
        ERROR.FLOW_CONTROL_ERROR,
        "DATA past the stream window",
      );
      return;
    }
    stream.recvWindow -= f.flowLength;
    const n = f.data.length;
    // Padding is flow-controlled but never read: give it back now.
    if (f.flowLength > n) {
      this.#creditConnection(f.flowLength - n);
      if (!f.endStream) this.#creditStream(stream, f.flowLength - n);
    }
    stream.received += n;
    if (
      stream.contentLength !== -1 &&
      (stream.received > stream.contentLength ||
        (f.endStream && stream.received !== stream.contentLength))
    ) {
      this.#creditConnection(n);
      this.#streamError(
        stream.id,
        ERROR.PROTOCOL_ERROR,
        "Body length differs from its Content-Length",
      );
      return;
    }
    if (n === 0 && !f.endStream) this.#cheapFrame(); // CVE-2019-9518
    this.#moved(n);
    if (f.endStream) stream.remoteOpen = false;
    if (stream.rejected) {
      this.#creditConnection(n);
      return;
    }
    stream.recvBuffered += n;
    this.#events.push({
      type: "data",
      streamId: stream.id,
      data: n === 0 ? EMPTY : f.data.slice(),
      endStream: f.endStream,
    });
  }

  // Output helpers.

  #sendable(streamId: number): Stream {
    const stream = this.#streams.get(streamId);
    if (
      stream === undefined || !stream.localOpen || this.#error !== undefined
    ) {
      throw new H2Error(
        ERROR.STREAM_CLOSED,
        `Stream ${streamId} is closed`,
        streamId,
      );
    }
    return stream;
  }

  /** Leaves room for a frame header; the block follows it. */
  #openBlock(): number {
    const out = this.#out;
    const start = out.len;
    out.reserve(FRAME_HEADER_BYTES);
    out.len += FRAME_HEADER_BYTES;
    return start;
  }

  /** Puts the frame header before the block, splitting it into CONTINUATIONs if it is long. */
  #closeBlock(start: number, streamId: number, endStream: boolean): void {
    const out = this.#out;
    const max = this.#peerMaxFrame;
    const length = out.len - start - FRAME_HEADER_BYTES;
    const flags = endStream ? FLAG.END_STREAM : 0;
    if (length <= max) {
      putFrameHeader(
        out.buf,
        start,
        length,
        FRAME.HEADERS,
        flags | FLAG.END_HEADERS,
        streamId,
      );
      return;
    }
    const rest = out.buf.slice(start + FRAME_HEADER_BYTES + max, out.len);
    putFrameHeader(out.buf, start, max, FRAME.HEADERS, flags, streamId);
    out.len = start + FRAME_HEADER_BYTES + max;
    for (let at = 0; at < rest.length; at += max) {
      const n = Math.min(max, rest.length - at);
      const buf = out.reserve(FRAME_HEADER_BYTES + n);
      const last = at + n === rest.length;
      putFrameHeader(
        buf,
        out.len,
        n,
        FRAME.CONTINUATION,
        last ? FLAG.END_HEADERS : 0,
        streamId,
      );
      buf.set(rest.subarray(at, at + n), out.len + FRAME_HEADER_BYTES);
      out.len += FRAME_HEADER_BYTES + n;
    }
  }

  /** We sent END_STREAM. If the client is still sending, ask it to stop (§8.1). */
  #endLocal(stream: Stream): void {
    stream.localOpen = false;
    this.#blocked.delete(stream);
    if (!stream.rejected && this.#resets > 0) this.#resets--;
    if (stream.remoteOpen) {
      writeRstStream(this.#out, stream.id, ERROR.NO_ERROR);
      stream.remoteOpen = false;
      stream.resetByUs = true;
    }
    this.#drop(stream);
  }

  #markBlocked(stream: Stream): void {
    stream.blocked = true;
    this.#blocked.add(stream);
  }

  #writable(stream: Stream): void {
    stream.blocked = false;
    this.#blocked.delete(stream);
    this.#events.push({ type: "writable", streamId: stream.id });
  }

  /** Sends `writable` for every blocked stream the windows now let send. */
  #unblock(): void {
    if (this.#connSendWindow <= 0) return;
    for (const stream of this.#blocked) {
      if (stream.sendWindow > 0) this.#writable(stream);
    }
  }

  // Stream bookkeeping.

  #activeCount(): number {
    return this.#streams.size;
  }

  /** Forgets a stream closed on both sides and no longer held by the engine. */
  #drop(stream: Stream): void {
    if (!stream.held) return;
    stream.held = false;
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.#creditConnection(stream.recvBuffered);
    stream.recvBuffered = 0;
    this.#remember(stream.id, stream.resetByUs);
  }

  #remember(id: number, byReset: boolean): void {
    const k = this.#closedNext;
    this.#closedIds[k] = id;
    this.#closedByReset[k] = byReset ? 1 : 0;
    this.#closedNext = (k + 1) % CLOSED_MEMORY;
  }

  #wasClosed(id: number): boolean {
    return this.#closedIds.indexOf(id) !== -1;
  }

  #wasResetByUs(id: number): boolean {
    const k = this.#closedIds.indexOf(id);
    return k !== -1 && this.#closedByReset[k] === 1;
  }

  /** A frame for a stream the client never opened is a connection error (§5.1). */
  #checkNotIdle(id: number, what: string): void {
    if (id > this.#lastClientId) {
      throw new H2Error(ERROR.PROTOCOL_ERROR, `${what} on idle stream ${id}`);
    }
  }

  /** RST_STREAM for one stream (§5.4.2); the engine hears of it if it holds the stream. */
  #streamError(id: number, code: number, message: string): void {
    const stream = this.#streams.get(id);
    if (stream === undefined) this.#checkNotIdle(id, "Stream error");
    writeRstStream(this.#out, id, code);
    this.#queuedControl();
    if (stream === undefined) {
      this.#remember(id, true);
      return;
    }
    const open = stream.remoteOpen || stream.localOpen;
    stream.remoteOpen = stream.localOpen = false;
    stream.resetByUs = true;
    this.#blocked.delete(stream);
    if (open) {
      this.#events.push({
        type: "reset",
        streamId: id,
        code,
        message: `${message} (${errorName(code)})`,
      });
    }
  }

  /** A connection error (§5.4.1): GOAWAY, every held stream reset, nothing more read. */
  #fail(err: H2Error, sendGoaway = true): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    if (sendGoaway) {
      writeGoaway(
        this.#out,
        this.#lastClientId,
        err.code,
        encoder.encode(err.message),
      );
    }
    for (const stream of this.#streams.values()) {
      if (!stream.remoteOpen && !stream.localOpen) continue;
      stream.remoteOpen = stream.localOpen = false;
      this.#events.push({
        type: "reset",
        streamId: stream.id,
        code: err.code,
        message: `Connection failed: ${err.message}`,
      });
    }
    this.#blocked.clear();
  }

  // Flow-control credit and abuse budgets.

  /** Gives the client back `bytes` of connection window, in batches of half a window. */
  #creditConnection(bytes: number): void {
    if (bytes <= 0 || this.#error !== undefined) return;
    this.#connUnacked += bytes;
    if (this.#connUnacked * 2 >= this.#limits.h2ConnectionWindowBytes) {
      writeWindowUpdate(this.#out, 0, this.#connUnacked);
      this.#connRecvWindow += this.#connUnacked;
      this.#connUnacked = 0;
    }
  }

  /** Gives the client back `bytes` of a stream's window, in batches of half a window. */
  #creditStream(stream: Stream, bytes: number): void {
    stream.recvUnacked += bytes;
    if (stream.recvUnacked * 2 >= this.#limits.h2StreamWindowBytes) {
      writeWindowUpdate(this.#out, stream.id, stream.recvUnacked);
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
  }

  /** Body bytes moved either way earn back one cheap frame per KiB. */
  #moved(bytes: number): void {
    this.#movedBytes += bytes;
    if (this.#movedBytes < 1024) return;
    const kib = Math.floor(this.#movedBytes / 1024);
    this.#movedBytes -= kib * 1024;
    this.#cheap = Math.max(0, this.#cheap - kib);
  }

  /** SETTINGS/PING/WINDOW_UPDATE/PRIORITY floods and empty frames (CVE-2019-9512, -9515, -9518). */
  #cheapFrame(): void {
    if (++this.#cheap > this.#limits.h2MaxCheapFrames) {
      throw new H2Error(
        ERROR.ENHANCE_YOUR_CALM,
        `More than ${this.#limits.h2MaxCheapFrames} frames without a request or body`,
      );
    }
  }

  /** Streams that cost a handler but ended before their reply did. */
  #unproductive(): void {
    if (++this.#resets > this.#limits.h2MaxResetStreams) {
      throw new H2Error(
        ERROR.ENHANCE_YOUR_CALM,
        `More than ${this.#limits.h2MaxResetStreams} streams reset or refused`,
      );
    }
  }

  /** Acks and resets owed to a client that may not be reading them. */
  #queuedControl(): void {
    if (++this.#controlQueued > this.#limits.h2MaxQueuedControlFrames) {
      throw new H2Error(
        ERROR.ENHANCE_YOUR_CALM,
        `More than ${this.#limits.h2MaxQueuedControlFrames} control frames queued unread`,
      );
    }
  }
}

function acceptOf(list: HeaderList): string | undefined {
  const i = list.names.indexOf("accept");
  return i === -1 ? undefined : list.values[i];
}
