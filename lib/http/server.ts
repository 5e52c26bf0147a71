/**
 * The accept loop: TCP or TLS listener, the connection cap with its queue
 * and 503 reply, the deadline sweeper, and graceful shutdown.
 */
import { getLogger } from "@logtape/logtape";
import {
  DEFAULT_CONFIG,
  DEFAULT_LIMITS,
  type Limits,
  type ServerConfig,
} from "../config.ts";
import { Connection, isDisconnect, toErrorReply } from "./connection.ts";
import { HttpError, STATUS } from "./errors.ts";
import type { Handler } from "./handler.ts";
import { encodeClosingReply } from "./response.ts";
import { Semaphore } from "./semaphore.ts";
import { EngineStats } from "./stats.ts";

const log = getLogger(["spindle", "server"]);

/** Options for {@link serve}: any part of {@link ServerConfig}, plus extras. */
export interface ServeOptions extends Partial<Omit<ServerConfig, "limits">> {
  /** Limits to change; the rest keep their defaults. */
  readonly limits?: Partial<Limits>;
  /** Counters to update; pass your own to share them with the app. */
  readonly stats?: EngineStats;
  /** Called once listening, with the bound address. */
  readonly onListen?: (addr: Deno.NetAddr) => void;
}

/** A running server. */
export interface Server extends AsyncDisposable {
  /** The bound address; `port` is the real one when 0 was asked. */
  readonly addr: Deno.NetAddr;
  readonly port: number;
  readonly stats: EngineStats;
  readonly limits: Limits;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes idle connections, lets requests in flight
   * finish within `limits.shutdownTimeoutMs`, then closes the rest.
   */
  shutdown(): Promise<void>;
}

/** Seconds a refused client is told to wait. */
const RETRY_AFTER_S = "1";

/**
 * Starts a server with `handler` on our own HTTP/1.1 engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "./server.ts";
 *
 * await using server = serve({ port: 0, accessLog: false }, () => ({
 *   status: 200,
 *   headers: { "content-type": "text/plain" },
 *   body: "hello",
 * }));
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(await res.text(), "hello");
 * ```
 */
export function serve(options: ServeOptions, handler: Handler): Server {
  const limits: Limits = Object.freeze({
    ...DEFAULT_LIMITS,
    ...options.limits,
  });
  const config = { ...DEFAULT_CONFIG, ...options, limits };
  const stats = options.stats ?? new EngineStats();
  // Before listening: a bad limit throws here, with no socket left open.
  const semaphore = new Semaphore(limits.maxConns, limits.maxQueue);
  const secure = config.cert !== undefined && config.key !== undefined;
  const listener: Deno.Listener = secure
    ? Deno.listenTls(
      {
        hostname: config.hostname,
        port: config.port,
        cert: config.cert!,
        key: config.key!,
        reusePort: config.reusePort,
      } as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
    )
    : Deno.listen({
      hostname: config.hostname,
      port: config.port,
      reusePort: config.reusePort,
    });
  const addr = listener.addr as Deno.NetAddr;
  const connections = new Set<Connection>();
  const queued = new Map<Deno.Conn, { since: number; cancel: () => void }>();
  /** Sockets being refused with 503; shutdown closes what is left of them. */
  const refusing = new Set<Deno.Conn>();
  let stopping = false;
  let idleResolve: (() => void) | undefined;

  function onClose(c: Connection): void {
    if (connections.delete(c)) {
      stats.active--;
      semaphore.release();
      if (connections.size === 0) idleResolve?.();
    }
  }

  function start(conn: Deno.Conn): void {
    if (stopping) {
      refuse(conn, "Server is shutting down");
      semaphore.release();
      return;
    }
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const c = new Connection(conn, {
      limits,
      handler,
      stats,
      secure,
      accessLog: config.accessLog ?? true,
      onClose,
      waiting: () => semaphore.waiting > 0,
    });
    connections.add(c);
    stats.active++;
    c.run(); // never rejects: run() catches everything
  }

  /** 503 with Retry-After, then close: never a silent drop. */
  function refuse(conn: Deno.Conn, why: string): void {
    stats.rejected++;
    log.warn("Refused a connection from {client}: 503 {reason}", {
      client: (conn.remoteAddr as Deno.NetAddr).hostname,
      reason: why,
    });
    const reply = toErrorReply(
      new HttpError(STATUS.ServiceUnavailable, why, {
        expose: "Server is busy, try again shortly",
        headers: { "retry-after": RETRY_AFTER_S },
        close: true,
      }),
      undefined,
    );
    const bytes = encodeClosingReply(
      reply.status,
      reply.headers,
      reply.body as string,
    );
    stats.bytesOut += bytes.length;
    refusing.add(conn);
    (async () => {
      try {
        await conn.write(bytes);
        await conn.closeWrite();
        // Drop what the client sends until it closes, so it reads our reply, not a reset.
        const scratch = new Uint8Array(4096);
        const timer = setTimeout(() => {
          try {
            conn.close();
          } catch { /* closed */ }
        }, 1000);
        try {
          while ((await conn.read(scratch)) !== null) { /* dropped */ }
        } finally {
          clearTimeout(timer);
        }
      } catch {
        // the client left first
      } finally {
        refusing.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      }
    })();
  }

  function admit(conn: Deno.Conn): void {
    stats.accepted++;
    if (semaphore.tryAcquire()) return start(conn);
    const ticket = stopping ? undefined : semaphore.enqueue();
    if (ticket === undefined) {
      return refuse(conn, "Connection limit and queue are full");
    }
    stats.queued++;
    queued.set(conn, { since: Date.now(), cancel: ticket.cancel });
    // A slot held by an idle keep-alive connection is worth more to a waiting one.
    for (const c of connections) {
      if (c.reclaimable) {
        c.close(); // hands its permit to the first waiter
        break;
      }
    }
    ticket.granted.then((granted) => {
      if (!queued.delete(conn)) return;
      stats.queued--;
      if (granted) start(conn);
      else refuse(conn, "Waited too long for a connection slot");
    });
  }

  async function acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (stopping || err instanceof Deno.errors.BadResource) return;
        if (isDisconnect(err)) continue; // a TLS handshake that failed, say
        // EMFILE and friends: wait rather than spin (darkhttpd does the same).
        log.error("Accept failed: {error}", { error: err });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      admit(conn);
    }
  }

  // One sweeper for every deadline: cheaper than a timer per read.
  const tick = Math.max(
    10,
    Math.min(
      1000,
      Math.floor(
        Math.min(
          limits.headTimeoutMs,
          limits.keepAliveTimeoutMs,
          limits.bodyTimeoutMs,
          limits.writeTimeoutMs,
          limits.queueTimeoutMs,
        ) / 4,
      ),
    ),
  );
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of connections) c.expire(now);
    for (const [, q] of queued) {
      if (now - q.since > limits.queueTimeoutMs) q.cancel();
    }
  }, tick);

  const accepting = acceptLoop();
  let shutdownPromise: Promise<void> | undefined;
  let finishedResolve!: () => void;
  const finished = new Promise<void>((r) => finishedResolve = r);

  function shutdown(): Promise<void> {
    if (shutdownPromise) return shutdownPromise;
    shutdownPromise = (async () => {
      stopping = true;
      stats.draining = true;
      log.info("Shutting down: {active} connections open", {
        active: connections.size,
      });
      try {
        listener.close();
      } catch { /* closed */ }
      await accepting;
      for (const [, q] of queued) q.cancel();
      const idle = new Promise<void>((r) => idleResolve = r);
      for (const c of connections) c.drain();
      if (connections.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          idle,
          new Promise((r) => timer = setTimeout(r, limits.shutdownTimeoutMs)),
        ]);
        clearTimeout(timer);
        for (const c of connections) c.close();
      }
      for (const conn of refusing) {
        try {
          conn.close(); // its 503 is out; do not wait for the client to leave
        } catch { /* closed */ }
      }
      clearInterval(sweeper);
      log.info("Stopped");
      finishedResolve();
    })();
    return shutdownPromise;
  }

  const server: Server = {
    addr,
    port: addr.port,
    stats,
    limits,
    finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
  options.onListen?.(addr);
  return server;
}
