/**
 * HTTP/2 frames (RFC 9113 §4, §6): bytes to typed frames and back. No I/O.
 * The parser checks what a frame alone can tell (length, stream 0 or not,
 * padding, setting values) and throws an {@link H2Error} naming the RFC's
 * error code; rules that need stream state are the session's.
 */
import type { OutBuffer } from "../response.ts";

/** The 9-byte frame header: length (24), type (8), flags (8), R + stream id (32). */
export const FRAME_HEADER_BYTES = 9;

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes (§7). */
export const ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const ERROR_NAMES = Object.keys(ERROR);

/** "PROTOCOL_ERROR" for 1; unknown codes as hex (§7: they are not errors). */
export function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** Setting identifiers (§6.5.2, RFC 8441, RFC 9218). */
export const SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
  NO_RFC7540_PRIORITIES: 0x9,
} as const;

/** Largest flow-control window and stream identifier: 2^31 - 1. */
export const MAX_WINDOW = 0x7fffffff;
export const MAX_STREAM_ID = 0x7fffffff;
/** Window and frame size every connection starts with (§6.5.2, §6.9.2). */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME = 16_384;
/** Largest SETTINGS_MAX_FRAME_SIZE allowed (§6.5.2). */
export const MAX_FRAME_LIMIT = 0xffffff;

/** What a client sends first, before its SETTINGS frame (§3.4). */
export const CLIENT_PREFACE: Uint8Array = new TextEncoder().encode(
  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
);

/**
 * A broken rule with its RFC 9113 error code. `streamId` 0 is a connection
 * error (§5.4.1: GOAWAY, then close); any other is a stream error
 * (§5.4.2: RST_STREAM on that stream only).
 */
export class H2Error extends Error {
  override name = "H2Error";
  constructor(
    readonly code: number,
    message: string,
    readonly streamId = 0,
  ) {
    super(message);
  }
}

function connectionError(code: number, message: string): H2Error {
  return new H2Error(code, message, 0);
}

/** A stream's priority as RFC 7540 sent it; parsed, checked, then ignored (§5.3.2). */
export interface Priority {
  readonly dependency: number;
  readonly exclusive: boolean;
  /** 1-256. */
  readonly weight: number;
}

export interface DataFrame {
  readonly type: typeof FRAME.DATA;
  readonly streamId: number;
  readonly endStream: boolean;
  /** The data without padding: a view into the parsed bytes. */
  readonly data: Uint8Array;
  /** Payload length with padding: what flow control counts (§6.9). */
  readonly flowLength: number;
}

export interface HeadersFrame {
  readonly type: typeof FRAME.HEADERS;
  readonly streamId: number;
  readonly endStream: boolean;
  readonly endHeaders: boolean;
  readonly priority: Priority | undefined;
  /** A header block fragment without padding: a view into the parsed bytes. */
  readonly fragment: Uint8Array;
}

export interface PriorityFrame {
  readonly type: typeof FRAME.PRIORITY;
  readonly streamId: number;
  readonly priority: Priority;
}

export interface RstStreamFrame {
  readonly type: typeof FRAME.RST_STREAM;
  readonly streamId: number;
  readonly code: number;
}

export interface SettingsFrame {
  readonly type: typeof FRAME.SETTINGS;
  readonly ack: boolean;
  /** [identifier, value] in the order sent; later ones win (§6.5.3). */
  readonly settings: readonly (readonly [number, number])[];
}

export interface PushPromiseFrame {
  readonly type: typeof FRAME.PUSH_PROMISE;
  readonly streamId: number;
  readonly endHeaders: boolean;
  readonly promisedStreamId: number;
  readonly fragment: Uint8Array;
}

export interface PingFrame {
  readonly type: typeof FRAME.PING;
  readonly ack: boolean;
  /** 8 opaque bytes, a view into the parsed bytes. */
  readonly data: Uint8Array;
}

export interface GoawayFrame {
  readonly type: typeof FRAME.GOAWAY;
  readonly lastStreamId: number;
  readonly code: number;
  readonly debug: Uint8Array;
}

export interface WindowUpdateFrame {
  readonly type: typeof FRAME.WINDOW_UPDATE;
  readonly streamId: number;
  readonly increment: number;
}

export interface ContinuationFrame {
  readonly type: typeof FRAME.CONTINUATION;
  readonly streamId: number;
  readonly endHeaders: boolean;
  readonly fragment: Uint8Array;
}

/** `type` of a frame RFC 9113 does not define; its own type is `frameType`. */
export const UNKNOWN_FRAME = -1;

/** A frame of a type RFC 9113 does not define: ignored (§4.1, §5.5). */
export interface UnknownFrame {
  readonly type: typeof UNKNOWN_FRAME;
  readonly frameType: number;
  readonly streamId: number;
  readonly flags: number;
  readonly payload: Uint8Array;
}

export type Frame =
  | DataFrame
  | HeadersFrame
  | PriorityFrame
  | RstStreamFrame
  | SettingsFrame
  | PushPromiseFrame
  | PingFrame
  | GoawayFrame
  | WindowUpdateFrame
  | ContinuationFrame
  | UnknownFrame;

/** Payload length of the frame whose header starts at `buf[at]` (9 bytes must be there). */
export function frameLength(buf: Uint8Array, at: number): number {
  return (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2];
}

function uint31(buf: Uint8Array, at: number): number {
  return ((buf[at] & 0x7f) << 24 | (buf[at + 1] << 16) | (buf[at + 2] << 8) |
    buf[at + 3]) >>> 0;
}

function uint32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) |
    buf[at + 3]) >>> 0;
}

/**
 * Parses the frame at `buf[at]`, or returns null if `buf[at..end)` does
 * not hold all of it yet. Its size is 9 + {@link frameLength}. A payload
 * longer than `maxFrameBytes` throws FRAME_SIZE_ERROR as soon as the 9
 * header bytes are in, so a caller never buffers it (§4.2).
 */
export function parseFrame(
  buf: Uint8Array,
  at: number,
  end: number,
  maxFrameBytes: number,
): Frame | null {
  if (end - at < FRAME_HEADER_BYTES) return null;
  const length = frameLength(buf, at);
  if (length > maxFrameBytes) {
    throw connectionError(
      ERROR.FRAME_SIZE_ERROR,
      `Frame of ${length} bytes is over SETTINGS_MAX_FRAME_SIZE`,
    );
  }
  if (end - at < FRAME_HEADER_BYTES + length) return null;
  const type = buf[at + 3];
  const flags = buf[at + 4];
  const streamId = uint31(buf, at + 5);
  const p = at + FRAME_HEADER_BYTES;
  const payload = buf.subarray(p, p + length);
  switch (type) {
    case FRAME.DATA: {
      if (streamId === 0) throw onStreamZero("DATA");
      const data = unpad(payload, flags, 0, "DATA");
      return {
        type,
        streamId,
        endStream: (flags & FLAG.END_STREAM) !== 0,
        data,
        flowLength: length,
      };
    }
    case FRAME.HEADERS: {
      if (streamId === 0) throw onStreamZero("HEADERS");
      const hasPriority = (flags & FLAG.PRIORITY) !== 0;
      const fragment = unpad(payload, flags, hasPriority ? 5 : 0, "HEADERS");
      let priority: Priority | undefined;
      if (hasPriority) {
        const f = fragment.byteOffset - payload.byteOffset - 5;
        priority = readPriority(payload, f);
      }
      return {
        type,
        streamId,
        endStream: (flags & FLAG.END_STREAM) !== 0,
        endHeaders: (flags & FLAG.END_HEADERS) !== 0,
        priority,
        fragment,
      };
    }
    case FRAME.PRIORITY:
      if (streamId === 0) throw onStreamZero("PRIORITY");
      if (length !== 5) {
        throw new H2Error(
          ERROR.FRAME_SIZE_ERROR,
          "PRIORITY frame is not 5 bytes",
          streamId,
        );
      }
      return { type, streamId, priority: readPriority(payload, 0) };
    case FRAME.RST_STREAM:
      if (streamId === 0) throw onStreamZero("RST_STREAM");
      if (length !== 4) throw badLength("RST_STREAM", 4);
      return { type, streamId, code: uint32(payload, 0) };
    case FRAME.SETTINGS:
      return parseSettings(payload, flags, streamId);
    case FRAME.PUSH_PROMISE: {
      if (streamId === 0) throw onStreamZero("PUSH_PROMISE");
      const rest = unpad(payload, flags, 4, "PUSH_PROMISE");
      return {
        type,
        streamId,
        endHeaders: (flags & FLAG.END_HEADERS) !== 0,
        promisedStreamId: uint31(
          payload,
          rest.byteOffset - payload.byteOffset - 4,
        ),
        fragment: rest,
      };
    }
    case FRAME.PING:
      if (streamId !== 0) throw offStreamZero("PING");
      if (length !== 8) throw badLength("PING", 8);
      return { type, ack: (flags & FLAG.ACK) !== 0, data: payload };
    case FRAME.GOAWAY:
      if (streamId !== 0) throw offStreamZero("GOAWAY");
      if (length < 8) {
        throw connectionError(
          ERROR.FRAME_SIZE_ERROR,
          "GOAWAY frame is shorter than 8 bytes",
        );
      }
      return {
        type,
        lastStreamId: uint31(payload, 0),
        code: uint32(payload, 4),
        debug: payload.subarray(8),
      };
    case FRAME.WINDOW_UPDATE: {
      if (length !== 4) throw badLength("WINDOW_UPDATE", 4);
      const increment = uint31(payload, 0);
      if (increment === 0) {
        // §6.9: a stream error on a stream, a connection error on stream 0.
        throw new H2Error(
          ERROR.PROTOCOL_ERROR,
          "WINDOW_UPDATE with an increment of 0",
          streamId,
        );
      }
      return { type, streamId, increment };
    }
    case FRAME.CONTINUATION:
      if (streamId === 0) throw onStreamZero("CONTINUATION");
      return {
        type,
        streamId,
        endHeaders: (flags & FLAG.END_HEADERS) !== 0,
        fragment: payload,
      };
    default:
      return { type: UNKNOWN_FRAME, frameType: type, streamId, flags, payload };
  }
}

/** The payload between the pad length byte, `fixed` bytes of fields, and the padding. */
function unpad(
  payload: Uint8Array,
  flags: number,
  fixed: number,
  what: string,
): Uint8Array {
  if ((flags & FLAG.PADDED) === 0) {
    if (payload.length < fixed) throw tooShort(what);
    return payload.subarray(fixed);
  }
  if (payload.length < 1 + fixed) throw tooShort(what);
  const pad = payload[0];
  // §6.1, §6.2: padding as long as the payload or longer is PROTOCOL_ERROR.
  if (pad > payload.length - 1 - fixed) {
    throw connectionError(
      ERROR.PROTOCOL_ERROR,
      `${what} padding is longer than the frame`,
    );
  }
  return payload.subarray(1 + fixed, payload.length - pad);
}

function readPriority(buf: Uint8Array, at: number): Priority {
  return {
    dependency: uint31(buf, at),
    exclusive: (buf[at] & 0x80) !== 0,
    weight: buf[at + 4] + 1,
  };
}

function parseSettings(
  payload: Uint8Array,
  flags: number,
  streamId: number,
): SettingsFrame {
  if (streamId !== 0) throw offStreamZero("SETTINGS");
  const ack = (flags & FLAG.ACK) !== 0;
  if (ack && payload.length !== 0) {
    throw connectionError(
      ERROR.FRAME_SIZE_ERROR,
      "SETTINGS ack with a payload",
    );
  }
  if (payload.length % 6 !== 0) {
    throw connectionError(
      ERROR.FRAME_SIZE_ERROR,
      "SETTINGS payload is not a multiple of 6 bytes",
    );
  }
  const settings: [number, number][] = [];
  for (let i = 0; i < payload.length; i += 6) {
    const id = (payload[i] << 8) | payload[i + 1];
    const value = uint32(payload, i + 2);
    checkSetting(id, value);
    settings.push([id, value]);
  }
  return { type: FRAME.SETTINGS, ack, settings };
}

function checkSetting(id: number, value: number): void {
  switch (id) {
    case SETTING.ENABLE_PUSH:
    case SETTING.ENABLE_CONNECT_PROTOCOL:
    case SETTING.NO_RFC7540_PRIORITIES:
      if (value > 1) {
        throw connectionError(
          ERROR.PROTOCOL_ERROR,
          `Setting 0x${id.toString(16)} is ${value}, not 0 or 1`,
        );
      }
      break;
    case SETTING.INITIAL_WINDOW_SIZE:
      if (value > MAX_WINDOW) {
        throw connectionError(
          ERROR.FLOW_CONTROL_ERROR,
          "SETTINGS_INITIAL_WINDOW_SIZE is over 2^31 - 1",
        );
      }
      break;
    case SETTING.MAX_FRAME_SIZE:
      if (value < DEFAULT_MAX_FRAME || value > MAX_FRAME_LIMIT) {
        throw connectionError(
          ERROR.PROTOCOL_ERROR,
          "SETTINGS_MAX_FRAME_SIZE is outside 16384 to 16777215",
        );
      }
      break;
  }
}

function onStreamZero(what: string): H2Error {
  return connectionError(ERROR.PROTOCOL_ERROR, `${what} frame on stream 0`);
}

function offStreamZero(what: string): H2Error {
  return connectionError(
    ERROR.PROTOCOL_ERROR,
    `${what} frame on a stream other than 0`,
  );
}

function badLength(what: string, bytes: number): H2Error {
  return connectionError(
    ERROR.FRAME_SIZE_ERROR,
    `${what} frame is not ${bytes} bytes`,
  );
}

function tooShort(what: string): H2Error {
  return connectionError(
    ERROR.FRAME_SIZE_ERROR,
    `${what} frame too short for its fields`,
  );
}

// Writing. The session's writers put frames straight into its OutBuffer;
// encodeFrame() builds any frame, padding included, for tests and clients.

/** Writes a frame header at `buf[at]`. */
export function putFrameHeader(
  buf: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  buf[at] = length >>> 16;
  buf[at + 1] = length >>> 8;
  buf[at + 2] = length;
  buf[at + 3] = type;
  buf[at + 4] = flags;
  putUint32(buf, at + 5, streamId);
}

function putUint32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
}

/** Queues a frame of `length` payload bytes and returns where its payload goes. */
function startFrame(
  out: OutBuffer,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): number {
  const buf = out.reserve(FRAME_HEADER_BYTES + length);
  putFrameHeader(buf, out.len, length, type, flags, streamId);
  out.len += FRAME_HEADER_BYTES + length;
  return out.len - length;
}

/** Queues a SETTINGS frame, or its ack when `settings` is empty and `ack` set. */
export function writeSettings(
  out: OutBuffer,
  settings: readonly (readonly [number, number])[],
  ack = false,
): void {
  let at = startFrame(
    out,
    settings.length * 6,
    FRAME.SETTINGS,
    ack ? FLAG.ACK : 0,
    0,
  );
  for (const [id, value] of settings) {
    out.buf[at] = id >>> 8;
    out.buf[at + 1] = id;
    putUint32(out.buf, at + 2, value);
    at += 6;
  }
}

/** Queues a PING (or its ack) carrying 8 bytes. */
export function writePing(
  out: OutBuffer,
  data: Uint8Array,
  ack: boolean,
): void {
  const at = startFrame(out, 8, FRAME.PING, ack ? FLAG.ACK : 0, 0);
  out.buf.set(data.subarray(0, 8), at);
}

export function writeGoaway(
  out: OutBuffer,
  lastStreamId: number,
  code: number,
  debug: Uint8Array = new Uint8Array(0),
): void {
  const at = startFrame(out, 8 + debug.length, FRAME.GOAWAY, 0, 0);
  putUint32(out.buf, at, lastStreamId);
  putUint32(out.buf, at + 4, code);
  out.buf.set(debug, at + 8);
}

export function writeRstStream(
  out: OutBuffer,
  streamId: number,
  code: number,
): void {
  const at = startFrame(out, 4, FRAME.RST_STREAM, 0, streamId); // may grow out.buf
  putUint32(out.buf, at, code);
}

export function writeWindowUpdate(
  out: OutBuffer,
  streamId: number,
  increment: number,
): void {
  const at = startFrame(out, 4, FRAME.WINDOW_UPDATE, 0, streamId);
  putUint32(out.buf, at, increment);
}

/** Queues `data[start..end)` as one DATA frame without padding. */
export function writeData(
  out: OutBuffer,
  streamId: number,
  data: Uint8Array,
  start: number,
  end: number,
  endStream: boolean,
): void {
  const n = end - start;
  const at = startFrame(
    out,
    n,
    FRAME.DATA,
    endStream ? FLAG.END_STREAM : 0,
    streamId,
  );
  const buf = out.buf;
  if (n > 48) buf.set(data.subarray(start, end), at);
  else for (let i = 0; i < n; i++) buf[at + i] = data[start + i];
}

/** A frame to encode; `padding` adds a pad length byte and that many zeros. */
export type FrameInit = Frame & { readonly padding?: number };

/** Any frame as bytes, padding and priority included: for tests and clients. */
export function encodeFrame(frame: FrameInit): Uint8Array {
  const parts: Uint8Array[] = [];
  let flags = 0;
  let streamId = 0;
  const padded = frame.padding !== undefined &&
    (frame.type === FRAME.DATA || frame.type === FRAME.HEADERS ||
      frame.type === FRAME.PUSH_PROMISE);
  switch (frame.type) {
    case FRAME.DATA: {
      const f = frame as DataFrame;
      streamId = f.streamId;
      if (f.endStream) flags |= FLAG.END_STREAM;
      parts.push(f.data);
      break;
    }
    case FRAME.HEADERS: {
      const f = frame as HeadersFrame;
      streamId = f.streamId;
      if (f.endStream) flags |= FLAG.END_STREAM;
      if (f.endHeaders) flags |= FLAG.END_HEADERS;
      if (f.priority !== undefined) {
        flags |= FLAG.PRIORITY;
        parts.push(priorityBytes(f.priority));
      }
      parts.push(f.fragment);
      break;
    }
    case FRAME.PRIORITY: {
      const f = frame as PriorityFrame;
      streamId = f.streamId;
      parts.push(priorityBytes(f.priority));
      break;
    }
    case FRAME.RST_STREAM: {
      const f = frame as RstStreamFrame;
      streamId = f.streamId;
      parts.push(uint32Bytes(f.code));
      break;
    }
    case FRAME.SETTINGS: {
      const f = frame as SettingsFrame;
      if (f.ack) flags |= FLAG.ACK;
      const bytes = new Uint8Array(f.settings.length * 6);
      f.settings.forEach(([id, value], i) => {
        bytes[i * 6] = id >>> 8;
        bytes[i * 6 + 1] = id;
        putUint32(bytes, i * 6 + 2, value);
      });
      parts.push(bytes);
      break;
    }
    case FRAME.PUSH_PROMISE: {
      const f = frame as PushPromiseFrame;
      streamId = f.streamId;
      if (f.endHeaders) flags |= FLAG.END_HEADERS;
      parts.push(uint32Bytes(f.promisedStreamId), f.fragment);
      break;
    }
    case FRAME.PING: {
      const f = frame as PingFrame;
      if (f.ack) flags |= FLAG.ACK;
      parts.push(f.data);
      break;
    }
    case FRAME.GOAWAY: {
      const f = frame as GoawayFrame;
      parts.push(uint32Bytes(f.lastStreamId), uint32Bytes(f.code), f.debug);
      break;
    }
    case FRAME.WINDOW_UPDATE: {
      const f = frame as WindowUpdateFrame;
      streamId = f.streamId;
      parts.push(uint32Bytes(f.increment));
      break;
    }
    case FRAME.CONTINUATION: {
      const f = frame as ContinuationFrame;
      streamId = f.streamId;
      if (f.endHeaders) flags |= FLAG.END_HEADERS;
      parts.push(f.fragment);
      break;
    }
    default: {
      const f = frame as UnknownFrame;
      streamId = f.streamId;
      flags = f.flags;
      parts.push(f.payload);
    }
  }
  if (padded) {
    flags |= FLAG.PADDED;
    parts.unshift(Uint8Array.of(frame.padding!));
    parts.push(new Uint8Array(frame.padding!));
  }
  const length = parts.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(FRAME_HEADER_BYTES + length);
  const type = frame.type === UNKNOWN_FRAME ? frame.frameType : frame.type;
  putFrameHeader(bytes, 0, length, type, flags, streamId);
  let at = FRAME_HEADER_BYTES;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}

function uint32Bytes(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  putUint32(bytes, 0, value);
  return bytes;
}

function priorityBytes(p: Priority): Uint8Array {
  const bytes = new Uint8Array(5);
  putUint32(bytes, 0, p.dependency | (p.exclusive ? 0x80000000 : 0));
  bytes[4] = p.weight - 1;
  return bytes;
}
