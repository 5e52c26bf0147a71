/**
 * Server-side TLS: the listener, the certificate it presents, and the
 * engine's {@link Socket} over each TLS session, run by `node:tls`.
 *
 * Two transports carry a session. Fastest: node's own listener
 * ({@link listenTls}) and a `tls.TLSSocket` on each accepted `net.Socket`;
 * in Deno 2.9.6 both run natively (a libuv-style TCP handle with rustls on
 * it), at about three quarters of the CPU per HTTPS request of the other
 * (keep-alive "hello", wrk -c64, paired runs). Robust: a
 * `Deno.TcpConn` from `Deno.listen`, its bytes handed to TLS through a JS
 * stream. node's listener in Deno 2.9.6 stops accepting for good after one
 * accept fails with EMFILE, so the engine takes it only when it knows the
 * descriptor limit and can stay under it (server.ts).
 *
 * Either way, unlike `Deno.listenTls` (whose socket cannot be closed before
 * its handshake ends, denoland/deno#14547), closing the TCP socket releases
 * its descriptor at once: a client that never finishes its handshake falls
 * under the engine's head deadline like a silent plain connection.
 */
import type { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import type { ProxiedPeer } from "./proxied_conn.ts";
import type { RawConn, Socket } from "./socket.ts";

/** Decrypted bytes buffered before reading from the client pauses. */
const HIGH_WATER_BYTES = 64 * 1024;
/** How long a close waits for its TLS close_notify to be written. */
const CLOSE_NOTIFY_MS = 1000;
/** Size of each read from a `Deno.TcpConn` carrying TLS. */
const RAW_READ_BYTES = 16 * 1024;

/**
 * A certificate and key that cannot be served, and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CertificateError, TlsCertificate } from "@spindle/server";
 *
 * assert.throws(
 *   () => new TlsCertificate("not a certificate", "not a key"),
 *   CertificateError,
 * );
 * ```
 */
export class CertificateError extends Error {
  /** Always "CertificateError". */
  override name = "CertificateError";
}

/**
 * What {@link parseCertificate} learnt from a certificate and key pair.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CertificateInfo, makeSelfSigned, TlsCertificate } from "@spindle/server";
 *
 * const { cert, key } = await makeSelfSigned({ dns: ["localhost"], ips: [] });
 * const info: CertificateInfo = new TlsCertificate(cert, key).info;
 * assert.ok(info.validTo > new Date());
 * assert.match(info.altNames, /localhost/);
 * ```
 */
export interface CertificateInfo {
  /** SHA-256 of the leaf certificate, as `AB:CD:...` (what browsers show). */
  readonly fingerprint: string;
  /** Subject alternative names, as node prints them (`DNS:localhost, IP Address:...`). */
  readonly altNames: string;
  /** Not valid before this date. */
  readonly validFrom: Date;
  /** Not valid after this date. */
  readonly validTo: Date;
}

/**
 * Checks that `cert` (a PEM chain, leaf first) and `key` (PEM) parse and
 * belong together; throws {@link CertificateError} saying which does not.
 * `tls.createSecureContext` in Deno 2.9.6 takes any text and fails each
 * handshake later instead.
 */
export function parseCertificate(cert: string, key: string): CertificateInfo {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new CertificateError(
      `the certificate is not a PEM certificate (${errorText(err)})`,
    );
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new CertificateError(
      `the key is not a PEM private key (${errorText(err)})`,
    );
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new CertificateError("the key does not belong to the certificate");
  }
  return {
    fingerprint: leaf.fingerprint256,
    altNames: leaf.subjectAltName ?? "",
    validFrom: new Date(leaf.validFrom),
    validTo: new Date(leaf.validTo),
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The certificate a TLS listener presents, replaceable while it runs: each
 * new handshake takes the pair current when its socket was accepted, and
 * sessions already open keep theirs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSelfSigned, serve, TlsCertificate } from "@spindle/server";
 *
 * const names = { dns: ["localhost"], ips: [] };
 * const first = await makeSelfSigned(names);
 * const certificate = new TlsCertificate(first.cert, first.key);
 * await using server = serve(
 *   { port: 0, accessLog: false, certificate },
 *   () => ({ status: 200, body: "ok" }),
 * );
 * await server.ready;
 * // New handshakes get the new pair; open connections keep theirs.
 * const next = await makeSelfSigned(names);
 * certificate.replace(next.cert, next.key);
 * const client = Deno.createHttpClient({ caCerts: [next.cert] });
 * const res = await fetch(`https://localhost:${server.port}/`, { client });
 * assert.equal(await res.text(), "ok");
 * client.close();
 * ```
 */
export class TlsCertificate {
  #context!: tls.SecureContext;
  #info!: CertificateInfo;

  /** Throws {@link CertificateError} for a pair that cannot be served. */
  constructor(cert: string, key: string) {
    this.replace(cert, key);
  }

  /** The pair as a node `SecureContext`, for new handshakes. */
  get context(): tls.SecureContext {
    return this.#context;
  }

  /** What the certificate in force says: names, dates, fingerprint. */
  get info(): CertificateInfo {
    return this.#info;
  }

  /**
   * Presents `cert` and `key` from the next handshake on. A pair that does
   * not parse or match throws {@link CertificateError} and changes nothing.
   */
  replace(cert: string, key: string): CertificateInfo {
    const info = parseCertificate(cert, key);
    this.#context = tls.createSecureContext({ cert, key });
    this.#info = info;
    return info;
  }
}

/** Where a TLS listener binds. */
export interface TlsListenOptions {
  readonly hostname: string;
  readonly port: number;
  /** Share the port with other engines (Linux). */
  readonly reusePort?: boolean;
  /**
   * Connections the kernel queues before we accept them. An accept burst is
   * at most this long, so keep it within the descriptors kept in reserve.
   */
  readonly backlog: number;
}

/** A listening socket that hands each accepted client to a callback. */
export interface TlsListener {
  /**
   * Resolves with the bound address; rejects with the error `Deno.listen`
   * would have thrown (`AddrInUse`, `PermissionDenied`...). node's listen()
   * binds after a turn of the event loop, never at once.
   */
  readonly ready: Promise<Deno.NetAddr>;
  /**
   * Call about once a second with whether sockets are held. When nothing
   * was accepted since the last call, and sockets were held since the last
   * check, checks that the listener still accepts (see {@link listenTls}).
   */
  watch(holding: boolean): void;
  /** Stops accepting; clients already accepted are not touched. */
  close(): void;
}

/** How long a probe of our own listener may take before we call it stalled. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Listens for TLS clients: `onSocket` gets each accepted TCP socket, on
 * which to start a {@link TlsSocket}; `onError` gets accept failures once
 * listening.
 *
 * In Deno 2.9.6 node's listener stops accepting for good after an accept
 * fails with EMFILE, and says nothing. So `watch()` probes it, by
 * connecting to it, when it has been quiet since sockets were last held
 * (descriptors cannot run out otherwise); a probe not accepted within a second means
 * it stalled: `onStall` is told (the descriptor limit was reached, give
 * some back) and the port is listened on afresh. Clients in the old
 * listener's queue are reset; later ones are served.
 */
export function listenTls(
  options: TlsListenOptions,
  onSocket: (raw: net.Socket) => void,
  onError: (err: Error) => void,
  onStall: () => void,
): TlsListener {
  let server: net.Server;
  let bound: Deno.NetAddr | undefined;
  let closed = false;
  let acceptedSinceWatch = true;
  let probe: { socket: net.Socket; since: number } | undefined;
  /** Sockets were held since the last good probe: descriptors could have run out. */
  let suspect = false;
  /** False once a probe was not allowed to connect (a narrower net grant). */
  let probing = true;
  let relistening = false;

  function accepted(raw: net.Socket): void {
    acceptedSinceWatch = true;
    const p = probe?.socket;
    if (p === undefined || !p.connecting) return sortOut(raw);
    // Deno 2.9.6 runs this before the probe's own side hears of its
    // connect, its port still unknown: whose socket this is shows then (a
    // turn later; a client's first bytes wait in `raw` meanwhile).
    raw.on("error", () => {}); // a reset meanwhile must not throw
    const settle = () => {
      p.off("connect", settle).off("close", settle);
      sortOut(raw);
    };
    p.once("connect", settle).once("close", settle);
  }

  /** Ends the probe if `raw` is its other end; hands anything else on. */
  function sortOut(raw: net.Socket): void {
    const p = probe?.socket;
    if (
      p !== undefined && raw.remotePort === p.localPort &&
      raw.remoteAddress === p.localAddress
    ) {
      endProbe();
      suspect = false;
      raw.destroy();
      return;
    }
    onSocket(raw);
  }

  function endProbe(): void {
    probe?.socket.destroy();
    probe = undefined;
  }

  function listen(port: number): Promise<Deno.NetAddr> {
    // Half-open: a client may send its request, then its FIN, and still
    // read the reply (node would end our side at once otherwise).
    const s = net.createServer(
      { noDelay: true, allowHalfOpen: true },
      accepted,
    );
    server = s;
    return new Promise((resolve, reject) => {
      let listening = false;
      s.once("listening", () => {
        listening = true;
        const a = s.address() as net.AddressInfo;
        resolve({ transport: "tcp", hostname: a.address, port: a.port });
      });
      s.on("error", (err: Error) => {
        if (listening) onError(err);
        else reject(toListenError(err));
      });
      s.listen({
        host: options.hostname,
        port,
        reusePort: options.reusePort ?? false,
        backlog: options.backlog,
      } as net.ListenOptions);
    });
  }

  function relisten(): void {
    if (relistening || closed || bound === undefined) return;
    relistening = true;
    server.close();
    listen(bound.port).then(() => {
      relistening = false;
      if (closed) server.close();
    }, () => {
      relistening = false; // still out of descriptors: the next watch() retries
    });
  }

  const ready = listen(options.port).then((addr) => bound = addr);
  return {
    ready,
    watch(holding) {
      if (closed || bound === undefined || relistening) return;
      if (holding) suspect = true;
      const quiet = !acceptedSinceWatch;
      acceptedSinceWatch = false;
      if (probe !== undefined) {
        if (Date.now() - probe.since < PROBE_TIMEOUT_MS) return;
        endProbe();
        onStall();
        relisten();
      } else if (quiet && (holding || suspect) && probing) {
        // The address as asked, not as bound: Deno's net grant names it.
        const socket = net.connect({
          host: options.hostname,
          port: bound.port,
        });
        const mine = { socket, since: Date.now() };
        socket.on("error", (err: Error) => {
          if ((err as { code?: string }).code === "EMFILE") return; // times out: a stall
          // Refused or not allowed says nothing about a stall: no probe then.
          if (err.name === "NotCapable" || err.name === "PermissionDenied") {
            probing = false;
          }
          if (probe === mine) endProbe();
        });
        probe = mine;
      }
    },
    close() {
      closed = true;
      endProbe();
      server.close();
    },
  };
}

/** A listen error as the Deno error `Deno.listen` throws for it. */
function toListenError(err: Error): Error {
  const code = (err as { code?: string }).code;
  const E = code === "EADDRINUSE"
    ? Deno.errors.AddrInUse
    : code === "EADDRNOTAVAIL"
    ? Deno.errors.AddrNotAvailable
    : code === "EACCES" || code === "EPERM"
    ? Deno.errors.PermissionDenied
    : undefined;
  return E === undefined ? err : new E(err.message, { cause: err });
}

/** Node's socket errors as the Deno errors the engine treats as a hang-up. */
function toDenoError(err: unknown): Error {
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
  return new Deno.errors.InvalidData(errorText(err));
}

/**
 * A socket from `Deno.listen` (its PROXY header read off or not) as a node
 * stream, for `tls.TLSSocket` to run over. `onBytes` counts what the
 * client sent; `onWritten` follows each write.
 */
function connStream(
  conn: RawConn,
  onBytes: (n: number) => void,
  onWritten: () => void,
): Duplex {
  let reading = false;
  // One buffer for every read; each push gets a copy of just what came
  // (TLS records are small: cheaper than a fresh 16 KiB buffer per read).
  const buf = new Uint8Array(RAW_READ_BYTES);
  const stream: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      conn.read(buf).then((n) => {
        reading = false;
        if (n !== null) onBytes(n);
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

/** How the server's TLS sessions are set up, besides the certificate. */
export interface TlsSocketOptions {
  /** ALPN protocols offered, in order of preference; default http/1.1 alone. */
  readonly alpnProtocols?: readonly string[];
  /**
   * For node's socket whose PROXY header was read off (proxied_conn.ts):
   * the client it named. A Deno socket's is read off into a ProxiedConn.
   */
  readonly proxied?: ProxiedPeer;
}

/**
 * One server-side TLS session over an accepted TCP socket (node's or
 * Deno's), with the read, write and close calls the engine makes on a
 * `Deno.Conn`. `close()` releases the TCP socket at once, handshake or not.
 */
export class TlsSocket implements Socket {
  readonly remoteAddr: Deno.NetAddr;
  readonly #raw: net.Socket | RawConn;
  readonly #tls: tls.TLSSocket;
  /** Bytes the client sent, before decryption (Deno transport). */
  #rawBytesIn = 0;
  /** Bytes of node's socket that were its PROXY header, not the client's. */
  readonly #headerBytes: number;
  /** Set while closing over a Deno socket: the close_notify is out. */
  #afterWrite: (() => void) | undefined;
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

  /** Starts the handshake on `raw` with the pair `certificate` holds now. */
  constructor(
    raw: net.Socket | RawConn,
    certificate: TlsCertificate,
    options: TlsSocketOptions = {},
  ) {
    this.#raw = raw;
    this.#headerBytes = options.proxied?.headerBytes ?? 0;
    let transport: net.Socket | Duplex;
    if (raw instanceof net.Socket) {
      this.remoteAddr = options.proxied?.remoteAddr ?? {
        transport: "tcp",
        hostname: raw.remoteAddress ?? "",
        port: raw.remotePort ?? 0,
      };
      // Its own errors reach the TLS socket; this keeps an unheard
      // 'error' from being thrown.
      raw.on("error", () => {});
      transport = raw;
    } else {
      this.remoteAddr = raw.remoteAddr;
      transport = connStream(
        raw,
        (n) => this.#rawBytesIn += n,
        () => this.#afterWrite?.(),
      );
    }
    const socket = new tls.TLSSocket(transport, {
      isServer: true,
      secureContext: certificate.context,
      ALPNProtocols: [...options.alpnProtocols ?? ["http/1.1"]],
    });
    this.#tls = socket;
    socket.on("secure", () => this.#secure = true);
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
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
  }

  /** True until the client sends a byte, even of its TLS hello. */
  get silent(): boolean {
    const raw = this.#raw;
    const bytesIn = raw instanceof net.Socket
      ? raw.bytesRead - this.#headerBytes
      : this.#rawBytesIn;
    return bytesIn === 0;
  }

  /** The protocol ALPN settled on, or undefined before the handshake or without ALPN. */
  get alpnProtocol(): string | undefined {
    const p = this.#tls.alpnProtocol;
    return typeof p === "string" ? p : undefined;
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(into: Uint8Array): Promise<number | null> {
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
      this.#tls.resume();
    }
    return n;
  }

  /** Resolves once TLS has taken all of `bytes` (node holds them until then). */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource());
    if (this.#error !== undefined) return Promise.reject(this.#error);
    this.#writes++;
    return new Promise((resolve, reject) => {
      this.#tls.write(bytes, (err?: Error | null) => {
        this.#writes--;
        if (err) reject(toDenoError(err));
        else resolve(bytes.length);
      });
    });
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#tls.end(resolve));
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
      this.#secure && !this.#ended && this.#error === undefined &&
      this.#writes === 0 && !socket.writableEnded
    ) {
      const timer = setTimeout(() => this.#destroy(), CLOSE_NOTIFY_MS);
      const done = () => {
        clearTimeout(timer);
        this.#destroy();
      };
      // Over a Deno socket, 'finish' comes before the JS stream has written
      // the close_notify out: wait for that write instead.
      if (this.#raw instanceof net.Socket) socket.end(done);
      else {
        this.#afterWrite = done;
        socket.end();
      }
    } else {
      this.#destroy();
    }
  }

  #destroy(): void {
    this.#afterWrite = undefined;
    this.#tls.destroy();
    const raw = this.#raw;
    if (raw instanceof net.Socket) raw.destroy();
    else {
      try {
        raw.close();
      } catch { /* closed with the stream, or reset */ }
    }
  }
}
