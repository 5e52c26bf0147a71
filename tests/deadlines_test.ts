/**
 * Minimum rates and busy deadlines over real sockets: a body or a reader
 * slower than its minimum rate is cut once the grace is spent, time the
 * server spends elsewhere never counts, and deadlines shrink while the
 * server is busy.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import { rateBudgetMs, timeoutsOf } from "../lib/http/deadlines.ts";
import { FileBody, type Handler, type Reply } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { gate } from "./helpers/gate.ts";
import {
  connect,
  get,
  ReplyReader,
  send,
  sleep,
  waitFor,
} from "./helpers/socket.ts";

Deno.test("timeoutsOf() divides each patience by busyTimeoutDivisor, and refuses a divisor under 1", () => {
  const t = timeoutsOf({
    ...DEFAULT_LIMITS,
    headTimeoutMs: 10_000,
    keepAliveTimeoutMs: 5_000,
    minBodyBytesPerSec: 500,
    minSendBytesPerSec: 0,
    busyTimeoutDivisor: 4,
  });
  assert.equal(t.headBusyMs, 2_500);
  assert.equal(t.keepAliveBusyMs, 1_250);
  assert.equal(t.bodyGapBusyMs, DEFAULT_LIMITS.bodyTimeoutMs / 4);
  assert.equal(t.bodyMsPerByte, 2);
  assert.equal(t.sendMsPerByte, 0);
  assert.throws(
    () => timeoutsOf({ ...DEFAULT_LIMITS, busyTimeoutDivisor: 0.5 }),
    RangeError,
  );
});

const budgets: [
  what: string,
  args: [number, number, number, number],
  ms: number,
][] = [
  ["a fresh start gets the grace", [1000, 2, 0, 0], 1000],
  ["each byte buys time", [1000, 2, 500, 0], 2000],
  ["waiting spends it", [1000, 2, 500, 1500], 500],
  ["a slow client runs out", [1000, 2, 100, 2000], -800],
  ["no minimum never runs out", [1000, 0, 0, 1e9], Infinity],
];
for (const [what, args, ms] of budgets) {
  Deno.test(`rateBudgetMs(): ${what}`, () => {
    assert.equal(rateBudgetMs(...args), ms);
  });
}

function start(handler: Handler, limits: Partial<Limits>) {
  return serve({ port: 0, accessLog: false, limits }, handler);
}

const echoLength: Handler = async (req) => ({
  status: 200,
  body: `${(await req.body.bytes()).length}`,
});

/** Sends `total` body bytes in pieces of `piece`, `gapMs` apart; stops when the server closes. */
async function drip(
  conn: Deno.Conn,
  total: number,
  piece: number,
  gapMs: number,
): Promise<void> {
  try {
    for (let sent = 0; sent < total; sent += piece) {
      await send(conn, "x".repeat(Math.min(piece, total - sent)));
      await sleep(gapMs);
    }
  } catch { /* the server closed: the point of some tests */ }
}

Deno.test("Connection answers 408 to a body slower than minBodyBytesPerSec once the grace is spent, long before bodyTimeoutMs", async () => {
  await using server = start(echoLength, {
    minBodyBytesPerSec: 100,
    minRateGraceMs: 300,
    bodyTimeoutMs: 10_000, // every gap is far under this
  });
  using conn = await connect(server.port);
  const t0 = performance.now(); // the body's clock starts after this
  await send(
    conn,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
  );
  // 1 byte per 50 ms is 20 bytes/s: each byte buys 10 ms, each gap costs 50.
  // The whole body would take 50 s, and a gap never nears bodyTimeoutMs.
  const sending = drip(conn, 1000, 1, 50);
  const reply = await new ReplyReader(conn).readReply({ timeoutMs: 9000 });
  const elapsed = performance.now() - t0;
  assert.equal(reply.status, 408);
  assert.equal(reply.headers.get("connection"), "close");
  assert.ok(elapsed >= 280, `408 too early: ${elapsed} ms`);
  assert.ok(elapsed < 8000, `408 too late: ${elapsed} ms`);
  conn.close();
  await sending;
});

Deno.test("Connection takes a slow body that keeps above minBodyBytesPerSec", async () => {
  await using server = start(echoLength, {
    minBodyBytesPerSec: 100,
    minRateGraceMs: 300,
  });
  using conn = await connect(server.port);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\n\r\n");
  // 50 bytes per 100 ms is 500 bytes/s, five times the minimum.
  const sending = drip(conn, 600, 50, 100);
  const reply = await new ReplyReader(conn).readReply({ timeoutMs: 5000 });
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "600");
  await sending;
});

Deno.test("Connection does not count a handler's own pauses against the body's minimum rate", async () => {
  await using server = start(async (req) => {
    let n = 0;
    for await (const piece of req.body.chunks()) {
      n += piece.length;
      await sleep(200); // the handler is slow, not the client
    }
    return { status: 200, body: `${n}` };
  }, { minBodyBytesPerSec: 1000, minRateGraceMs: 300 });
  using conn = await connect(server.port);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n");
  await drip(conn, 300, 100, 0);
  const reply = await new ReplyReader(conn).readReply({ timeoutMs: 5000 });
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "300");
});

/** Reads `bytesPerTick` every 20 ms until `stop()` returns true or the socket ends. */
async function readSlowly(
  conn: Deno.Conn,
  bytesPerTick: number,
  stop: () => boolean,
): Promise<number> {
  const buf = new Uint8Array(bytesPerTick);
  let bytes = 0;
  while (!stop()) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      n = null; // a reset is an end too
    }
    if (n === null) break;
    bytes += n;
    await sleep(20);
  }
  return bytes;
}

const BIG = 32 * 1024 * 1024;
const slowReplies: [name: string, reply: (file: string) => Promise<Reply>][] = [
  ["bytes", () => Promise.resolve({ status: 200, body: new Uint8Array(BIG) })],
  ["a file", async (file) => ({
    status: 200,
    body: new FileBody(await Deno.open(file), 0, BIG),
  })],
];
for (const [name, reply] of slowReplies) {
  Deno.test(`Connection closes a client that reads a reply of ${name} slower than minSendBytesPerSec`, async () => {
    const file = await Deno.makeTempFile();
    await Deno.truncate(file, BIG);
    try {
      await using server = start(() => reply(file), {
        minSendBytesPerSec: 1024 * 1024,
        minRateGraceMs: 300,
        writeTimeoutMs: 10_000, // every write progresses: the stall timeout never fires
      });
      using conn = await connect(server.port);
      await send(conn, get());
      // 4 KiB per 20 ms is 200 KiB/s, a fifth of the minimum. What the kernel
      // took at once buys its own time (about 4 s for 4 MiB), then the rest runs out.
      let closed = false;
      const reading = readSlowly(conn, 4096, () => closed);
      await waitFor(
        () => server.stats.active === 0,
        "the slow reader closed",
        20_000, // a busy machine: the reply would take 160 s at this rate
      );
      closed = true;
      assert.ok((await reading) < BIG, "it never got the whole reply");
    } finally {
      await Deno.remove(file);
    }
  });
}

Deno.test("Connection keeps a client that reads a reply above minSendBytesPerSec", async () => {
  await using server = start((req) => ({
    status: 200,
    body: new Uint8Array(req.path === "/big" ? 4 * 1024 * 1024 : 2),
  }), { minSendBytesPerSec: 64 * 1024, minRateGraceMs: 300 });
  using conn = await connect(server.port);
  await send(conn, get("/big") + get("/small"));
  // 64 KiB per 20 ms is about 3 MiB/s, far above the minimum.
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply({ timeoutMs: 10_000 });
  assert.equal(reply.body.length, 4 * 1024 * 1024);
  assert.equal((await reader.readReply()).body.length, 2);
});

Deno.test("Connection does not cut a stream that is slow to produce, however low its rate", async () => {
  await using server = start(() => ({
    status: 200,
    body: (async function* () {
      for (let i = 0; i < 4; i++) {
        yield new TextEncoder().encode(`event ${i}\n`);
        await sleep(200); // the server waits on itself, never on the client
      }
    })(),
  }), { minSendBytesPerSec: 1024 * 1024, minRateGraceMs: 100 });
  using conn = await connect(server.port);
  await send(conn, get());
  const reply = await new ReplyReader(conn).readReply({ timeoutMs: 5000 });
  assert.equal(reply.text, "event 0\nevent 1\nevent 2\nevent 3\n");
});

Deno.test("serve() shrinks head deadlines while busy: a silent connection goes at headTimeoutMs / busyTimeoutDivisor", async () => {
  // Two requests held in the handler keep the server busy however the
  // silent one fares (silent ones alone stop being busy as the first goes).
  // A twentieth of 20 s is 1 s: any close well before 20 s is the shrunk
  // one, so a busy machine has many seconds to spare on either side.
  const { handler, open } = gate();
  await using server = start(handler, {
    maxConns: 4, // busy from 3 connections (busyPercent 75)
    headTimeoutMs: 20_000,
    busyTimeoutDivisor: 20,
    shutdownTimeoutMs: 1000,
  });
  using _opened = { [Symbol.dispose]: open };
  const held = await Promise.all([0, 1].map(() => connect(server.port)));
  try {
    for (const conn of held) await send(conn, get("/hold"));
    await waitFor(() => server.stats.active === 2, "two requests held");
    const t0 = performance.now(); // before the server's clock starts
    using silent = await connect(server.port);
    assert.equal(await new ReplyReader(silent).closed(19_000), true);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 950, `closed too early: ${elapsed} ms`);
    assert.ok(elapsed < 15_000, `closed too late: ${elapsed} ms`);
  } finally {
    for (const conn of held) conn.close();
  }
});

Deno.test("serve() keeps the full head deadline while not busy", async () => {
  await using server = start(() => ({ status: 200, body: "ok" }), {
    maxConns: 4,
    headTimeoutMs: 1200,
  });
  const t0 = performance.now(); // before the server's clock starts
  using conn = await connect(server.port);
  assert.equal(await new ReplyReader(conn).closed(), true);
  assert.ok(performance.now() - t0 >= 1180);
});

Deno.test("serve() gives a reply sent while busy a shorter keep-alive time", async () => {
  await using server = start(() => ({ status: 200, body: "ok" }), {
    maxConns: 4,
    keepAliveTimeoutMs: 20_000, // a twentieth while busy: 1 s
    busyTimeoutDivisor: 20,
    headTimeoutMs: 60_000,
  });
  // Two silent connections and ours make three of four: busy.
  const others = await Promise.all([0, 1].map(() => connect(server.port)));
  try {
    await waitFor(() => server.stats.active === 2, "two others");
    using conn = await connect(server.port);
    const t0 = performance.now(); // the idle time starts after the reply
    await send(conn, get());
    const reader = new ReplyReader(conn);
    assert.equal((await reader.readReply()).status, 200);
    assert.equal(await reader.closed(19_000), true);
    const idle = performance.now() - t0;
    assert.ok(idle >= 950 && idle < 15_000, `closed after ${idle} ms`);
  } finally {
    for (const conn of others) conn.close();
  }
});
