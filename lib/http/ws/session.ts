/**
 * One server-side WebSocket connection as a protocol machine with no I/O
 * (RFC 6455, RFC 7692). The engine feeds it the bytes it reads with
 * `receive()`, writes what `takeOutput()` returns (calling `written()`),
 * and keeps three timers for it: idle (`checkIdle()` every
 * `limits.wsIdleTimeoutMs`), close (`abort()` once `state` has been
 * "closing" for `limits.wsCloseTimeoutMs`) and write (`abort()` when a
 * write makes no progress for `limits.writeTimeoutMs`). Once `state` is
 * "closed" it writes what is left and closes the socket, FIN first.
 *
 * The app sees {@link WsEvent}s through `onEvent` and sends with `send()`.
 */
import type { Limits } from "../../config.ts";
import {
  DEFAULT_DEFLATE_LEVEL,
  DEFAULT_DEFLATE_MIN_BYTES,
  type DeflateParams,
  joinBytes,
  maxDeflatedBytes,
  MessageDeflater,
  MessageInflater,
} from "./deflate.ts";
import {
  CLOSE,
  encodeCloseFrame,
  encodeFrame,
  encodeTextFrame,
  frameHeadSize,
  FrameParser,
  type FrameSink,
  MAX_CLOSE_REASON_BYTES,
  MAX_CONTROL_PAYLOAD,
  OPCODE,
  parseClosePayload,
  writeFrameHead,
  WsError,
} from "./frame.ts";
import { BufferPool, Pool } from "../buffers.ts";
import { noteMessageBuffer } from "./collect.ts";
import { FrameBuffers } from "./frame_buffers.ts";
import { isUtf8, Utf8Text } from "./utf8.ts";

/** What happened on the connection, in order. */
export type WsEvent =
  | { readonly type: "text"; readonly data: string }
  | { readonly type: "binary"; readonly data: Uint8Array }
  | { readonly type: "ping"; readonly data: Uint8Array }
  | { readonly type: "pong"; readonly data: Uint8Array }
  | {
    readonly type: "close";
    /** The peer's code on a clean close; ours (1002, 1007, 1009...) or 1006 otherwise. */
    readonly code: number;
    readonly reason: string;
    /** True when both sides exchanged close frames. */
    readonly wasClean: boolean;
  };

/**
 * "open": messages flow. "closing": we sent a close frame and wait for the
 * peer's (the engine enforces `wsCloseTimeoutMs`). "closed": the engine
 * writes what output is left, then closes the socket.
 */
export type WsState = "open" | "closing" | "closed";

/** A queued event; a message is queued as its data (text a string, binary bytes). */
type Queued = WsEvent | string | Uint8Array;

/** What the handshake agreed that the session needs (an `Upgrade` fits). */
export interface WsSessionOptions {
  /** permessage-deflate as agreed, or null. */
  readonly deflate?: DeflateParams | null;
  /** zlib level for what we send (0..9). */
  readonly deflateLevel?: number;
  /** Messages shorter than this many bytes are sent uncompressed. */
  readonly deflateMinBytes?: number;
}

/** What `checkIdle()` did. */
export type IdleAction = "none" | "ping" | "close";

/** Smaller messages are joined from their pieces once whole: few pieces, no gain. */
const PRESIZE_MIN_BYTES = 64 * 1024;
/**
 * Big messages may be presized from their first bytes, before a quarter
 * of them is here, while those presized early and still short of their
 * quarter total at most this, over every session: an honest client's
 * message is then read straight into its buffer from the start, and
 * clients that announce big frames and send little hold 16 MiB at most
 * between them (sixteen frames of the default 1 MiB limit), past which
 * each waits for its quarter as before.
 */
export const EARLY_PRESIZE_BYTES = 16 * 1024 * 1024;
/** Bytes of the messages presized early and still short of their quarter, over every session. */
let earlyPresized = 0;

/** `earlyPresized`, for tests and metrics. */
export function earlyPresizedBytes(): number {
  return earlyPresized;
}
/** Output pieces are joined up to this size, so many small frames go in one write. */
const JOIN_OUTPUT_BYTES = 64 * 1024;
/**
 * 64 KiB buffers lent for a while and given back: the engine reads into
 * them after a read that filled its small buffer, and frames of 16 to 64
 * KiB are copied into them to be written (no buffer of their own per
 * frame, never zeroed again). 64 kept: 4 MiB.
 */
export const BIG_BUFFERS: BufferPool = new BufferPool(64 * 1024, 64);
/**
 * Frames bigger than a pooled 64 KiB buffer are copied into one of these
 * (a multiple of 64 KiB long), kept once written while they total at most
 * 4 MiB.
 */
const FRAME_BUFFERS = new FrameBuffers(64 * 1024, 4 * 1024 * 1024);
/** Frames of this many bytes and more are copied into a pooled buffer of their size. */
const POOLED_FRAME_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);
/**
 * Small frames are written straight into a pooled buffer of this size (no
 * buffer of their own per frame); the buffer goes back to the pool once
 * written, so an idle socket holds none.
 */
const OUT_BUFFER_BYTES = 2048;
/** Pooled output buffers kept for reuse (1 MiB); more are made while many sockets send at once. */
const OUT_POOL_MAX = 512;
const outPool = new Pool<Uint8Array>(
  () => new Uint8Array(OUT_BUFFER_BYTES),
  OUT_POOL_MAX,
);
/** Up to this many UTF-16 units, ASCII text is copied into the frame by a loop, not the encoder. */
const LOOP_TEXT_UNITS = 64;
/**
 * Up to this many bytes, an ASCII text message's string is made from its
 * char codes as it is unmasked: cheaper than a view and a decoder call
 * (the decoder wins on longer text).
 */
const SHORT_TEXT_BYTES = 64;
/** The char codes of the short text being unmasked (its length is the text's). */
const CODES: number[] = [];
const FIN = 0x80;
/** The first byte of a whole (FIN), uncompressed text or binary frame. */
const WHOLE_TEXT = FIN | OPCODE.Text;
const WHOLE_BINARY = FIN | OPCODE.Binary;
/** The second header byte: the mask bit, the 7-bit length, 126 for a 16-bit one. */
const MASK_BIT = 0x80;
const LENGTH_BITS = 0x7f;
const LENGTH_16 = 126;
/** Header of a masked frame with a 7-bit length: 2 bytes, then the 4-byte mask. */
const SMALL_HEAD_BYTES = 6;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const noop = () => {};

/**
 * A server-side WebSocket protocol machine. `receive()` takes bytes as
 * read (and unmasks them in place). Events go to `onEvent` once the call
 * that caused them has updated the session, so a handler may `send()` or
 * `close()` freely. What `onEvent` throws fails the connection with 1011
 * and is thrown again by the call that dispatched it.
 */
export class WsSession {
  /** Receives every event, in order, at the end of the call that caused it. */
  onEvent: (event: WsEvent) => void = noop;
  /**
   * Receives the messages instead of `onEvent` when set, in the same
   * order with the other events: text as a string, binary as bytes. No
   * event object per message.
   */
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  /** Called when output goes from none to some: the engine should write. */
  onOutput: () => void = noop;
  /** Called after `onEvent` has had the close event (even if it threw): the engine may close the socket. */
  onClosed: () => void = noop;

  /**
   * The frame parser's sink: its methods are on one shared prototype, so a
   * session holds one small object for it, not three closures. Declared
   * in this class's body, it may call the session's private methods.
   */
  static readonly #Sink = class implements FrameSink {
    readonly #session: WsSession;
    constructor(session: WsSession) {
      this.#session = session;
    }
    frameStart(fin: boolean, rsv1: boolean, opcode: number, length: number) {
      this.#session.#frameStart(fin, rsv1, opcode, length);
    }
    framePayload(bytes: Uint8Array) {
      this.#session.#framePayload(bytes);
    }
    frameEnd(): boolean {
      return this.#session.#frameEnd();
    }
  };

  readonly #limits: Limits;
  /**
   * The frame parser, its sink and the state of the frame and message it
   * reads, made for the first frame the one-pass path leaves to them: a
   * socket that only ever gets short whole messages (or none) holds none
   * of it, and their messages' lines do not carry its fields.
   */
  #rd: MessageReader | undefined;
  readonly #deflater: MessageDeflater | undefined;
  readonly #inflater: MessageInflater | undefined;
  readonly #deflateMinBytes: number;
  #state: WsState = "open";
  // Idle: anything heard since the last check; a ping already sent for it.
  #heard = false;
  #pinged = false;
  #closeReported = false;
  // Events not yet dispatched, `#eventCount` of them: the first in its own
  // field (most reads bring one message: no array to touch), the rest in
  // `#events`, which is kept rather than regrown per message.
  // A message is queued as its data (a string or bytes), other events as
  // objects.
  #firstEvent: Queued | undefined;
  #events: (Queued | undefined)[] | undefined;
  #eventCount = 0;
  #dispatching = false;
  /**
   * No message or frame is partly read (the frame parser is idle): what
   * comes next may take the one-pass path. Kept here, so a message's
   * read touches the parser's state only when the parser is needed.
   */
  #betweenMessages = true;

  // Output: frames not yet taken (with the pooled buffer behind each, if
  // any; undefined when there are none, so the common check reads a field
  // of the session, not an array), then the pooled buffer small frames
  // are written into (after every frame in #out), and bytes taken but not
  // yet written; #outBytes counts #out and the tail.
  #out: Uint8Array[] | undefined;
  #outPooled: (Uint8Array | undefined)[] | undefined;
  #tail: Uint8Array | undefined;
  #tailLen = 0;
  #outBytes = 0;
  #inFlight = 0;
  /** A pooled buffer handed out by takeOutput(): back to its pool once written. */
  #sending: Uint8Array | undefined;
  /** More of them, taken before the first was written (not the engine's way). */
  #sendingMore: Uint8Array[] | undefined;

  constructor(limits: Limits, opts: WsSessionOptions = {}) {
    this.#limits = limits;
    const deflate = opts.deflate ?? null;
    if (deflate !== null) {
      this.#deflater = new MessageDeflater(
        deflate.serverMaxWindowBits,
        deflate.serverNoContextTakeover,
        opts.deflateLevel ?? DEFAULT_DEFLATE_LEVEL,
      );
      this.#inflater = new MessageInflater(
        deflate.clientMaxWindowBits,
        deflate.clientNoContextTakeover,
      );
    }
    this.#deflateMinBytes = opts.deflateMinBytes ?? DEFAULT_DEFLATE_MIN_BYTES;
  }

  /** The frame reader (the parser, its sink and their state), made when first needed. */
  #reader(): MessageReader {
    let rd = this.#rd;
    if (rd === undefined) {
      const parser = new FrameParser({
        maxFrameBytes: this.#limits.wsMaxFrameBytes,
        // The limits are on the message as the app gets it, inflated: its
        // compressed frames may be as big as deflate makes them.
        maxCompressedFrameBytes: maxDeflatedBytes(this.#limits.wsMaxFrameBytes),
        requireMask: true,
        allowRsv1: this.#inflater !== undefined, // permessage-deflate agreed
      });
      rd = this.#rd = new MessageReader(parser, new WsSession.#Sink(this));
    }
    return rd;
  }

  get state(): WsState {
    return this.#state;
  }

  /** Bytes queued or being written, as the web API's `bufferedAmount`. */
  get bufferedAmount(): number {
    return this.#outBytes + this.#inFlight;
  }

  /** True when no frame or message is partly read: the peer owes no bytes. */
  get betweenMessages(): boolean {
    return this.#betweenMessages;
  }

  /** Bytes waiting for `takeOutput()`. */
  get hasOutput(): boolean {
    return this.#outBytes > 0;
  }

  /**
   * Takes the next bytes to write, small frames joined into one buffer, or
   * null when there are none. Call `written()` once they are written: the
   * bytes may be a pooled buffer's, reused after that.
   */
  takeOutput(): Uint8Array | null {
    const out = this.#out;
    if (out === undefined) return this.#takeTail();
    const pooled = this.#outPooled!;
    let count = 1;
    let bytes = out[0].length;
    while (
      count < out.length && bytes + out[count].length <= JOIN_OUTPUT_BYTES
    ) {
      bytes += out[count++].length;
    }
    let chunk: Uint8Array;
    if (count === 1) {
      chunk = out[0];
      if (pooled[0] !== undefined) this.#lend(pooled[0]);
    } else {
      chunk = new Uint8Array(bytes);
      let off = 0;
      for (let i = 0; i < count; i++) {
        chunk.set(out[i], off);
        off += out[i].length;
        // Copied: its buffer is free again.
        if (pooled[i] !== undefined) releaseBuffer(pooled[i]!);
      }
    }
    if (count === out.length) {
      this.#out = undefined;
      this.#outPooled = undefined;
    } else {
      this.#out = out.slice(count);
      this.#outPooled = pooled.slice(count);
    }
    this.#outBytes -= bytes;
    this.#inFlight += bytes;
    return chunk;
  }

  /** The pooled tail as it is (no copy); the next frame takes a fresh one. */
  #takeTail(): Uint8Array | null {
    const len = this.#tailLen;
    if (len === 0) return null;
    const tail = this.#tail!;
    // A pooled buffer is a whole ArrayBuffer: a view of it made directly.
    const chunk = new Uint8Array(tail.buffer, 0, len);
    this.#lend(tail);
    this.#tail = undefined;
    this.#tailLen = 0;
    this.#outBytes -= len;
    this.#inFlight += len;
    return chunk;
  }

  /** A pooled buffer is being written: back to its pool once it is. */
  #lend(buf: Uint8Array): void {
    if (this.#sending === undefined) this.#sending = buf;
    else (this.#sendingMore ??= []).push(buf);
  }

  /** `n` bytes from `takeOutput()` reached the socket. */
  written(n: number): void {
    this.#inFlight = Math.max(0, this.#inFlight - n);
    if (this.#inFlight === 0 && this.#sending !== undefined) {
      releaseBuffer(this.#sending);
      this.#sending = undefined;
      const more = this.#sendingMore;
      if (more !== undefined) {
        for (const buf of more) releaseBuffer(buf);
        this.#sendingMore = undefined;
      }
    }
  }

  /**
   * Feeds bytes read from the socket (`bytes` up to `end`); they are
   * unmasked in place. Events go to `onEvent`; replies (pong, close) are
   * queued as output. Bytes after the close handshake or a failure are
   * ignored.
   */
  receive(bytes: Uint8Array, end: number = bytes.length): void {
    if (this.#state === "closed") return;
    this.#heard = true;
    this.#parse(bytes, false, end);
  }

  /**
   * Where the engine may read next straight into the message: the rest of
   * a big one-frame binary message's payload, inside the buffer it will be
   * delivered in (no copy from a read buffer), or undefined. Read at most
   * its length, then call `receivedInPlace()` with the bytes read.
   */
  payloadSpace(): Uint8Array | undefined {
    const rd = this.#rd;
    const whole = rd?.msgWhole;
    if (whole === undefined || this.#state === "closed") return undefined;
    const left = rd!.parser.payloadLeft;
    if (left === 0) return undefined;
    return whole.subarray(rd!.msgBytes, rd!.msgBytes + left);
  }

  /** `n` bytes were read into the start of `payloadSpace()`; as `receive()` for them. */
  receivedInPlace(n: number): void {
    const rd = this.#rd;
    const whole = rd?.msgWhole;
    if (rd === undefined || whole === undefined || this.#state === "closed") {
      return;
    }
    this.#heard = true;
    const bytes = whole.subarray(rd.msgBytes, rd.msgBytes + n);
    rd.msgBytes += n;
    if (rd.early !== 0 && rd.msgBytes * 4 >= rd.early) {
      this.#quarterHere();
    }
    this.#parse(bytes, true, n);
  }

  #parse(bytes: Uint8Array, inPlace: boolean, end: number): void {
    let bug: unknown;
    try {
      if (inPlace) this.#parseInPlace(bytes);
      else {
        const off = this.#betweenMessages ? this.#wholeFrames(bytes, end) : 0;
        if (off < end && this.#state !== "closed") {
          this.#parseFrames(
            off === 0 && end === bytes.length
              ? bytes
              : bytes.subarray(off, end),
          );
        }
      }
    } catch (err) {
      if (err instanceof WsError) {
        this.#fail(err.code, err.message);
      } else {
        this.#fail(CLOSE.InternalError, "Internal error");
        bug = err;
      }
    }
    this.#dispatch();
    if (bug !== undefined) throw bug;
  }

  /** `bytes` to the frame parser; `#betweenMessages` says where it stopped. */
  #parseFrames(bytes: Uint8Array): void {
    const rd = this.#reader();
    const parser = rd.parser;
    this.#betweenMessages = false;
    parser.parse(bytes, rd.sink);
    this.#betweenMessages = rd.msgOpcode === 0 && parser.idle;
  }

  #parseInPlace(bytes: Uint8Array): void {
    const rd = this.#reader();
    const parser = rd.parser;
    this.#betweenMessages = false;
    parser.parsePayloadInPlace(bytes, rd.sink);
    this.#betweenMessages = rd.msgOpcode === 0 && parser.idle;
  }

  /**
   * The common frame in one pass, without the parser: a whole message in
   * one uncompressed text or binary frame with a payload under 126 bytes.
   * Each such frame at the start of `bytes` (up to `end`) is checked as
   * the parser would (FIN, no RSV bits, masked, within the limits; text as
   * UTF-8, its ASCII found in the unmasking loop), unmasked in place and
   * emitted. Returns the offset of the first byte left for the parser
   * (any other frame, or one cut short by the read's end).
   */
  #wholeFrames(bytes: Uint8Array, end: number): number {
    const limits = this.#limits;
    const max = Math.min(limits.wsMaxFrameBytes, limits.wsMaxMessageBytes);
    let off = 0;
    while (end - off >= SMALL_HEAD_BYTES && this.#state !== "closed") {
      const b0 = bytes[off];
      const b1 = bytes[off + 1];
      const len = b1 & LENGTH_BITS;
      if (
        (b0 !== WHOLE_TEXT && b0 !== WHOLE_BINARY) || (b1 & MASK_BIT) === 0 ||
        len >= LENGTH_16
      ) {
        break;
      }
      const start = off + SMALL_HEAD_BYTES;
      const stop = start + len;
      // Over a limit: the parser says which, with the same close code.
      if (stop > end || len > max) break;
      const m0 = bytes[off + 2];
      const m1 = bytes[off + 3];
      const m2 = bytes[off + 4];
      const m3 = bytes[off + 5];
      off = stop;
      if (b0 === WHOLE_TEXT && len <= SHORT_TEXT_BYTES) {
        this.#emit(shortText(bytes, start, len, m0, m1, m2, m3));
        continue;
      }
      let high = 0;
      let i = start;
      for (; i + 4 <= stop; i += 4) {
        const a = bytes[i] ^ m0;
        const b = bytes[i + 1] ^ m1;
        const c = bytes[i + 2] ^ m2;
        const d = bytes[i + 3] ^ m3;
        bytes[i] = a;
        bytes[i + 1] = b;
        bytes[i + 2] = c;
        bytes[i + 3] = d;
        high |= a | b | c | d;
      }
      if (i < stop) high |= bytes[i] ^= m0;
      if (i + 1 < stop) high |= bytes[i + 1] ^= m1;
      if (i + 2 < stop) high |= bytes[i + 2] ^= m2;
      if (b0 === WHOLE_BINARY) {
        this.#emit(bytes.slice(start, stop));
        continue;
      }
      this.#emit(checkedText(bytes, start, len, high));
    }
    return off;
  }

  /**
   * Sends one text or binary message; strings go as text. Returns false
   * when the session is no longer open (the message is dropped, as the
   * web API does). A send that finds more than `wsMaxQueuedBytes` already
   * waiting drops the connection: the peer is not reading.
   */
  send(data: string | Uint8Array): boolean {
    if (this.#state !== "open") return false;
    if (this.bufferedAmount > this.#limits.wsMaxQueuedBytes) {
      this.abort(
        `Outbound queue over ${this.#limits.wsMaxQueuedBytes} bytes: the peer is not reading`,
      );
      return false;
    }
    let frame: Uint8Array;
    if (typeof data === "string") {
      // UTF-16 units * 3 bound the UTF-8 size: most short texts skip encoding twice.
      if (
        this.#deflater === undefined ||
        data.length * 3 < this.#deflateMinBytes
      ) {
        if (this.#tailText(data)) return true;
        frame = encodeTextFrame(data);
      } else {
        frame = this.#frame(OPCODE.Text, encoder.encode(data));
      }
    } else if (
      this.#deflater === undefined || data.length < this.#deflateMinBytes
    ) {
      if (this.#tailBinary(data)) return true;
      if (data.length >= POOLED_FRAME_BYTES) {
        this.#enqueueWhole(OPCODE.Binary, data);
        return true;
      }
      frame = encodeFrame(OPCODE.Binary, data);
    } else {
      frame = this.#frame(OPCODE.Binary, data);
    }
    this.#enqueue(frame);
    return true;
  }

  /** Sends a ping (at most 125 bytes); false when not open. */
  ping(data: Uint8Array = EMPTY): boolean {
    if (data.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`Ping payload is ${data.length} bytes; at most 125`);
    }
    if (this.#state !== "open") return false;
    this.#enqueue(encodeFrame(OPCODE.Ping, data));
    return true;
  }

  /**
   * Starts the closing handshake: queues a close frame and waits for the
   * peer's (state "closing"). Throws RangeError for a code that may not be
   * sent or a reason over 123 bytes. Does nothing unless open.
   */
  close(code: number = CLOSE.Normal, reason = ""): void {
    if (this.#state !== "open") return;
    const frame = encodeCloseFrame(code, reason);
    this.#state = "closing";
    this.#enqueue(frame);
  }

  /**
   * The engine's idle timer, every `wsIdleTimeoutMs`: nothing heard since
   * the last call sends a ping; nothing heard after that ping starts a
   * close with 1001.
   */
  checkIdle(): IdleAction {
    if (this.#heard) {
      this.#heard = false;
      this.#pinged = false;
      return "none";
    }
    if (this.#state !== "open") return "none";
    if (!this.#pinged) {
      this.#pinged = true;
      this.ping();
      return "ping";
    }
    this.close(CLOSE.GoingAway, "Idle timeout");
    return "close";
  }

  /**
   * The connection is gone or given up on before the session closed (end
   * of stream, socket error, close or write timeout): state "closed", a
   * close event with 1006, and pending output dropped, for the engine
   * closes the socket without writing more. Does nothing once closed, so
   * a reply to the peer's close still goes out after its end of stream.
   */
  abort(reason = "Connection lost"): void {
    if (this.#state === "closed") return;
    this.#out = undefined;
    this.#outPooled = undefined;
    this.#tailLen = 0;
    this.#outBytes = 0;
    this.#closeWith(CLOSE.Abnormal, reason, false);
    this.#dispatch();
  }

  /** Frees zlib state; call once the socket is closed. */
  dispose(): void {
    this.#quarterHere();
    this.#deflater?.close();
    this.#inflater?.close();
    // Not #sending: a write the socket's close cut short may still hold it.
    if (this.#tail !== undefined && this.#tailLen === 0) {
      releaseOut(this.#tail);
      this.#tail = undefined;
    }
  }

  #frame(opcode: number, payload: Uint8Array): Uint8Array {
    const deflater = this.#deflater;
    if (deflater !== undefined && payload.length >= this.#deflateMinBytes) {
      return encodeFrame(opcode, deflater.compress(payload), true, true);
    }
    return encodeFrame(opcode, payload);
  }

  /** The pooled buffer small frames are written into, taken from the pool when there is none. */
  #tailBuffer(): Uint8Array {
    return this.#tail ??= outPool.take();
  }

  /**
   * A text message written as a frame straight into the tail (short
   * ASCII by a loop, other text by the encoder); false (nothing queued)
   * when its largest UTF-8 size does not fit there.
   */
  #tailText(text: string): boolean {
    if (this.#out !== undefined) return false;
    const n = text.length;
    const at = this.#tailLen;
    if (n <= LOOP_TEXT_UNITS && at + 2 + n <= OUT_BUFFER_BYTES) {
      const buf = this.#tailBuffer();
      const p = writeFrameHead(buf, at, OPCODE.Text, n);
      let i = 0;
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c >= 0x80) break; // the encoder below writes over it all
        buf[p + i] = c;
      }
      if (i === n) return this.#tailAdded(at, 2 + n);
    }
    const most = n * 3;
    const room = most < 126 ? 2 : 4;
    if (at + room + most > OUT_BUFFER_BYTES) return false;
    const buf = this.#tailBuffer();
    const { written } = encoder.encodeInto(text, buf.subarray(at + room));
    let head = room;
    if (head === 4 && written < 126) {
      // Shorter than the room left for it: its header is 2 bytes.
      buf.copyWithin(at + 2, at + 4, at + 4 + written);
      head = 2;
    }
    writeFrameHead(buf, at, OPCODE.Text, written);
    return this.#tailAdded(at, head + written);
  }

  /** A binary message written as a frame straight into the tail; false (nothing queued) if it does not fit. */
  #tailBinary(data: Uint8Array): boolean {
    const n = data.length;
    const at = this.#tailLen;
    const size = (n < 126 ? 2 : 4) + n;
    if (this.#out !== undefined || at + size > OUT_BUFFER_BYTES) return false;
    const buf = this.#tailBuffer();
    buf.set(data, writeFrameHead(buf, at, OPCODE.Binary, n));
    return this.#tailAdded(at, size);
  }

  #tailAdded(at: number, size: number): true {
    this.#tailLen = at + size;
    this.#added(size);
    return true;
  }

  #enqueue(frame: Uint8Array): void {
    const at = this.#tailLen;
    if (this.#out === undefined && at + frame.length <= OUT_BUFFER_BYTES) {
      // Small and nothing big before it: into the tail.
      this.#tailBuffer().set(frame, at);
      this.#tailLen = at + frame.length;
    } else {
      this.#tailToOut();
      this.#queue(frame, undefined);
    }
    this.#added(frame.length);
  }

  /** Queues `frame` after the others, with the pooled buffer behind it, if any. */
  #queue(frame: Uint8Array, pooled: Uint8Array | undefined): void {
    (this.#out ??= []).push(frame);
    (this.#outPooled ??= []).push(pooled);
  }

  /** The tail's frames go before what is queued next, as a piece of their own (no copy). */
  #tailToOut(): void {
    const at = this.#tailLen;
    if (at === 0) return;
    const tail = this.#tail!;
    this.#queue(new Uint8Array(tail.buffer, 0, at), tail);
    this.#tail = undefined;
    this.#tailLen = 0;
  }

  /**
   * A big frame copied whole into one pooled buffer as it is queued (the
   * app may change its bytes once send() returns), so it leaves in one
   * write: a 256 KiB echo is one system call, not five of a 64 KiB chunk
   * each. The buffer is reused once written.
   */
  #enqueueWhole(opcode: number, payload: Uint8Array): void {
    this.#tailToOut();
    const n = payload.length;
    const size = frameHeadSize(n) + n;
    const buf = size <= BIG_BUFFERS.size
      ? BIG_BUFFERS.take()
      : FRAME_BUFFERS.take(size);
    buf.set(payload, writeFrameHead(buf, 0, opcode, n));
    this.#queue(new Uint8Array(buf.buffer, 0, size), buf);
    this.#added(size);
  }

  #added(bytes: number): void {
    const wasEmpty = this.#outBytes === 0;
    this.#outBytes += bytes;
    if (wasEmpty) this.outputStarted();
  }

  /** Queues an event, or a message as its data (a string or bytes). */
  #emit(event: Queued): void {
    const n = this.#eventCount++;
    if (n === 0) this.#firstEvent = event;
    else (this.#events ??= [])[n - 1] = event;
  }

  /**
   * Hands queued events to `onEvent`. After a handler throws, only a close
   * event still goes out (the failure's own, 1011), then the error is
   * thrown. Events a handler causes join the same loop.
   */
  #dispatch(): void {
    if (this.#dispatching || this.#eventCount === 0) return;
    this.#dispatching = true;
    let failed = false;
    let failure: unknown;
    try {
      for (let i = 0; i < this.#eventCount; i++) {
        // Each slot is emptied as it goes: a big message is not kept alive by the queue.
        let item: Queued;
        if (i === 0) {
          item = this.#firstEvent!;
          this.#firstEvent = undefined;
        } else {
          item = this.#events![i - 1]!;
          this.#events![i - 1] = undefined;
        }
        const event = typeof item === "string" || item instanceof Uint8Array
          ? undefined
          : item;
        const close = event?.type === "close";
        if (failed && !close) continue;
        try {
          if (event !== undefined) this.onEvent(event);
          else this.deliver(item as string | Uint8Array);
        } catch (err) {
          if (!failed) {
            failed = true;
            failure = err;
            this.#fail(CLOSE.InternalError, "Internal error in the app");
          }
        }
        if (close) this.closeDispatched();
      }
    } finally {
      // Not `length = 0`: that frees the array's store, to be grown again.
      const events = this.#events;
      if (events !== undefined) {
        for (let i = 0; i < this.#eventCount - 1; i++) events[i] = undefined;
      }
      this.#firstEvent = undefined;
      this.#eventCount = 0;
      this.#dispatching = false;
    }
    if (failed) throw failure;
  }

  /**
   * A message to `onMessage`, or as an event to `onEvent` without one.
   * This and the two hooks below are methods the engine's subclass
   * (`WsConnection`, the same object) overrides: no closure called
   * between the two a message.
   */
  protected deliver(data: string | Uint8Array): void {
    const onMessage = this.onMessage;
    if (onMessage !== undefined) onMessage(data);
    else if (typeof data === "string") this.onEvent({ type: "text", data });
    else this.onEvent({ type: "binary", data });
  }

  /** Output went from none to some: `onOutput`. */
  protected outputStarted(): void {
    this.onOutput();
  }

  /** `onEvent` had the close event: `onClosed`. */
  protected closeDispatched(): void {
    this.onClosed();
  }

  /** Fails the connection (RFC 6455 §7.1.7): a close frame with `code` if we can, then closed. */
  #fail(code: number, reason: string): void {
    if (this.#state === "open") {
      // Reasons are our own short messages; cut to the 123 bytes a close allows.
      this.#enqueue(encodeCloseFrame(code, truncateReason(reason)));
    }
    this.#closeWith(code, reason, false);
  }

  #closeWith(code: number, reason: string, wasClean: boolean): void {
    this.#state = "closed";
    if (this.#rd !== undefined) {
      this.#rd.msgPieces = [];
      this.#giveChunks();
      this.#rd.msgWhole = undefined;
      this.#quarterHere();
    }
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.#emit({ type: "close", code, reason, wasClean });
  }

  // --- frames, as the parser reports them ---

  #frameStart(fin: boolean, rsv1: boolean, opcode: number, length: number) {
    const rd = this.#rd!;
    rd.frameOpcode = opcode;
    rd.frameFin = fin;
    rd.frameLength = length;
    if (opcode >= 8) {
      rd.controlLen = 0;
      return;
    }
    if (opcode === OPCODE.Continuation) {
      if (rd.msgOpcode === 0) {
        throw new WsError(CLOSE.ProtocolError, "Continuation with no message");
      }
    } else {
      if (rd.msgOpcode !== 0) {
        throw new WsError(
          CLOSE.ProtocolError,
          "New message before the last one ended",
        );
      }
      rd.msgOpcode = opcode;
      rd.msgCompressed = rsv1;
      rd.msgWireBytes = 0;
      rd.msgBytes = 0;
      if (opcode === OPCODE.Text) (rd.text ??= new Utf8Text()).reset();
      if (rsv1) this.#inflater!.begin(this.#limits.wsMaxMessageBytes);
    }
    rd.msgWireBytes += length;
    const limit = this.#limits.wsMaxMessageBytes;
    // Compressed, the limit is on the inflated message (the inflater stops
    // there); its deflated bytes may be what deflate makes of that many.
    if (
      rd.msgWireBytes > limit &&
      (!rd.msgCompressed ||
        rd.msgWireBytes > maxDeflatedBytes(limit))
    ) {
      throw new WsError(
        CLOSE.MessageTooBig,
        rd.msgCompressed
          ? `Compressed message over the ${
            maxDeflatedBytes(limit)
          }-byte limit on the wire`
          : `Message over the ${limit}-byte limit`,
      );
    }
    // A big message's buffer from its header, when there is room for it
    // early: the read after a header that came alone goes straight in.
    if (!rd.msgCompressed && rd.msgWhole === undefined) {
      rd.msgWhole = this.#presize(0);
    }
  }

  #framePayload(bytes: Uint8Array): void {
    const rd = this.#rd!;
    if (rd.frameOpcode >= 8) {
      (rd.control ??= new Uint8Array(MAX_CONTROL_PAYLOAD)).set(
        bytes,
        rd.controlLen,
      );
      rd.controlLen += bytes.length;
      return;
    }
    const isText = rd.msgOpcode === OPCODE.Text;
    if (rd.msgCompressed) {
      const out = isText ? [] : rd.msgPieces;
      const before = out.length;
      rd.msgBytes += this.#inflater!.write(bytes, out);
      if (isText) {
        for (let i = before; i < out.length; i++) this.#addText(out[i]);
      }
    } else if (isText) {
      this.#addText(bytes);
    } else {
      // The piece that brings a big message to a quarter goes straight
      // into its whole buffer: no slice of it that is copied again.
      const whole = rd.msgWhole ?? this.#presize(bytes.length);
      if (whole !== undefined) whole.set(bytes, rd.msgBytes);
      else if (this.#presizable()) this.#keepPooled(bytes);
      else rd.msgPieces.push(bytes.slice());
      rd.msgBytes += bytes.length;
      if (rd.early !== 0 && rd.msgBytes * 4 >= rd.early) {
        this.#quarterHere();
      }
    }
  }

  /** The frame is a one-frame binary message big enough to be presized (uncompressed: the caller checks). */
  #presizable(): boolean {
    const rd = this.#rd!;
    return rd.frameFin && rd.frameOpcode === OPCODE.Binary &&
      rd.frameLength >= PRESIZE_MIN_BYTES;
  }

  /**
   * A piece of a message that will be copied into its whole buffer once
   * presized: kept in pooled buffers meanwhile, not in a slice of its own.
   */
  #keepPooled(bytes: Uint8Array): void {
    const rd = this.#rd!;
    const chunks = rd.msgChunks ??= [];
    for (let from = 0; from < bytes.length;) {
      let chunk = chunks[chunks.length - 1];
      if (chunk === undefined || rd.chunkUsed === chunk.length) {
        chunks.push(chunk = BIG_BUFFERS.take());
        rd.chunkUsed = 0;
      }
      const at = rd.chunkUsed;
      const n = Math.min(chunk.length - at, bytes.length - from);
      chunk.set(
        new Uint8Array(bytes.buffer, bytes.byteOffset + from, n),
        at,
      );
      rd.msgPieces.push(new Uint8Array(chunk.buffer, at, n));
      rd.chunkUsed = at + n;
      from += n;
    }
  }

  #giveChunks(): void {
    const rd = this.#rd!;
    const chunks = rd.msgChunks;
    if (chunks === undefined) return;
    for (const chunk of chunks) BIG_BUFFERS.give(chunk);
    rd.msgChunks = undefined;
    rd.chunkUsed = 0;
  }

  /**
   * A one-frame binary message arriving over many reads: once a quarter of
   * it is here (with the `incoming` bytes being delivered), the pieces so
   * far are copied into one buffer of its announced size, returned, and
   * the rest goes there (one copy of each byte, not a slice and then a
   * join). Not sooner, so a client that announces a big frame and sends
   * little never makes us hold more than four times what it sent; unless
   * the messages presized early over every session leave room under
   * EARLY_PRESIZE_BYTES: then at once, and it counts there until its
   * quarter is here.
   */
  #presize(incoming: number): Uint8Array | undefined {
    const rd = this.#rd!;
    if (!this.#presizable()) return undefined;
    const length = rd.frameLength;
    if ((rd.msgBytes + incoming) * 4 < length) {
      if (earlyPresized + length > EARLY_PRESIZE_BYTES) return undefined;
      earlyPresized += length;
      rd.early = length;
    }
    const whole = new Uint8Array(length);
    let off = 0;
    for (const piece of rd.msgPieces) {
      whole.set(piece, off);
      off += piece.length;
    }
    rd.msgPieces = [];
    this.#giveChunks();
    return rd.msgWhole = whole;
  }

  /** An early presized message has its quarter (or is gone): no longer counted. */
  #quarterHere(): void {
    const rd = this.#rd;
    if (rd === undefined) return;
    earlyPresized -= rd.early;
    rd.early = 0;
  }

  /** Text is checked as it arrives, so bad UTF-8 fails at once (1007). */
  #addText(bytes: Uint8Array): void {
    if (!this.#rd!.text!.write(bytes)) {
      throw new WsError(CLOSE.InvalidPayload, "Text message is not UTF-8");
    }
  }

  /** Returns true to stop the parser (the connection is closed). */
  #frameEnd(): boolean {
    const rd = this.#rd!;
    const opcode = rd.frameOpcode;
    if (opcode >= 8) return this.#controlEnd(opcode);
    if (!rd.frameFin) return false;
    const isText = rd.msgOpcode === OPCODE.Text;
    if (rd.msgCompressed) {
      const out = isText ? [] : rd.msgPieces;
      const before = out.length;
      rd.msgBytes += this.#inflater!.end(out);
      if (isText) {
        for (let i = before; i < out.length; i++) this.#addText(out[i]);
      }
    }
    rd.msgOpcode = 0;
    if (isText) {
      const data = rd.text!.finish();
      if (data === undefined) {
        throw new WsError(
          CLOSE.InvalidPayload,
          "Text message ends inside a UTF-8 sequence",
        );
      }
      this.#emit(data);
    } else {
      const data = rd.msgWhole ??
        joinBytes(rd.msgPieces, rd.msgBytes);
      rd.msgPieces = [];
      rd.msgWhole = undefined;
      noteMessageBuffer(data.length);
      this.#emit(data);
    }
    return this.#state === "closed";
  }

  #controlEnd(opcode: number): boolean {
    const rd = this.#rd!;
    const payload = rd.control?.slice(0, rd.controlLen) ??
      new Uint8Array(0);
    if (opcode === OPCODE.Ping) {
      // RFC 6455 §5.5.3: a pong carries the ping's payload. None once we
      // sent a close: nothing follows a close frame.
      if (this.#state === "open") {
        this.#enqueue(encodeFrame(OPCODE.Pong, payload));
      }
      this.#emit({ type: "ping", data: payload });
    } else if (opcode === OPCODE.Pong) {
      this.#emit({ type: "pong", data: payload });
    } else {
      const { code, reason } = parseClosePayload(payload);
      if (this.#state === "open") {
        // §5.5.1: answer with a close, echoing the code; 1000 for none.
        this.#enqueue(
          encodeCloseFrame(
            code === CLOSE.NoStatus ? CLOSE.Normal : code,
            truncateReason(reason),
          ),
        );
      }
      this.#closeWith(code, reason, true);
    }
    return this.#state === "closed";
  }
}

/** What a {@link WsSession} keeps for the frame parser, made when first needed. */
class MessageReader {
  readonly parser: FrameParser;
  readonly sink: FrameSink;

  // The frame being read.
  frameOpcode = 0;
  frameFin = false;
  frameLength = 0;
  /** The payload of a control frame (at most 125 bytes) as it arrives. */
  // Made at the first control frame: an idle socket that is never pinged
  // keeps no 125 bytes (and their ArrayBuffer) for it.
  control: Uint8Array | undefined;
  controlLen = 0;

  // The message being read: opcode of its first frame (0: none yet).
  msgOpcode = 0;
  msgCompressed = false;
  msgWireBytes = 0;
  /** A binary message's payload so far (copies: the read buffer is reused). */
  msgPieces: Uint8Array[] = [];
  /**
   * Pooled buffers holding the pieces of a big one-frame binary message
   * until it is presized (then copied out and given back); the last one
   * is filled up to `chunkUsed`.
   */
  msgChunks: Uint8Array[] | undefined;
  chunkUsed = 0;
  /** Or the whole of a one-frame binary message, filled as it arrives. */
  msgWhole: Uint8Array | undefined;
  msgBytes = 0;
  /** The whole buffer's length while it counts in `earlyPresized`; 0 otherwise. */
  early = 0;
  /** A text message, checked and decoded as it arrives. */
  /** Made for the first text message the parser reads. */
  text: Utf8Text | undefined;

  constructor(parser: FrameParser, sink: FrameSink) {
    this.parser = parser;
    this.sink = sink;
  }
}

/** `reason` cut to at most 123 bytes of UTF-8, on a character boundary. */
function truncateReason(reason: string): string {
  if (reason.length * 3 <= MAX_CLOSE_REASON_BYTES) return reason;
  // encodeInto() stops before a character that would not fit whole.
  const buf = new Uint8Array(MAX_CLOSE_REASON_BYTES);
  const { written } = encoder.encodeInto(reason, buf);
  return decoder.decode(buf.subarray(0, written));
}

function releaseOut(buf: Uint8Array): void {
  outPool.give(buf);
}

/** A pooled output buffer, written: back to its pool (by its size). */
function releaseBuffer(buf: Uint8Array): void {
  const len = buf.length;
  if (len === OUT_BUFFER_BYTES) releaseOut(buf);
  else if (len === BIG_BUFFERS.size) BIG_BUFFERS.give(buf);
  else FRAME_BUFFERS.give(buf);
}

/**
 * Unmasks a short text payload in place (`len` bytes at `start`, at most
 * SHORT_TEXT_BYTES) and returns it as a string: ASCII is made from its
 * char codes, collected as it is unmasked (no view, no decoder call);
 * other text is checked as UTF-8 (1007 if it is not), then decoded.
 */
function shortText(
  bytes: Uint8Array,
  start: number,
  len: number,
  m0: number,
  m1: number,
  m2: number,
  m3: number,
): string {
  const codes = CODES;
  if (codes.length !== len) codes.length = len;
  let high = 0;
  let j = 0;
  for (let i = start; j + 4 <= len; i += 4, j += 4) {
    const a = bytes[i] ^ m0;
    const b = bytes[i + 1] ^ m1;
    const c = bytes[i + 2] ^ m2;
    const d = bytes[i + 3] ^ m3;
    bytes[i] = codes[j] = a;
    bytes[i + 1] = codes[j + 1] = b;
    bytes[i + 2] = codes[j + 2] = c;
    bytes[i + 3] = codes[j + 3] = d;
    high |= a | b | c | d;
  }
  if (j < len) high |= bytes[start + j] = codes[j] = bytes[start + j] ^ m0;
  if (j + 1 < len) {
    high |= bytes[start + j + 1] = codes[j + 1] = bytes[start + j + 1] ^ m1;
  }
  if (j + 2 < len) {
    high |= bytes[start + j + 2] = codes[j + 2] = bytes[start + j + 2] ^ m2;
  }
  if (high < 0x80) return String.fromCharCode.apply(null, codes);
  return checkedText(bytes, start, len, high);
}

/** Unmasked text payload `bytes[start, start + len)`, checked as UTF-8 unless `high` (its bytes ORed) says ASCII. */
function checkedText(
  bytes: Uint8Array,
  start: number,
  len: number,
  high: number,
): string {
  if (len === 0) return "";
  // A view made directly: subarray() looks up a species constructor.
  const payload = new Uint8Array(bytes.buffer, bytes.byteOffset + start, len);
  if (high >= 0x80 && !isUtf8(payload)) {
    throw new WsError(CLOSE.InvalidPayload, "Text message is not UTF-8");
  }
  return decoder.decode(payload);
}
