/**
 * Deadlines over real sockets, with every timeout shrunk to a few hundred
 * milliseconds: slow heads, silent and idle connections, stalled bodies and
 * clients that stop reading. Plus slowhttptest against the real thing.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import {
  connect,
  exchange,
  get,
  lacks,
  ReplyReader,
  run,
  send,
  sleep,
  trickle,
  waitFor,
} from "./helpers/socket.ts";

const TIMEOUT_MS = 300;
const TIMEOUTS: Partial<Limits> = {
  headTimeoutMs: TIMEOUT_MS,
  keepAliveTimeoutMs: TIMEOUT_MS,
  bodyTimeoutMs: TIMEOUT_MS,
  writeTimeoutMs: TIMEOUT_MS,
};
/**
 * How late past its timeout a close may come. The sweeper ticks at a
 * quarter of the smallest timeout; the rest is for a busy machine. Each
 * test sees to it that a broken timer would be later still.
 */
const SLACK_MS = 4000;

function start(handler: Handler, limits: Partial<Limits> = {}) {
  return serve(
    { port: 0, accessLog: false, limits: { ...TIMEOUTS, ...limits } },
    handler,
  );
}

const ok: Handler = () => ({ status: 200, body: "ok" });

/** Milliseconds since `t0`. */
function since(t0: number): number {
  return performance.now() - t0;
}

Deno.test("Connection answers 408 and closes, when a head trickles in byte by byte", async () => {
  await using server = start(ok);
  const t0 = performance.now(); // before the server's clock starts
  using conn = await connect(server.port);
  // The trickle fails once the server closes; that is the point. It lasts
  // 10 s: a head timer the bytes re-armed would answer after that.
  const slow = trickle(
    conn,
    "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(250),
    40,
  )
    .catch(() => {});
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  const elapsed = since(t0);
  assert.equal(reply.status, 408);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(reply.headers.get("x-content-type-options"), "nosniff");
  assert.ok(elapsed >= TIMEOUT_MS - 20, `408 too early: ${elapsed} ms`);
  assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `408 too late: ${elapsed} ms`);
  assert.equal(await reader.closed(), true);
  conn.close();
  await slow;
  await waitFor(() => server.stats.active === 0, "active back to 0");
});

Deno.test("Connection closes without a reply, when a new connection sends nothing", async () => {
  await using server = start(ok);
  const t0 = performance.now();
  using conn = await connect(server.port);
  const rest = await new ReplyReader(conn).readUntilClose();
  const elapsed = since(t0);
  assert.equal(rest.length, 0);
  assert.ok(elapsed >= TIMEOUT_MS - 20, `closed too early: ${elapsed} ms`);
  assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `closed too late: ${elapsed} ms`);
  await waitFor(() => server.stats.active === 0, "active back to 0");
});

Deno.test("Connection closes a kept-alive connection after keepAliveTimeoutMs idle", async () => {
  await using server = start(ok, { keepAliveTimeoutMs: 1000 });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  // Requests 150 ms apart keep it open well past one timeout (a gap seven
  // times as long would have to come from a busy machine to end it early).
  let t0 = 0;
  for (let i = 0; i < 8; i++) {
    if (i > 0) await sleep(150);
    t0 = performance.now(); // the idle time starts after this request
    await send(conn, get());
    assert.equal((await reader.readReply()).status, 200);
  }
  assert.equal(await reader.closed(), true);
  const elapsed = since(t0);
  assert.ok(elapsed >= 1000 - 20, `closed too early: ${elapsed} ms`);
  assert.ok(elapsed < 1000 + SLACK_MS, `closed too late: ${elapsed} ms`);
  assert.equal(server.stats.requests, 8);
});

Deno.test("Connection answers 408 and closes, when half a body arrives and then nothing", async () => {
  let failure: unknown;
  await using server = start(async (req) => {
    try {
      await req.body.bytes();
    } catch (err) {
      failure = err;
      throw err;
    }
    return { status: 200 };
  });
  using conn = await connect(server.port);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  const t0 = performance.now(); // the body's clock starts after this
  await send(conn, "x".repeat(50));
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  const elapsed = since(t0);
  assert.equal(reply.status, 408);
  assert.equal(reply.headers.get("connection"), "close");
  assert.ok(elapsed >= TIMEOUT_MS - 20, `408 too early: ${elapsed} ms`);
  assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `408 too late: ${elapsed} ms`);
  assert.equal(await reader.closed(), true);
  await waitFor(() => failure !== undefined, "the handler's read to fail");
  await waitFor(() => server.stats.active === 0, "active back to 0");
});

Deno.test("Connection accepts a slow body whose gaps stay under bodyTimeoutMs", async () => {
  await using server = start(async (req) => ({
    status: 200,
    body: String((await req.body.bytes()).length),
  }), { bodyTimeoutMs: 1000 });
  using conn = await connect(server.port);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 80\r\n\r\n");
  for (let i = 0; i < 8; i++) {
    await sleep(150); // 1.2 s in all: over the timeout, no gap near it
    await send(conn, "y".repeat(10));
  }
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "80");
});

Deno.test("Connection times the next head from its own start, when it was pipelined behind a slow request", async () => {
  // The handler takes longer than the head timeout; the client then needs
  // well under it to send the rest of its head, even on a busy machine.
  await using server = start(async (req) => {
    if (req.path === "/slow") await sleep(1500);
    return { status: 200, body: req.path };
  }, { headTimeoutMs: 1000 });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  // The start of the second head arrives with the first request.
  await send(conn, get("/slow") + "GET /next HTTP/1.1\r\nHo");
  assert.equal((await reader.readReply()).text, "/slow");
  await sleep(50);
  await send(conn, "st: x\r\n\r\n");
  const next = await reader.readReply();
  assert.equal(next.status, 200, "not a 408 for the server's own delay");
  assert.equal(next.text, "/next");
});

const stalledWrites: [name: string, handler: Handler][] = [
  ["an endless stream", (req) => ({
    status: 200,
    body: req.path === "/small" ? "ok" : (async function* () {
      const piece = new Uint8Array(256 * 1024);
      for (;;) yield piece;
    })(),
  })],
  ["32 MiB of bytes", (req) => ({
    status: 200,
    body: req.path === "/small" ? "ok" : new Uint8Array(32 * 1024 * 1024),
  })],
];
for (const [name, handler] of stalledWrites) {
  Deno.test(`Connection closes a client that never reads ${name}`, async () => {
    await using server = start(handler);
    using conn = await connect(server.port);
    await send(conn, get());
    // Never read: the server's writes stall once the socket buffers fill.
    await waitFor(
      () => server.stats.active === 0,
      "the stalled connection closed",
      TIMEOUT_MS + SLACK_MS + 5000,
    );
    assert.ok(server.stats.bytesOut > 0);
    // And the server still answers someone else at once.
    const reply = await exchange(server.port, get("/small"));
    assert.equal(reply.status, 200);
  });
}

Deno.test({
  name: "Connection survives slowhttptest's slowloris and keeps answering",
  ignore: await lacks("slowhttptest", "-h"),
}, async () => {
  // 50 connections opened over a second (longer on a busy machine), each
  // sending a header line a second: the head timeout must outlast the
  // opening, so the attack holds most of them at once.
  const HEAD_MS = 3000;
  await using server = start(ok, {
    headTimeoutMs: HEAD_MS,
    keepAliveTimeoutMs: HEAD_MS,
  });
  // -l is a cap: slowhttptest ends as soon as the server has closed every
  // slow connection. -p is how long its own probe request may take before
  // it calls the service unavailable: a busy machine, not the attack, can
  // make that a second or two.
  const attack = run("slowhttptest", [
    "-H",
    "-c",
    "50",
    "-r",
    "50",
    "-i",
    "1",
    "-l",
    "20",
    "-p",
    "5",
    "-u",
    `http://127.0.0.1:${server.port}/`,
  ], 40_000);
  // Once the attack has opened most of its connections (counted as they
  // come, so a slow start cannot hide a peak between two polls), a normal
  // request is answered before any slow head could have been cut to make
  // room. The wait covers starting slowhttptest on a busy machine.
  await waitFor(
    () => server.stats.accepted >= 30,
    "the attack to connect",
    15_000,
  );
  const t0 = performance.now();
  const reply = await exchange(server.port, get("/", "Connection: close\r\n"));
  assert.equal(reply.status, 200);
  assert.ok(since(t0) < HEAD_MS, `slow under attack: ${since(t0)} ms`);
  // Each slow head is cut at headTimeoutMs, long before the attack ends.
  await waitFor(
    () => server.stats.active <= 1,
    "the slow connections closed",
    15_000,
  );
  const result = await attack;
  assert.equal(result.code, 0, result.stderr);
  // deno-lint-ignore no-control-regex
  const out = result.stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
  // It gave up early: the server had closed every slow connection.
  assert.match(out, /Exit status:\s*No open connections left/);
  assert.doesNotMatch(out, /service available:\s*NO/);
  assert.ok(server.stats.accepted >= 50);
  await waitFor(() => server.stats.active === 0, "active back to 0");
  assert.equal((await exchange(server.port, get())).status, 200);
});

Deno.test("Connection closes a connection that sends only empty lines, at headTimeoutMs", async () => {
  await using server = start(ok);
  const t0 = performance.now();
  using conn = await connect(server.port);
  // One empty line every 100 ms would re-arm an idle timer forever (here:
  // for 10 s, past any close this test takes).
  const flood = (async () => {
    for (let i = 0; i < 100; i++) {
      await send(conn, "\r\n");
      await sleep(100);
    }
  })().catch(() => {}); // fails once the server closes
  const reader = new ReplyReader(conn);
  await reader.readUntilClose(TIMEOUT_MS + SLACK_MS + 1000);
  const elapsed = since(t0);
  assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `closed after ${elapsed} ms`);
  conn.close();
  await flood;
  await waitFor(() => server.stats.active === 0, "active back to 0");
});

Deno.test("Connection keeps a kept-alive connection whose request follows a stray empty line", async () => {
  await using server = start(ok, { keepAliveTimeoutMs: 5000 });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  // Some clients send CRLF after a POST body (RFC 9112 §2.2).
  await send(
    conn,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n",
  );
  assert.equal((await reader.readReply()).status, 200);
  await sleep(TIMEOUT_MS + 100); // past headTimeoutMs, within keep-alive
  await send(conn, get());
  assert.equal((await reader.readReply()).status, 200);
});
