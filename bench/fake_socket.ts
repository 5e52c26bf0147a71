/**
 * The socket the in-process benches (`app_layers.ts`, `ws_layers.ts`) hand
 * the engine instead of a TCP connection: writes are counted and dropped,
 * reads are the subclass's, nothing makes a system call, so a figure is the
 * engine's JavaScript alone.
 */
export abstract class FakeSocket {
  readonly remoteAddr: Deno.NetAddr = {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 40000,
  };
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
