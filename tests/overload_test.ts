/**
 * The connection cap and its queue over real sockets, shrunk to two slots
 * and one waiter: a full server answers 503 at once, a waiter is served
 * when a slot frees or refused when it waits too long, and the counters
 * tell the truth throughout.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
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

const SMALL: Partial<Limits> = {
  maxConns: 2,
  maxQueue: 1,
  shutdownTimeoutMs: 1000, // a failed test must not wait 10 s on a held handler
  // Far beyond every wait here (5 s), so what a test sees happen in time
  // cannot be one of these ending instead.
  headTimeoutMs: 60_000,
  keepAliveTimeoutMs: 60_000,
  queueTimeoutMs: 60_000,
};

function start(handler: Handler, limits: Partial<Limits> = {}) {
  return serve(
    { port: 0, accessLog: false, limits: { ...SMALL, ...limits } },
    handler,
  );
}

/** Asserts a 503 with Retry-After and Connection: close, then the close. */
async function assertRefused(conn: Deno.Conn): Promise<void> {
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  assert.equal(reply.status, 503);
  assert.equal(reply.reason, "Service Unavailable");
  assert.match(reply.headers.get("retry-after") ?? "", /^\d+$/);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(reply.headers.get("x-content-type-options"), "nosniff");
  assert.ok(reply.text.length > 0, "a body says why");
  assert.equal(await reader.closed(), true);
}

Deno.test("serve() answers 503 at once when slots and queue are full, and serves the waiter when a slot frees", async () => {
  const { handler, open } = gate();
  await using server = start(handler);
  const stats = server.stats;
  using a = await connect(server.port);
  using b = await connect(server.port);
  await send(a, get("/hold"));
  await send(b, get("/hold"));
  await waitFor(() => stats.active === 2, "two connections in handlers");

  using c = await connect(server.port);
  await send(c, get("/c"));
  await waitFor(() => stats.queued === 1, "the third connection queued");
  assert.equal(stats.active, 2);

  using d = await connect(server.port);
  await send(d, get("/d"));
  await assertRefused(d); // within 5 s: at once, not after the queue's minute
  assert.equal(stats.rejected, 1);
  assert.equal(stats.accepted, 4);
  assert.equal(stats.queued, 1);

  // Once replied, one of the two gives its slot to the waiter, and says so
  // in its reply (Connection: close); the other stays kept-alive.
  open();
  const ra = new ReplyReader(a);
  const rb = new ReplyReader(b);
  const replies = [await ra.readReply(), await rb.readReply()];
  assert.deepEqual(replies.map((r) => r.text), ["/hold", "/hold"]);
  const rc = await new ReplyReader(c).readReply();
  assert.equal(rc.status, 200);
  assert.equal(rc.text, "/c");
  const closing = replies.map((r) => r.headers.get("connection") === "close");
  assert.equal(closing.filter(Boolean).length, 1, "exactly one gave way");
  const gaveWay = closing[0] ? ra : rb;
  assert.equal(await gaveWay.closed(), true);
  assert.equal(stats.queued, 0);
  assert.equal(stats.rejected, 1);
  assert.equal(stats.requests, 3);
});

Deno.test("serve() answers 503 to a waiter past queueTimeoutMs", async () => {
  const { handler, open } = gate();
  await using server = start(handler, { queueTimeoutMs: 200 });
  using _opened = { [Symbol.dispose]: open }; // else shutdown waits on /hold
  using a = await connect(server.port);
  using b = await connect(server.port);
  await send(a, get("/hold"));
  await send(b, get("/hold"));
  await waitFor(() => server.stats.active === 2, "both slots busy");
  const t0 = performance.now(); // before the server can start its clock
  using c = await connect(server.port);
  await send(c, get("/c"));
  await waitFor(() => server.stats.queued === 1, "the waiter queued");
  await assertRefused(c);
  const waited = performance.now() - t0;
  assert.ok(waited >= 180, `refused too early: ${waited} ms`);
  assert.equal(server.stats.queued, 0);
  assert.equal(server.stats.rejected, 1);
});

Deno.test("serve() refuses at once with a queue of 0", async () => {
  const { handler, open } = gate();
  await using server = start(handler, { maxConns: 1, maxQueue: 0 });
  using a = await connect(server.port);
  await send(a, get("/hold"));
  await waitFor(() => server.stats.active === 1, "the slot busy");
  using b = await connect(server.port);
  await assertRefused(b); // even before it sends anything
  assert.equal(server.stats.rejected, 1);
  open();
});

Deno.test("serve() frees the slot of a waiter that left before its turn", async () => {
  const { handler, open } = gate();
  await using server = start(handler, { maxConns: 1, maxQueue: 1 });
  using a = await connect(server.port);
  await send(a, get("/hold"));
  await waitFor(() => server.stats.active === 1, "the slot busy");
  const gone = await connect(server.port);
  await waitFor(() => server.stats.queued === 1, "the waiter queued");
  gone.close();
  open();
  await new ReplyReader(a).readReply();
  a.close();
  // The waiter got the slot, found its client gone, and gave it back.
  await waitFor(() => server.stats.active === 0, "every slot free");
  using c = await connect(server.port);
  await send(c, get("/c"));
  assert.equal((await new ReplyReader(c).readReply()).text, "/c");
  assert.equal(server.stats.rejected, 0);
});

Deno.test("serve() keeps answering 503s, not hanging, under a burst past the queue", async () => {
  const { handler, open } = gate();
  await using server = start(handler);
  const held = await Promise.all([0, 1, 2].map(() => connect(server.port)));
  try {
    for (const conn of held) await send(conn, get("/hold"));
    await waitFor(
      () => server.stats.active === 2 && server.stats.queued === 1,
      "slots and queue full",
    );
    const burst = await Promise.all(
      Array.from({ length: 20 }, () => connect(server.port)),
    );
    try {
      await Promise.all(burst.map((conn) => assertRefused(conn)));
    } finally {
      for (const conn of burst) conn.close();
    }
    assert.equal(server.stats.rejected, 20);
    assert.equal(server.stats.accepted, 23);
    open();
    for (const conn of held.slice(0, 2)) {
      assert.equal((await new ReplyReader(conn).readReply()).status, 200);
    }
  } finally {
    for (const conn of held) conn.close();
  }
  await waitFor(() => server.stats.active === 0, "all slots free");
  assert.equal(server.stats.queued, 0);
});

Deno.test("serve() keeps an idle kept-alive connection for a waiter the queue holds: its next request is answered, with Connection: close", async () => {
  await using server = start(() => ({ status: 200, body: "ok" }), {
    maxConns: 1,
    maxQueue: 1,
  });
  // A: one request, then it sits idle on its kept-alive connection, holding the only slot.
  using a = await connect(server.port);
  const ra = new ReplyReader(a);
  await send(a, get("/a"));
  assert.equal((await ra.readReply()).headers.get("connection"), undefined);
  // B waits in the queue; A is not closed under a client that may be reusing it.
  using b = await connect(server.port);
  await send(b, get("/b"));
  await waitFor(() => server.stats.queued === 1, "B queued");
  // A reuses its connection: answered, and told that the connection ends.
  await send(a, get("/a2"));
  const again = await ra.readReply();
  assert.equal(again.status, 200);
  assert.equal(again.headers.get("connection"), "close");
  assert.equal(await ra.closed(), true);
  // Its slot went to B.
  const reply = await new ReplyReader(b).readReply();
  assert.equal(reply.status, 200);
  assert.equal(server.stats.rejected, 0);
});

Deno.test("serve() gives a waiter the slot of an idle connection when its keep-alive time ends", async () => {
  await using server = start(() => ({ status: 200, body: "ok" }), {
    maxConns: 1,
    maxQueue: 1,
    // A quarter while busy: 1 s, from when A went idle, a little before t0.
    keepAliveTimeoutMs: 4000,
  });
  using a = await connect(server.port);
  const ra = new ReplyReader(a);
  await send(a, get("/a"));
  await ra.readReply();
  const t0 = performance.now();
  using b = await connect(server.port);
  await send(b, get("/b"));
  const reply = await new ReplyReader(b).readReply();
  assert.equal(reply.status, 200);
  assert.ok(performance.now() - t0 >= 500, "A was not closed at once");
  assert.equal(await ra.closed(), true);
});

const evictions: [
  name: string,
  prepare: (port: number) => Promise<Deno.Conn>,
][] = [
  ["a silent connection", (port) => connect(port)],
  ["a connection idle past reclaimIdleMs", async (port) => {
    const conn = await connect(port);
    await send(conn, get("/a"));
    await new ReplyReader(conn).readReply();
    await sleep(150);
    return conn;
  }],
];
for (const [name, prepare] of evictions) {
  Deno.test(`serve() closes ${name} for a newcomer the full queue cannot hold`, async () => {
    await using server = start(() => ({ status: 200, body: "ok" }), {
      maxConns: 1,
      maxQueue: 0,
      reclaimIdleMs: 100,
    });
    using a = await prepare(server.port);
    await waitFor(() => server.stats.active === 1, "A holds the slot");
    using b = await connect(server.port);
    await send(b, get("/b"));
    assert.equal((await new ReplyReader(b).readReply()).status, 200);
    assert.equal(await new ReplyReader(a).closed(), true);
    assert.equal(server.stats.rejected, 0);
  });
}

Deno.test("serve() refuses a newcomer rather than close a connection that has just replied", async () => {
  await using server = start(() => ({ status: 200, body: "ok" }), {
    maxConns: 1,
    maxQueue: 0,
    reclaimIdleMs: 5000,
  });
  using a = await connect(server.port);
  const ra = new ReplyReader(a);
  await send(a, get("/a"));
  await ra.readReply();
  using b = await connect(server.port);
  await assertRefused(b);
  // A is still open and still served.
  await send(a, get("/a2"));
  assert.equal((await ra.readReply()).status, 200);
});

Deno.test("serve() does not reclaim a connection whose request is in flight", async () => {
  const { handler, open } = gate();
  await using server = start(handler, { maxConns: 1, maxQueue: 1 });
  using a = await connect(server.port);
  const ra = new ReplyReader(a);
  await send(a, get("/hold"));
  await waitFor(() => server.stats.active === 1, "A in flight");
  using b = await connect(server.port);
  const rb = new ReplyReader(b);
  await send(b, get("/b"));
  await waitFor(() => server.stats.queued === 1, "B queued");
  open();
  assert.equal((await ra.readReply()).text, "/hold");
  // A is idle now and B waits: A's slot goes to B.
  assert.equal((await rb.readReply()).text, "/b");
});
