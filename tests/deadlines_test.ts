/**
 * Minimum rates and busy deadlines over real sockets: a body or a reader
 * slower than its minimum rate is cut once the grace is spent, time the
 * server spends elsewhere never counts, and deadlines shrink while the
 * server is busy.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import {
  DeadlineWheel,
  rateBudgetMs,
  Timed,
  timeoutsOf,
} from "../lib/http/deadlines.ts";
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
import { runWithNatives } from "./helpers/natives.ts";

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

Deno.test("timeoutsOf() works out a reply's first write deadline: the gap or the grace, whichever is sooner", () => {
  const limits = {
    ...DEFAULT_LIMITS,
    writeTimeoutMs: 30_000,
    minRateGraceMs: 10_000,
    minSendBytesPerSec: 1024,
    busyTimeoutDivisor: 4,
  };
  const t = timeoutsOf(limits);
  assert.equal(t.firstWriteMs, 10_000);
  assert.equal(t.firstWriteBusyMs, 2_500);
  const slow = timeoutsOf({ ...limits, minRateGraceMs: 60_000 });
  assert.equal(slow.firstWriteMs, 30_000);
  assert.equal(slow.firstWriteBusyMs, 7_500);
  // No minimum rate: only the gap.
  const free = timeoutsOf({ ...limits, minSendBytesPerSec: 0 });
  assert.equal(free.firstWriteMs, 30_000);
  assert.equal(free.firstWriteBusyMs, 7_500);
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

/** An owner for the wheel that records when it was expired. */
class Owner extends Timed {
  deadline = 0;
  busyDeadline = 0;
  readonly expired: number[] = [];

  set(wheel: DeadlineWheel, deadline: number, busyDeadline = deadline): void {
    this.deadline = deadline;
    this.busyDeadline = busyDeadline;
    wheel.arm(this, busyDeadline);
  }

  expire(now: number, busy: boolean): void {
    const deadline = busy ? this.busyDeadline : this.deadline;
    if (deadline === 0 || now < deadline) return;
    this.expired.push(now);
    this.deadline = this.busyDeadline = 0;
  }
}

Deno.test("DeadlineWheel expires an owner in the tick its deadline falls in, not before", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const a = new Owner();
  a.set(wheel, 250);
  wheel.advance(200, false);
  assert.deepEqual(a.expired, []);
  wheel.advance(300, false);
  assert.deepEqual(a.expired, [300]);
  assert.equal(wheel.size, 0);
});

Deno.test("DeadlineWheel visits only the due entries: 5000 idle owners cost nothing per tick", () => {
  const wheel = new DeadlineWheel(100, 5000, 0);
  const idle = Array.from({ length: 5000 }, () => new Owner());
  for (const o of idle) o.set(wheel, 4000);
  const busy = new Owner();
  busy.set(wheel, 150);
  let visited = 0;
  for (let now = 100; now <= 3900; now += 100) {
    visited += wheel.advance(now, false);
  }
  assert.equal(visited, 1);
  assert.deepEqual(busy.expired, [200]);
  assert.equal(wheel.advance(4000, false), 5000);
  assert.ok(idle.every((o) => o.expired.length === 1));
});

Deno.test("DeadlineWheel files a later deadline lazily: no move on arm, re-filed when the old time comes", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const a = new Owner();
  a.set(wheel, 300);
  const tick = a.wheelTick;
  a.set(wheel, 350); // same tick
  a.set(wheel, 900); // later: stays where it is
  assert.equal(a.wheelTick, tick);
  assert.equal(wheel.advance(300, false), 1); // visited, not expired: re-filed
  assert.deepEqual(a.expired, []);
  assert.equal(wheel.size, 1);
  wheel.advance(800, false);
  assert.deepEqual(a.expired, []);
  wheel.advance(900, false);
  assert.deepEqual(a.expired, [900]);
});

Deno.test("DeadlineWheel moves an owner whose deadline comes sooner", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const a = new Owner();
  a.set(wheel, 900);
  a.set(wheel, 200);
  wheel.advance(200, false);
  assert.deepEqual(a.expired, [200]);
  assert.equal(wheel.size, 0);
});

Deno.test("DeadlineWheel drops an owner whose deadline was cleared, until it arms again", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const a = new Owner();
  a.set(wheel, 200);
  a.deadline = a.busyDeadline = 0; // cleared on the hot path: no wheel call
  wheel.advance(200, false);
  assert.equal(wheel.size, 0);
  a.set(wheel, 500);
  wheel.advance(500, false);
  assert.deepEqual(a.expired, [500]);
});

Deno.test("DeadlineWheel remove() takes an owner out, and the others keep their places", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const owners = [0, 1, 2].map(() => new Owner());
  for (const o of owners) o.set(wheel, 300);
  wheel.remove(owners[0]);
  wheel.remove(owners[0]); // twice is harmless
  assert.equal(wheel.size, 2);
  wheel.advance(300, false);
  assert.deepEqual(owners.map((o) => o.expired.length), [0, 1, 1]);
});

Deno.test("DeadlineWheel keeps a deadline past its ring for a later lap", () => {
  const wheel = new DeadlineWheel(100, 500, 0); // a ring of 7 slots
  const far = new Owner();
  far.set(wheel, 2000);
  for (let now = 100; now < 2000; now += 100) wheel.advance(now, false);
  assert.deepEqual(far.expired, []);
  wheel.advance(2000, false);
  assert.deepEqual(far.expired, [2000]);
});

Deno.test("DeadlineWheel catches up after a long stall: everything due goes in one visit", () => {
  const wheel = new DeadlineWheel(100, 500, 0);
  const owners = [150, 700, 1900, 5000].map((at) => {
    const o = new Owner();
    o.set(wheel, at);
    return o;
  });
  wheel.advance(3000, false); // no call for 30 ticks, several laps
  assert.deepEqual(owners.map((o) => o.expired), [[3000], [3000], [3000], []]);
  wheel.advance(5000, false);
  assert.deepEqual(owners[3].expired, [5000]);
});

Deno.test("DeadlineWheel uses the busy deadline while busy, and visitAll() catches one filed by its plain time", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const a = new Owner();
  a.set(wheel, 900, 300);
  wheel.advance(300, false); // not busy: re-filed at 900
  assert.deepEqual(a.expired, []);
  wheel.advance(400, false);
  assert.equal(wheel.visitAll(450, true), 1); // the server turns busy
  assert.deepEqual(a.expired, [450]);
  const b = new Owner();
  b.set(wheel, 900, 600);
  wheel.advance(600, true);
  assert.deepEqual(b.expired, [600]);
});

Deno.test("DeadlineWheel files a deadline already past for the next tick", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  wheel.advance(500, false);
  const a = new Owner();
  a.set(wheel, 100);
  wheel.advance(599, false);
  assert.deepEqual(a.expired, []);
  wheel.advance(600, false);
  assert.deepEqual(a.expired, [600]);
});

Deno.test("DeadlineWheel copes with an owner whose expiry removes another due in the same tick", () => {
  const wheel = new DeadlineWheel(100, 1000, 0);
  const owners = [0, 1, 2].map(() => new Owner());
  for (const o of owners) o.set(wheel, 300);
  const first = owners[0];
  const expire = first.expire.bind(first);
  // Closing the first takes the last out of the wheel (as a close would).
  first.expire = (now, busy) => {
    expire(now, busy);
    owners[2].deadline = owners[2].busyDeadline = 0;
    wheel.remove(owners[2]);
  };
  const late = new Owner();
  wheel.advance(300, false);
  late.set(wheel, 400); // filed into the ring after the visit
  assert.deepEqual(owners.map((o) => o.expired.length), [1, 1, 0]);
  assert.equal(wheel.size, 1);
  wheel.advance(400, false);
  assert.deepEqual(late.expired, [400]);
  assert.equal(wheel.size, 0);
});

Deno.test("DeadlineWheel: pulling a filed deadline earlier, into a slot not used yet, keeps an optimized caller optimized", async () => {
  // Each slot is a list of objects from the start, and filing makes the
  // same call whether or not the entry was filed: V8 otherwise deoptimizes
  // the request loop the first time this happens under load.
  const { before, after } = await runWithNatives<number>(
    new URL("./fixtures/wheel_deopt.ts", import.meta.url),
  );
  assert.equal(before & 64, 0, "optimized before (64: interpreted)");
  assert.equal(after, before);
});
