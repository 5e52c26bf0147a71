/**
 * The accept loop: TCP or TLS listener, the connection cap with its queue
 * and 503 reply, the deadline sweeper, and graceful shutdown.
 */
import { getLogger } from "../npm/logtape.ts";
import type net from "node:net";
import {
  DEFAULT_CONFIG,
  DEFAULT_LIMITS,
  type Limits,
  type ServerConfig,
} from "../config.ts";
import {
  AddressCounts,
  DescriptorBudget,
  isLoopback,
  primeSignalHandling,
} from "./admission.ts";
import {
  Connection,
  type ConnectionOptions,
  isDisconnect,
  Phase,
  toErrorReply,
} from "./connection.ts";
import { detectH2, H2Connection } from "./h2_connection.ts";
import { H2Session } from "./h2/session.ts";
import { DeadlineWheel, timeoutsOf } from "./deadlines.ts";
import { HttpError, STATUS } from "./errors.ts";
import type { Handler } from "./handler.ts";
import { dropUntilClosed, LINGER_MS } from "./linger.ts";
import { ProxyHeaderReader } from "./proxied_conn.ts";
import { POLL_BUDGET, READ_TURNS, ReadTurns } from "./read_turns.ts";
import { encodeClosingReply } from "./response.ts";
import { type ConnectionSlots, Semaphore } from "./semaphore.ts";
import type { RawConn, Socket } from "./socket.ts";
import { listenTls, TlsCertificate, TlsSocket } from "./tls.ts";
import { EngineStats } from "./stats.ts";

const log = getLogger(["spindle", "server"]);

/**
 * Options for {@link serve}: any part of {@link ServerConfig}, plus extras.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve, type ServeOptions } from "@spindle/server";
 *
 * const options: ServeOptions = {
 *   port: 0, // any free port
 *   accessLog: false,
 *   limits: { maxBodyBytes: 64 * 1024 },
 * };
 * await using server = serve(options, () => ({ status: 204 }));
 * assert.equal(server.limits.maxBodyBytes, 64 * 1024);
 * ```
 */
export interface ServeOptions extends Partial<Omit<ServerConfig, "limits">> {
  /** Limits to change; the rest keep their defaults. */
  readonly limits?: Partial<Limits>;
  /** Counters to update; pass your own to share them with the app. */
  readonly stats?: EngineStats;
  /** Called once listening, with the bound address. */
  readonly onListen?: (addr: Deno.NetAddr) => void;
  /**
   * The part of the process's descriptors this engine may hold: 1/N when N
   * engines share the process (workers). Default 1.
   */
  readonly descriptorShare?: number;
  /**
   * The `maxConns` cap and its queue; default: this engine's own. Engines
   * sharing a port pass one cap counted across all of them. The engine's
   * plumbing for `--workers`, not part of the package's API.
   *
   * @ignore
   */
  readonly slots?: ConnectionSlots;
  /**
   * The certificate to serve HTTPS with, instead of `cert` and `key`: keep
   * it to replace the pair while the server runs.
   */
  readonly certificate?: TlsCertificate;
}

/**
 * A running server.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve, type Server } from "@spindle/server";
 *
 * const server: Server = serve({ port: 0, accessLog: false }, () => ({
 *   status: 200,
 *   body: "up",
 * }));
 * await server.ready;
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(await res.text(), "up");
 * await server.shutdown(); // or `await using`, as the other examples do
 * await server.finished;
 * ```
 */
export interface Server extends AsyncDisposable {
  /**
   * The bound address; `port` is the real one when 0 was asked. Over TLS
   * both are known once `ready` resolves.
   */
  readonly addr: Deno.NetAddr;
  /** The bound port: the real one when 0 was asked. */
  readonly port: number;
  /**
   * Resolves once the server listens: at once for plain HTTP, after a turn
   * of the event loop for TLS. Rejects as `Deno.listen` throws (`AddrInUse`).
   */
  readonly ready: Promise<void>;
  /** Counters of connections, requests and bytes. */
  readonly stats: EngineStats;
  /** The limits in force: the defaults with `limits` applied. */
  readonly limits: Limits;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes idle connections, lets requests in flight
   * finish within `limits.shutdownTimeoutMs`, then closes the rest. With
   * `limits.drainDelayMs`, first serves on that long with /health at 503.
   */
  shutdown(): Promise<void>;
  /**
   * Closes the listener and nothing else, as shutdown() does first.
   * Engines sharing a port all call it before any drains: a client told
   * Connection: close by one reconnects to a listener that stays.
   */
  stopAccepting(): Promise<void>;
}

/** Seconds a refused client is told to wait. */
const RETRY_AFTER_S = "1";
/** Time with no connection accepted after which the listen queue counts as empty. */
const ACCEPT_QUIET_MS = 10;
/** Longest stopAccepting() waits for a quiet queue before it closes anyway. */
const ACCEPT_SETTLE_MS = 250;
/** Listen queue asked for; the kernel caps it (net.core.somaxconn, 4096 by default). */
const MAX_BACKLOG = 65_535;
/** Longest the accept loop waits for descriptors to come back. */
const ROOM_WAIT_MS = 50;
/**
 * node's TLS listener's queue: an accept burst takes at most about this
 * many descriptors before the engine can close one, so the budget keeps as
 * many free. nginx and node use 511; 128 costs a 1 s SYN retry only to a
 * client arriving in a burst of more than 128 at once.
 */
const NODE_BACKLOG = 128;

/** An HTTP/1.1 connection, or one that turned out to speak HTTP/2. */
type AnyConnection = Connection | H2Connection;

/** A socket the engine holds, and the address it is counted under. */
interface Client {
  readonly socket: Socket;
  /** From AddressCounts.add(); undefined when not counted. */
  readonly key: string | undefined;
  closed: boolean;
  /** Its slot was given back: it only lingers now. */
  slotFreed?: boolean;
  /** No longer counted against the descriptor budget. */
  fdFreed?: boolean;
  /** Accepted once shutdown had begun. */
  late?: boolean;
}

/**
 * Starts a server with `handler` on our own HTTP/1.1 engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "@spindle/server";
 *
 * await using server = serve({ port: 0, accessLog: false }, () => ({
 *   status: 200,
 *   headers: { "content-type": "text/plain" },
 *   body: "hello",
 * }));
 * await server.ready;
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
  // Before listening: a bad limit or certificate throws here, with no socket left open.
  const semaphore = options.slots ??
    new Semaphore(limits.maxConns, limits.maxQueue);
  const timeouts = timeoutsOf(limits);
  const certificate = options.certificate ??
    (config.cert !== undefined && config.key !== undefined
      ? new TlsCertificate(config.cert, config.key)
      : undefined);
  const secure = certificate !== undefined;
  // HTTP/2 by ALPN on TLS unless turned off; on plain TCP only by prior knowledge (--h2c).
  const h2 = secure ? config.http2 !== false : config.h2c === true;
  const tlsOptions = {
    alpnProtocols: h2 ? ["h2", "http/1.1"] : ["http/1.1"],
  };
  if (h2) new H2Session(limits); // a bad HTTP/2 limit throws now, not per client
  const proxyHeaders = config.proxyProtocolFrom === undefined
    ? undefined
    : new ProxyHeaderReader(limits, config.proxyProtocolFrom);
  const where = {
    hostname: config.hostname,
    port: config.port,
    reusePort: config.reusePort,
  };
  // TLS clients come from node's listener when the descriptor limit is
  // known with room for its whole queue (it stops for good at one EMFILE,
  // tls.ts); plain clients, and TLS ones otherwise, from Deno's.
  const share = options.descriptorShare;
  const nodeFds = certificate === undefined
    ? undefined
    : new DescriptorBudget(limits, share, undefined, NODE_BACKLOG);
  const fast = nodeFds !== undefined && nodeFds.cap !== Infinity &&
    nodeFds.cap >= NODE_BACKLOG;
  const fds = fast ? nodeFds : new DescriptorBudget(limits, share);
  const listener = !fast
    // A burst of clients must wait in the kernel's queue, not be dropped to
    // retry a second later. We accept all we can (and refuse past our caps
    // with a reply), so ask for as long a queue as the kernel allows.
    ? Deno.listen({ ...where, tcpBacklog: MAX_BACKLOG })
    : listenTls(
      { ...where, backlog: NODE_BACKLOG },
      acceptedNode,
      acceptFailed,
      () => {
        log.warn(
          "TLS listener stalled out of file descriptors; listening again",
        );
        evict();
      },
    );
  let addr: Deno.NetAddr = "addr" in listener
    ? listener.addr
    : { transport: "tcp", hostname: config.hostname, port: 0 };
  const perAddress = new AddressCounts(
    limits.maxConnsPerIp,
    config.exemptPeer ?? isLoopback,
  );
  primeSignalHandling();
  const busyConns = limits.maxConns * limits.busyPercent / 100;
  const connections = new Map<AnyConnection, Client>();
  const queued = new Map<Client, { since: number; cancel: () => void }>();
  /** Sockets being refused; shutdown closes what is left of them. */
  const refusing = new Set<Client>();
  /** Connections whose last reply said close so a waiter gets their slot. */
  const yielding = new Set<AnyConnection>();
  /** HTTP/2 connections: visited every tick, not filed in the wheel. */
  const h2Conns = new Set<H2Connection>();
  /** Connections closed to make room since the sweeper last logged them. */
  const evicted = { silent: 0, idle: 0 };
  /** Accepts that failed with EMFILE since the sweeper last logged them. */
  let emfile = 0;
  /** Wakes the accept loop once the descriptor budget has room again. */
  let roomFreed: (() => void) | undefined;
  let stopping = false;
  /** When the last connection was accepted; stopAccepting() waits for a quiet queue. */
  let lastAcceptAt = 0;
  let idleResolve: (() => void) | undefined;

  /** True past busyPercent of the slots or of the descriptor budget. */
  function busy(): boolean {
    // A shared cap counts the other engines' connections too.
    return Math.max(connections.size + queued.size, semaphore.inUse) >=
        busyConns || fds.busy;
  }

  /** Closes a socket the engine holds and stops counting its address (idempotent). */
  function closeClient(client: Client): void {
    if (client.closed) return;
    try {
      client.socket.close();
    } catch { /* closed by the peer's reset */ }
    forget(client);
  }

  function forget(client: Client): void {
    if (client.closed) return;
    client.closed = true;
    perAddress.remove(client.key);
  }

  /**
   * Stops counting a socket's descriptor. Call once nothing waits on the
   * socket: closing it with a read pending frees the descriptor only when
   * that read is cancelled, a turn of the event loop later, and a flood of
   * closes would otherwise run the process out while we count room.
   */
  function freeFd(client: Client): void {
    if (client.fdFreed) return;
    client.fdFreed = true;
    fdClosed();
  }

  function fdClosed(): void {
    fds.open--;
    if (!fds.full) roomFreed?.();
  }

  function onClose(c: AnyConnection): void {
    const client = connections.get(c);
    if (client === undefined) return;
    connections.delete(c);
    yielding.delete(c);
    if (c instanceof H2Connection) h2Conns.delete(c);
    forget(client);
    stats.active--;
    if (!client.slotFreed) semaphore.release();
    if (connections.size === 0) idleResolve?.();
  }

  /** A connection that speaks HTTP/2 goes on as an H2Connection, in the same slot. */
  function upgrade(
    c: Connection,
    socket: Socket,
    first: Uint8Array,
  ): Promise<void> | "more" | null {
    const protocol = detectH2(socket, first);
    const client = connections.get(c);
    if (protocol !== "h2") return protocol;
    if (client === undefined) return null; // closed meanwhile
    const h = new H2Connection(socket, first, {
      limits,
      handler,
      stats,
      secure,
      accessLog: config.accessLog ?? true,
      timeouts,
      onClose,
    });
    connections.delete(c);
    connections.set(h, client);
    h2Conns.add(h);
    const running = h.run(); // reads `first` before its first await
    if (stopping) h.drain();
    return running;
  }

  /** A lingering connection's reply is out: its slot can serve a waiter now. */
  function onLinger(c: Connection): void {
    const client = connections.get(c);
    if (client === undefined || client.slotFreed) return;
    client.slotFreed = true;
    yielding.delete(c);
    semaphore.release();
  }

  function keepAliveMs(c: Connection, idleNext: boolean): number {
    if (stats.draining) return 0; // the drain delay: a balancer opens anew elsewhere
    // A waiter not yet promised a slot gets this one: the reply says
    // Connection: close, so the client never reuses what we then close.
    if (idleNext && semaphore.waiting > yielding.size) {
      yielding.add(c);
      return 0;
    }
    return busy() ? timeouts.keepAliveBusyMs : timeouts.keepAliveMs;
  }

  function start(client: Client): void {
    if (stopping && !client.late) {
      refuse(client, STATUS.ServiceUnavailable, "Server is shutting down");
      semaphore.release();
      return;
    }
    const c = new Connection(client.socket, connOptions, client);
    connections.set(c, client);
    stats.active++;
    if (stopping) c.drain(); // one reply, with Connection: close
    c.run(); // never rejects; onEnd frees the descriptor
  }

  /**
   * 503 (or 429 for an address over its cap) with Retry-After, then close:
   * never a silent drop. With `linger`, the client gets a moment to read the
   * reply before the close; without (descriptors short), it is closed at once.
   */
  function refuse(
    client: Client,
    status: typeof STATUS.ServiceUnavailable | typeof STATUS.TooManyRequests,
    why: string,
    linger = true,
  ): void {
    stats.rejected++;
    if (!linger && secure) {
      closeClient(client); // a reply would need a TLS handshake first
      freeFd(client);
      return;
    }
    log.warn("Refused a connection from {client}: {status} {reason}", {
      client: (client.socket.remoteAddr as Deno.NetAddr).hostname,
      status,
      reason: why,
    });
    const reply = toErrorReply(
      new HttpError(status, why, {
        expose: status === STATUS.TooManyRequests
          ? "Too many connections from your address, try again shortly"
          : "Server is busy, try again shortly",
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
    const socket = client.socket;
    refusing.add(client);
    if (!linger) {
      socket.write(bytes).catch(() => {}).finally(() => {
        refusing.delete(client);
        closeClient(client);
        freeFd(client);
      });
      return;
    }
    // One deadline for all of it: a TLS client that never sends its hello
    // never lets the write finish.
    const timer = setTimeout(() => closeClient(client), LINGER_MS);
    (async () => {
      try {
        await socket.write(bytes);
        await socket.closeWrite();
        await dropUntilClosed(socket, new Uint8Array(4096));
      } catch {
        // the client left first, or the deadline closed the socket
      } finally {
        clearTimeout(timer);
        refusing.delete(client);
        closeClient(client);
        freeFd(client);
      }
    })();
  }

  /**
   * Closes up to `count` connections to make room: those lingering after
   * their last reply, then the oldest that have not sent a byte (a real
   * client speaks within a round trip; a silent TLS socket never does), then
   * the kept-alive connections idle longest, if idle for reclaimIdleMs.
   * Returns how many it closed.
   */
  function evict(count = 1): number {
    const now = Date.now();
    const lingering: AnyConnection[] = [];
    const silent: AnyConnection[] = [];
    const idle: AnyConnection[] = [];
    for (const [c, client] of connections) {
      if (c.phase === Phase.Linger) {
        lingering.push(c);
        if (lingering.length >= count) break;
      } else if (silent.length < count) {
        if (c.silent && client.socket.silent !== false) silent.push(c);
        else if (c.reclaimable && now - c.idleSince >= limits.reclaimIdleMs) {
          idle.push(c);
        }
      }
    }
    idle.sort((a, b) => a.idleSince - b.idleSince);
    const victims = [...lingering, ...silent, ...idle].slice(0, count);
    for (const c of victims) {
      if (c.silent) evicted.silent++;
      else if (c.phase !== Phase.Linger) evicted.idle++;
      c.close();
    }
    return victims.length;
  }

  function admit(client: Client): void {
    if (semaphore.tryAcquire()) return start(client);
    let ticket = stopping ? undefined : semaphore.enqueue();
    // The queue is full: a slot held by a silent or long-idle connection is
    // worth more to a newcomer than a 503.
    if (ticket === undefined && !stopping && evict() > 0) {
      if (semaphore.tryAcquire()) return start(client);
      ticket = semaphore.enqueue();
    }
    if (ticket === undefined) {
      return refuse(
        client,
        STATUS.ServiceUnavailable,
        "Connection limit and queue are full",
      );
    }
    stats.queued++;
    queued.set(client, { since: Date.now(), cancel: ticket.cancel });
    ticket.granted.then((granted) => {
      if (!queued.delete(client)) return;
      stats.queued--;
      if (granted) start(client);
      else {
        refuse(
          client,
          STATUS.ServiceUnavailable,
          "Waited too long for a connection slot",
        );
      }
    });
  }

  /**
   * Counts a socket from Deno's listener; a trusted proxy's must first say
   * whose it is. Before TLS and before the per-address count: the PROXY
   * header names the client, and each proxied connection carries just that one.
   */
  function acceptedConn(conn: Deno.TcpConn): void {
    lastAcceptAt = Date.now();
    stats.accepted++;
    fds.open++;
    conn.setNoDelay(true);
    const serveConn = (c: RawConn) =>
      admitSocket(
        certificate === undefined
          ? c
          : new TlsSocket(c, certificate, tlsOptions),
        c.remoteAddr.hostname,
      );
    if (proxyHeaders?.expects(conn.remoteAddr.hostname)) {
      proxyHeaders.read(conn).then((c) => c ? serveConn(c) : fdClosed());
      return;
    }
    serveConn(conn);
  }

  /**
   * {@link acceptedConn} for a TLS client from node's listener. One accepted
   * as the listener closes is served once, as on Deno's (admitSocket()).
   */
  function acceptedNode(raw: net.Socket): void {
    lastAcceptAt = Date.now();
    stats.accepted++;
    fds.open++;
    const peer = raw.remoteAddress ?? "";
    if (proxyHeaders?.expects(peer)) {
      proxyHeaders.readNode(raw).then((proxied) =>
        proxied
          ? admitSocket(
            new TlsSocket(raw, certificate!, { ...tlsOptions, proxied }),
            proxied.remoteAddr.hostname,
          )
          : fdClosed()
      );
      return;
    }
    admitSocket(new TlsSocket(raw, certificate!, tlsOptions), peer);
  }

  /** Decides for a new socket: serve, queue, or refuse. */
  function admitSocket(socket: Socket, hostname: string): void {
    const client: Client = {
      socket,
      key: perAddress.add(hostname),
      closed: false,
    };
    // Accepted as the listener closed: served once rather than refused,
    // since its client may not retry (another engine may hold the port now).
    if (stopping) client.late = true;
    // Past the descriptor budget: make room, or refuse before the kernel does.
    if (fds.full && evict() === 0) {
      return refuse(
        client,
        STATUS.ServiceUnavailable,
        "Out of file descriptors",
        false,
      );
    }
    if (perAddress.over(client.key)) {
      return refuse(
        client,
        STATUS.TooManyRequests,
        "Too many connections from one address",
      );
    }
    admit(client);
  }

  /**
   * Past the budget, waits for the sockets just closed to give their
   * descriptors back before accepting more: a burst of accepts would
   * otherwise outrun the closes made room for it and meet EMFILE. The
   * kernel's backlog holds the newcomers meanwhile.
   */
  async function waitForRoom(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      roomFreed = resolve;
      timer = setTimeout(resolve, ROOM_WAIT_MS);
    });
    clearTimeout(timer);
    roomFreed = undefined;
  }

  /**
   * An accept that failed: past the descriptor limit, learns it and makes
   * room. Returns how long to wait before accepting again, in ms.
   */
  function acceptFailed(err: Error): number {
    if ((err as { code?: string }).code === "EMFILE") {
      // The limit was unknown: learn it, and keep the reserve free from
      // now on. Known, it was closed sockets not yet gone: make room.
      const known = fds.cap !== Infinity;
      const cap = fds.learn();
      if (!known) {
        log.error(
          "Out of file descriptors with {open} sockets open; from now on at most {cap} (set --max-fds to say so up front)",
          { open: fds.open, cap },
        );
      }
      emfile++;
      evict();
      return 10;
    }
    log.error("Accept failed: {error}", { error: err });
    return 100; // wait rather than spin (darkhttpd does the same)
  }

  async function acceptLoop(listener: Deno.TcpListener): Promise<void> {
    for (;;) {
      if (fds.full && !stopping) await waitForRoom();
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (stopping || err instanceof Deno.errors.BadResource) return;
        if (isDisconnect(err)) continue;
        const waitMs = acceptFailed(err as Error);
        await new Promise((r) => setTimeout(r, waitMs));
        continue;
      }
      acceptedConn(conn);
    }
  }

  /** When the sweeper last had the TLS listener checked. */
  let lastWatch = Date.now();
  // One timer for every deadline: cheaper than a timer per read. Each tick
  // visits only the connections due in it (a wheel, not a scan).
  const tick = Math.max(
    10,
    Math.min(
      1000,
      Math.floor(
        Math.min(
          timeouts.headBusyMs,
          limits.keepAliveTimeoutMs,
          timeouts.bodyGapBusyMs,
          timeouts.writeGapBusyMs,
          timeouts.graceBusyMs,
          limits.queueTimeoutMs,
          limits.wsIdleTimeoutMs,
          limits.wsCloseTimeoutMs,
        ) / 4,
      ),
    ),
  );
  const wheel = new DeadlineWheel(
    tick,
    Math.max(
      timeouts.headMs,
      timeouts.keepAliveMs,
      timeouts.bodyGapMs,
      timeouts.writeGapMs,
      timeouts.graceMs,
    ),
  );
  const turns = new ReadTurns(READ_TURNS, POLL_BUDGET);
  /** One for every connection: an idle connection holds as little as it can. */
  const connOptions: ConnectionOptions = {
    limits,
    handler,
    stats,
    secure,
    accessLog: config.accessLog ?? true,
    onClose,
    onLinger,
    onEnd: (c) => freeFd(c.tag as Client),
    timeouts,
    wheel,
    turns,
    keepAliveMs,
    upgrade: h2 ? upgrade : undefined,
  };
  let wasBusy = false;
  const sweeper = setInterval(() => {
    const now = Date.now();
    const strict = busy();
    // Turning busy: deadlines filed by their plain time may have a busy one past.
    if (strict && !wasBusy) wheel.visitAll(now, true);
    wasBusy = strict;
    wheel.advance(now, strict);
    for (const h of h2Conns) h.expire(now, strict); // few: each multiplexes
    // Past the descriptor budget (a limit just learnt): win the reserve back.
    if (fds.full) evict(fds.open - fds.cap);
    if (evicted.silent + evicted.idle > 0) {
      log.warn(
        "Closed {silent} silent and {idle} idle connections to make room",
        { ...evicted },
      );
      evicted.silent = evicted.idle = 0;
    }
    if (emfile > 0) {
      log.warn("Accept failed {count} times: out of file descriptors", {
        count: emfile,
      });
      emfile = 0;
    }
    for (const [, q] of queued) {
      if (now - q.since > limits.queueTimeoutMs) q.cancel();
    }
    if ("watch" in listener && now - lastWatch >= 1000) {
      lastWatch = now;
      listener.watch(fds.open > 0);
    }
  }, tick);

  let closing = false;
  let ready: Promise<void>;
  let accepting: Promise<void>;
  if ("accept" in listener) {
    accepting = acceptLoop(listener);
    ready = Promise.resolve();
  } else {
    accepting = Promise.resolve();
    ready = listener.ready.then((bound) => {
      addr = bound;
    }, (err: unknown) => {
      clearInterval(sweeper);
      throw err;
    });
  }
  let shutdownPromise: Promise<void> | undefined;
  let finishedResolve!: () => void;
  const finished = new Promise<void>((r) => finishedResolve = r);

  /**
   * Takes what the kernel already queued, then closes the listener: the
   * kernel resets every connection still queued on a closing listener
   * (clients that another engine's drain just sent to reconnect, say).
   * Resolves once the accept loop ended, when the socket is gone too.
   * node's listener accepts by callback, as eagerly as Deno's loop: the
   * same quiet spell tells its queue is empty.
   */
  async function stopAccepting(): Promise<void> {
    if (!closing) {
      closing = true;
      await ready.catch(() => {}); // node's binds a turn later: close it bound
      const until = Date.now() + ACCEPT_SETTLE_MS;
      // Quiet for a while: the queue is empty. Under a steady stream of
      // new connections it never is; those then meet the close.
      while (
        Date.now() < until && Date.now() - lastAcceptAt < ACCEPT_QUIET_MS
      ) {
        await new Promise((r) => setTimeout(r, ACCEPT_QUIET_MS));
      }
      try {
        listener.close();
      } catch { /* closed */ }
    }
    await accepting;
  }

  function shutdown(): Promise<void> {
    if (shutdownPromise) return shutdownPromise;
    shutdownPromise = (async () => {
      if (limits.drainDelayMs > 0) {
        stats.draining = true;
        // Behind a load balancer: /health says 503 and each reply closes
        // its connection, while requests are still served, until the
        // balancer's checks have taken us out. Closing the listener at once
        // would refuse connections it still sends.
        log.info("Draining for {ms} ms before the listener closes", {
          ms: limits.drainDelayMs,
        });
        await new Promise((r) => setTimeout(r, limits.drainDelayMs));
      }
      log.info("Shutting down: {active} connections open", {
        active: connections.size,
      });
      await stopAccepting();
      // Only now do replies say Connection: close: a client sent away while
      // the listener was open could reconnect to it and be reset.
      stopping = true;
      stats.draining = true;
      proxyHeaders?.closeAll();
      semaphore.cancelAll(); // each queued client is refused with 503
      const idle = new Promise<void>((r) => idleResolve = r);
      for (const c of connections.keys()) c.drain();
      if (connections.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          idle,
          new Promise((r) => timer = setTimeout(r, limits.shutdownTimeoutMs)),
        ]);
        clearTimeout(timer);
        for (const c of connections.keys()) c.close();
      }
      // Their 503s are out; do not wait for the clients to leave.
      for (const client of refusing) closeClient(client);
      clearInterval(sweeper);
      turns.close();
      log.info("Stopped");
      finishedResolve();
    })();
    return shutdownPromise;
  }

  const server: Server = {
    get addr() {
      return addr;
    },
    get port() {
      return addr.port;
    },
    ready,
    stats,
    limits,
    finished,
    shutdown,
    stopAccepting,
    [Symbol.asyncDispose]: shutdown,
  };
  const onListen = options.onListen;
  if (onListen !== undefined) {
    if (secure) ready.then(() => onListen(addr), () => {});
    else onListen(addr);
  }
  return server;
}
