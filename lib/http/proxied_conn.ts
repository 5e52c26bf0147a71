/**
 * `--proxy-protocol`: a connection from a trusted load balancer starts with
 * a PROXY header naming the client. It is read here, as soon as the socket
 * is accepted and before anything else (TLS included: HAProxy sends it
 * ahead of the client's hello), and the engine then sees a socket whose
 * `remoteAddr` is that client: the access log, the per-address cap, the
 * rate limiter and every rule keyed on the client use the real address.
 * Both listeners are read from: Deno's (`Deno.TcpConn`) and, for TLS,
 * node's (`net.Socket`, tls.ts).
 */
import { getLogger } from "../npm/logtape.ts";
import type { Buffer } from "node:buffer";
import type net from "node:net";
import type { Limits } from "../config.ts";
import {
  parseProxyHeader,
  type ProxyHeader,
  ProxyHeaderError,
  V1_MAX_BYTES,
} from "./proxy_protocol.ts";
import type { RawConn } from "./socket.ts";

const log = getLogger(["spindle", "server"]);

/**
 * An accepted socket with its PROXY header read: `remoteAddr` is the client
 * the header names (the socket's own peer for LOCAL and UNKNOWN), and the
 * bytes that came after the header are read first.
 */
export class ProxiedConn implements RawConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  /** The socket's own peer: the load balancer. */
  readonly proxyAddr: Deno.NetAddr;
  readonly #conn: Deno.TcpConn;
  /** Client bytes read along with the header, not yet handed on. */
  #early: Uint8Array | undefined;

  constructor(conn: Deno.TcpConn, header: ProxyHeader, early: Uint8Array) {
    this.#conn = conn;
    this.proxyAddr = conn.remoteAddr;
    this.remoteAddr = header.source ?? conn.remoteAddr;
    this.localAddr = conn.localAddr;
    this.#early = early.length > 0 ? early : undefined;
  }

  read(into: Uint8Array): Promise<number | null> {
    const early = this.#early;
    if (early === undefined) return this.#conn.read(into);
    const n = Math.min(early.length, into.length);
    into.set(early.subarray(0, n));
    this.#early = n === early.length ? undefined : early.subarray(n);
    return Promise.resolve(n);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#conn.write(bytes);
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    this.#early = undefined;
    this.#conn.close();
  }

  setNoDelay(noDelay?: boolean): void {
    this.#conn.setNoDelay(noDelay);
  }
}

/**
 * What a PROXY header said of a node socket, whose header was read off and
 * the bytes after it put back: TLS then runs on the socket itself.
 */
export interface ProxiedPeer {
  /** The client the header names (the socket's own peer for LOCAL and UNKNOWN). */
  readonly remoteAddr: Deno.NetAddr;
  /** Bytes the header took: the client's own start after them. */
  readonly headerBytes: number;
}

/** An accepted socket, Deno's or node's, as the header reader reads it. */
interface HeaderSource {
  /** The socket's own peer: the load balancer. */
  readonly peer: string;
  read(into: Uint8Array): Promise<number | null>;
  close(): void;
}

/**
 * Reads the PROXY header of each connection from a trusted peer, bounded
 * by `headTimeoutMs` and `maxProxyHeaderBytes`. A peer that is not trusted
 * is not asked for one: a header it sends is read as HTTP and refused with
 * 400, so nobody else can claim an address.
 */
export class ProxyHeaderReader {
  readonly #limits: Limits;
  readonly #from: (hostname: string) => boolean;
  /** Sockets whose header is awaited; shutdown closes them. */
  readonly #pending = new Set<HeaderSource>();

  /** `from`: the peers (load balancers) that must start with a header. */
  constructor(limits: Limits, from: (hostname: string) => boolean) {
    this.#limits = limits;
    this.#from = from;
  }

  /** True when a socket from `peer` must start with a PROXY header. */
  expects(peer: string): boolean {
    return this.#from(peer);
  }

  /** Sockets waiting for their header now. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Reads the header off `conn`. Resolves with the proxied socket, or
   * undefined once `conn` is closed: no header in time, a malformed or
   * oversized one (logged: a trusted peer that sends one is misconfigured),
   * the peer gone, or {@link closeAll}. Never rejects.
   */
  async read(conn: Deno.TcpConn): Promise<ProxiedConn | undefined> {
    const got = await this.#readHeader({
      peer: conn.remoteAddr.hostname,
      read: (into) => conn.read(into),
      close: () => conn.close(),
    });
    return got && new ProxiedConn(conn, got.header, got.early);
  }

  /**
   * {@link read} for a socket from node's listener: resolves with the
   * client the header names, once the bytes after the header are put back
   * in `raw` (the TLS session started on it next reads them first), or
   * undefined once `raw` is destroyed. Never rejects.
   */
  async readNode(raw: net.Socket): Promise<ProxiedPeer | undefined> {
    raw.on("error", () => {}); // a reset ends a read; never an unheard 'error'
    const got = await this.#readHeader({
      peer: raw.remoteAddress ?? "",
      read: (into) => readNodeSocket(raw, into),
      close: () => raw.destroy(),
    });
    if (got === undefined) return undefined;
    if (got.early.length > 0) raw.unshift(got.early.slice());
    return {
      remoteAddr: got.header.source ?? {
        transport: "tcp",
        hostname: raw.remoteAddress ?? "",
        port: raw.remotePort ?? 0,
      },
      headerBytes: got.header.length,
    };
  }

  /** The header and the client's bytes read with it; undefined once `conn` is closed. */
  async #readHeader(
    conn: HeaderSource,
  ): Promise<{ header: ProxyHeader; early: Uint8Array } | undefined> {
    const limits = this.#limits;
    // Large enough for any header the limit allows; bytes past the header
    // are the client's and are handed on.
    const buf = new Uint8Array(
      Math.max(limits.maxProxyHeaderBytes, V1_MAX_BYTES),
    );
    let end = 0;
    let why: string | undefined;
    this.#pending.add(conn);
    const timer = setTimeout(() => {
      why = `no PROXY header within ${limits.headTimeoutMs} ms`;
      this.#close(conn);
    }, limits.headTimeoutMs);
    try {
      for (;;) {
        const header = parseProxyHeader(buf, end, limits.maxProxyHeaderBytes);
        if (header !== undefined) {
          return { header, early: buf.subarray(header.length, end) };
        }
        if (end === buf.length) {
          throw new ProxyHeaderError("Cannot read PROXY header: too long");
        }
        const n = await conn.read(buf.subarray(end));
        if (n === null) {
          why ??= end === 0 ? undefined : "closed in the middle of its header";
          break;
        }
        end += n;
      }
    } catch (err) {
      if (err instanceof ProxyHeaderError) why = err.message;
      // Otherwise the socket was reset or closed under the read: the timer,
      // closeAll() or the peer itself; `why` says which if it matters.
    } finally {
      clearTimeout(timer);
      this.#pending.delete(conn);
    }
    if (why !== undefined) {
      log.warn("Closed a connection from {peer}: {reason}", {
        peer: conn.peer,
        reason: why,
      });
    }
    this.#close(conn);
    return undefined;
  }

  /** Closes every socket still waiting for its header (shutdown). */
  closeAll(): void {
    for (const conn of this.#pending) this.#close(conn);
  }

  #close(conn: HeaderSource): void {
    try {
      conn.close();
    } catch { /* closed already */ }
  }
}

/**
 * Reads what node's socket `raw` has, at most `into.length` bytes (the rest
 * is put back); null once it ended or was destroyed. `raw` stays paused:
 * nothing is read from it between calls.
 */
function readNodeSocket(
  raw: net.Socket,
  into: Uint8Array,
): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const stop = () => {
      raw.off("readable", take);
      raw.off("end", ended);
      raw.off("close", ended);
      raw.off("error", failed);
    };
    const ended = () => {
      stop();
      resolve(null);
    };
    const failed = (err: Error) => {
      stop();
      reject(err);
    };
    function take(): void {
      const chunk = raw.read() as Buffer | null;
      if (chunk === null) {
        if (raw.destroyed || raw.readableEnded) ended();
        return;
      }
      stop();
      const n = Math.min(chunk.length, into.length);
      into.set(chunk.subarray(0, n));
      if (n < chunk.length) raw.unshift(chunk.subarray(n));
      resolve(n);
    }
    raw.on("readable", take);
    raw.once("end", ended);
    raw.once("close", ended);
    raw.once("error", failed);
    take();
  });
}
