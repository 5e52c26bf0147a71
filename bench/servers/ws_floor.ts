/**
 * The WebSocket floor for any server on `Deno.listen`: the handshake, then
 * per read one unmask and one write of the echo frame. No limits, no
 * checks, no deadlines, no fragments or control frames: correct only for a
 * client that sends one small masked frame and waits for its echo (case
 * 15a's load). Not a server: a measure of what `conn.read()` and
 * `conn.write()` alone cost per message. Listens on 127.0.0.1 and the port
 * given as the first argument; stops on SIGTERM.
 */
const listener = Deno.listen({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
});

/** The 101 for the one key the bench's client sends, or any other. */
async function accept(key: string): Promise<Uint8Array> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`),
  );
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  return new TextEncoder().encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

async function echo(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buf = new Uint8Array(4096);
  try {
    const n = await conn.read(buf);
    if (n === null) return;
    const head = new TextDecoder().decode(buf.subarray(0, n));
    const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
    await writeAll(conn, await accept(key));
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return;
      // One masked frame with a payload under 126 bytes, as the load sends:
      // the reply is its payload, unmasked, behind a 2-byte header, written
      // over the 4 bytes of the client's mask.
      const len = buf[1] & 0x7f;
      for (let i = 0; i < len; i++) buf[6 + i] ^= buf[2 + (i & 3)];
      buf[4] = buf[0];
      buf[5] = len;
      await writeAll(conn, buf.subarray(4, 6 + len));
    }
  } catch {
    // the client went away
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

for await (const conn of listener) echo(conn as Deno.TcpConn);
