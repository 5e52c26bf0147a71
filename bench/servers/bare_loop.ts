/**
 * The floor for any engine on `Deno.listen`: one fixed reply per read, no
 * HTTP parsing, no limits, no deadlines. Correct only for a client that
 * sends one small request and waits (case 1's load). Not a server: a
 * measure of what `conn.read()` and `conn.write()` alone cost.
 * Prints `{"port":N}` and exits when stdin closes.
 */
import { announcePort, stdinClosed } from "./stdin_eof.ts";

const REPLY = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n" +
    "date: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\nhello",
);

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
announcePort((listener.addr as Deno.NetAddr).port);

async function answer(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buf = new Uint8Array(4096);
  try {
    while ((await conn.read(buf)) !== null) {
      for (let off = 0; off < REPLY.length;) {
        off += await conn.write(REPLY.subarray(off));
      }
    }
  } catch {
    // the client went away
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

(async () => {
  for await (const conn of listener) answer(conn as Deno.TcpConn);
})().catch(() => {});

await stdinClosed();
listener.close();
Deno.exit(0);
