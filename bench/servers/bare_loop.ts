/**
 * The floor for any engine on `Deno.listen`: one fixed reply per read, no
 * HTTP parsing, no limits, no deadlines. Correct only for a client that
 * sends one small request and waits (the engine case's load). Not a server:
 * a measure of what `conn.read()` and `conn.write()` alone cost. Run, it
 * listens on 127.0.0.1 and the port given as the first argument; stops on
 * SIGTERM. bare_loop_workers.ts runs the same loop in Worker threads.
 */
const REPLY = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n" +
    "date: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\nhello",
);

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

/** Answers every connection `listener` accepts, until it closes. */
export async function bareLoop(listener: Deno.TcpListener): Promise<void> {
  for await (const conn of listener) answer(conn);
}

if (import.meta.main) {
  await bareLoop(Deno.listen({
    hostname: "127.0.0.1",
    port: Number(Deno.args[0] ?? 0),
  }));
}
