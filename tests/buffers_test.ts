/**
 * Buffers lent while a connection works and given back while it waits:
 * the pool itself, the output buffer's release, a connection that borrows
 * for a long head or a body and returns the buffer once idle, and file
 * pieces read ahead for a client that keeps up, one for one that does not.
 */
import assert from "node:assert/strict";
import { BufferPool } from "../lib/http/buffers.ts";
import { filePieces } from "../lib/http/connection.ts";
import { readBuffers } from "../lib/http/read_buffer.ts";
import { FileBody } from "../lib/http/handler.ts";
import { OutBuffer } from "../lib/http/response.ts";
import { serve } from "../lib/http/server.ts";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { Connection } from "../lib/http/connection.ts";
import { DeadlineWheel, timeoutsOf } from "../lib/http/deadlines.ts";
import { ReadTurns } from "../lib/http/read_turns.ts";
import { EngineStats } from "../lib/http/stats.ts";
import {
  connect,
  exchange,
  get,
  ReplyReader,
  send,
  waitFor,
} from "./helpers/socket.ts";

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

Deno.test("OutBuffer: a pooled buffer keeps its last view for whichever connection takes it next", () => {
  // Busy connections take turns with the pool's buffers: the view of a
  // reply goes with the buffer, so a reply of the same size makes none.
  const a = new OutBuffer();
  const b = new OutBuffer();
  const reply = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
  a.text(reply);
  const first = a.take();
  const buf = a.buf;
  a.release();
  b.text(reply.replace("hello", "world"));
  assert.equal(b.buf, buf, "the pool lends the same buffer to the next one");
  const second = b.take();
  assert.equal(second, first, "and its view with it");
  assert.equal(
    new TextDecoder().decode(second),
    reply.replace("hello", "world"),
  );
  b.release();
  a.text("HTTP/1.1 204 No Content\r\n\r\n");
  const other = a.take();
  assert.notEqual(other, first, "another length: a view of its own");
  assert.equal(
    new TextDecoder().decode(other),
    "HTTP/1.1 204 No Content\r\n\r\n",
  );
  a.release();
});

Deno.test("OutBuffer pools the buffer it grows to for a batch of pipelined replies", () => {
  const out = new OutBuffer();
  const reply = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".repeat(4);
  const batch = () => {
    for (let i = 0; i < 16; i++) out.text(reply); // ~3 KiB: past the first 2 KiB
    assert.equal(new TextDecoder().decode(out.take()), reply.repeat(16));
    const used = out.buf;
    out.release(); // the connection waits for the next batch
    return used;
  };
  const grown = batch();
  assert.equal(grown.length, 4096);
  assert.equal(batch(), grown, "the next batch grows into the same buffer");
});

Deno.test("OutBuffer starts a batch in a grown buffer after a write that needed one, and stops after one that did not", () => {
  const out = new OutBuffer();
  const reply = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".repeat(4);
  out.text(reply);
  assert.equal(out.buf.length, 2048, "a first reply takes a first buffer");
  for (let i = 1; i < 16; i++) out.text(reply); // ~3 KiB: grown past 2 KiB
  assert.equal(out.take().length, reply.length * 16);
  out.release();
  out.text(reply);
  assert.equal(out.buf.length, 4096, "the next batch starts grown: no copy");
  assert.equal(new TextDecoder().decode(out.take()), reply);
  out.release();
  out.text(reply);
  assert.equal(out.buf.length, 2048, "after a small write, a first buffer");
  out.take();
  out.release();
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

Deno.test("Connection gives a lent buffer back before it waits for its read turn", async () => {
  // At 1000 busy connections most wait for a turn: holding their buffers
  // meanwhile made each one's cold, where a few reused stay cache-warm.
  const lentAtTake: number[] = [];
  class WatchedTurns extends ReadTurns {
    override take(): number | Promise<number> {
      lentAtTake.push(readBuffers.lent);
      return super.take();
    }
  }
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await connect(listener.addr.port);
  const socket = await listener.accept();
  const timeouts = timeoutsOf(DEFAULT_LIMITS);
  const wheel = new DeadlineWheel(1000, timeouts.keepAliveMs);
  const connection = new Connection(socket, {
    limits: DEFAULT_LIMITS,
    handler: (req) => ({
      status: 200,
      body: `${req.headers.get("x-long")?.length}`,
    }),
    stats: new EngineStats(),
    secure: false,
    accessLog: false,
    onClose: () => {},
    timeouts,
    keepAliveMs: () => timeouts.keepAliveMs,
    wheel,
    turns: new WatchedTurns(),
  });
  const running = connection.run();
  const reader = new ReplyReader(client);
  // Past its own buffer's 2 KiB: this head needs a lent one.
  await send(client, get("/", `X-Long: ${"a".repeat(6000)}\r\n`));
  assert.equal((await reader.readReply()).text, "6000");
  client.closeWrite(); // the next read, after the reply, ends the connection
  await running;
  assert.ok(lentAtTake.length >= 2, `turns taken: ${lentAtTake.length}`);
  assert.equal(
    lentAtTake.at(-1),
    lentAtTake[0],
    `lent when taking each turn: ${lentAtTake.join(", ")}`,
  );
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

/** A temp file of `size` bytes that differ piece to piece; removed after `fn`. */
async function withFile(
  size: number,
  fn: (path: string, bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >> 13)) & 0xff;
    const path = `${dir}/f.bin`;
    await Deno.writeFile(path, bytes);
    await fn(path, bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Connection sends a file of many pieces byte for byte, from an offset, reading ahead", async () => {
  await withFile(3 * 1024 * 1024 + 12_345, async (path, bytes) => {
    const start = 100_001;
    await using server = serve({ port: 0, accessLog: false }, async () => ({
      status: 200,
      body: new FileBody(await Deno.open(path), start, bytes.length - start),
    }));
    for (let i = 0; i < 2; i++) { // the second reply reuses pooled pieces
      const reply = await exchange(server.port, get());
      assert.equal(reply.body.length, bytes.length - start);
      assert.deepEqual(reply.body, bytes.subarray(start));
    }
    await waitFor(() => filePieces.lent === 0, "every piece back");
  });
});

Deno.test("Connection holds at most two file pieces for a client that stops reading, and gives them back when it leaves", async () => {
  await withFile(32 * 1024 * 1024, async (path, bytes) => {
    await using server = serve({ port: 0, accessLog: false }, async () => ({
      status: 200,
      body: new FileBody(await Deno.open(path), 0, bytes.length),
    }));
    const conn = await connect(server.port);
    try {
      await send(conn, get());
      // The kernel's buffers fill; then the write in progress waits on the
      // client, with the piece read ahead for it before it stalled.
      let last = -1;
      await waitFor(() => {
        const out = server.stats.bytesOut;
        const still = out === last && out > 0;
        last = out;
        return still;
      }, "a stalled write");
      assert.ok(
        filePieces.lent >= 1 && filePieces.lent <= 2,
        `${filePieces.lent} pieces`,
      );
    } finally {
      conn.close();
    }
    await waitFor(() => filePieces.lent === 0, "the pieces back");
  });
});
