/**
 * The HTTP/2 attacks that broke production servers, each driven as raw
 * frames against an H2Session. Each must stay bounded in memory and work
 * (counted here in events, frames and queued bytes, never in time) and end
 * in GOAWAY with the right error code.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import {
  ERROR,
  FRAME,
  type FrameInit,
  MAX_STREAM_ID,
  SETTING,
  UNKNOWN_FRAME,
} from "../lib/http/h2/frames.ts";
import { INDEX } from "../lib/http/h2/hpack.ts";
import type { H2Event } from "../lib/http/h2/session.ts";
import { OutBuffer } from "../lib/http/response.ts";
import { assertGoaway, FakeClient, get } from "./helpers/h2.ts";

const limits = (over: Partial<Limits>): Limits => ({
  ...DEFAULT_LIMITS,
  ...over,
});

/**
 * An engine that answers each request at once with 204, as a fast handler
 * would, and releases each reset stream; a stream reset in the same batch
 * never got its handler going.
 */
function answerAll(c: FakeClient, events: H2Event[]): void {
  const reset = new Set(
    events.filter((e) => e.type === "reset").map((e) => e.streamId),
  );
  for (const e of events) {
    if (c.session.finished) return;
    if (
      (e.type === "request" || e.type === "reject") && !reset.has(e.streamId)
    ) {
      c.session.sendHeaders(e.streamId, 204, undefined, true);
    }
    if (e.type === "reset") c.session.release(e.streamId);
  }
}

Deno.test("rapid reset (CVE-2023-44487): streams cancelled at once end in GOAWAY ENHANCE_YOUR_CALM", () => {
  const c = new FakeClient();
  let requests = 0;
  for (let id = 1; id < 20_000 && !c.session.finished; id += 2) {
    const events = c.send(c.headers(id, get()), {
      type: FRAME.RST_STREAM,
      streamId: id,
      code: ERROR.CANCEL,
    });
    requests += events.filter((e) => e.type === "request").length;
    answerAll(c, events); // a fast engine releases each reset stream
    c.read();
  }
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
  assert.ok(
    requests <= DEFAULT_LIMITS.h2MaxResetStreams + 1,
    `${requests} handlers started`,
  );
});

Deno.test("rapid reset with slow handlers: reset streams keep their slots, so the client gets REFUSED_STREAM, then GOAWAY", () => {
  const c = new FakeClient(
    limits({ h2MaxConcurrentStreams: 10, h2MaxResetStreams: 50 }),
  );
  let requests = 0;
  for (let id = 1; id < 20_000 && !c.session.finished; id += 2) {
    const events = c.send(c.headers(id, get()), {
      type: FRAME.RST_STREAM,
      streamId: id,
      code: ERROR.CANCEL,
    });
    requests += events.filter((e) => e.type === "request").length;
    assert.ok(c.session.activeStreams <= 10);
    c.read(); // the engine never releases: its handlers still run
  }
  assert.equal(requests, 10, "no handler beyond h2MaxConcurrentStreams");
  assert.ok(
    c.framesOf(FRAME.RST_STREAM).every((f) => f.code === ERROR.REFUSED_STREAM),
  );
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});

Deno.test("a client that cancels some requests, as browsers do, keeps its connection", () => {
  const c = new FakeClient(limits({ h2MaxResetStreams: 20 }));
  for (let id = 1; id < 4000; id += 2) {
    const events = c.send(c.headers(id, get()));
    if (id % 4 === 1) {
      answerAll(c, events); // answered
    } else {
      answerAll(
        c,
        c.send({ type: FRAME.RST_STREAM, streamId: id, code: ERROR.CANCEL }),
      ); // cancelled
    }
    c.read();
  }
  assert.equal(c.session.finished, false);
  assert.equal(c.goaway(), undefined);
});

Deno.test("many streams opened and never answered stay at h2MaxConcurrentStreams, then GOAWAY", () => {
  const c = new FakeClient(limits({ h2MaxResetStreams: 100 }));
  for (let id = 1; id < 100_000 && !c.session.finished; id += 2) {
    c.send(c.headers(id, get()));
    c.read();
  }
  assert.equal(
    c.eventsOf("request").length,
    DEFAULT_LIMITS.h2MaxConcurrentStreams,
  );
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});

Deno.test("CONTINUATION flood (CVE-2024-27316): endless empty CONTINUATIONs end in GOAWAY ENHANCE_YOUR_CALM", () => {
  const c = new FakeClient();
  const block = c.block(get());
  c.send({
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: true,
    endHeaders: false,
    priority: undefined,
    fragment: block,
  });
  let sent = 0;
  while (!c.session.finished && sent < 100_000) {
    c.send({
      type: FRAME.CONTINUATION,
      streamId: 1,
      endHeaders: false,
      fragment: new Uint8Array(0),
    });
    sent++;
  }
  assert.equal(sent, DEFAULT_LIMITS.h2MaxContinuationFrames + 1);
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
  assert.equal(c.eventsOf("request").length, 0);
});

Deno.test("CONTINUATION flood: a header block past h2MaxHeaderBlockBytes ends in GOAWAY before it is buffered", () => {
  const L = limits({ h2MaxContinuationFrames: 10_000 });
  const c = new FakeClient(L);
  c.send({
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: true,
    endHeaders: false,
    priority: undefined,
    fragment: c.block(get()),
  });
  const piece = new Uint8Array(1024).fill(0x82); // ":method: GET", over and over
  let accepted = 0;
  while (!c.session.finished && accepted < 10_000) {
    c.send({
      type: FRAME.CONTINUATION,
      streamId: 1,
      endHeaders: false,
      fragment: piece,
    });
    if (!c.session.finished) accepted++;
  }
  assert.ok(
    accepted * 1024 <= L.h2MaxHeaderBlockBytes,
    `${accepted} KiB buffered`,
  );
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});

/** A block that puts a 2 KiB entry in the table, then names it `times` times, a byte each. */
function bomb(c: FakeClient, streamId: number, times: number): FrameInit {
  const out = new OutBuffer();
  c.encoder.beginBlock(out);
  for (const [n, v] of get()) c.encoder.writeField(out, n, v, INDEX);
  for (let i = 0; i < times; i++) {
    c.encoder.writeField(out, "x-bomb", "b".repeat(2000), INDEX);
  }
  return {
    type: FRAME.HEADERS,
    streamId,
    endStream: true,
    endHeaders: true,
    priority: undefined,
    fragment: out.buf.slice(0, out.len),
  };
}

Deno.test("HPACK bomb: a small block naming a big table entry thousands of times gets 431, and the table stays in step", () => {
  const c = new FakeClient();
  const frame = bomb(c, 1, 12_000);
  const fragment = (frame as { fragment: Uint8Array }).fragment;
  assert.ok(fragment.length < 16_384, `block of ${fragment.length} bytes`); // decodes to 24 MB
  const [event] = c.send(frame);
  assert.equal(event.type, "reject");
  assert.equal(event.type === "reject" && event.error.status, 431);
  c.session.sendHeaders(1, 431, undefined, true);
  // The decoder kept the table in step: the next request uses it.
  const events = c.send(
    c.headers(3, get("/after", [["x-bomb", "b".repeat(2000)]])),
  );
  assert.equal(events[0].type, "request");
  assert.equal(
    events[0].type === "request" &&
      events[0].head.headers.get("x-bomb")?.length,
    2000,
  );
  assert.equal(c.session.finished, false);
});

Deno.test("HPACK bomb, again and again: the refused streams run out the budget, then GOAWAY", () => {
  const c = new FakeClient(limits({ h2MaxResetStreams: 5 }));
  for (let id = 1; id < 100 && !c.session.finished; id += 2) {
    answerAll(c, c.send(bomb(c, id, 1000)));
    c.read();
  }
  assert.equal(c.eventsOf("reject").length, 6);
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});

/** [what, a frame to repeat (after the setup frames)] */
const CHEAP_FLOODS: [
  string,
  (c: FakeClient, i: number) => FrameInit,
  (c: FakeClient) => FrameInit[],
][] = [
  [
    "SETTINGS",
    () => ({
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.MAX_FRAME_SIZE, 16_384]],
    }),
    () => [],
  ],
  [
    "PING",
    () => ({ type: FRAME.PING, ack: false, data: new Uint8Array(8) }),
    () => [],
  ],
  [
    "PING ack",
    () => ({ type: FRAME.PING, ack: true, data: new Uint8Array(8) }),
    () => [],
  ],
  [
    "empty DATA",
    (c) => c.data(1, "", false),
    (c) => [c.headers(1, get(), { endStream: false })],
  ],
  ["PRIORITY", (_, i) => ({
    type: FRAME.PRIORITY,
    streamId: 2 * i + 1,
    priority: { dependency: 0, exclusive: false, weight: 16 },
  }), () => []],
  [
    "WINDOW_UPDATE",
    () => ({ type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 1 }),
    () => [],
  ],
  ["unknown frame types", () => ({
    type: UNKNOWN_FRAME,
    frameType: 0x42,
    streamId: 0,
    flags: 0,
    payload: new Uint8Array(0),
  }), () => []],
  [
    "RST_STREAM on a closed stream",
    () => ({ type: FRAME.RST_STREAM, streamId: 1, code: 0 }),
    (c) => [c.headers(1, get()), {
      type: FRAME.RST_STREAM,
      streamId: 1,
      code: 0,
    }],
  ],
];
for (const [what, frame, setup] of CHEAP_FLOODS) {
  Deno.test(`${what} flood ends in GOAWAY ENHANCE_YOUR_CALM after h2MaxCheapFrames, even read promptly`, () => {
    const c = new FakeClient();
    c.send(...setup(c));
    let sent = 0;
    while (!c.session.finished && sent < 100_000) {
      const batch: FrameInit[] = [];
      for (let k = 0; k < 50; k++) batch.push(frame(c, sent + k));
      c.send(...batch);
      sent += batch.length;
      c.read(); // this client reads every ack
    }
    assert.ok(
      sent <= DEFAULT_LIMITS.h2MaxCheapFrames + 50,
      `${sent} frames read`,
    );
    assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
  });
}

Deno.test("a client that sends PINGs and never reads the acks gets GOAWAY at h2MaxQueuedControlFrames", () => {
  const c = new FakeClient(limits({ h2MaxQueuedControlFrames: 100 }));
  c.read();
  let sent = 0;
  while (!c.session.finished && sent < 10_000) {
    c.send({ type: FRAME.PING, ack: false, data: new Uint8Array(8) });
    sent++;
  }
  assert.equal(sent, 101);
  assert.ok(
    c.session.pendingOutputBytes < 101 * 17 + 100,
    `${c.session.pendingOutputBytes} bytes queued`,
  );
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});

Deno.test("a long download earns back the WINDOW_UPDATEs it takes", () => {
  const c = new FakeClient(limits({ h2MaxCheapFrames: 10 }));
  c.send(
    {
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.INITIAL_WINDOW_SIZE, 16_384]],
    },
    c.headers(1, get()),
  );
  c.session.sendHeaders(1, 200, undefined, false);
  const piece = new Uint8Array(16_384);
  for (let i = 0; i < 500; i++) {
    assert.equal(c.session.sendData(1, piece, false), 16_384, `piece ${i}`);
    c.read();
    c.send(
      { type: FRAME.WINDOW_UPDATE, streamId: 1, increment: 16_384 },
      { type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 16_384 },
    );
  }
  assert.equal(c.session.finished, false);
});

Deno.test("zero-window stall: a client that opens no window gets nothing queued, and the engine can reset it", () => {
  const c = new FakeClient(DEFAULT_LIMITS, false);
  c.send(
    new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    {
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.INITIAL_WINDOW_SIZE, 0]],
    },
  );
  c.send(c.headers(1, get()));
  c.read();
  c.session.sendHeaders(1, 200, undefined, false);
  const body = new Uint8Array(1 << 20);
  for (let i = 0; i < 100; i++) {
    assert.equal(c.session.sendData(1, body, true), 0);
  }
  assert.equal(
    c.session.sendWindow(1),
    0,
    "what the engine's write timeout watches",
  );
  assert.ok(c.session.pendingOutputBytes < 100, "no body bytes queued");
  // writeTimeoutMs passes: the engine gives up on the stream.
  c.session.reset(1, ERROR.CANCEL);
  assert.equal(
    c.read().find((f) => f.type === FRAME.RST_STREAM)?.type,
    FRAME.RST_STREAM,
  );
  assert.equal(c.session.activeStreams, 0);
});

Deno.test("zero-window stall on the connection window: sendWindow() says so for every stream", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()), c.headers(3, get()));
  for (const id of [1, 3]) c.session.sendHeaders(id, 200, undefined, false);
  assert.equal(c.session.sendData(1, new Uint8Array(100_000), false), 65_535);
  assert.equal(c.session.sendWindow(1), 0);
  assert.equal(c.session.sendWindow(3), 0);
  assert.equal(c.session.sendData(3, new Uint8Array(10), true), 0);
  // writeTimeoutMs passes with the connection window shut: the engine ends it.
  c.session.goaway(ERROR.ENHANCE_YOUR_CALM, "Client stopped reading");
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});

Deno.test("window overflow: a stream window past 2^31 - 1 resets the stream (FLOW_CONTROL_ERROR)", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.send({ type: FRAME.WINDOW_UPDATE, streamId: 1, increment: MAX_STREAM_ID });
  c.read();
  assert.equal(c.framesOf(FRAME.RST_STREAM)[0]?.code, ERROR.FLOW_CONTROL_ERROR);
  assert.equal(c.session.finished, false);
});

Deno.test("window overflow: the connection window past 2^31 - 1 ends the connection (FLOW_CONTROL_ERROR)", () => {
  const c = new FakeClient();
  c.send({
    type: FRAME.WINDOW_UPDATE,
    streamId: 0,
    increment: MAX_STREAM_ID - 65_535,
  });
  assert.equal(c.session.finished, false, "exactly 2^31 - 1 is allowed");
  c.send({ type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 1 });
  assertGoaway(c, ERROR.FLOW_CONTROL_ERROR);
});

Deno.test("window overflow: SETTINGS_INITIAL_WINDOW_SIZE that takes an open stream past 2^31 - 1 ends the connection", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.send({
    type: FRAME.WINDOW_UPDATE,
    streamId: 1,
    increment: MAX_STREAM_ID - 65_535,
  });
  c.send({
    type: FRAME.SETTINGS,
    ack: false,
    settings: [[SETTING.INITIAL_WINDOW_SIZE, 65_536]],
  });
  assertGoaway(c, ERROR.FLOW_CONTROL_ERROR);
});

Deno.test("stream-id reuse: HEADERS on a stream id already used ends the connection", () => {
  const c = new FakeClient();
  answerAll(c, c.send(c.headers(1, get()), c.headers(3, get())));
  c.send(c.headers(1, get()));
  assertGoaway(c, ERROR.STREAM_CLOSED);
  const skipped = new FakeClient();
  skipped.send(skipped.headers(7, get()));
  skipped.send(skipped.headers(5, get())); // never used, now closed for good (§5.1.1)
  assertGoaway(skipped, ERROR.PROTOCOL_ERROR);
});

Deno.test("stream-id exhaustion: the last stream id is served, with a graceful GOAWAY", () => {
  const c = new FakeClient();
  const [event] = c.send(c.headers(MAX_STREAM_ID, get()));
  assert.equal(event.type, "request");
  const g = c.goaway();
  assert.deepEqual([g?.lastStreamId, g?.code], [MAX_STREAM_ID, ERROR.NO_ERROR]);
  assert.equal(
    c.session.finished,
    false,
    "the last stream still gets its reply",
  );
  c.session.sendHeaders(MAX_STREAM_ID, 204, undefined, true);
  assert.equal(c.session.finished, true);
});

Deno.test("stream-id exhaustion: near 2^31 the session says GOAWAY early, while streams can still finish", () => {
  const c = new FakeClient();
  const id = MAX_STREAM_ID - 2 * DEFAULT_LIMITS.h2MaxConcurrentStreams;
  c.send(c.headers(id - 2, get()));
  assert.equal(c.goaway(), undefined);
  c.send(c.headers(id + 2, get()));
  assert.equal(c.goaway()?.lastStreamId, id + 2);
});

Deno.test("empty HEADERS flood: requests without a head end in GOAWAY ENHANCE_YOUR_CALM", () => {
  const c = new FakeClient(limits({ h2MaxResetStreams: 30 }));
  for (let id = 1; id < 10_000 && !c.session.finished; id += 2) {
    answerAll(
      c,
      c.send({
        type: FRAME.HEADERS,
        streamId: id,
        endStream: true,
        endHeaders: true,
        priority: undefined,
        fragment: new Uint8Array(0),
      }),
    );
    c.read();
  }
  assert.equal(c.eventsOf("reject").length, 31);
  assert.ok(c.eventsOf("reject").every((e) => e.error.status === 400));
  assertGoaway(c, ERROR.ENHANCE_YOUR_CALM);
});
