/**
 * Server-side TLS over a plain TCP socket we accepted ourselves.
 *
 * Deno 2.9.6 has no server-side upgrade of a `Deno.TcpConn`, and closing a
 * `Deno.TlsConn` from `Deno.listenTls` waits for its handshake to end
 * (denoland/deno#14547): a client that connects and never sends a TLS hello
 * keeps its descriptor until it leaves, whatever the server does. So the
 * engine accepts plain TCP and runs the TLS session in `node:tls` over that
 * socket; closing the raw socket releases the descriptor at once, and the
 * handshake falls under the same deadline as a silent plain connection.
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import tls from "node:tls";
import type { RawConn, Socket } from "./socket.ts";

/** Decrypted bytes buffered before reading from the client pauses. */
const HIGH_WATER_BYTES = 64 * 1024;
/** Size of each read from the raw socket. */
const RAW_READ_BYTES = 16 * 1024;
/** How long a close waits for its TLS close_notify to be written. */
const CLOSE_NOTIFY_MS = 1000;

/** Certificate, key and protocols for {@link TlsSocket}; built once per server. */
export interface TlsSettings {
  readonly context: tls.SecureContext;
  /** ALPN protocols offered, in order of preference. */
  readonly alpnProtocols: readonly string[];
}

/**
 * Parses the PEM certificate chain and key once. Throws on a bad
 * certificate or key, so a server fails at start rather than per client.
 */
export function tlsSettings(
  cert: string,
  key: string,
  alpnProtocols: readonly string[] = ["http/1.1"],
): TlsSettings {
  return { context: tls.createSecureContext({ cert, key }), alpnProtocols };
}

/** A read from the raw socket already made, handed to the stream first. */
interface FirstRead {
  readonly done: Promise<number | null>;
  readonly buf: Uint8Array;
}

/**
 * The raw socket as a node stream, for `tls.TLSSocket` to run over.
 * `first` is a read made before the stream existed; it is delivered first.
 */
function rawStream(
  conn: RawConn,
  first: FirstRead | undefined,
  onBytes: (n: number) => void,
  onWritten: () => void,
): Duplex {
  let reading = false;
  // One buffer for every read; each push gets a copy of just what came
  // (TLS records are small: cheaper than a fresh 16 KiB buffer per read).
  let buf = first?.buf ?? new Uint8Array(RAW_READ_BYTES);
  const stream: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      let done: Promise<number | null>;
      if (first !== undefined) {
        ({ buf, done } = first); // already counted by its reader
        first = undefined;
      } else {
        done = conn.read(buf).then((n) => {
          if (n !== null) onBytes(n);
          return n;
        });
      }
      done.then((n) => {
        reading = false;
        stream.push(n === null ? null : buf.slice(0, n));
      }, (err) => stream.destroy(toDenoError(err)));
    },
    write(chunk: Uint8Array, _encoding, done) {
      writeAll(conn, chunk).then(() => {
        done();
        onWritten();
      }, (err) => {
        done(err);
        onWritten();
      });
    },
    final(done) {
      conn.closeWrite().then(() => done(), () => done());
    },
    destroy(err, done) {
      try {
        conn.close();
      } catch { /* closed */ }
      done(err);
    },
  });
  return stream;
}

async function writeAll(conn: RawConn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Node's socket errors as the Deno errors the engine treats as a hang-up. */
function toDenoError(err: unknown): Error {
  if (err instanceof Deno.errors.BadResource) return err;
  if (err instanceof Error && "code" in err) {
    const code = (err as { code?: string }).code;
    if (code === "ECONNRESET") {
      return new Deno.errors.ConnectionReset(err.message);
    }
    if (code === "EPIPE") return new Deno.errors.BrokenPipe(err.message);
  }
  if (err instanceof Error && err.name !== "Error") {
    // Deno's own errors (Interrupted, ConnectionReset...) pass as they are.
    if (Object.values(Deno.errors).some((E) => err instanceof E)) return err;
  }
  // A handshake that failed or a record that did not decrypt.
  return new Deno.errors.InvalidData(
    err instanceof Error ? err.message : String(err),
  );
}

/**
 * One server-side TLS session over an accepted TCP socket, with the read,
 * write and close calls the engine makes on a `Deno.Conn`. `close()` closes
 * the TCP socket itself, at once, handshake or not. The TLS session is set
 * up only once the client sends its first byte: a silent socket costs one
 * pending read, not a TLS session.
 */
export class TlsSocket implements Socket {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  readonly #raw: RawConn;
  readonly #settings: TlsSettings;
  #tls: tls.TLSSocket | undefined;
  /** The read that waits for the client's first byte. */
  #first: FirstRead | undefined;
  /** Decrypted bytes not yet read: chunks, and the offset in the first. */
  readonly #chunks: Uint8Array[] = [];
  #offset = 0;
  #buffered = 0;
  #paused = false;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  #secure = false;
  #writes = 0;
  /** Set while closing: the close_notify is out, close the socket. */
  #afterWrite: (() => void) | undefined;
  /** Bytes received from the client before decryption. */
  rawBytesIn = 0;

  constructor(raw: RawConn, settings: TlsSettings) {
    this.#raw = raw;
    this.#settings = settings;
    this.remoteAddr = raw.remoteAddr;
    this.localAddr = raw.localAddr;
  }

  /** True until the client sends a byte, even of its TLS hello. */
  get silent(): boolean {
    return this.rawBytesIn === 0;
  }

  /** The protocol ALPN settled on, or undefined before the handshake or without ALPN. */
  get alpnProtocol(): string | undefined {
    const p = this.#tls?.alpnProtocol;
    return typeof p === "string" ? p : undefined;
  }

  /** The TLS session, set up now if it was not yet. */
  #session(): tls.TLSSocket {
    if (this.#tls !== undefined) return this.#tls;
    const first = this.#first;
    this.#first = undefined;
    const socket = new tls.TLSSocket(
      rawStream(
        this.#raw,
        first,
        (n) => this.rawBytesIn += n,
        () => this.#afterWrite?.(),
      ),
      {
        isServer: true,
        secureContext: this.#settings.context,
        ALPNProtocols: [...this.#settings.alpnProtocols],
      },
    );
    this.#tls = socket;
    socket.on("secure", () => this.#secure = true);
    socket.on("data", (chunk: Buffer) => {
      const bytes = new Uint8Array(
        chunk.buffer,
        chunk.byteOffset,
        chunk.byteLength,
      );
      this.#chunks.push(bytes);
      this.#buffered += bytes.length;
      if (this.#buffered >= HIGH_WATER_BYTES && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      this.#wakeReader();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wakeReader();
    });
    socket.on("error", (err: unknown) => {
      this.#error ??= toDenoError(err);
      this.#wakeReader();
      this.#afterWrite?.();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wakeReader();
      this.#afterWrite?.();
    });
    return socket;
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(into: Uint8Array): Promise<number | null> {
    if (this.#tls === undefined) {
      if (this.#first === undefined) {
        const buf = new Uint8Array(RAW_READ_BYTES);
        const done = this.#raw.read(buf).then((n) => {
          if (n !== null) this.rawBytesIn += n;
          return n;
        });
        this.#first = { buf, done };
      }
      // Errors surface from the TLS session, which reads this again.
      await this.#first.done.catch(() => {});
      if (this.#closed) return null;
      this.#session();
    }
    while (this.#buffered === 0) {
      if (this.#closed) return null;
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((r) => this.#wake = r);
    }
    let n = 0;
    while (n < into.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.length - this.#offset, into.length - n);
      into.set(chunk.subarray(this.#offset, this.#offset + take), n);
      n += take;
      this.#offset += take;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#buffered -= n;
    if (this.#paused && this.#buffered < HIGH_WATER_BYTES / 2) {
      this.#paused = false;
      this.#tls!.resume();
    }
    return n;
  }

  /** Resolves once TLS has taken all of `bytes` (node holds them until then). */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource());
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const socket = this.#session();
    this.#writes++;
    return new Promise((resolve, reject) => {
      socket.write(bytes, (err?: Error | null) => {
        this.#writes--;
        if (err) reject(toDenoError(err));
        else resolve(bytes.length);
      });
    });
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const socket = this.#session();
    return new Promise((resolve) => socket.end(resolve));
  }

  /**
   * Closes the TCP socket now, whatever state the TLS session is in. An
   * established session with no write in flight first gets its close_notify
   * (so the client sees a clean end, not a truncation), within a second.
   */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource();
    this.#closed = true;
    this.#wakeReader();
    const socket = this.#tls;
    if (
      socket !== undefined && this.#secure && !this.#ended &&
      this.#error === undefined && this.#writes === 0
    ) {
      const timer = setTimeout(() => this.#closeRaw(), CLOSE_NOTIFY_MS);
      this.#afterWrite = () => {
        clearTimeout(timer);
        this.#closeRaw();
      };
      socket.end();
    } else {
      this.#closeRaw();
    }
  }

  #closeRaw(): void {
    this.#afterWrite = undefined;
    try {
      this.#raw.close();
    } catch { /* closed, or the peer reset it */ }
    this.#tls?.destroy();
  }

  setNoDelay(noDelay = true): void {
    this.#raw.setNoDelay(noDelay);
  }
}
