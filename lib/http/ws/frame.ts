/**
 * WebSocket frames (RFC 6455 §5): an incremental parser for client frames
 * and an encoder for server frames. No I/O here: the parser takes bytes as
 * they were read, in pieces split anywhere, and reports frames to a
 * {@link FrameSink}; a bad frame throws a {@link WsError} naming the close
 * code to send.
 */
import { unmask } from "./unmask.ts";
import { isUtf8 } from "./utf8.ts";

/** Frame opcodes (RFC 6455 §5.2); every other value is refused with 1002. */
export const OPCODE = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** Close codes this server sends or reports (RFC 6455 §7.4.1). */
export const CLOSE = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** Reported when a close frame had no code; never sent. */
  NoStatus: 1005,
  /** Reported when the connection ended without a close frame; never sent. */
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
} as const;

/** A failure that ends the connection with close `code` (1002, 1007, 1009...). */
export class WsError extends Error {
  override name = "WsError";
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** Largest control frame payload (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** Largest close reason: a control payload less the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

const FIN = 0x80;
const RSV1 = 0x40;
const RSV2_RSV3 = 0x30;
const OPCODE_BITS = 0x0f;
const MASK_BIT = 0x80;
const LENGTH_BITS = 0x7f;
const LENGTH_16 = 126;
const LENGTH_64 = 127;
const TWO_32 = 2 ** 32;

/** 1 for the opcodes RFC 6455 defines. */
const KNOWN_OPCODE = new Uint8Array(16);
for (const op of Object.values(OPCODE)) KNOWN_OPCODE[op] = 1;

/** What the parser reports, in order: head, payload pieces, end; then the next frame. */
export interface FrameSink {
  /** A frame's header was read; `length` is its payload size, already within limits. */
  frameStart(fin: boolean, rsv1: boolean, opcode: number, length: number): void;
  /**
   * Unmasked payload bytes of the current frame, as they arrive. A view into
   * the caller's buffer: copy what must outlive the call.
   */
  framePayload(bytes: Uint8Array): void;
  /** The current frame's payload is complete. True stops `parse()` here. */
  frameEnd(): boolean;
}

export interface FrameParserOptions {
  /** Largest frame payload, in bytes. Over: 1009, refused from the header. */
  readonly maxFrameBytes: number;
  /**
   * Largest payload of a frame of a compressed message (RSV1 on its first
   * frame); `maxFrameBytes` when not given. Over: 1009, from the header.
   */
  readonly maxCompressedFrameBytes?: number;
  /** Refuse unmasked frames (1002), as a server must (RFC 6455 §5.1). */
  readonly requireMask: boolean;
  /** permessage-deflate was negotiated: RSV1 may mark a message's first frame. */
  readonly allowRsv1: boolean;
}

/**
 * Reads client frames from bytes split at any point. Each `parse()` call
 * takes the next bytes read from the socket and unmasks payloads in place,
 * so the caller's buffer is changed. Throws {@link WsError} on the first
 * byte that breaks the protocol, before any payload of a refused frame is
 * buffered.
 */
export class FrameParser {
  readonly #maxFrameBytes: number;
  readonly #maxCompressedFrameBytes: number;
  readonly #requireMask: boolean;
  readonly #allowRsv1: boolean;
  /** False while reading a header, true while reading its payload. */
  #inPayload = false;
  /** The last text or binary frame had RSV1: its continuations are compressed too. */
  #compressed = false;
  /**
   * Header bytes gathered so far when a header is split across reads;
   * made at the first such header: most sockets never need it, and a
   * parser holds no buffer of its own while it waits.
   */
  #head: Uint8Array | undefined;
  #headLen = 0;
  /** Payload bytes of the current frame not yet seen. */
  #left = 0;
  /** Mask key of the current frame, its first byte lowest (a number: no 4-byte buffer per socket). */
  #maskKey = 0;
  #masked = false;
  /** Offset in the mask of the next payload byte. */
  #maskPhase = 0;

  constructor(opts: FrameParserOptions) {
    this.#maxFrameBytes = opts.maxFrameBytes;
    this.#maxCompressedFrameBytes = opts.maxCompressedFrameBytes ??
      opts.maxFrameBytes;
    this.#requireMask = opts.requireMask;
    this.#allowRsv1 = opts.allowRsv1;
  }

  /** True between frames: no header or payload bytes are pending. */
  get idle(): boolean {
    return !this.#inPayload && this.#headLen === 0;
  }

  /** Payload bytes of the current frame not yet seen; 0 between frames. */
  get payloadLeft(): number {
    return this.#inPayload ? this.#left : 0;
  }

  /**
   * Takes `bytes` as the next payload bytes of the current frame, read by
   * the caller straight to where they belong (at most `payloadLeft`):
   * unmasks them in place and calls `frameEnd` if they end the frame, but
   * not `framePayload`. Throws RangeError past the frame's payload.
   */
  parsePayloadInPlace(bytes: Uint8Array, sink: FrameSink): void {
    const n = bytes.length;
    if (!this.#inPayload || n > this.#left) {
      throw new RangeError("Bytes past the current frame's payload");
    }
    if (this.#masked) {
      unmask(bytes, maskBytes(this.#maskKey), this.#maskPhase);
      this.#maskPhase = (this.#maskPhase + n) & 3;
    }
    this.#left -= n;
    if (this.#left === 0) this.#endFrame(sink);
  }

  /** Parses `bytes` (mutated: payloads are unmasked in place) into `sink` calls. */
  parse(bytes: Uint8Array, sink: FrameSink): void {
    let off = 0;
    const end = bytes.length;
    while (off < end) {
      if (!this.#inPayload) {
        off = this.#readHead(bytes, off, end, sink);
        if (off < 0) return;
        continue;
      }
      const n = Math.min(this.#left, end - off);
      const piece = bytes.subarray(off, off + n);
      if (this.#masked) {
        unmask(piece, maskBytes(this.#maskKey), this.#maskPhase);
        this.#maskPhase = (this.#maskPhase + n) & 3;
      }
      off += n;
      this.#left -= n;
      sink.framePayload(piece);
      if (this.#left === 0 && this.#endFrame(sink)) return;
    }
  }

  /** Reads header bytes from `off`; returns the offset after what it used, -1 to stop. */
  #readHead(
    bytes: Uint8Array,
    off: number,
    end: number,
    sink: FrameSink,
  ): number {
    let src = bytes;
    let at = off;
    let next: number;
    if (
      this.#headLen === 0 && end - off >= 2 &&
      end - off >= headSize(bytes, off)
    ) {
      // The common case: the whole header is in this read.
      this.#checkFirstTwo(bytes[off], bytes[off + 1]);
      next = off + headSize(bytes, off);
    } else {
      // A header split across reads: gather it byte by byte. The first two
      // bytes are checked as soon as they are here, not when the rest comes.
      const head = this.#head ??= new Uint8Array(MAX_HEAD_BYTES);
      while (off < end) {
        head[this.#headLen++] = bytes[off++];
        if (this.#headLen === 2) this.#checkFirstTwo(head[0], head[1]);
        if (this.#headLen >= 2 && this.#headLen === headSize(head)) break;
      }
      if (this.#headLen < 2 || this.#headLen < headSize(head)) return off;
      src = head;
      at = 0;
      next = off;
      this.#headLen = 0;
    }
    const b0 = src[at];
    const b1 = src[at + 1];
    let length = b1 & LENGTH_BITS;
    let p = at + 2;
    if (length === LENGTH_16) {
      length = (src[p] << 8) | src[p + 1];
      p += 2;
    } else if (length === LENGTH_64) {
      const hi = readUint32(src, p);
      // RFC 6455 §5.2: the most significant bit MUST be 0. A length of 2^63
      // is a probe for sign bugs; refuse it as malformed, not as too big.
      if (hi >= 0x80000000) {
        throw new WsError(
          CLOSE.ProtocolError,
          "64-bit frame length has its most significant bit set",
        );
      }
      length = hi * TWO_32 + readUint32(src, p + 4);
      p += 8;
    }
    // Non-minimal length encodings (126 for a 5-byte payload) are accepted:
    // RFC 6455 binds the sender, and no length here can be read two ways.
    const opcode = b0 & OPCODE_BITS;
    if (opcode === OPCODE.Text || opcode === OPCODE.Binary) {
      this.#compressed = (b0 & RSV1) !== 0;
    }
    // A compressed frame is deflated bytes: data that does not compress
    // comes out a little bigger than it goes in.
    if (this.#compressed && opcode < 8) {
      if (length > this.#maxCompressedFrameBytes) {
        throw new WsError(
          CLOSE.MessageTooBig,
          `Compressed frame of ${length} bytes is over the ${this.#maxCompressedFrameBytes}-byte limit`,
        );
      }
    } else if (length > this.#maxFrameBytes) {
      throw new WsError(
        CLOSE.MessageTooBig,
        `Frame of ${length} bytes is over the ${this.#maxFrameBytes}-byte limit`,
      );
    }
    this.#masked = (b1 & MASK_BIT) !== 0;
    if (this.#masked) {
      this.#maskKey = src[p] | (src[p + 1] << 8) | (src[p + 2] << 16) |
        (src[p + 3] << 24);
      this.#maskPhase = 0;
    }
    this.#left = length;
    this.#inPayload = true;
    sink.frameStart((b0 & FIN) !== 0, (b0 & RSV1) !== 0, opcode, length);
    if (length === 0 && this.#endFrame(sink)) return -1;
    return next;
  }

  /** Everything the first two header bytes can refuse, before more is read. */
  #checkFirstTwo(b0: number, b1: number): void {
    const opcode = b0 & OPCODE_BITS;
    if (KNOWN_OPCODE[opcode] === 0) {
      throw new WsError(CLOSE.ProtocolError, `Unknown opcode ${opcode}`);
    }
    if ((b0 & RSV2_RSV3) !== 0) {
      throw new WsError(CLOSE.ProtocolError, "Reserved bit RSV2 or RSV3 set");
    }
    // RFC 7692 §6.1: RSV1 marks a compressed message's first frame only.
    if (
      (b0 & RSV1) !== 0 &&
      (!this.#allowRsv1 || opcode === OPCODE.Continuation || opcode >= 8)
    ) {
      throw new WsError(CLOSE.ProtocolError, "Reserved bit RSV1 set");
    }
    if (opcode >= 8) {
      if ((b0 & FIN) === 0) {
        throw new WsError(CLOSE.ProtocolError, "Fragmented control frame");
      }
      if ((b1 & LENGTH_BITS) > MAX_CONTROL_PAYLOAD) {
        throw new WsError(
          CLOSE.ProtocolError,
          "Control frame payload over 125 bytes",
        );
      }
    }
    if (this.#requireMask && (b1 & MASK_BIT) === 0) {
      throw new WsError(CLOSE.ProtocolError, "Client frame is not masked");
    }
  }

  #endFrame(sink: FrameSink): boolean {
    this.#inPayload = false;
    return sink.frameEnd();
  }
}

/** The largest frame header: 2 bytes, a 64-bit length, a mask key. */
const MAX_HEAD_BYTES = 14;
/** The mask key being applied, as the bytes `unmask()` takes; shared, filled per call. */
const MASK = new Uint8Array(4);

/** `key` (first byte lowest) in the shared MASK. */
function maskBytes(key: number): Uint8Array {
  MASK[0] = key;
  MASK[1] = key >>> 8;
  MASK[2] = key >>> 16;
  MASK[3] = key >>> 24;
  return MASK;
}

/** Header size from its first two bytes at `at` (which must exist). */
function headSize(b: Uint8Array, at = 0): number {
  const len7 = b[at + 1] & LENGTH_BITS;
  const ext = len7 === LENGTH_16 ? 2 : len7 === LENGTH_64 ? 8 : 0;
  return 2 + ext + ((b[at + 1] & MASK_BIT) !== 0 ? 4 : 0);
}

function readUint32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) >>> 0) + ((b[p + 1] << 16) | (b[p + 2] << 8) |
    b[p + 3]);
}

/** Header bytes for a server frame with a payload of `length` bytes. */
export function frameHeadSize(length: number): number {
  return length < LENGTH_16 ? 2 : length <= 0xffff ? 4 : 10;
}

/**
 * Writes an unmasked frame header into `out` at `off`; returns the offset
 * after it. The caller sized `out` with {@link frameHeadSize}.
 */
export function writeFrameHead(
  out: Uint8Array,
  off: number,
  opcode: number,
  length: number,
  fin = true,
  rsv1 = false,
): number {
  out[off] = (fin ? FIN : 0) | (rsv1 ? RSV1 : 0) | opcode;
  if (length < LENGTH_16) {
    out[off + 1] = length;
    return off + 2;
  }
  if (length <= 0xffff) {
    out[off + 1] = LENGTH_16;
    out[off + 2] = length >>> 8;
    out[off + 3] = length & 0xff;
    return off + 4;
  }
  out[off + 1] = LENGTH_64;
  const hi = Math.floor(length / TWO_32);
  const lo = length >>> 0;
  out[off + 2] = hi >>> 24;
  out[off + 3] = (hi >>> 16) & 0xff;
  out[off + 4] = (hi >>> 8) & 0xff;
  out[off + 5] = hi & 0xff;
  out[off + 6] = lo >>> 24;
  out[off + 7] = (lo >>> 16) & 0xff;
  out[off + 8] = (lo >>> 8) & 0xff;
  out[off + 9] = lo & 0xff;
  return off + 10;
}

/** One unmasked server frame: header and a copy of `payload`. */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
  rsv1 = false,
): Uint8Array {
  const out = new Uint8Array(frameHeadSize(payload.length) + payload.length);
  out.set(payload, writeFrameHead(out, 0, opcode, payload.length, fin, rsv1));
  return out;
}

const encoder = new TextEncoder();
/** Up to this many UTF-16 units, text gets room for 3 bytes each at once. */
const SHORT_TEXT_UNITS = 1024;

/** One unmasked text frame for `text`, encoded to UTF-8 once. */
export function encodeTextFrame(text: string): Uint8Array {
  // Encode after room for the largest header, then put the real header
  // just before the payload: one allocation. Long text is tried
  // at one byte per unit (most text is ASCII) before encoding it apart.
  const room = text.length <= SHORT_TEXT_UNITS ? text.length * 3 : text.length;
  const out = new Uint8Array(10 + room);
  const { read, written } = encoder.encodeInto(text, out.subarray(10));
  if (read < text.length) return encodeFrame(OPCODE.Text, encoder.encode(text));
  const start = 10 - frameHeadSize(written);
  writeFrameHead(out, start, OPCODE.Text, written);
  return out.subarray(start, 10 + written);
}

/**
 * True for close codes a peer may send (RFC 6455 §7.4): 1000-1003,
 * 1007-1014 (1012-1014 are IANA-registered since), and 3000-4999 for
 * libraries and applications. 1004-1006 and 1015 are reserved; 1005 and
 * 1006 exist only to report a missing code or a lost connection.
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** A close frame's meaning. */
export interface ClosePayload {
  /** The code sent, or 1005 when the frame had none. */
  readonly code: number;
  readonly reason: string;
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Reads a close frame's payload. A 1-byte payload or an invalid code: 1002;
 * a reason that is not UTF-8: 1007 (RFC 6455 §5.5.1, §7.4).
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload {
  if (payload.length === 0) return { code: CLOSE.NoStatus, reason: "" };
  if (payload.length === 1) {
    throw new WsError(CLOSE.ProtocolError, "Close frame of 1 byte");
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) {
    throw new WsError(CLOSE.ProtocolError, `Invalid close code ${code}`);
  }
  const reasonBytes = payload.subarray(2);
  if (!isUtf8(reasonBytes)) {
    throw new WsError(CLOSE.InvalidPayload, "Close reason is not UTF-8");
  }
  return { code, reason: decoder.decode(reasonBytes) };
}

/**
 * A close frame with `code` and `reason`. Throws RangeError for a code a
 * peer may not send or a reason over 123 bytes of UTF-8; `code` undefined
 * sends an empty close frame.
 */
export function encodeCloseFrame(
  code: number | undefined,
  reason = "",
): Uint8Array {
  if (code === undefined) return encodeFrame(OPCODE.Close, new Uint8Array(0));
  if (!isValidCloseCode(code)) {
    throw new RangeError(`Close code ${code} may not be sent`);
  }
  const text = encoder.encode(reason);
  if (text.length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `Close reason is ${text.length} bytes; at most ${MAX_CLOSE_REASON_BYTES}`,
    );
  }
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return encodeFrame(OPCODE.Close, payload);
}
