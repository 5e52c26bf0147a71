/**
 * The session as a protocol machine, with byte arrays alone. Autobahn's
 * server categories as tables (1 framing, 2 pings, 3 reserved bits, 4
 * opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits, 12/13
 * compression), the abuse list of issue #15, a conversation split at every
 * byte, and what the engine relies on: output, backpressure, idle pings,
 * the close handshake both ways, and a throwing app.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import {
  type DeflateParams,
  MessageDeflater,
  MessageInflater,
} from "../lib/http/ws/deflate.ts";
import { OPCODE } from "../lib/http/ws/frame.ts";
import {
  EARLY_PRESIZE_BYTES,
  earlyPresizedBytes,
  type WsEvent,
  WsSession,
  type WsSessionOptions,
} from "../lib/http/ws/session.ts";
import {
  clientFrame,
  type ClientFrameOptions,
  closePayload,
  decoder,
  deflateAsClient,
  encoder,
  incompressible,
  INVALID_CLOSE_CODES,
  readClose,
  type ServerFrame,
  ServerFrameReader,
  VALID_CLOSE_CODES,
} from "./fixtures/ws_frames.ts";
import { concat } from "./helpers/socket.ts";
import { hex, SEQUENCES } from "./fixtures/utf8_sequences.ts";

const LIMITS: Limits = Object.freeze({
  ...DEFAULT_LIMITS,
  wsMaxMessageBytes: 1 << 20,
  wsMaxFrameBytes: 1 << 20,
  wsMaxQueuedBytes: 1 << 20,
});

/** A session with its events and a reader for its output. */
class Harness {
  readonly session: WsSession;
  readonly events: WsEvent[] = [];
  readonly #reader = new ServerFrameReader();
  outputCalls = 0;

  constructor(limits: Partial<Limits> = {}, opts: WsSessionOptions = {}) {
    this.session = new WsSession({ ...LIMITS, ...limits }, opts);
    this.session.onEvent = (e) => this.events.push(e);
    this.session.onOutput = () => this.outputCalls++;
  }

  /** Feeds bytes (each piece a fresh copy: the session unmasks in place). */
  feed(...pieces: Uint8Array[]): this {
    for (const p of pieces) this.session.receive(p.slice());
    return this;
  }

  /** Every frame written so far, reading and acknowledging all output. */
  frames(): ServerFrame[] {
    for (let out; (out = this.session.takeOutput()) !== null;) {
      this.#reader.push(out);
      this.session.written(out.length);
    }
    return this.#reader.frames;
  }

  /** [type, data] of each event, text and binary sizes for big ones. */
  summary(): string[] {
    return this.events.map(describe);
  }

  /** The code of the last close frame we sent, or undefined. */
  sentClose(): number | undefined {
    const close = this.frames().findLast((f) => f.opcode === OPCODE.Close);
    return close === undefined ? undefined : readClose(close.payload)[0];
  }
}

function describe(e: WsEvent): string {
  switch (e.type) {
    case "text":
      return e.data.length > 40 ? `text(${e.data.length})` : `text:${e.data}`;
    case "binary":
      return `binary(${e.data.length})`;
    case "ping":
    case "pong":
      return `${e.type}:${decoder.decode(e.data)}`;
    case "close":
      return `close:${e.code}${e.wasClean ? "" : "!"}`;
  }
}

const text = (s: string, o?: ClientFrameOptions) =>
  clientFrame(OPCODE.Text, s, o);
const binary = (b: Uint8Array, o?: ClientFrameOptions) =>
  clientFrame(OPCODE.Binary, b, o);
const cont = (s: string | Uint8Array, o?: ClientFrameOptions) =>
  clientFrame(OPCODE.Continuation, s, o);
const ping = (s = "", o?: ClientFrameOptions) => clientFrame(OPCODE.Ping, s, o);
const pong = (s = "", o?: ClientFrameOptions) => clientFrame(OPCODE.Pong, s, o);
const close = (code?: number, reason = "") =>
  clientFrame(
    OPCODE.Close,
    code === undefined ? new Uint8Array(0) : closePayload(code, reason),
  );

/** Splits `bytes` into pieces of `size`. */
function chop(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    out.push(bytes.subarray(i, i + size));
  }
  return out;
}

/** Opcodes of the frames sent, pong and close with their payload. */
function sent(h: Harness): string[] {
  return h.frames().map((f) => {
    if (f.opcode === OPCODE.Pong) return `pong:${decoder.decode(f.payload)}`;
    if (f.opcode === OPCODE.Close) return `close:${readClose(f.payload)[0]}`;
    if (f.opcode === OPCODE.Ping) return "ping";
    return `op${f.opcode}`;
  });
}

// ---- 1.x framing ----

const FRAME_SIZES = [0, 125, 126, 127, 128, 65535, 65536];

Deno.test("Autobahn 1.1/1.2: text and binary messages of each length encoding", () => {
  for (const size of FRAME_SIZES) {
    const h = new Harness();
    const t = "*".repeat(size);
    const b = new Uint8Array(size).fill(0xfe);
    h.feed(text(t), binary(b));
    assert.equal(h.events.length, 2);
    assert.deepEqual(h.events[0], { type: "text", data: t }, `text ${size}`);
    assert.deepEqual(
      h.events[1],
      { type: "binary", data: b },
      `binary ${size}`,
    );
  }
});

Deno.test("Autobahn 1.1.8/1.2.8: a 64 KiB message in chops of 997 bytes", () => {
  const h = new Harness();
  const t = "*".repeat(65536);
  h.feed(...chop(text(t), 997));
  assert.deepEqual(h.events, [{ type: "text", data: t }]);
  const b = new Uint8Array(65536).map((_, i) => i);
  h.feed(...chop(binary(b), 997));
  assert.deepEqual(h.events[1], { type: "binary", data: b });
});

Deno.test("binary messages are the app's to keep, not views of the read buffer", () => {
  const h = new Harness();
  const buf = binary(new Uint8Array([1, 2, 3]));
  h.session.receive(buf);
  const data = (h.events[0] as { data: Uint8Array }).data;
  buf.fill(0);
  assert.deepEqual(data, new Uint8Array([1, 2, 3]));
});

// ---- 2.x pings ----

Deno.test("Autobahn 2.x: pings are answered with pongs carrying their payload", () => {
  const h = new Harness();
  h.feed(ping()); // 2.1
  h.feed(ping("Hello, world!")); // 2.2
  h.feed(clientFrame(OPCODE.Ping, new Uint8Array([0, 0xff, 0xfe, 0xfd]))); // 2.3
  h.feed(ping("*".repeat(125))); // 2.4
  h.feed(...chop(ping("*".repeat(125)), 1)); // 2.6: one byte at a time
  h.feed(pong(), pong("unsolicited")); // 2.7, 2.8: no answer
  h.feed(pong("x"), ping("y")); // 2.9
  for (let i = 0; i < 10; i++) h.feed(ping(`p${i}`)); // 2.10
  const frames = h.frames();
  assert.ok(frames.every((f) => f.opcode === OPCODE.Pong));
  assert.deepEqual(frames.map((f) => f.payload.length).slice(0, 5), [
    0,
    13,
    4,
    125,
    125,
  ]);
  assert.deepEqual(frames[2].payload, new Uint8Array([0, 0xff, 0xfe, 0xfd]));
  assert.equal(decoder.decode(frames[5].payload), "y");
  assert.equal(frames.length, 16);
  assert.equal(h.session.state, "open");
  assert.deepEqual(h.summary().slice(5, 8), [
    "pong:",
    "pong:unsolicited",
    "pong:x",
  ]);
});

Deno.test("Autobahn 2.5: a ping of 126 bytes fails the connection with 1002", () => {
  const h = new Harness().feed(ping("*".repeat(126)));
  assert.deepEqual(sent(h), ["close:1002"]);
  assert.equal(h.session.state, "closed");
  assert.deepEqual(h.summary(), ["close:1002!"]);
});

// ---- 3.x reserved bits, 4.x opcodes ----

/** [case, frame that breaks the protocol]. Each is sent after a good text and before a ping. */
const PROTOCOL_ERRORS: [string, Uint8Array][] = [
  ["3.1 RSV1 on text", text("x", { rsv1: true })],
  ["3.2 RSV2 on text", text("x", { rsv2: true })],
  ["3.3 RSV1+RSV2", text("x", { rsv1: true, rsv2: true })],
  ["3.4 RSV3", text("x", { rsv3: true })],
  [
    "3.5 RSV1+RSV3 on binary",
    binary(new Uint8Array(1), { rsv1: true, rsv3: true }),
  ],
  ["3.6 RSV2+RSV3 on ping", ping("x", { rsv2: true, rsv3: true })],
  [
    "3.7 all RSV on close",
    clientFrame(OPCODE.Close, closePayload(1000), {
      rsv1: true,
      rsv2: true,
      rsv3: true,
    }),
  ],
  ["4.1.1 opcode 3", clientFrame(3)],
  ["4.1.2 opcode 4 with payload", clientFrame(4, "reserved")],
  ["4.1.3 opcode 5", clientFrame(5, "x")],
  ["4.1.4 opcode 6", clientFrame(6, "x")],
  ["4.1.5 opcode 7", clientFrame(7, "x")],
  ["4.2.1 opcode 11", clientFrame(0xb)],
  ["4.2.2 opcode 12", clientFrame(0xc, "x")],
  ["4.2.3 opcode 13", clientFrame(0xd, "x")],
  ["4.2.4 opcode 14", clientFrame(0xe, "x")],
  ["4.2.5 opcode 15", clientFrame(0xf, "x")],
  ["5.1 fragmented ping", concat([ping("a", { fin: false }), cont("b")])],
  ["5.2 fragmented pong", concat([pong("a", { fin: false }), cont("b")])],
  ["5.9 continuation first", concat([cont("a", { fin: false }), text("b")])],
  ["5.12 continuation with fin first", concat([cont("a"), text("b")])],
  [
    "5.18 text while a text is open",
    concat([text("a", { fin: false }), text("b")]),
  ],
  [
    "abuse: length 2^63",
    binary(new Uint8Array(0), { length: 2n ** 63n, width: 64 }),
  ],
  ["abuse: unmasked frame", text("x", { mask: false })],
  ["abuse: ping of 126 bytes", ping("p".repeat(126))],
  [
    "abuse: fragmented close",
    clientFrame(OPCODE.Close, closePayload(1000), { fin: false }),
  ],
];

for (const [name, bad] of PROTOCOL_ERRORS) {
  Deno.test(`Autobahn ${name}: the good message before it arrives, then close 1002 and no pong`, () => {
    const whole = new Harness().feed(
      concat([text("Hello"), bad, ping("after")]),
    );
    const split = new Harness().feed(text("Hello"), bad, ping("after"));
    for (const h of [whole, split]) {
      assert.deepEqual(h.summary(), ["text:Hello", "close:1002!"]);
      assert.deepEqual(sent(h), ["close:1002"]);
      assert.equal(h.session.state, "closed");
    }
  });
}

// ---- 5.x fragmentation ----

Deno.test("Autobahn 5.3-5.8: fragmented text with pings in between, whole or chopped", () => {
  const frags = [
    text("frag1 ", { fin: false }),
    ping("a"),
    cont("frag2 ", { fin: false }),
    pong("b"),
    cont("frag3"),
  ];
  for (const size of [1, 3, 1000]) {
    const h = new Harness().feed(...chop(concat(frags), size));
    assert.deepEqual(h.summary(), [
      "ping:a",
      "pong:b",
      "text:frag1 frag2 frag3",
    ], `chops of ${size}`);
    assert.deepEqual(sent(h), ["pong:a"]);
  }
});

Deno.test("Autobahn 5.19: the pong for a ping between fragments goes out before the message ends", () => {
  const h = new Harness().feed(
    text("a", { fin: false }),
    cont("b", { fin: false }),
    ping("mid"),
  );
  assert.deepEqual(sent(h), ["pong:mid"]);
  assert.deepEqual(h.summary(), ["ping:mid"]);
  h.feed(cont("c", { fin: false }), cont("d"));
  assert.deepEqual(h.summary(), ["ping:mid", "text:abcd"]);
});

Deno.test("Autobahn 5.15-5.17: a continuation after a whole message fails with 1002", () => {
  const h = new Harness().feed(
    text("a", { fin: false }),
    cont("b"),
    cont("c", { fin: false }),
  );
  assert.deepEqual(h.summary(), ["text:ab", "close:1002!"]);
});

Deno.test("empty fragments and empty messages are delivered (Autobahn 6.1)", () => {
  const h = new Harness().feed(
    text(""),
    text("", { fin: false }),
    cont("", { fin: false }),
    cont(""),
    text("", { fin: false }),
    cont("middle", { fin: false }),
    cont(""),
    binary(new Uint8Array(0)),
  );
  assert.deepEqual(h.summary(), ["text:", "text:", "text:middle", "binary(0)"]);
});

// ---- 6.x UTF-8 ----

Deno.test("Autobahn 6.x: each sequence as one text message, valid echoed and invalid failed with 1007", () => {
  for (const [category, h16, valid] of SEQUENCES) {
    const bytes = hex(h16);
    const h = new Harness().feed(clientFrame(OPCODE.Text, bytes));
    if (valid) {
      assert.deepEqual(h.events, [{
        type: "text",
        data: decoder.decode(bytes),
      }], `${category} ${h16}`);
    } else {
      assert.deepEqual(h.summary(), ["close:1007!"], `${category} ${h16}`);
      assert.equal(h.sentClose(), 1007);
    }
  }
});

Deno.test("Autobahn 6.2/6.3: the same sequences fragmented at every byte, one frame per byte", () => {
  for (const [category, h16, valid] of SEQUENCES) {
    const bytes = hex(h16);
    if (bytes.length < 2) continue;
    const frames = [];
    for (let i = 0; i < bytes.length; i++) {
      const op = i === 0 ? OPCODE.Text : OPCODE.Continuation;
      frames.push(
        clientFrame(op, bytes.subarray(i, i + 1), {
          fin: i === bytes.length - 1,
        }),
      );
    }
    const h = new Harness().feed(...frames);
    assert.deepEqual(
      h.summary(),
      valid
        ? [describe({ type: "text", data: decoder.decode(bytes) })]
        : ["close:1007!"],
      `${category} ${h16}`,
    );
  }
});

Deno.test("Autobahn 6.4.1/6.4.2: bad UTF-8 in the second fragment fails before the third arrives", () => {
  // κόσμε, then F4 90 80 80 (past U+10FFFF), then "edited".
  const h = new Harness().feed(
    text("κόσμε", { fin: false }),
    cont(hex("f4908080"), { fin: false }),
  );
  assert.deepEqual(h.summary(), ["close:1007!"]);
  assert.equal(h.sentClose(), 1007);
  h.feed(cont("edited"));
  assert.equal(h.events.length, 1, "nothing after the failure");
});

Deno.test("Autobahn 6.4.3/6.4.4: bad UTF-8 fails as soon as its chop arrives, mid-frame", () => {
  const payload = concat([
    encoder.encode("κόσμε"),
    hex("f4908080"),
    encoder.encode("edited"),
  ]);
  const frame = clientFrame(OPCODE.Text, payload);
  const badAt = frame.length - payload.length + encoder.encode("κόσμε").length +
    1;
  const h = new Harness();
  h.feed(frame.subarray(0, badAt));
  assert.deepEqual(
    h.summary(),
    [],
    "nothing wrong yet: F4 may start a valid sequence",
  );
  h.feed(frame.subarray(badAt, badAt + 1));
  assert.deepEqual(
    h.summary(),
    ["close:1007!"],
    "0x90 after 0xF4 fails at once",
  );
});

Deno.test("a text message ending inside a sequence fails with 1007 at its last frame", () => {
  const h = new Harness().feed(text("ab", { fin: false }), cont(hex("e282")));
  assert.deepEqual(h.summary(), ["close:1007!"]);
});

Deno.test("a byte-order mark in a text message is kept", () => {
  const h = new Harness().feed(clientFrame(OPCODE.Text, hex("efbbbf68")));
  assert.deepEqual(h.events, [{ type: "text", data: "\ufeffh" }]);
});

// ---- 7.x close handling ----

Deno.test("Autobahn 7.1.1: a message then a close: echo, then a clean close echoing the code", () => {
  const h = new Harness().feed(text("Hello"), close(1000));
  assert.deepEqual(h.summary(), ["text:Hello", "close:1000"]);
  assert.deepEqual(sent(h), ["close:1000"]);
  assert.equal(h.session.state, "closed");
});

Deno.test("Autobahn 7.1.2-7.1.5: nothing after the peer's close is read", () => {
  const h = new Harness().feed(
    text("frag", { fin: false }),
    close(1000),
    close(1000), // 7.1.2
    ping("late"), // 7.1.3
    text("late"), // 7.1.4
    cont("rest"), // 7.1.5
  );
  assert.deepEqual(h.summary(), ["close:1000"]);
  assert.deepEqual(sent(h), ["close:1000"]);
});

Deno.test("Autobahn 7.1.6: a big message, a text, a close and a ping in one read", () => {
  const big = "BAsd7&jh23".repeat(26215);
  const h = new Harness().feed(
    concat([text(big), text("Hello World!"), close(1000), ping()]),
  );
  assert.deepEqual(h.summary(), [
    `text(${big.length})`,
    "text:Hello World!",
    "close:1000",
  ]);
  assert.deepEqual(sent(h), ["close:1000"]);
});

/** [case, close frame, events, close code we send]. */
const CLOSES: [string, Uint8Array, string, number | undefined][] = [
  ["7.3.1 empty close", close(), "close:1005", 1000],
  [
    "7.3.2 close of 1 byte",
    clientFrame(OPCODE.Close, new Uint8Array([0x03])),
    "close:1002!",
    1002,
  ],
  ["7.3.3 code only", close(1000), "close:1000", 1000],
  ["7.3.4 code and reason", close(1000, "Hello World!"), "close:1000", 1000],
  [
    "7.3.5 reason of 123 bytes",
    close(1000, "*".repeat(123)),
    "close:1000",
    1000,
  ],
  [
    "7.3.6 payload of 126 bytes",
    clientFrame(OPCODE.Close, closePayload(1000, "*".repeat(124))),
    "close:1002!",
    1002,
  ],
  [
    "7.5.1 reason not UTF-8",
    clientFrame(
      OPCODE.Close,
      concat([
        closePayload(1000),
        hex("cebae1bdb9cf83cebcceb5eda080656469746564"),
      ]),
    ),
    "close:1007!",
    1007,
  ],
  ...VALID_CLOSE_CODES.map((
    code,
  ): [string, Uint8Array, string, number] => [
    `7.7 valid code ${code}`,
    close(code),
    `close:${code}`,
    code,
  ]),
  ...INVALID_CLOSE_CODES.map((
    code,
  ): [string, Uint8Array, string, number] => [
    `7.9/7.13 invalid code ${code}`,
    close(code),
    "close:1002!",
    1002,
  ]),
];

for (const [name, frame, event, reply] of CLOSES) {
  Deno.test(`Autobahn ${name}: ${event}, we send ${reply}`, () => {
    const h = new Harness().feed(frame);
    assert.deepEqual(h.summary(), [event]);
    assert.equal(h.sentClose(), reply);
    assert.equal(h.session.state, "closed");
  });
}

Deno.test("a close frame's reason reaches the app", () => {
  const h = new Harness().feed(close(4001, "bye κόσμε"));
  assert.deepEqual(h.events, [{
    type: "close",
    code: 4001,
    reason: "bye κόσμε",
    wasClean: true,
  }]);
});

Deno.test("close() starts the handshake: closing until the peer's close, then closed and clean", () => {
  const h = new Harness();
  h.session.close(4000, "done");
  assert.equal(h.session.state, "closing");
  assert.deepEqual(sent(h), ["close:4000"]);
  assert.equal(h.session.send("late"), false, "nothing is sent after a close");
  h.feed(text("in flight"), ping("no answer"));
  assert.deepEqual(sent(h), ["close:4000"], "no pong once closing");
  h.feed(close(4000));
  assert.equal(h.session.state, "closed");
  assert.deepEqual(h.summary(), [
    "text:in flight",
    "ping:no answer",
    "close:4000",
  ]);
  assert.deepEqual(sent(h), ["close:4000"], "our close is not sent twice");
  h.session.close(); // no-op once closed
  assert.throws(() => new Harness().session.close(1005), RangeError);
  assert.throws(
    () => new Harness().session.close(1000, "r".repeat(124)),
    RangeError,
  );
});

Deno.test("abort() reports 1006 once: the engine's close timeout, a lost connection", () => {
  const h = new Harness();
  h.session.close();
  h.session.abort("Close timeout");
  h.session.abort("again");
  assert.deepEqual(h.events, [{
    type: "close",
    code: 1006,
    reason: "Close timeout",
    wasClean: false,
  }]);
  const clean = new Harness().feed(close(1000));
  // The peer sent its close and its end of stream in one go: our reply
  // is still written, and no second close event comes.
  clean.session.abort();
  assert.deepEqual(clean.summary(), ["close:1000"]);
  assert.equal(clean.sentClose(), 1000);
});

// ---- 9.x limits ----

Deno.test("Autobahn 9.1/9.2: messages up to the limit in frames of every size, chopped reads", () => {
  const size = 4 << 20;
  const limits = { wsMaxMessageBytes: size, wsMaxFrameBytes: size };
  const t = "x".repeat(size);
  const b = new Uint8Array(size).map((_, i) => i * 13);
  for (const frameSize of [64, 4096, 65536, size]) {
    const frames = [];
    for (let off = 0; off < size; off += frameSize) {
      const op = off === 0 ? OPCODE.Binary : OPCODE.Continuation;
      frames.push(
        clientFrame(op, b.subarray(off, off + frameSize), {
          fin: off + frameSize >= size,
        }),
      );
    }
    const h = new Harness(limits).feed(...chop(concat(frames), 65536));
    assert.deepEqual(
      h.events,
      [{ type: "binary", data: b }],
      `frames of ${frameSize}`,
    );
  }
  const h = new Harness(limits).feed(...chop(text(t), 1 << 20));
  assert.equal((h.events[0] as { data: string }).data, t);
});

Deno.test("a message over wsMaxMessageBytes fails with 1009 at the frame that crosses it", () => {
  const h = new Harness({ wsMaxMessageBytes: 1000 });
  h.feed(binary(new Uint8Array(1000)));
  assert.deepEqual(h.summary(), ["binary(1000)"]);
  h.feed(binary(new Uint8Array(600), { fin: false }));
  // Only the header of the crossing frame: refused before its payload comes.
  h.feed(clientFrame(OPCODE.Continuation, new Uint8Array(0), { length: 401 }));
  assert.deepEqual(h.summary(), ["binary(1000)", "close:1009!"]);
  assert.equal(h.sentClose(), 1009);
});

Deno.test("a frame over wsMaxFrameBytes fails with 1009 from its header", () => {
  const h = new Harness({ wsMaxFrameBytes: 100 });
  h.feed(
    clientFrame(OPCODE.Text, new Uint8Array(0), {
      length: 2n ** 40n,
      width: 64,
    }),
  );
  assert.deepEqual(h.summary(), ["close:1009!"]);
});

// ---- 12.x / 13.x compression ----

const DEFLATE: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

/** Client-side compression of one message, as a browser would. */
class ClientDeflate {
  readonly #deflater: MessageDeflater;
  constructor(params: DeflateParams) {
    this.#deflater = new MessageDeflater(
      params.clientMaxWindowBits,
      params.clientNoContextTakeover,
      6,
    );
  }
  /** A compressed message in frames of `fragment` compressed bytes (0: one frame). */
  frames(
    opcode: number,
    data: Uint8Array | string,
    fragment = 0,
  ): Uint8Array[] {
    const raw = typeof data === "string" ? encoder.encode(data) : data;
    const c = this.#deflater.compress(raw);
    const size = fragment || c.length || 1;
    const out: Uint8Array[] = [];
    for (let off = 0; off === 0 || off < c.length; off += size) {
      out.push(
        clientFrame(
          off === 0 ? opcode : OPCODE.Continuation,
          c.subarray(off, off + size),
          {
            fin: off + size >= c.length,
            rsv1: off === 0,
          },
        ),
      );
    }
    return out;
  }
  close(): void {
    this.#deflater.close();
  }
}

/** Reads the server's messages back, inflating those with RSV1. */
function serverMessages(
  frames: ServerFrame[],
  params: DeflateParams,
): (string | Uint8Array)[] {
  const inflater = new MessageInflater(
    params.serverMaxWindowBits,
    params.serverNoContextTakeover,
  );
  const out: (string | Uint8Array)[] = [];
  for (const f of frames) {
    if (f.opcode !== OPCODE.Text && f.opcode !== OPCODE.Binary) continue;
    let data = f.payload;
    if (f.rsv1) {
      const pieces: Uint8Array[] = [];
      inflater.begin(1 << 30);
      inflater.write(data, pieces);
      inflater.end(pieces);
      data = concat(pieces);
    }
    out.push(f.opcode === OPCODE.Text ? decoder.decode(data) : data);
  }
  inflater.close();
  return out;
}

const JSON_DATA = JSON.stringify(
  Array.from(
    { length: 3000 },
    (_, i) => ({ id: i, name: `item ${i}`, tags: ["a", "b"], ok: i % 2 === 0 }),
  ),
);

/** Autobahn 13.x's parameter sets: (no context takeover, window bits), both ways. */
const PARAM_SETS: [string, DeflateParams][] = [
  ["13.1 defaults", DEFLATE],
  ["13.2 no context takeover", {
    ...DEFLATE,
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
  }],
  ["13.3 window 8", {
    ...DEFLATE,
    serverMaxWindowBits: 8,
    clientMaxWindowBits: 8,
  }],
  ["13.4 window 15", DEFLATE],
  ["13.5 window 8, no takeover", {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 8,
    clientMaxWindowBits: 8,
  }],
  ["13.6 window 15, no takeover", {
    ...DEFLATE,
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
  }],
  ["mixed: client window 9, server no takeover", {
    ...DEFLATE,
    clientMaxWindowBits: 9,
    serverNoContextTakeover: true,
  }],
];

// Autobahn 12.x's sizes and fragment sizes, fewer messages each.
const COMPRESSED_SIZES: [number, number][] = [
  [16, 0],
  [64, 0],
  [1024, 0],
  [16384, 0],
  [131072, 0],
  [8192, 256],
  [131072, 1024],
  [131072, 32768],
];

for (const [name, params] of PARAM_SETS) {
  Deno.test(`Autobahn ${name}: compressed messages echo through the session, fragmented or not`, () => {
    const h = new Harness({}, { deflate: params, deflateMinBytes: 64 });
    h.session.onEvent = (e) => {
      h.events.push(e);
      if (e.type === "text" || e.type === "binary") h.session.send(e.data);
    };
    const client = new ClientDeflate(params);
    const sentMessages: (string | Uint8Array)[] = [];
    let at = 0;
    for (const [size, fragment] of COMPRESSED_SIZES) {
      for (let k = 0; k < 3; k++) {
        const piece = JSON_DATA.slice(at % 50_000, at % 50_000 + size).padEnd(
          size,
          "#",
        );
        at += size;
        const message = k === 1 ? encoder.encode(piece) : piece;
        sentMessages.push(message);
        h.feed(
          ...client.frames(
            typeof message === "string" ? OPCODE.Text : OPCODE.Binary,
            message,
            fragment,
          ),
        );
      }
    }
    client.close();
    assert.deepEqual(
      h.events.map((e) => (e as { data: unknown }).data),
      sentMessages,
    );
    const frames = h.frames();
    assert.deepEqual(serverMessages(frames, params), sentMessages);
    // Small messages go as they are; big ones compressed.
    assert.equal(frames[0].rsv1, false, "16 bytes: not worth deflating");
    assert.ok(frames.at(-1)!.rsv1, "128 KiB: deflated");
    const wire = frames.reduce((n, f) => n + f.payload.length, 0);
    const plain = sentMessages.reduce((n, m) => n + m.length, 0);
    assert.ok(wire < plain / 2, `compressed ${wire} of ${plain} bytes`);
    h.session.dispose();
  });
}

Deno.test("a compressed frame without compression negotiated fails with 1002", () => {
  const client = new ClientDeflate(DEFLATE);
  const h = new Harness().feed(...client.frames(OPCODE.Text, "Hello"));
  client.close();
  assert.deepEqual(h.summary(), ["close:1002!"]);
});

Deno.test("abuse: a decompression bomb fails with 1009 before it is inflated whole", () => {
  // 64 MiB of zeros deflate to ~64 KiB: well under the wire limit.
  const bomb = zlib.deflateRawSync(new Uint8Array(64 << 20), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  const payload = new Uint8Array(bomb.subarray(0, bomb.length - 4));
  assert.ok(payload.length < LIMITS.wsMaxMessageBytes);
  const h = new Harness({}, { deflate: DEFLATE });
  h.feed(clientFrame(OPCODE.Binary, payload, { rsv1: true }));
  assert.deepEqual(h.summary(), ["close:1009!"]);
  assert.equal(h.sentClose(), 1009);
  h.session.dispose();
});

Deno.test("a compressed message is held to wsMaxMessageBytes once inflated, however much deflate made it grow on the wire", () => {
  const limits = { wsMaxMessageBytes: 1000, wsMaxFrameBytes: 1000 };
  // zlib's fixed codes with a small window: bytes over 0x8f cost 9 bits each.
  const fixed = { windowBits: 9, strategy: zlib.constants.Z_FIXED };
  const grown = (n: number) => incompressible(n).map((b) => 0x90 | b);
  const cases: [what: string, data: Uint8Array, fragment: number][] = [
    ["1000 bytes", grown(1000), 0],
    ["1000 bytes in frames of 300", grown(1000), 300],
    ["1001 bytes", grown(1001), 0],
    ["1001 bytes in frames of 300", grown(1001), 300],
  ];
  for (const [what, data, fragment] of cases) {
    const c = deflateAsClient(data, fixed);
    assert.ok(c.length > 1100, `${what}: ${c.length} bytes deflated`);
    const frames: Uint8Array[] = [];
    const size = fragment || c.length;
    for (let off = 0; off < c.length; off += size) {
      frames.push(
        clientFrame(
          off === 0 ? OPCODE.Binary : OPCODE.Continuation,
          c.subarray(off, off + size),
          { rsv1: off === 0, fin: off + size >= c.length },
        ),
      );
    }
    const h = new Harness(limits, { deflate: DEFLATE }).feed(...frames);
    assert.deepEqual(
      h.summary(),
      data.length > 1000 ? ["close:1009!"] : ["binary(1000)"],
      what,
    );
    h.session.dispose();
  }
  // A bomb the size of the allowance: 1 MiB of zeros in ~1 KiB.
  const bomb = deflateAsClient(new Uint8Array(1 << 20));
  assert.ok(bomb.length > 1000 && bomb.length < 1100, `${bomb.length}`);
  const h = new Harness(limits, { deflate: DEFLATE }).feed(
    clientFrame(OPCODE.Binary, bomb, { rsv1: true }),
  );
  assert.deepEqual(h.summary(), ["close:1009!"]);
  h.session.dispose();
});

Deno.test("compressed text that inflates to bad UTF-8 fails with 1007", () => {
  const c = new MessageDeflater(15, true, 6).compress(
    hex("cebae1bdb9cf83cebcceb5eda080"),
  );
  const h = new Harness({}, { deflate: DEFLATE }).feed(
    clientFrame(OPCODE.Text, c, { rsv1: true }),
  );
  assert.deepEqual(h.summary(), ["close:1007!"]);
  h.session.dispose();
});

Deno.test("compressed data that is not deflate fails with 1007", () => {
  const h = new Harness({}, { deflate: DEFLATE }).feed(
    clientFrame(OPCODE.Binary, new Uint8Array([0xff, 0xff, 0xff]), {
      rsv1: true,
    }),
  );
  assert.deepEqual(h.summary(), ["close:1007!"]);
  h.session.dispose();
});

// ---- a whole conversation split at every byte ----

Deno.test("a conversation gives the same events and output whether read whole or split at any byte", () => {
  const client = new ClientDeflate(DEFLATE);
  const stream = concat([
    text("Hel", { fin: false }),
    ping("p"),
    cont("lo"),
    binary(new Uint8Array([1, 2, 3])),
    ...client.frames(OPCODE.Text, "compressed ".repeat(20), 7),
    clientFrame(OPCODE.Text, new Uint8Array(200).fill(0x61), { width: 64 }),
    close(1000, "bye"),
  ]);
  client.close();
  const run = (pieces: Uint8Array[]) => {
    const h = new Harness({}, { deflate: DEFLATE });
    h.feed(...pieces);
    const result = { events: h.summary(), sent: sent(h) };
    h.session.dispose();
    return result;
  };
  const whole = run([stream]);
  assert.deepEqual(whole.events, [
    "ping:p",
    "text:Hello",
    "binary(3)",
    `text(${"compressed ".length * 20})`,
    "text(200)",
    "close:1000",
  ]);
  assert.deepEqual(whole.sent, ["pong:p", "close:1000"]);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(
      run([stream.subarray(0, cut), stream.subarray(cut)]),
      whole,
      `cut at ${cut}`,
    );
  }
  assert.deepEqual(run(chop(stream, 1)), whole, "byte by byte");
});

// ---- sending, output and backpressure ----

Deno.test("send() frames text and binary; small frames leave in one write", () => {
  const h = new Harness();
  assert.equal(h.session.send("Hello"), true);
  assert.equal(h.session.send(new Uint8Array([1, 2])), true);
  assert.equal(h.outputCalls, 1, "onOutput once, when output appeared");
  const out = h.session.takeOutput()!;
  assert.equal(h.session.takeOutput(), null, "both frames came in one buffer");
  assert.equal(
    h.session.bufferedAmount,
    out.length,
    "taken but not yet written",
  );
  h.session.written(out.length);
  assert.equal(h.session.bufferedAmount, 0);
  const frames = new ServerFrameReader().push(out);
  assert.deepEqual(frames.map((f) => f.opcode), [OPCODE.Text, OPCODE.Binary]);
  assert.equal(decoder.decode(frames[0].payload), "Hello");
});

Deno.test("send() copies the app's bytes", () => {
  const h = new Harness();
  const data = new Uint8Array([7, 7, 7]);
  h.session.send(data);
  data.fill(0);
  assert.deepEqual(h.frames()[0].payload, new Uint8Array([7, 7, 7]));
});

Deno.test("takeOutput() returns each big frame whole, in one pooled buffer reused once written", () => {
  const h = new Harness();
  const a = new Uint8Array(100_000).map((_, i) => i % 251);
  const b = new Uint8Array(300_000).map((_, i) => (i * 7) % 253);
  const c = new Uint8Array(20_000).fill(5); // 16 to 64 KiB: a 64 KiB buffer
  h.session.send(a);
  h.session.send(b);
  h.session.send(c);
  a.fill(0); // the app's bytes are copied when sent
  b.fill(0);
  c.fill(0);
  const pieces: Uint8Array[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for (let out; (out = h.session.takeOutput()) !== null;) {
    pieces.push(out.slice());
    buffers.add(out.buffer);
    h.session.written(out.length);
  }
  // One write per frame: its header and its whole payload.
  assert.deepEqual(pieces.map((p) => p.length), [100_010, 300_010, 20_004]);
  assert.equal(buffers.size, 3);
  const frames = new ServerFrameReader().push(concat(pieces));
  assert.deepEqual(frames.map((f) => [f.opcode, f.fin]), [
    [OPCODE.Binary, true],
    [OPCODE.Binary, true],
    [OPCODE.Binary, true],
  ]);
  assert.ok(equalBytes(
    frames[0].payload,
    new Uint8Array(100_000).map((_, i) => i % 251),
  ));
  assert.ok(equalBytes(
    frames[1].payload,
    new Uint8Array(300_000).map((_, i) => (i * 7) % 253),
  ));
  assert.ok(equalBytes(frames[2].payload, new Uint8Array(20_000).fill(5)));
  // Written, so free: a frame of a near size takes a buffer back.
  h.session.send(new Uint8Array(299_000).fill(1));
  const again = h.session.takeOutput()!;
  assert.equal(again.length, 299_010);
  assert.ok(buffers.has(again.buffer), "a written frame's buffer is reused");
  // While it is being written, another big frame never lands in it.
  const againBytes = again.slice();
  h.session.send(new Uint8Array(299_000).fill(9));
  const next = h.session.takeOutput()!;
  assert.notEqual(next.buffer, again.buffer);
  assert.ok(equalBytes(again, againBytes));
  h.session.written(again.length + next.length);
  assert.equal(h.session.bufferedAmount, 0);
});

/** Byte-for-byte equality without assert's diff (slow on big arrays). */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("a send that finds more than wsMaxQueuedBytes waiting drops the connection (1006)", () => {
  const h = new Harness({ wsMaxQueuedBytes: 10_000 });
  for (let i = 0; i < 9; i++) {
    assert.equal(h.session.send(new Uint8Array(1000)), true);
  }
  // The engine took it all but the peer reads nothing: no written() comes.
  while (h.session.takeOutput() !== null);
  assert.equal(
    h.session.send(new Uint8Array(1000)),
    true,
    "9,036 bytes waiting: one more goes",
  );
  assert.equal(h.session.send(new Uint8Array(1000)), false);
  assert.equal(h.session.state, "closed");
  assert.deepEqual(h.summary(), ["close:1006!"]);
  assert.equal(
    h.session.takeOutput(),
    null,
    "nothing more is queued for a peer that does not read",
  );
});

Deno.test("bufferedAmount falls as writes complete, so a paced sender never trips the limit", () => {
  const h = new Harness({ wsMaxQueuedBytes: 10_000 });
  for (let i = 0; i < 100; i++) {
    assert.equal(h.session.send(new Uint8Array(1000)), true);
    const out = h.session.takeOutput()!;
    h.session.written(out.length);
  }
  assert.equal(h.session.state, "open");
});

// ---- idle ----

Deno.test("checkIdle(): a ping after one quiet period, close 1001 after a second", () => {
  const h = new Harness();
  h.feed(text("hi"));
  assert.equal(
    h.session.checkIdle(),
    "none",
    "heard something since the last check",
  );
  assert.equal(h.session.checkIdle(), "ping");
  assert.deepEqual(sent(h), ["ping"]);
  h.feed(pong());
  assert.equal(h.session.checkIdle(), "none", "the pong counts");
  assert.equal(h.session.checkIdle(), "ping");
  assert.equal(h.session.checkIdle(), "close");
  assert.equal(h.session.state, "closing");
  assert.deepEqual(sent(h), ["ping", "ping", "close:1001"]);
});

// ---- the app ----

Deno.test("a handler that throws fails the connection with 1011 and the error reaches the engine", () => {
  const h = new Harness();
  const seen: string[] = [];
  h.session.onEvent = (e) => {
    seen.push(describe(e));
    if (e.type === "text") throw new Error("app bug");
  };
  assert.throws(
    () => h.session.receive(concat([text("boom"), text("never")])),
    /app bug/,
  );
  assert.deepEqual(seen, ["text:boom", "close:1011!"]);
  assert.equal(h.sentClose(), 1011);
});

Deno.test("a handler may send and close from inside an event", () => {
  const h = new Harness();
  h.session.onEvent = (e) => {
    h.events.push(e);
    if (e.type === "text") {
      h.session.send(`echo ${e.data}`);
      if (e.data === "bye") h.session.close(1000, "as asked");
    }
  };
  h.feed(concat([text("one"), text("bye")]));
  assert.deepEqual(sent(h), ["op1", "op1", "close:1000"]);
  assert.equal(h.session.state, "closing");
  h.feed(close(1000));
  assert.deepEqual(h.summary(), ["text:one", "text:bye", "close:1000"]);
});

Deno.test("WsSession delivers a big one-frame binary message whole however the reads split it, and a fragmented one too", () => {
  const payload = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
  const frame = clientFrame(OPCODE.Binary, payload);
  for (const pieceBytes of [1000, 64 * 1024, 100_000, frame.length]) {
    const h = new Harness();
    for (let off = 0; off < frame.length; off += pieceBytes) {
      h.feed(frame.subarray(off, off + pieceBytes));
    }
    assert.equal(h.events.length, 1, `pieces of ${pieceBytes}`);
    const e = h.events[0];
    assert.ok(e.type === "binary");
    assert.deepEqual(e.data, payload, `pieces of ${pieceBytes}`);
  }
  // Fragments: the message size is not known up front.
  const h = new Harness();
  h.feed(
    clientFrame(OPCODE.Binary, payload.subarray(0, 100_000), { fin: false }),
    clientFrame(OPCODE.Continuation, payload.subarray(100_000)),
  );
  const e = h.events[0];
  assert.ok(e.type === "binary");
  assert.deepEqual(e.data, payload);
});

Deno.test("WsSession.payloadSpace() lets the rest of a big message be read straight into it from its first read, unmasked there", () => {
  const payload = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
  const frame = clientFrame(OPCODE.Binary, payload);
  const before = earlyPresizedBytes();
  // Every split of the first read: inside the header, just after it, later.
  for (const first of [1, 9, 13, 14, 15, 512, 20_000, 74_000, 80_000]) {
    const h = new Harness();
    assert.equal(h.session.payloadSpace(), undefined, "no message yet");
    h.feed(frame.subarray(0, first));
    let off = first;
    if (first < 14) {
      assert.equal(h.session.payloadSpace(), undefined, "header not whole");
      h.feed(frame.subarray(first, off = 14));
    }
    // Presized from its first bytes (early: under a quarter here), or at
    // once when the first read brought a quarter.
    assert.equal(
      earlyPresizedBytes(),
      before + (off - 14 < 75_000 ? 300_000 : 0),
    );
    for (let space; (space = h.session.payloadSpace()) !== undefined;) {
      assert.equal(space.length, frame.length - off, "exactly the rest");
      const n = Math.min(space.length, 65_536); // one socket read
      space.set(frame.subarray(off, off + n)); // what read() would do
      off += n;
      h.session.receivedInPlace(n);
      // Counted early until its quarter is here.
      assert.equal(
        earlyPresizedBytes(),
        before + (off - 14 < 75_000 ? 300_000 : 0),
        `first read ${first}, at ${off}`,
      );
    }
    assert.equal(off, frame.length);
    assert.equal(h.events.length, 1);
    const e = h.events[0];
    assert.ok(e.type === "binary");
    assert.ok(equalBytes(e.data, payload), `first read ${first}`);
    // The next message is read as usual.
    h.feed(clientFrame(OPCODE.Text, "after"));
    assert.deepEqual(h.events[1], { type: "text", data: "after" });
  }
});

Deno.test("big messages presized before their quarter share EARLY_PRESIZE_BYTES; past it, one waits for its quarter", () => {
  const size = LIMITS.wsMaxFrameBytes; // 1 MiB, the largest a client may announce
  const payload = new Uint8Array(size).map((_, i) => i % 251);
  const frame = clientFrame(OPCODE.Binary, payload);
  const head = frame.subarray(0, 14 + 10); // the header and 10 bytes
  const before = earlyPresizedBytes();
  const room = Math.floor((EARLY_PRESIZE_BYTES - before) / size);
  assert.ok(room >= 8, `room for ${room} messages`);
  const early: Harness[] = [];
  for (let i = 0; i < room; i++) {
    const h = new Harness();
    h.feed(head);
    assert.equal(h.session.payloadSpace()?.length, size - 10);
    early.push(h);
  }
  assert.equal(earlyPresizedBytes(), before + room * size);
  // No room left: this one's 10 bytes wait in a pooled buffer, and its
  // buffer is made once a quarter of it is here.
  const late = new Harness();
  late.feed(head);
  assert.equal(late.session.payloadSpace(), undefined);
  late.feed(frame.subarray(24, 14 + size / 4 - 1));
  assert.equal(late.session.payloadSpace(), undefined, "one byte short");
  late.feed(frame.subarray(14 + size / 4 - 1, 14 + size / 4));
  assert.equal(late.session.payloadSpace()?.length, (size * 3) / 4);
  assert.equal(earlyPresizedBytes(), before + room * size, "not counted");
  // A connection lost mid-message gives its room back.
  early[0].session.abort();
  assert.equal(earlyPresizedBytes(), before + (room - 1) * size);
  const next = new Harness();
  next.feed(head);
  assert.equal(next.session.payloadSpace()?.length, size - 10);
  assert.equal(earlyPresizedBytes(), before + room * size);
  // As does a message once its quarter is here, and a disposed session.
  early[1].feed(frame.subarray(24, 14 + size / 4 - 1));
  assert.equal(earlyPresizedBytes(), before + room * size, "one byte short");
  early[1].feed(frame.subarray(14 + size / 4 - 1, 14 + size / 4));
  assert.equal(earlyPresizedBytes(), before + (room - 1) * size);
  early[1].feed(frame.subarray(14 + size / 4));
  const e = early[1].events[0];
  assert.ok(e.type === "binary" && equalBytes(e.data, payload));
  next.session.dispose();
  assert.equal(earlyPresizedBytes(), before + (room - 2) * size);
  for (const h of early.slice(2)) h.session.abort();
  late.session.abort();
  assert.equal(earlyPresizedBytes(), before);
});

// ---- the one-pass path for small whole frames ----

Deno.test("small whole frames in one read are checked as the parser checks them", () => {
  const cases: [string, Uint8Array, Partial<Limits>, string][] = [
    ["unmasked", text("x", { mask: false }), {}, "close:1002!"],
    ["RSV2 set", text("x", { rsv2: true }), {}, "close:1002!"],
    ["RSV1 without compression", text("x", { rsv1: true }), {}, "close:1002!"],
    ["over wsMaxMessageBytes", text("x".repeat(20)), {
      wsMaxMessageBytes: 10,
    }, "close:1009!"],
    ["over wsMaxFrameBytes", binary(new Uint8Array(20)), {
      wsMaxFrameBytes: 10,
    }, "close:1009!"],
    [
      "bad UTF-8",
      clientFrame(OPCODE.Text, Uint8Array.of(0x61, 0xc0, 0x80)),
      {},
      "close:1007!",
    ],
    [
      "a surrogate",
      clientFrame(OPCODE.Text, Uint8Array.of(0xed, 0xa0, 0x80)),
      {},
      "close:1007!",
    ],
    ["valid UTF-8", text("κόσμε"), {}, "text:κόσμε"],
    [
      "fragments",
      concat([text("x", { fin: false }), cont("y")]),
      {},
      "text:xy",
    ],
    [
      "a fragment then a new message",
      text("x", { fin: false }),
      {},
      "close:1002!",
    ],
  ];
  for (const [name, frame, limits, want] of cases) {
    const h = new Harness({ wsMaxMessageBytes: 15, ...limits });
    h.feed(concat([text("ok"), frame, text("after")]));
    const events = h.summary();
    assert.equal(events[0], "text:ok", name);
    assert.equal(events[1] ?? "(none)", want, name);
    if (want.startsWith("close")) assert.equal(events.length, 2, name);
  }
});

Deno.test("short text of every length up to 125 bytes is unmasked and decoded exactly; bad UTF-8 anywhere in it fails with 1007", () => {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ~";
  for (let len = 0; len < 126; len++) {
    // ASCII, text ending in a two-byte character, and the same with a byte
    // that cannot be UTF-8 at each position a mask byte can cover.
    const ascii = Array.from({ length: len }, (_, i) => alphabet[i % 38]).join(
      "",
    );
    const accented = len < 2 ? ascii : ascii.slice(0, len - 2) + "é";
    const h = new Harness();
    h.feed(concat([text(ascii), text(accented), text(ascii)]));
    assert.deepEqual(
      h.events,
      [
        { type: "text", data: ascii },
        { type: "text", data: accented },
        { type: "text", data: ascii },
      ],
      `length ${len}`,
    );
    for (let at = Math.max(0, len - 4); at < len; at++) {
      const bad = encoder.encode(ascii);
      bad[at] = 0xff;
      const failed = new Harness().feed(
        concat([clientFrame(OPCODE.Text, bad), text("after")]),
      );
      assert.deepEqual(failed.summary(), ["close:1007!"], `${len} at ${at}`);
      assert.equal(failed.sentClose(), 1007);
    }
  }
});

Deno.test("small frames, control frames and a frame cut by the read's end keep their order", () => {
  const wire = concat([
    text("a"),
    ping("p1"),
    binary(Uint8Array.of(1, 2, 3)),
    text("héllo"),
    text(""),
    ping("p2"),
    text("b".repeat(125)),
    text("tail"),
  ]);
  for (let cut = 1; cut < wire.length; cut += 7) {
    const h = new Harness();
    h.feed(wire.subarray(0, cut), wire.subarray(cut));
    assert.deepEqual(
      h.summary(),
      [
        "text:a",
        "ping:p1",
        "binary(3)",
        "text:héllo",
        "text:",
        "ping:p2",
        "text(125)",
        "text:tail",
      ],
      `cut at ${cut}`,
    );
    assert.deepEqual(sent(h), ["pong:p1", "pong:p2"]);
  }
});

Deno.test("small frames go out of one pooled buffer, reused once written; one being written is never overwritten", () => {
  const h = new Harness();
  h.session.send("first");
  const first = h.session.takeOutput()!;
  const firstBytes = first.slice();
  // Sent while `first` is still being written: its own bytes.
  h.session.send("second");
  h.session.send(Uint8Array.of(9));
  const second = h.session.takeOutput()!;
  assert.deepEqual(first, firstBytes);
  assert.notEqual(second.buffer, first.buffer);
  // Both pooled buffers go back once both are written: read them before.
  const secondBytes = second.slice();
  h.session.written(first.length + second.length);
  h.session.send("third");
  const third = h.session.takeOutput()!;
  const thirdBytes = third.slice();
  h.session.written(third.length);
  h.session.send("fourth");
  const fourth = h.session.takeOutput()!;
  assert.equal(fourth.buffer, third.buffer, "the pooled buffer came back");
  const frames = new ServerFrameReader().push(
    concat([firstBytes, secondBytes, thirdBytes, fourth]),
  );
  assert.deepEqual(
    frames.map((f) => decoder.decode(f.payload)),
    ["first", "second", "\t", "third", "fourth"],
  );
});

Deno.test("sent text and binary of every size read back exactly, whether written into the pooled buffer or apart", () => {
  const texts: string[] = ["", "a", "\u{1F600}", "\uD800 lone"];
  // Around the 2-byte/4-byte header boundary (125/126 bytes) and the pooled
  // buffer's size, in ASCII, two-byte and three-byte characters.
  for (const unit of ["x", "é", "€"]) {
    for (
      const n of [20, 41, 42, 43, 62, 63, 64, 65, 125, 126, 127, 300, 700, 2100]
    ) {
      texts.push(unit.repeat(n));
    }
  }
  const sizes = [0, 1, 125, 126, 2000, 2044, 2045, 4000, 16383, 16384, 70000];
  const h = new Harness();
  const want: string[] = [];
  for (const t of texts) {
    h.session.send(t);
    want.push(`t:${t.toWellFormed()}`);
  }
  for (const size of sizes) {
    h.session.send(new Uint8Array(size).map((_, i) => i % 253));
    want.push(`b:${size}`);
    h.session.send("after");
    want.push("t:after");
  }
  const got = h.frames().map((f) => {
    if (f.opcode === OPCODE.Text) return `t:${decoder.decode(f.payload)}`;
    const ok = f.payload.every((b, i) => b === i % 253);
    return `b:${ok ? f.payload.length : "corrupt"}`;
  });
  assert.deepEqual(got, want);
  assert.equal(h.session.bufferedAmount, 0);
});

Deno.test("small frames queued around a big one leave in the order they were sent", () => {
  const h = new Harness();
  h.session.send("x");
  h.session.send(new Uint8Array(5000).fill(7));
  h.session.send("y");
  h.session.ping(encoder.encode("p"));
  const frames = h.frames();
  assert.deepEqual(
    frames.map((f) => [f.opcode, f.payload.length]),
    [[OPCODE.Text, 1], [OPCODE.Binary, 5000], [OPCODE.Text, 1], [
      OPCODE.Ping,
      1,
    ]],
  );
  assert.equal(h.session.bufferedAmount, 0);
});

Deno.test("receive() reads only up to `end` of a reused read buffer", () => {
  const h = new Harness();
  const wire = concat([text("one"), binary(new Uint8Array(300)), text("two")]);
  const buf = new Uint8Array(4096).fill(0xff); // what an earlier read left
  // Cut inside the binary frame's header, then inside its payload.
  for (const [from, to] of [[0, 8], [8, 100], [100, wire.length]]) {
    buf.set(wire.subarray(from, to));
    h.session.receive(buf, to - from);
  }
  assert.deepEqual(h.summary(), ["text:one", "binary(300)", "text:two"]);
  assert.equal(h.session.state, "open");
});

Deno.test("onMessage takes the messages (text as strings, binary as bytes) in order with the other events, and a throw there fails the connection with 1011", () => {
  const h = new Harness();
  const seen: string[] = [];
  h.session.onMessage = (data) => {
    // Not describe()'s "text:": what came here, not to onEvent.
    seen.push(typeof data === "string" ? `message:${data}` : `bytes:${data}`);
    if (data === "boom") throw new Error("app bug");
  };
  h.session.onEvent = (e) => seen.push(describe(e));
  // A short text, a fragmented one, binary, a ping and a long text in one read.
  const long = "y".repeat(200);
  h.feed(concat([
    text("one"),
    clientFrame(OPCODE.Text, encoder.encode("tw"), { fin: false }),
    clientFrame(OPCODE.Continuation, encoder.encode("o")),
    clientFrame(OPCODE.Binary, new Uint8Array([1, 2])),
    clientFrame(OPCODE.Ping, encoder.encode("p")),
    text(long),
  ]));
  assert.deepEqual(seen, [
    "message:one",
    "message:two",
    "bytes:1,2",
    "ping:p",
    `message:${long}`,
  ]);
  seen.length = 0;
  assert.throws(
    () => h.session.receive(concat([text("boom"), text("never")])),
    /app bug/,
  );
  assert.deepEqual(seen, ["message:boom", "close:1011!"]);
  assert.equal(h.sentClose(), 1011);
});
