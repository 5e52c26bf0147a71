/**
 * The HTTP/2 attacks of tests/h2_attacks_test.ts again, end to end: a real
 * socket to serve() (h2c), the engine's H2Connection and its deadlines.
 * Each ends in GOAWAY with the RFC's error code and a closed connection,
 * or in a reset stream on a connection that goes on serving.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import {
  ERROR,
  type Fields,
  FRAME,
  H2Client,
  SETTING,
  streamOf,
} from "./helpers/h2_client.ts";
import type { FrameInit } from "../lib/http/h2/frames.ts";
import { waitFor } from "./helpers/socket.ts";

const GET: Fields = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "localhost"],
];

function h2c(handler: Handler, limits: Partial<Limits>) {
  return serve({ port: 0, h2c: true, accessLog: false, limits }, handler);
}

Deno.test("rapid reset over a socket: streams opened and cancelled at once end in GOAWAY ENHANCE_YOUR_CALM; handlers bounded", async () => {
  let calls = 0;
  await using server = h2c(async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 1));
    return { status: 200, body: "x" };
  }, { h2MaxResetStreams: 50 });
  await using c = await H2Client.connect(server.port);
  const frames: FrameInit[] = [];
  for (let i = 0; i < 500; i++) {
    const id = c.nextStream();
    frames.push(c.headers(id, GET), {
      type: FRAME.RST_STREAM,
      streamId: id,
      code: ERROR.CANCEL,
    });
  }
  await c.send(...frames).catch(() => {}); // the server may close mid-write
  await c.assertGoaway(ERROR.ENHANCE_YOUR_CALM);
  assert.ok(calls <= 100, `${calls} handlers ran for 500 cancelled streams`);
  await waitFor(() => server.stats.active === 0, "the connection to close");
});

Deno.test("a stream reset in the same write as its request never reaches a handler; its line says 499", async () => {
  await using logs = await captureLogs();
  let calls = 0;
  await using server = serve({
    port: 0,
    h2c: true,
    accessLog: true,
  }, () => {
    calls++;
    return { status: 200, body: "x" };
  });
  await using c = await H2Client.connect(server.port);
  const id = c.nextStream();
  // One small write: one segment, one read on loopback.
  await c.send(c.headers(id, GET), {
    type: FRAME.RST_STREAM,
    streamId: id,
    code: ERROR.CANCEL,
  });
  assert.equal((await c.request("/next")).status, 200);
  assert.equal(calls, 1); // /next only
  const [reset] = logs.access();
  assert.equal(reset.status, 499);
  assert.equal(reset.aborted, true);
});

const floods: [string, (c: H2Client) => FrameInit[]][] = [
  ["PING", () => [{ type: FRAME.PING, ack: false, data: new Uint8Array(8) }]],
  ["SETTINGS", () => [{ type: FRAME.SETTINGS, ack: false, settings: [] }]],
  ["empty DATA", () => [{
    type: FRAME.DATA,
    streamId: 1,
    endStream: false,
    data: new Uint8Array(0),
    flowLength: 0,
  }]],
];
for (const [what, frame] of floods) {
  Deno.test(`${what} flood over a socket ends in GOAWAY ENHANCE_YOUR_CALM`, async () => {
    await using server = h2c(async (req) => {
      await req.body.bytes(); // holds stream 1 open for the empty DATA frames
      return { status: 200 };
    }, { h2MaxCheapFrames: 100 });
    await using c = await H2Client.connect(server.port);
    await c.send(c.headers(1, GET, false));
    c.nextStream();
    const frames: FrameInit[] = [];
    for (let i = 0; i < 300; i++) frames.push(...frame(c));
    await c.send(...frames).catch(() => {});
    await c.assertGoaway(ERROR.ENHANCE_YOUR_CALM);
  });
}

Deno.test("CONTINUATION flood over a socket ends in GOAWAY ENHANCE_YOUR_CALM", async () => {
  await using server = h2c(() => ({ status: 200 }), {});
  await using c = await H2Client.connect(server.port);
  const frames: FrameInit[] = [{
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: true,
    endHeaders: false,
    priority: undefined,
    fragment: c.block(GET),
  }];
  for (let i = 0; i < 100; i++) {
    frames.push({
      type: FRAME.CONTINUATION,
      streamId: 1,
      endHeaders: false,
      fragment: new Uint8Array(0),
    });
  }
  await c.send(...frames).catch(() => {});
  await c.assertGoaway(ERROR.ENHANCE_YOUR_CALM);
});

Deno.test("HPACK bomb over a socket: a small block that decodes huge gets 431, and the connection serves on", async () => {
  await using server = h2c(() => ({ status: 200, body: "ok" }), {});
  await using c = await H2Client.connect(server.port);
  // One 4000-byte entry in the table, then a block naming it 500 times:
  // ~500 bytes on the wire, 2 MB decoded.
  const first = await c.request("/", {
    fields: [["x-big", "b".repeat(4000)]],
  });
  assert.equal(first.status, 200);
  const bomb = new Uint8Array(500).fill(0xbe); // indexed field 62: the newest entry
  const id = c.nextStream();
  await c.send({
    type: FRAME.HEADERS,
    streamId: id,
    endStream: true,
    endHeaders: true,
    priority: undefined,
    fragment: new Uint8Array([...c.block(GET), ...bomb]),
  });
  assert.equal((await c.reply(id)).status, 431);
  assert.equal((await c.request("/fine")).status, 200);
});

Deno.test("zero-window stall: a reply the client never opens a window for is reset after writeTimeoutMs; the connection serves on", async () => {
  await using logs = await captureLogs();
  await using server = serve({
    port: 0,
    h2c: true,
    accessLog: true,
    limits: { writeTimeoutMs: 300 },
  }, () => ({ status: 200, body: "a reply the client will not take" }));
  await using c = await H2Client.connect(server.port, {
    settings: [[SETTING.INITIAL_WINDOW_SIZE, 0]],
  });
  const id = c.nextStream();
  await c.send(c.headers(id, GET));
  const reset = await c.until((f) =>
    f.type === FRAME.RST_STREAM && f.streamId === id
  );
  assert.ok(reset.type === FRAME.RST_STREAM);
  assert.equal(reset.code, ERROR.CANCEL);
  // Its head went out; no byte of its body did.
  assert.equal(
    c.frames.some((f) => f.type === FRAME.DATA && streamOf(f) === id),
    false,
  );
  const head = await c.request("/", { method: "HEAD" });
  assert.equal(head.status, 200);
  const [line] = logs.access();
  assert.equal(line.aborted, true);
  assert.equal(line.error, "Write stalled");
});

Deno.test("zero-window stall on the connection window: GOAWAY ENHANCE_YOUR_CALM after writeTimeoutMs", async () => {
  await using server = h2c(
    () => ({ status: 200, body: new Uint8Array(200_000) }),
    { writeTimeoutMs: 300 },
  );
  // Stream windows wide open, the connection's left at 64 KiB and never grown.
  await using c = await H2Client.connect(server.port, { openWindow: false });
  await c.send(c.headers(c.nextStream(), GET));
  await c.assertGoaway(ERROR.ENHANCE_YOUR_CALM);
  const data = c.frames.filter((f) => f.type === FRAME.DATA);
  assert.equal(
    data.reduce((n, f) => n + (f.type === FRAME.DATA ? f.data.length : 0), 0),
    65_535,
  );
});

Deno.test("slow read: a client that stops reading the socket is closed after writeTimeoutMs", async () => {
  await using server = h2c(
    () => ({ status: 200, body: new Uint8Array(64 * 1024 * 1024) }),
    { writeTimeoutMs: 300, minSendBytesPerSec: 0 },
  );
  await using c = await H2Client.connect(server.port, { deaf: true });
  await c.send(c.headers(c.nextStream(), GET));
  await waitFor(
    () => server.stats.bytesOut > 0 && server.stats.active === 0,
    "the server to give up on the stalled connection",
    20_000,
  );
  assert.ok(server.stats.bytesOut < 64 * 1024 * 1024);
});

Deno.test("stream-id reuse over a socket: HEADERS on a closed stream ends the connection", async () => {
  await using server = h2c(() => ({ status: 204 }), {});
  await using c = await H2Client.connect(server.port);
  await c.send(c.headers(1, GET));
  await c.reply(1);
  await c.send(c.headers(1, GET));
  const g = await c.goaway();
  assert.ok(
    g.code === ERROR.STREAM_CLOSED || g.code === ERROR.PROTOCOL_ERROR,
    `GOAWAY ${g.code}`,
  );
  await c.closedWithin();
});

Deno.test("window overflow over a socket: the connection window past 2^31 - 1 ends in GOAWAY FLOW_CONTROL_ERROR", async () => {
  await using server = h2c(() => ({ status: 204 }), {});
  await using c = await H2Client.connect(server.port); // already at 2^31 - 1
  await c.send({ type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 1 });
  await c.assertGoaway(ERROR.FLOW_CONTROL_ERROR);
});
