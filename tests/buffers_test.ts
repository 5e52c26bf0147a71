/**
 * Buffers lent while a connection works and given back while it waits:
 * the pool itself, the output buffer's release, and a connection that
 * borrows for a long head or a body and returns the buffer once idle.
 */
import assert from "node:assert/strict";
import { BufferPool } from "../lib/http/buffers.ts";
import { readBuffers } from "../lib/http/connection.ts";
import { OutBuffer } from "../lib/http/response.ts";
import { serve } from "../lib/http/server.ts";
import { connect, get, ReplyReader, send, waitFor } from "./helpers/socket.ts";

/** Empties the shared pool so a test sees exactly what it gets back. */
function drainReadBuffers(): Uint8Array[] {
  const taken: Uint8Array[] = [];
  while (readBuffers.free > 0) taken.push(readBuffers.take());
  return taken;
}

Deno.test("BufferPool lends its size, keeps what comes back up to its bound, and no other size", () => {
  const pool = new BufferPool(16, 2);
  const [a, b, c] = [pool.take(), pool.take(), pool.take()];
  assert.deepEqual([a.length, b.length, c.length], [16, 16, 16]);
  pool.give(new Uint8Array(8));
  assert.equal(pool.free, 0);
  for (const buf of [a, b, c]) pool.give(buf);
  assert.equal(pool.free, 2);
  assert.equal(pool.take(), b);
  assert.equal(pool.take(), a);
  assert.notEqual(pool.take(), c);
});

Deno.test("OutBuffer release() gives its buffer back and the next reply takes one again", () => {
  const out = new OutBuffer();
  out.text("HTTP/1.1 200 OK\r\n\r\n");
  const first = out.buf;
  out.release(); // something queued: kept
  assert.equal(out.buf, first);
  assert.equal(new TextDecoder().decode(out.take()), "HTTP/1.1 200 OK\r\n\r\n");
  out.release();
  assert.equal(out.buf.length, 0);
  out.text("again");
  assert.equal(out.buf, first, "the pool lends the same buffer back");
  assert.equal(new TextDecoder().decode(out.take()), "again");
});

Deno.test("Connection borrows a work buffer for a long head and gives it back once idle", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    (req) => ({ status: 200, body: `${req.headers.get("x-long")?.length}` }),
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  // A small request first: the connection settles, holding nothing lent.
  await send(conn, get("/"));
  assert.equal((await reader.readReply()).status, 200);
  drainReadBuffers();
  // Past its own buffer's 2 KiB: this head needs a lent one.
  await send(conn, get("/", `X-Long: ${"a".repeat(6000)}\r\n`));
  const reply = await reader.readReply();
  assert.equal(reply.text, "6000");
  await waitFor(() => readBuffers.free === 1, "the buffer back");
});

Deno.test("Connection reads a chunked body through a lent buffer and gives it back once idle", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    async (req) => ({
      status: 200,
      body: `${(await req.body.bytes()).length}`,
    }),
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  drainReadBuffers();
  const chunks = Array.from({ length: 50 }, () => "10\r\nabcdefghijklmnop\r\n");
  await send(
    conn,
    "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      chunks.join("") + "0\r\n\r\n",
  );
  assert.equal((await reader.readReply()).text, "800");
  await waitFor(() => readBuffers.free === 1, "the buffer back");
});
