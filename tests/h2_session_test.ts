/**
 * H2Session driven frame by frame, as a client would (honest here; the
 * attacks are in h2_attacks_test.ts): the connection preface, requests
 * and replies, bodies and trailers, both directions of flow control,
 * stream states and graceful shutdown.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import {
  CLIENT_PREFACE,
  encodeFrame,
  ERROR,
  errorName,
  FRAME,
  MAX_STREAM_ID,
  SETTING,
  UNKNOWN_FRAME,
} from "../lib/http/h2/frames.ts";
import { H2Session } from "../lib/http/h2/session.ts";
import { concat } from "./helpers/bytes.ts";
import { assertGoaway, FakeClient, get, type OutFrame } from "./helpers/h2.ts";

const text = new TextEncoder();
const limits = (over: Partial<Limits>): Limits => ({
  ...DEFAULT_LIMITS,
  ...over,
});

function post(path: string, length?: number): [string, string][] {
  const fields: [string, string][] = [
    [":method", "POST"],
    [":scheme", "https"],
    [":path", path],
    [":authority", "localhost"],
  ];
  if (length !== undefined) fields.push(["content-length", String(length)]);
  return fields;
}

function rstOf(c: FakeClient, streamId: number): number | undefined {
  c.read();
  return c.framesOf(FRAME.RST_STREAM).find((f) => f.streamId === streamId)
    ?.code;
}

Deno.test("H2Session sends its SETTINGS and connection window first, then acks the client's", () => {
  const session = new H2Session(DEFAULT_LIMITS);
  const c = new FakeClient(DEFAULT_LIMITS, false);
  void session;
  c.read();
  const [settings, update] = c.frames;
  assert.deepEqual(settings, {
    type: FRAME.SETTINGS,
    ack: false,
    settings: [
      [SETTING.MAX_CONCURRENT_STREAMS, DEFAULT_LIMITS.h2MaxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, DEFAULT_LIMITS.h2StreamWindowBytes],
      [SETTING.MAX_FRAME_SIZE, DEFAULT_LIMITS.h2MaxFrameBytes],
      [SETTING.MAX_HEADER_LIST_SIZE, DEFAULT_LIMITS.h2MaxHeaderListBytes],
      [SETTING.NO_RFC7540_PRIORITIES, 1],
    ],
  });
  assert.deepEqual(update, {
    type: FRAME.WINDOW_UPDATE,
    streamId: 0,
    increment: DEFAULT_LIMITS.h2ConnectionWindowBytes - 65_535,
  });
  assert.equal(c.session.readingHead, true);
  c.send(CLIENT_PREFACE, { type: FRAME.SETTINGS, ack: false, settings: [] });
  assert.deepEqual(c.read(), [{
    type: FRAME.SETTINGS,
    ack: true,
    settings: [],
  }]);
  assert.equal(c.session.readingHead, false);
  assert.equal(c.session.activeStreams, 0);
});

Deno.test("H2Session answers a GET: request event, then HEADERS and DATA the client decodes", () => {
  const c = new FakeClient();
  const [event] = c.send(
    c.headers(1, get("/echo/hello?x=1", [["accept", "*/*"]])),
  );
  assert.equal(event.type, "request");
  if (event.type !== "request") return;
  assert.equal(event.endStream, true);
  const { method, scheme, target, path, query, host, contentLength } =
    event.head;
  assert.deepEqual(
    { method, scheme, target, path, query, host, contentLength },
    {
      method: "GET",
      scheme: "https",
      target: "/echo/hello?x=1",
      path: "/echo/hello",
      query: "x=1",
      host: "localhost",
      contentLength: -1,
    },
  );
  assert.deepEqual([...event.head.headers], [["accept", "*/*"]]);
  assert.equal(c.session.activeStreams, 1);

  c.read();
  const now = Date.UTC(2024, 0, 15, 12, 0, 0);
  c.session.sendHeaders(
    1,
    200,
    { "Content-Type": "text/plain", Connection: "close" },
    false,
    5,
    now,
  );
  assert.equal(c.session.sendData(1, text.encode("hello"), true), 5);
  const [headers, data] = c.read();
  assert.deepEqual(headers, {
    ...headers,
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: false,
    endHeaders: true,
    fields: [
      [":status", "200"],
      ["date", "Mon, 15 Jan 2024 12:00:00 GMT"],
      ["x-content-type-options", "nosniff"],
      ["content-type", "text/plain"], // lower-cased; Connection dropped (§8.2.2)
      ["content-length", "5"],
    ],
  });
  assert.equal(data.type, FRAME.DATA);
  if (data.type !== FRAME.DATA) return;
  assert.equal(new TextDecoder().decode(data.data), "hello");
  assert.equal(data.endStream, true);
  assert.equal(c.session.activeStreams, 0);
});

Deno.test("H2Session reads the same bytes split anywhere", () => {
  const whole = new FakeClient(DEFAULT_LIMITS, false);
  const bytes = concat([
    CLIENT_PREFACE,
    encodeFrame({
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.INITIAL_WINDOW_SIZE, 1000]],
    }),
    encodeFrame(
      whole.headers(1, post("/a", 5), { endStream: false, padding: 3 }),
    ),
    encodeFrame({
      type: FRAME.DATA,
      streamId: 1,
      endStream: false,
      data: text.encode("he"),
      flowLength: 0,
      padding: 4,
    }),
    encodeFrame({
      type: FRAME.DATA,
      streamId: 1,
      endStream: true,
      data: text.encode("llo"),
      flowLength: 0,
    }),
    encodeFrame({ type: FRAME.PING, ack: false, data: new Uint8Array(8) }),
  ]);
  const summary = (c: FakeClient) =>
    c.events.map((e) =>
      e.type === "data"
        ? `data:${new TextDecoder().decode(e.data)}:${e.endStream}`
        : e.type
    )
      .join(" ");
  whole.send(bytes);
  assert.equal(summary(whole), "request data:he:false data:llo:true");
  for (let cut = 1; cut < bytes.length; cut += 7) {
    const c = new FakeClient(DEFAULT_LIMITS, false);
    // A fresh client encodes the same block: HPACK state is per connection.
    c.block(post("/a", 5));
    c.send(bytes.subarray(0, cut));
    c.send(bytes.subarray(cut));
    assert.equal(summary(c), summary(whole), `cut at ${cut}`);
  }
  const oneByOne = new FakeClient(DEFAULT_LIMITS, false);
  for (let i = 0; i < bytes.length; i++) {
    oneByOne.send(bytes.subarray(i, i + 1));
  }
  assert.equal(summary(oneByOne), summary(whole));
});

Deno.test("H2Session refuses a connection that does not start with the client preface", () => {
  const c = new FakeClient(DEFAULT_LIMITS, false);
  c.send(text.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  assertGoaway(c, ERROR.PROTOCOL_ERROR);
  assert.equal(c.session.error?.message, "Not an HTTP/2 client preface");
  assert.deepEqual(
    c.session.receive(CLIENT_PREFACE),
    [],
    "nothing read after the error",
  );
});

Deno.test("H2Session wants SETTINGS as the client's first frame", () => {
  const c = new FakeClient(DEFAULT_LIMITS, false);
  c.send(CLIENT_PREFACE, {
    type: FRAME.PING,
    ack: false,
    data: new Uint8Array(8),
  });
  assertGoaway(c, ERROR.PROTOCOL_ERROR);
});

Deno.test("H2Session answers PING with the same 8 bytes, and ignores unknown frames", () => {
  const c = new FakeClient();
  c.read();
  const data = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  c.send(
    { type: FRAME.PING, ack: false, data },
    {
      type: UNKNOWN_FRAME,
      frameType: 0xbb,
      streamId: 0,
      flags: 0,
      payload: text.encode("ext"),
    },
    { type: FRAME.PING, ack: true, data }, // an ack of nothing: ignored
  );
  assert.deepEqual(c.read(), [{ type: FRAME.PING, ack: true, data }]);
  assert.equal(c.session.finished, false);
});

Deno.test("H2Session splits a reply head longer than a frame into CONTINUATION frames", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.read();
  const fields: [string, string][] = [];
  for (let i = 0; i < 40; i++) fields.push([`x-long-${i}`, "v".repeat(1000)]);
  c.session.sendHeaders(1, 200, fields, true);
  const frames = c.read();
  assert.deepEqual(frames.map((f) => f.type), [
    FRAME.HEADERS,
    FRAME.CONTINUATION,
    FRAME.CONTINUATION,
  ]);
  assert.equal(frames[0].type === FRAME.HEADERS && frames[0].endStream, true);
  const last = frames[2] as OutFrame & { fields: [string, string][] };
  assert.equal(last.fields.length, 3 + 40);
  assert.equal(last.fields[42][1], "v".repeat(1000));
});

Deno.test("H2Session reads a request head split over CONTINUATION frames", () => {
  const c = new FakeClient();
  const block = c.block(
    get("/", [["x-a", "a".repeat(100)], ["x-b", "b".repeat(100)]]),
  );
  c.send(
    {
      type: FRAME.HEADERS,
      streamId: 1,
      endStream: true,
      endHeaders: false,
      priority: undefined,
      fragment: block.subarray(0, 10),
    },
    {
      type: FRAME.CONTINUATION,
      streamId: 1,
      endHeaders: false,
      fragment: block.subarray(10, 100),
    },
    {
      type: FRAME.CONTINUATION,
      streamId: 1,
      endHeaders: true,
      fragment: block.subarray(100),
    },
  );
  const [event] = c.eventsOf("request");
  assert.equal(event.head.headers.get("x-b"), "b".repeat(100));
});

Deno.test("H2Session delivers a request body, trailers, and opens the window as it is read", () => {
  const L = limits({
    h2StreamWindowBytes: 1000,
    h2ConnectionWindowBytes: 65_535,
  });
  const c = new FakeClient(L);
  c.send({ type: FRAME.SETTINGS, ack: true, settings: [] }); // our 1000-byte window holds now
  c.read();
  c.send(c.headers(1, post("/up"), { endStream: false }));
  c.send(c.data(1, "x".repeat(400), false), c.data(1, "y".repeat(100), false));
  assert.deepEqual(c.eventsOf("data").map((e) => e.data.length), [400, 100]);
  c.session.consume(1, 400);
  assert.deepEqual(c.read(), [], "400 of 1000 read: no update yet");
  c.session.consume(1, 100);
  assert.deepEqual(c.read(), [{
    type: FRAME.WINDOW_UPDATE,
    streamId: 1,
    increment: 500,
  }]);
  c.send(c.headers(1, [["x-checksum", "abc"]], { endStream: true }));
  const [trailers] = c.eventsOf("trailers");
  assert.deepEqual([...trailers.trailers], [["x-checksum", "abc"]]);
});

Deno.test("H2Session resets a stream that sends past its window (FLOW_CONTROL_ERROR)", () => {
  const c = new FakeClient(limits({ h2StreamWindowBytes: 1000 }));
  c.send({ type: FRAME.SETTINGS, ack: true, settings: [] });
  c.send(c.headers(1, post("/up"), { endStream: false }));
  c.send(c.data(1, "x".repeat(1000), false)); // fills the window, unread
  c.send(c.data(1, "y", false));
  assert.equal(rstOf(c, 1), ERROR.FLOW_CONTROL_ERROR);
  const [reset] = c.eventsOf("reset");
  assert.equal(reset.code, ERROR.FLOW_CONTROL_ERROR);
  assert.equal(
    c.session.finished,
    false,
    "a stream error, not a connection error",
  );
});

Deno.test("H2Session holds the client to 65535 bytes until it acks our larger window", () => {
  const c = new FakeClient(limits({ h2StreamWindowBytes: 100_000 }));
  c.send(c.headers(1, post("/up"), { endStream: false }));
  c.send(
    c.data(1, new Uint8Array(16_384), false),
    c.data(1, new Uint8Array(16_384), false),
  );
  c.send(
    c.data(1, new Uint8Array(16_384), false),
    c.data(1, new Uint8Array(16_383), false),
  );
  assert.equal(rstOf(c, 1), undefined, "65535 bytes fit");
  c.send({ type: FRAME.SETTINGS, ack: true, settings: [] }); // +34465 for the open stream
  c.send(
    c.data(1, new Uint8Array(16_384), false),
    c.data(1, new Uint8Array(16_384), false),
  );
  assert.equal(rstOf(c, 1), undefined, "the larger window holds after the ack");
});

Deno.test("H2Session gives padding back to both windows at once", () => {
  const c = new FakeClient(
    limits({ h2StreamWindowBytes: 1000, h2ConnectionWindowBytes: 65_535 }),
  );
  c.send({ type: FRAME.SETTINGS, ack: true, settings: [] });
  c.send(c.headers(1, post("/up"), { endStream: false }));
  c.read();
  for (let i = 0; i < 10; i++) {
    c.send({ ...c.data(1, "ab", false), padding: 200 }); // 203 bytes of window each
  }
  c.session.consume(1, 20);
  assert.equal(
    rstOf(c, 1),
    undefined,
    "2030 bytes sent through a 1000-byte window",
  );
});

Deno.test("H2Session sends DATA no faster than the client's windows and says when it may go on", () => {
  const c = new FakeClient(DEFAULT_LIMITS, false);
  c.send(CLIENT_PREFACE, {
    type: FRAME.SETTINGS,
    ack: false,
    settings: [[SETTING.INITIAL_WINDOW_SIZE, 10]],
  });
  c.send(c.headers(1, get()));
  c.session.sendHeaders(1, 200, undefined, false);
  const body = text.encode("0123456789abcdefghij");
  assert.equal(c.session.sendData(1, body, true), 10);
  assert.equal(c.session.sendWindow(1), 0);
  assert.equal(c.session.sendData(1, body.subarray(10), true), 0);
  const events = c.send({
    type: FRAME.WINDOW_UPDATE,
    streamId: 1,
    increment: 5,
  });
  assert.deepEqual(events, [{ type: "writable", streamId: 1 }]);
  assert.equal(c.session.sendData(1, body.subarray(10), true), 5);
  // A larger initial window reaches open streams too (§6.9.2).
  const more = c.send({
    type: FRAME.SETTINGS,
    ack: false,
    settings: [[SETTING.INITIAL_WINDOW_SIZE, 100]],
  });
  assert.deepEqual(more, [{ type: "writable", streamId: 1 }]);
  assert.equal(c.session.sendData(1, body.subarray(15), true), 5);
  const data = c.read().filter((f) => f.type === FRAME.DATA);
  assert.deepEqual(
    data.map((f) =>
      f.type === FRAME.DATA
        ? [new TextDecoder().decode(f.data), f.endStream]
        : []
    ),
    [["0123456789", false], ["abcde", false], ["fghij", true]],
  );
});

Deno.test("H2Session cuts DATA to the client's SETTINGS_MAX_FRAME_SIZE", () => {
  const c = new FakeClient();
  c.send(
    {
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.INITIAL_WINDOW_SIZE, 1 << 20]],
    },
    { type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 1 << 20 },
    c.headers(1, get()),
  );
  c.session.sendHeaders(1, 200, undefined, false);
  assert.equal(c.session.sendData(1, new Uint8Array(40_000), true), 40_000);
  const sizes = c.read().filter((f) => f.type === FRAME.DATA).map((f) =>
    f.type === FRAME.DATA ? f.data.length : 0
  );
  assert.deepEqual(sizes, [16_384, 16_384, 7232]);
});

Deno.test("H2Session takes no more DATA than h2MaxQueuedOutputBytes until the output is taken", () => {
  const c = new FakeClient(limits({ h2MaxQueuedOutputBytes: 1000 }));
  c.send(c.headers(1, get()));
  c.read();
  c.session.sendHeaders(1, 200, undefined, false);
  const taken = c.session.sendData(1, new Uint8Array(5000), true);
  assert.ok(taken > 900 && taken < 1000, `took ${taken}`);
  assert.ok(
    c.session.sendWindow(1) > 0,
    "the window is open: the queue was full",
  );
  c.read();
  assert.ok(c.session.sendData(1, new Uint8Array(5000 - taken), true) > 900);
});

Deno.test("H2Session sends reply trailers and 1xx heads", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.session.sendHeaders(1, 103, { link: "</a.css>; rel=preload" }, false);
  c.session.sendHeaders(1, 200, undefined, false);
  c.session.sendData(1, text.encode("x"), false);
  c.session.sendTrailers(1, { "x-checksum": "1" });
  const heads = c.read().filter((f) => f.type === FRAME.HEADERS);
  assert.deepEqual(heads.map((f) => f.fields?.[0]), [[":status", "103"], [
    ":status",
    "200",
  ], ["x-checksum", "1"]]);
  assert.equal(heads[2].type === FRAME.HEADERS && heads[2].endStream, true);
  assert.throws(() => c.session.sendData(1, text.encode("late"), true), {
    name: "H2Error",
  });
});

Deno.test("H2Session refuses a bad reply field before it writes a byte, and stays in step", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()), c.headers(3, get()));
  c.read();
  assert.throws(
    () =>
      c.session.sendHeaders(
        1,
        200,
        { "x-ok": "fine", "x-bad": "a\r\nb" },
        true,
      ),
    /Invalid header value/,
  );
  assert.throws(
    () => c.session.sendHeaders(1, 200, { "bad name": "x" }, true),
    /Invalid header name/,
  );
  assert.deepEqual(c.read(), []);
  c.session.sendHeaders(1, 200, { "x-ok": "fine" }, true);
  c.session.sendHeaders(3, 200, { "x-ok": "fine" }, true);
  const heads = c.read();
  assert.deepEqual(
    heads.map((f) => f.fields?.find(([n]) => n === "x-ok")?.[1]),
    ["fine", "fine"],
  );
});

Deno.test("H2Session asks a client still sending to stop once the reply ended (RST_STREAM NO_ERROR)", () => {
  const c = new FakeClient();
  c.send(
    c.headers(1, post("/up"), { endStream: false }),
    c.data(1, "part", false),
  );
  c.read();
  c.session.sendHeaders(1, 404, undefined, true);
  assert.equal(rstOf(c, 1), ERROR.NO_ERROR);
  assert.equal(c.session.activeStreams, 0);
  // What was in flight is dropped, and its window given back.
  c.send(c.data(1, "rest", true));
  assert.equal(c.eventsOf("data").length, 1);
  assert.equal(c.session.finished, false);
});

Deno.test("H2Session answers a malformed request with a reject event, and a too-large one with 431", () => {
  const c = new FakeClient();
  c.send(c.headers(1, [...get(), ["Upper", "x"]]));
  c.send(
    c.headers(
      3,
      get("/", [["x-big", "b".repeat(DEFAULT_LIMITS.h2MaxHeaderListBytes)]]),
    ),
  );
  c.send(
    c.headers(
      5,
      get("/", [["accept", "application/json"], ["connection", "close"]]),
    ),
  );
  const rejects = c.eventsOf("reject");
  assert.deepEqual(rejects.map((e) => [e.streamId, e.error.status]), [
    [1, 400],
    [3, 431],
    [5, 400],
  ]);
  assert.equal(rejects[2].accept, "application/json");
  // The engine answers each; the connection goes on.
  for (const id of [1, 3, 5]) c.session.sendHeaders(id, 400, undefined, true);
  c.send(c.headers(7, get()));
  assert.equal(c.eventsOf("request").length, 1);
});

Deno.test("H2Session holds a body to its Content-Length (§8.1.1)", () => {
  const c = new FakeClient();
  c.send(
    c.headers(1, post("/a", 3), { endStream: false }),
    c.data(1, "abcd", true),
  );
  assert.equal(rstOf(c, 1), ERROR.PROTOCOL_ERROR);
  c.send(
    c.headers(3, post("/b", 3), { endStream: false }),
    c.data(3, "ab", true),
  );
  assert.equal(rstOf(c, 3), ERROR.PROTOCOL_ERROR);
  c.send(c.headers(5, post("/c", 3)));
  assert.equal(
    c.eventsOf("reject")[0].error.status,
    400,
    "a length with no body",
  );
  c.send(
    c.headers(7, post("/d", 3), { endStream: false }),
    c.data(7, "abc", true),
  );
  assert.equal(rstOf(c, 7), undefined);
  assert.deepEqual(c.eventsOf("reset").map((e) => e.streamId), [1, 3]);
});

Deno.test("H2Session resets trailers without END_STREAM or with a pseudo-header field", () => {
  const c = new FakeClient();
  c.send(
    c.headers(1, post("/a"), { endStream: false }),
    c.headers(1, [["x-t", "1"]], { endStream: false }),
  );
  assert.equal(rstOf(c, 1), ERROR.PROTOCOL_ERROR);
  c.send(
    c.headers(3, post("/b"), { endStream: false }),
    c.headers(3, [[":path", "/x"]], { endStream: true }),
  );
  assert.equal(rstOf(c, 3), ERROR.PROTOCOL_ERROR);
  assert.equal(c.eventsOf("trailers").length, 0);
});

Deno.test("H2Session answers DATA after the end of a request with STREAM_CLOSED", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()), c.data(1, "late", true));
  assert.equal(rstOf(c, 1), ERROR.STREAM_CLOSED);
  assert.equal(c.eventsOf("reset")[0].code, ERROR.STREAM_CLOSED);
});

const CONNECTION_ERRORS: [
  what: string,
  frames: (c: FakeClient) => Parameters<FakeClient["send"]>,
  code: number,
][] = [
  [
    "HEADERS on an even stream",
    (c) => [c.headers(2, get())],
    ERROR.PROTOCOL_ERROR,
  ],
  [
    "a stream id going backwards",
    (c) => [c.headers(5, get()), c.headers(3, get())],
    ERROR.PROTOCOL_ERROR,
  ],
  ["DATA on an idle stream", (c) => [c.data(1, "x")], ERROR.PROTOCOL_ERROR],
  [
    "RST_STREAM on an idle stream",
    () => [{ type: FRAME.RST_STREAM, streamId: 1, code: 0 }],
    ERROR.PROTOCOL_ERROR,
  ],
  [
    "WINDOW_UPDATE on an idle stream",
    () => [{ type: FRAME.WINDOW_UPDATE, streamId: 3, increment: 1 }],
    ERROR.PROTOCOL_ERROR,
  ],
  [
    "PUSH_PROMISE from a client",
    (c) => [c.headers(1, get(), { endStream: false }), {
      type: FRAME.PUSH_PROMISE,
      streamId: 1,
      endHeaders: true,
      promisedStreamId: 2,
      fragment: c.block(get()),
    }],
    ERROR.PROTOCOL_ERROR,
  ],
  [
    "a frame over SETTINGS_MAX_FRAME_SIZE",
    (
      c,
    ) => [
      c.headers(1, post("/"), { endStream: false }),
      c.data(1, new Uint8Array(16_385)),
    ],
    ERROR.FRAME_SIZE_ERROR,
  ],
  [
    "a frame between HEADERS and CONTINUATION",
    (c) => [{
      type: FRAME.HEADERS,
      streamId: 1,
      endStream: true,
      endHeaders: false,
      priority: undefined,
      fragment: c.block(get()),
    }, { type: FRAME.PING, ack: false, data: new Uint8Array(8) }],
    ERROR.PROTOCOL_ERROR,
  ],
  ["CONTINUATION for another stream", (c) => [{
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: true,
    endHeaders: false,
    priority: undefined,
    fragment: c.block(get()),
  }, {
    type: FRAME.CONTINUATION,
    streamId: 3,
    endHeaders: true,
    fragment: new Uint8Array(0),
  }], ERROR.PROTOCOL_ERROR],
  [
    "CONTINUATION without HEADERS",
    () => [{
      type: FRAME.CONTINUATION,
      streamId: 1,
      endHeaders: true,
      fragment: new Uint8Array(0),
    }],
    ERROR.PROTOCOL_ERROR,
  ],
  ["a header block HPACK cannot decode", () => [{
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: true,
    endHeaders: true,
    priority: undefined,
    fragment: Uint8Array.of(0x80),
  }], ERROR.COMPRESSION_ERROR],
  [
    "SETTINGS_ENABLE_PUSH of 2",
    () => [{
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.ENABLE_PUSH, 2]],
    }],
    ERROR.PROTOCOL_ERROR,
  ],
];
for (const [what, frames, code] of CONNECTION_ERRORS) {
  Deno.test(`H2Session ends the connection with ${errorName(code)} on ${what}`, () => {
    const c = new FakeClient();
    c.send(...frames(c));
    assertGoaway(c, code);
  });
}

Deno.test("H2Session answers HEADERS on a stream it closed with STREAM_CLOSED, and a reset one quietly", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.session.sendHeaders(1, 204, undefined, true); // closed on both sides
  c.send(c.headers(3, get()));
  c.session.reset(3, ERROR.CANCEL);
  c.send(c.headers(3, [["x-t", "1"]]), c.data(3, "late")); // in flight after our RST_STREAM
  assert.equal(c.session.finished, false);
  c.send(c.headers(1, [["x-t", "1"]]));
  assertGoaway(c, ERROR.STREAM_CLOSED);
});

Deno.test("H2Session treats a client reset as the end of the stream, and holds its slot until released", () => {
  const c = new FakeClient(limits({ h2MaxConcurrentStreams: 1 }));
  c.send(c.headers(1, get()));
  c.send({ type: FRAME.RST_STREAM, streamId: 1, code: ERROR.CANCEL });
  assert.deepEqual(c.eventsOf("reset").map((e) => [e.streamId, e.code]), [[
    1,
    ERROR.CANCEL,
  ]]);
  assert.throws(() => c.session.sendHeaders(1, 200, undefined, true), {
    name: "H2Error",
  });
  // The handler of stream 1 still runs: stream 3 is refused.
  c.send(c.headers(3, get()));
  assert.equal(rstOf(c, 3), ERROR.REFUSED_STREAM);
  c.session.release(1);
  c.send(c.headers(5, get()));
  assert.equal(c.eventsOf("request").at(-1)?.streamId, 5);
  assert.equal(rstOf(c, 1), undefined, "no RST_STREAM answers a RST_STREAM");
});

Deno.test("H2Session refuses streams past h2MaxConcurrentStreams with REFUSED_STREAM", () => {
  const c = new FakeClient(limits({ h2MaxConcurrentStreams: 2 }));
  c.send(c.headers(1, get()), c.headers(3, get()), c.headers(5, get()));
  assert.deepEqual(c.eventsOf("request").map((e) => e.streamId), [1, 3]);
  assert.equal(rstOf(c, 5), ERROR.REFUSED_STREAM);
  c.session.sendHeaders(1, 204, undefined, true);
  c.send(c.headers(7, get()));
  assert.deepEqual(c.eventsOf("request").map((e) => e.streamId), [1, 3, 7]);
});

Deno.test("H2Session shuts down gracefully: GOAWAY, streams in flight finish, newer ones are ignored", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()), c.headers(3, get()));
  c.session.shutdown();
  assert.deepEqual(c.goaway(), {
    type: FRAME.GOAWAY,
    lastStreamId: 3,
    code: ERROR.NO_ERROR,
    debug: new Uint8Array(0),
  });
  assert.equal(c.session.finished, false);
  c.send(c.headers(5, get()));
  assert.deepEqual(c.eventsOf("request").map((e) => e.streamId), [1, 3]);
  c.session.sendHeaders(1, 204, undefined, true);
  assert.equal(c.session.finished, false);
  c.session.sendHeaders(3, 204, undefined, true);
  assert.equal(c.session.finished, true);
});

Deno.test("H2Session goes away gracefully after maxRequestsPerConnection streams", () => {
  const c = new FakeClient(limits({ maxRequestsPerConnection: 3 }));
  c.send(c.headers(1, get()), c.headers(3, get()));
  assert.equal(c.goaway(), undefined);
  c.send(c.headers(5, get()));
  assert.deepEqual(c.goaway(), {
    type: FRAME.GOAWAY,
    lastStreamId: 5,
    code: ERROR.NO_ERROR,
    debug: new Uint8Array(0),
  });
});

Deno.test("H2Session hears a client's GOAWAY and finishes once its streams end", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.send({
    type: FRAME.GOAWAY,
    lastStreamId: 0,
    code: ERROR.NO_ERROR,
    debug: text.encode("bye"),
  });
  assert.deepEqual(c.eventsOf("goaway"), [{
    type: "goaway",
    lastStreamId: 0,
    code: 0,
    debug: "bye",
  }]);
  assert.equal(c.session.finished, false);
  c.session.sendHeaders(1, 204, undefined, true);
  assert.equal(c.session.finished, true);
  const broken = new FakeClient();
  broken.send(broken.headers(1, get()));
  broken.send({
    type: FRAME.GOAWAY,
    lastStreamId: 0,
    code: ERROR.PROTOCOL_ERROR,
    debug: new Uint8Array(0),
  });
  assert.equal(broken.session.finished, true);
  assert.deepEqual(broken.eventsOf("reset").map((e) => e.streamId), [1]);
});

Deno.test("H2Session tells the engine of every open stream when the connection fails", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()), c.headers(3, post("/up"), { endStream: false }));
  c.send({ type: FRAME.WINDOW_UPDATE, streamId: 0, increment: MAX_STREAM_ID });
  assertGoaway(c, ERROR.FLOW_CONTROL_ERROR);
  assert.deepEqual(c.eventsOf("reset").map((e) => e.streamId), [1, 3]);
  assert.throws(() => c.session.sendHeaders(1, 200, undefined, true), {
    name: "H2Error",
  });
});

Deno.test("H2Session.goaway() ends the connection with the engine's code", () => {
  const c = new FakeClient();
  c.send(c.headers(1, get()));
  c.session.goaway(ERROR.ENHANCE_YOUR_CALM, "write timeout");
  const g = c.goaway();
  assert.equal(g?.code, ERROR.ENHANCE_YOUR_CALM);
  assert.equal(g?.lastStreamId, 1);
  assert.equal(new TextDecoder().decode(g?.debug), "write timeout");
  assert.equal(c.session.finished, true);
});

Deno.test("H2Session announces its HPACK table size when the client's SETTINGS shrink it", () => {
  const c = new FakeClient();
  c.send({
    type: FRAME.SETTINGS,
    ack: false,
    settings: [[SETTING.HEADER_TABLE_SIZE, 0]],
  });
  c.decoder.setLimit(0);
  c.send(c.headers(1, get()));
  c.session.sendHeaders(1, 200, { "x-a": "1" }, true);
  const [head] = c.read().filter((f) => f.type === FRAME.HEADERS);
  assert.equal(
    head.type === FRAME.HEADERS && head.fragment[0],
    0x20,
    "size update 0 first",
  );
  assert.equal(c.decoder.table.length, 0);
});

Deno.test("H2Session frees a stream once its reply ends, and counts it in activeStreams until then", () => {
  const c = new FakeClient();
  c.send(c.headers(1, post("/up"), { endStream: false }));
  assert.equal(c.session.activeStreams, 1);
  c.send(c.data(1, "abc", true));
  assert.equal(c.session.activeStreams, 1, "the reply is still to come");
  c.session.sendHeaders(1, 200, undefined, false);
  c.session.sendData(1, text.encode("ok"), true);
  assert.equal(c.session.activeStreams, 0);
});

Deno.test("H2Session resets a stream whose HEADERS or PRIORITY make it depend on itself, and stays in step", () => {
  const c = new FakeClient();
  const h = c.headers(1, get("/", [["x-a", "1"]]));
  c.send(
    {
      ...h,
      priority: { dependency: 1, exclusive: false, weight: 16 },
    } as typeof h,
  );
  assert.equal(rstOf(c, 1), ERROR.PROTOCOL_ERROR);
  c.send({
    type: FRAME.PRIORITY,
    streamId: 1,
    priority: { dependency: 1, exclusive: false, weight: 1 },
  });
  c.send(c.headers(3, get("/", [["x-a", "1"]]))); // the client's table has x-a; so does ours
  assert.deepEqual(
    c.eventsOf("request").map((e) => e.head.headers.get("x-a")),
    ["1"],
  );
  assert.equal(c.session.finished, false);
});

Deno.test("H2Session.trimBuffers() lets go of what a big reply grew; bytes taken stay valid", () => {
  const c = new FakeClient({
    ...DEFAULT_LIMITS,
    h2MaxQueuedOutputBytes: 1 << 20,
  });
  c.send(
    { type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 1 << 20 },
    {
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.INITIAL_WINDOW_SIZE, 1 << 20]],
    },
    c.headers(1, get()),
  );
  c.read();
  c.session.sendHeaders(1, 200, undefined, false);
  const body = new Uint8Array(600_000).fill(7);
  assert.equal(c.session.sendData(1, body, true), body.length);
  const out = c.session.takeOutput();
  assert.ok(c.session.bufferBytes > 600_000);
  c.session.trimBuffers();
  assert.ok(c.session.bufferBytes < 64 * 1024, `${c.session.bufferBytes}`);
  assert.ok(out.length > 600_000 && out[out.length - 1] === 7);
});
