/**
 * The socket the in-process benches (`app_layers.ts`, `ws_layers.ts`) hand
 * the engine instead of a TCP connection: writes are counted and dropped,
 * reads are the subclass's, nothing makes a system call, so a figure is the
 * engine's JavaScript alone.
 */
export abstract class FakeSocket {
  readonly remoteAddr: Deno.NetAddr = acceptedAddr("127.0.0.1", 40000);
  /** Bytes the engine wrote. */
  sent = 0;

  abstract read(into: Uint8Array): Promise<number | null>;

  write(bytes: Uint8Array): Promise<number> {
    this.sent += bytes.length;
    return Promise.resolve(bytes.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

/**
 * An address as `Deno.listen()`'s accept hands it over: no prototype, in
 * dictionary mode, with a map no other connection's address shares (so a
 * line that reads one per request goes megamorphic, as in the server).
 */
export function acceptedAddr(hostname: string, port: number): Deno.NetAddr {
  const addr = Object.create(Object.create(null));
  addr.unused = 0;
  addr.hostname = hostname;
  addr.port = port;
  addr.transport = "tcp";
  delete addr.unused; // to dictionary mode
  return addr;
}
