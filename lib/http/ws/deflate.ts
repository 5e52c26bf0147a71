/**
 * permessage-deflate (RFC 7692): one message in, one compressed payload
 * out, and back, synchronously. No I/O here.
 *
 * node:zlib's one-shot calls (`deflateRawSync`) make a fresh stream per
 * call, so they cannot keep the LZ77 window from one message to the next
 * (context takeover, §7.1.1), and its stream objects are asynchronous. So
 * this file drives the zlib handle under a node:zlib stream object
 * directly with `writeSync`, as node:zlib's own sync path does: one stream
 * per direction, kept across messages, fed and flushed with Z_SYNC_FLUSH.
 * Deno 2.9.6 (measured on a busy 2-core machine, 1 KiB of JSON): 3 µs per
 * message this way, 14 µs with `deflateRawSync`. If a Deno release drops
 * these internals, {@link deflateAvailable} turns false and the handshake
 * declines compression instead of failing.
 */
import zlib from "node:zlib";
import { CLOSE, WsError } from "./frame.ts";

/** Parameters agreed in the handshake (RFC 7692 §7.1). */
export interface DeflateParams {
  /** The server starts each message with an empty window. */
  readonly serverNoContextTakeover: boolean;
  /** The client starts each message with an empty window. */
  readonly clientNoContextTakeover: boolean;
  /** log2 of the server compressor's window, 8..15. */
  readonly serverMaxWindowBits: number;
  /** log2 of the client compressor's window, 8..15 (15 when not agreed). */
  readonly clientMaxWindowBits: number;
}

/** zlib's own default level: a fair ratio for the CPU. */
export const DEFAULT_DEFLATE_LEVEL = 6;
/**
 * Messages shorter than this go uncompressed by default: deflating them
 * costs more CPU than the bytes it saves (ws uses the same threshold).
 */
export const DEFAULT_DEFLATE_MIN_BYTES = 1024;

/**
 * The most bytes a compressor may send for a message of `n` bytes:
 * zlib's own bound for its output whatever its settings (`deflateBound()`
 * when the window or memory level is not the default, as a client may
 * choose), n/8 + n/256 + n/512 + 4 over `n`, plus 16 for the flushes
 * RFC 7692 §7.2.1 ends a message with. Data that does not compress
 * comes out bigger than it went in: at the default settings zlib adds 5
 * bytes per 16 KiB stored block, Python's `websockets` (memory level 5)
 * 5 per 2 KiB, about 0.25%; with a small window stored blocks cannot be
 * used and literals cost up to 9 bits, hence 1/8. Only a bound on the
 * wire: what a message inflates to is capped by `MessageInflater`.
 */
export function maxDeflatedBytes(n: number): number {
  return n + Math.floor(n / 8) + Math.floor(n / 256) + Math.floor(n / 512) +
    FLUSH_ALLOWANCE_BYTES;
}
/** zlib's own 4, a sync flush's empty stored block left in (5), an empty final block (1-2), rounded up. */
const FLUSH_ALLOWANCE_BYTES = 16;

/** The 4 bytes a sync flush ends with; stripped on send, put back on receive (§7.2.1, §7.2.2). */
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
const Z_SYNC_FLUSH = zlib.constants.Z_SYNC_FLUSH;
/** Output is gathered in pieces of at most this many bytes. */
const MAX_PIECE_BYTES = 64 * 1024;

/** The zlib handle under a node:zlib stream: the part of it used here. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

/** A node:zlib stream object's internals that this file relies on. */
interface ZlibInternals {
  _handle?: ZlibHandle;
  /** After `writeSync`: [output space left, input bytes left]. */
  _writeState?: Uint32Array;
  close(): void;
}

let available: boolean | undefined;

/** True when this Deno's node:zlib has the sync handle this file drives. */
export function deflateAvailable(): boolean {
  if (available === undefined) {
    try {
      new Pump("inflate", 15, 0).close();
      available = true;
    } catch {
      available = false;
    }
  }
  return available;
}

/**
 * One raw deflate or inflate stream, fed synchronously. `run()` stops as
 * soon as the output passes its cap, so a bomb is never inflated whole.
 */
class Pump {
  readonly #stream: ZlibInternals;
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  #error: string | undefined;
  /** Input the last `run()` left unread because the stream had ended (BFINAL). */
  leftover = 0;
  /** Nothing was fed since the stream was made or reset. */
  fresh = true;

  constructor(kind: "deflate" | "inflate", windowBits: number, level: number) {
    const stream =
      (kind === "deflate"
        ? zlib.createDeflateRaw({ windowBits, level })
        : zlib.createInflateRaw({ windowBits })) as unknown as ZlibInternals;
    const handle = stream._handle;
    const state = stream._writeState;
    if (
      typeof handle?.writeSync !== "function" ||
      !(state instanceof Uint32Array)
    ) {
      stream.close();
      throw new Error("node:zlib has no sync handle in this Deno");
    }
    this.#stream = stream;
    this.#handle = handle;
    this.#state = state;
    // Replaces node:zlib's handler, which would destroy the stream on a
    // later tick; here an error is read right after the call.
    handle.onerror = (message) => {
      this.#error = message;
    };
  }

  /**
   * Feeds `input` with a sync flush; pushes output pieces onto `out` and
   * returns their total size, or -1 once that would pass `maxBytes` (the
   * pump stops there). Throws {@link WsError} 1007 on corrupt input.
   */
  run(input: Uint8Array, out: Uint8Array[], maxBytes: number): number {
    let inOff = 0;
    let inLen = input.length;
    let total = 0;
    if (inLen > 0) this.fresh = false;
    for (;;) {
      // Room for one byte past the cap: filling it proves the cap was passed.
      const size = Math.min(
        MAX_PIECE_BYTES,
        Math.max(1024, inLen * 2),
        maxBytes - total + 1,
      );
      const piece = new Uint8Array(size);
      this.#handle.writeSync(Z_SYNC_FLUSH, input, inOff, inLen, piece, 0, size);
      if (this.#error !== undefined) {
        const message = this.#error;
        this.#error = undefined;
        throw new WsError(
          CLOSE.InvalidPayload,
          `Cannot inflate message: ${message}`,
        );
      }
      const outLeft = this.#state[0];
      const inLeft = this.#state[1];
      const produced = size - outLeft;
      if (produced > 0) {
        total += produced;
        if (total > maxBytes) return -1;
        out.push(produced === size ? piece : piece.subarray(0, produced));
      }
      inOff += inLen - inLeft;
      inLen = inLeft;
      // Output space left over means zlib took all it could: done. Input
      // left over too means the stream ended (BFINAL) before it.
      if (outLeft !== 0) {
        this.leftover = inLeft;
        return total;
      }
    }
  }

  /** The stream met a final block: it takes no more input until `reset()`. */
  get ended(): boolean {
    return this.leftover > 0;
  }

  reset(): void {
    this.#handle.reset();
    this.leftover = 0;
    this.fresh = true;
  }

  close(): void {
    this.#stream.close();
  }
}

/** Joins pieces; one piece comes back as it is. */
export function joinBytes(pieces: Uint8Array[], total: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of pieces) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * zlib's raw deflate has no 256-byte window (since zlib 1.2.9; node:zlib
 * runs 8 as 9). That is still safe for a peer that asked for 8: zlib never
 * emits a distance past the window size less 262, so 9 bits reach at most
 * 250 bytes back, inside a 256-byte window.
 */
function zlibWindowBits(bits: number): number {
  return Math.max(9, bits);
}

/** Compresses whole messages for sending. */
export class MessageDeflater {
  readonly #windowBits: number;
  readonly #level: number;
  readonly #noContextTakeover: boolean;
  #pump: Pump | undefined;

  /** `level` is zlib's 0..9; `noContextTakeover` empties the window after each message. */
  constructor(windowBits: number, noContextTakeover: boolean, level: number) {
    this.#windowBits = zlibWindowBits(windowBits);
    this.#noContextTakeover = noContextTakeover;
    this.#level = level;
  }

  /** The compressed payload of one message, without the 00 00 ff ff tail. */
  compress(data: Uint8Array): Uint8Array {
    // Made on first use: a socket that never sends a big message never
    // pays for a compressor's ~256 KiB of zlib state.
    const pump = this.#pump ??= new Pump(
      "deflate",
      this.#windowBits,
      this.#level,
    );
    const pieces: Uint8Array[] = [];
    const total = pump.run(data, pieces, Number.MAX_SAFE_INTEGER);
    if (this.#noContextTakeover) this.close();
    const out = joinBytes(pieces, total);
    // A sync flush always ends with the empty stored block's 00 00 ff ff.
    return out.subarray(0, out.length - TAIL.length);
  }

  /** Frees the zlib state; a later `compress()` makes it again. */
  close(): void {
    this.#pump?.close();
    this.#pump = undefined;
  }
}

/**
 * Inflates received messages piece by piece as frames arrive, never past
 * the size cap given to `begin()`.
 */
export class MessageInflater {
  readonly #windowBits: number;
  readonly #noContextTakeover: boolean;
  #pump: Pump | undefined;
  #total = 0;
  #maxBytes = 0;

  /** `noContextTakeover`: the peer empties its window after each message. */
  constructor(windowBits: number, noContextTakeover: boolean) {
    this.#windowBits = zlibWindowBits(windowBits);
    this.#noContextTakeover = noContextTakeover;
  }

  /** Starts a message whose inflated size may not pass `maxBytes` (over: 1009). */
  begin(maxBytes: number): void {
    this.#total = 0;
    this.#maxBytes = maxBytes;
  }

  /**
   * Inflates the next compressed bytes of the message, pushing what comes
   * out onto `out`; returns how many bytes that was. Throws WsError 1007
   * for corrupt data, 1009 past the cap (having inflated no further).
   */
  write(bytes: Uint8Array, out: Uint8Array[]): number {
    const pump = this.#pump ??= new Pump("inflate", this.#windowBits, 0);
    let input = bytes;
    let produced = 0;
    while (input.length > 0) {
      const n = pump.run(input, out, this.#maxBytes - this.#total);
      // Stop here: the rest of the bomb is never inflated.
      if (n < 0) throw this.#tooBig();
      this.#total += n;
      produced += n;
      if (!pump.ended) break;
      // A final block (BFINAL) ends zlib's stream; RFC 7692 §7.2.3.4 lets
      // a sender use one and go on (its example adds a 0x00 after it), so
      // what follows starts a fresh stream. That stream has an empty
      // window: a later reference into the old one fails (1007), never
      // silently. The loop ends: a fresh zlib stream with input and room
      // for output always reads some of it or fails.
      input = input.subarray(input.length - pump.leftover);
      pump.reset();
    }
    return produced;
  }

  /** The message's last frame came: pushes the last output onto `out`; returns its size. */
  end(out: Uint8Array[]): number {
    const pump = this.#pump;
    let n = 0;
    // Right after a final block was seen there is no block for the tail to
    // close; fed to the fresh stream it would start a bogus one.
    if (pump !== undefined && !pump.fresh) {
      n = pump.run(TAIL, out, this.#maxBytes - this.#total);
      if (n < 0) throw this.#tooBig();
      this.#total += n;
      // A stream whose final block ended exactly with the input is only
      // seen to have ended now, when it takes none of the tail.
      if (pump.ended) pump.reset();
    }
    if (this.#noContextTakeover) this.close();
    return n;
  }

  /** Frees the zlib state; the next message makes it again. */
  close(): void {
    this.#pump?.close();
    this.#pump = undefined;
  }

  #tooBig(): WsError {
    this.close();
    return new WsError(
      CLOSE.MessageTooBig,
      `Inflated message is over the ${this.#maxBytes}-byte limit`,
    );
  }
}
