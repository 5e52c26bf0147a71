/**
 * What the engine needs of a client socket: a `Deno.Conn` as accepted, or
 * the TLS session the engine runs over one (`tls.ts`).
 */
export interface Socket {
  readonly remoteAddr: Deno.Addr;
  /**
   * False once the client has sent anything; undefined when the socket
   * cannot tell (then the connection's own count decides).
   */
  readonly silent?: boolean;
  /** The protocol TLS's ALPN settled on, once the handshake is done; undefined without. */
  readonly alpnProtocol?: string;
  read(into: Uint8Array): Promise<number | null>;
  /** May take only part of `bytes`; resolves with how much it took. */
  write(bytes: Uint8Array): Promise<number>;
  /** Ends our side; the client may still send. */
  closeWrite(): Promise<void>;
  /** Closes the socket at once; throws `BadResource` if already closed. */
  close(): void;
}

/**
 * An accepted TCP socket before any TLS: a `Deno.TcpConn`, or one whose
 * PROXY header was read off (`proxied_conn.ts`).
 */
export type RawConn = Pick<
  Deno.TcpConn,
  | "remoteAddr"
  | "localAddr"
  | "read"
  | "write"
  | "closeWrite"
  | "close"
  | "setNoDelay"
>;

/**
 * The peer's address as a plain object of one shape, made once per
 * connection. Deno hands each accepted socket's `remoteAddr` over as an
 * object in dictionary mode with a map of its own, so a line reading
 * `.hostname` for every request (the access log, the app's client address)
 * saw a new map per connection, went megamorphic and looked the name up in
 * a hash table (`perf`, 64 connections: ~25-90 ns a request in V8's
 * LoadIC_Megamorphic). With this copy such a read is a field load.
 */
export function ownAddr(addr: Deno.Addr): Deno.NetAddr {
  const net = addr as Deno.NetAddr;
  return { transport: net.transport, hostname: net.hostname, port: net.port };
}
