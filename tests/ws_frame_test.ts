/**
 * The frame codec with byte arrays alone: headers split at every byte,
 * 7/16/64-bit lengths, what the first two bytes refuse (reserved bits,
 * opcodes, control frames, masking), limits refused from the header,
 * the writer and the close frame codec.
 */
import assert from "node:assert/strict";
import {
  CLOSE,
  encodeCloseFrame,
  encodeFrame,
  encodeTextFrame,
  FrameParser,
  type FrameParserOptions,
  type FrameSink,
  isValidCloseCode,
  OPCODE,
  parseClosePayload,
  WsError,
} from "../lib/http/ws/frame.ts";
import {
  clientFrame,
  type ClientFrameOptions,
  closePayload,
  decoder,
  encoder,
  INVALID_CLOSE_CODES,
  readServerFrames,
  VALID_CLOSE_CODES,
} from "./fixtures/ws_frames.ts";
import { concat } from "./helpers/socket.ts";

const OPTS: FrameParserOptions = {
  maxFrameBytes: 1 << 20,
  requireMask: true,
  allowRsv1: false,
};

/** One frame as the parser reported it. */
interface Seen {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  length: number;
  payload: Uint8Array;
}

/** A sink that records frames; `pieces` counts framePayload calls. */
class Recorder implements FrameSink {
  frames: Seen[] = [];
  pieces = 0;
  #cur: Seen | undefined;
  #parts: Uint8Array[] = [];
  frameStart(fin: boolean, rsv1: boolean, opcode: number, length: number) {
    this.#cur = { fin, rsv1, opcode, length, payload: new Uint8Array(0) };
    this.#parts = [];
  }
  framePayload(bytes: Uint8Array) {
    this.pieces++;
    this.#parts.push(bytes.slice());
  }
  frameEnd() {
    this.#cur!.payload = concat(this.#parts);
    this.frames.push(this.#cur!);
    return false;
  }
}

/** Parses `bytes` in pieces cut at `cuts` (each parse gets a fresh copy). */
function parseIn(
  bytes: Uint8Array,
  cuts: number[] = [],
  opts: FrameParserOptions = OPTS,
): Recorder {
  const parser = new FrameParser(opts);
  const rec = new Recorder();
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    parser.parse(bytes.slice(from, cut), rec);
    from = cut;
  }
  return rec;
}

function refused(
  bytes: Uint8Array,
  code: number,
  opts: FrameParserOptions = OPTS,
): WsError {
  const parser = new FrameParser(opts);
  let error: unknown;
  try {
    parser.parse(bytes.slice(), new Recorder());
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof WsError, `expected a WsError, got ${error}`);
  assert.equal(error.code, code, error.message);
  return error;
}

const SIZES = [0, 1, 125, 126, 127, 128, 0xffff, 0x10000, 70_000];

Deno.test("FrameParser reads text and binary frames of every length encoding (Autobahn 1.1, 1.2)", () => {
  for (const size of SIZES) {
    for (const opcode of [OPCODE.Text, OPCODE.Binary]) {
      const payload = new Uint8Array(size).map((_, i) => (i * 7) & 0x7f);
      const rec = parseIn(clientFrame(opcode, payload));
      assert.equal(rec.frames.length, 1);
      const [f] = rec.frames;
      assert.equal(f.opcode, opcode);
      assert.equal(f.length, size);
      assert.ok(f.fin);
      assert.deepEqual(f.payload, payload, `size ${size}`);
    }
  }
});

Deno.test("FrameParser reads a frame cut at every byte, header and payload", () => {
  const frames = [
    clientFrame(OPCODE.Text, "Hello"),
    clientFrame(OPCODE.Binary, new Uint8Array(300).fill(9)), // 16-bit length
    clientFrame(OPCODE.Ping, "p"),
    clientFrame(OPCODE.Binary, new Uint8Array(200).fill(3), { width: 64 }),
    clientFrame(OPCODE.Text, ""),
  ];
  const stream = concat(frames);
  const whole = parseIn(stream).frames;
  assert.equal(whole.length, frames.length);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(parseIn(stream, [cut]).frames, whole, `cut at ${cut}`);
  }
  // One byte per read: the worst a slow client can do.
  const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(parseIn(stream, cuts).frames, whole, "byte by byte");
});

Deno.test("FrameParser unmasks a 256 KiB frame read in pieces cut at odd points, through parse() and in place", () => {
  const payload = new Uint8Array(256 * 1024 + 3).map((_, i) => (i * 13) >>> 2);
  const frame = clientFrame(OPCODE.Binary, payload);
  const head = frame.length - payload.length;
  // Pieces of odd sizes and offsets, each resuming the mask mid-key.
  const cuts = [head + 1, head + 1030, head + 1031, head + 20_001];
  const rec = parseIn(frame, cuts);
  assert.equal(rec.pieces, cuts.length + 1);
  assert.deepEqual(rec.frames[0].payload, payload);
  // As the session reads a big message: the header and a first piece,
  // then the rest straight into the message's buffer, unmasked there.
  const parser = new FrameParser(OPTS);
  const inPlace = new Recorder();
  parser.parse(frame.slice(0, head + 5), inPlace);
  const rest = frame.slice(head + 5);
  for (let at = 0; at < rest.length;) {
    const n = Math.min(at === 0 ? 4097 : 65_537, rest.length - at);
    parser.parsePayloadInPlace(rest.subarray(at, at + n), inPlace);
    at += n;
  }
  assert.equal(inPlace.frames.length, 1);
  assert.deepEqual(rest, payload.subarray(5));
});

Deno.test("FrameParser accepts a length written longer than needed", () => {
  const rec = parseIn(clientFrame(OPCODE.Text, "abc", { width: 64 }));
  assert.equal(decoder.decode(rec.frames[0].payload), "abc");
  const rec16 = parseIn(clientFrame(OPCODE.Text, "abc", { width: 16 }));
  assert.equal(decoder.decode(rec16.frames[0].payload), "abc");
});

Deno.test("FrameParser refuses a 64-bit length with the top bit set (2^63) with 1002", () => {
  const frame = clientFrame(OPCODE.Binary, new Uint8Array(0), {
    length: 2n ** 63n,
    width: 64,
  });
  refused(frame, CLOSE.ProtocolError);
  // Also when the header comes a byte at a time.
  const parser = new FrameParser(OPTS);
  assert.throws(() => {
    for (let i = 0; i < frame.length; i++) {
      parser.parse(frame.slice(i, i + 1), new Recorder());
    }
  }, { name: "WsError", code: CLOSE.ProtocolError });
});

Deno.test("FrameParser holds the frames of a compressed message to maxCompressedFrameBytes and the others to maxFrameBytes, from the header", () => {
  const opts = {
    ...OPTS,
    allowRsv1: true,
    maxFrameBytes: 1000,
    maxCompressedFrameBytes: 1200,
  };
  const frame = (op: number, length: number, o: ClientFrameOptions = {}) =>
    clientFrame(op, new Uint8Array(0), { length, ...o });
  const first = frame(OPCODE.Binary, 1200, { rsv1: true, fin: false });
  // The compressed message's first frame and its continuation: 1200 each.
  assert.equal(
    parseIn(
      concat([
        clientFrame(OPCODE.Binary, new Uint8Array(1200), {
          rsv1: true,
          fin: false,
        }),
        clientFrame(OPCODE.Continuation, new Uint8Array(1200)),
      ]),
      [],
      opts,
    ).frames.length,
    2,
  );
  const over = refused(
    frame(OPCODE.Binary, 1201, { rsv1: true }),
    CLOSE.MessageTooBig,
    opts,
  );
  assert.equal(
    over.message,
    "Compressed frame of 1201 bytes is over the 1200-byte limit",
  );
  const parser = new FrameParser(opts);
  const rec = new Recorder();
  parser.parse(first.slice(), rec);
  parser.parse(new Uint8Array(1200), rec);
  assert.throws(
    () => parser.parse(frame(OPCODE.Continuation, 1201), rec),
    { name: "WsError", code: CLOSE.MessageTooBig },
  );
  // Uncompressed, and the continuation of an uncompressed message: 1000.
  refused(frame(OPCODE.Text, 1001), CLOSE.MessageTooBig, opts);
  const plain = new FrameParser(opts);
  plain.parse(frame(OPCODE.Text, 0, { fin: false }), rec);
  assert.throws(
    () => plain.parse(frame(OPCODE.Continuation, 1001), rec),
    { name: "WsError", code: CLOSE.MessageTooBig },
  );
  // A message that follows a compressed one is held to its own kind.
  const next = new FrameParser(opts);
  next.parse(frame(OPCODE.Binary, 0, { rsv1: true }), rec);
  assert.throws(
    () => next.parse(frame(OPCODE.Binary, 1001), rec),
    { name: "WsError", code: CLOSE.MessageTooBig },
  );
});

Deno.test("FrameParser refuses a frame over maxFrameBytes with 1009 from its header alone", () => {
  const opts = { ...OPTS, maxFrameBytes: 1000 };
  assert.equal(
    parseIn(clientFrame(OPCODE.Binary, new Uint8Array(1000)), [], opts).frames
      .length,
    1,
  );
  // Only the header is sent: the refusal cannot wait for the payload.
  const head = clientFrame(OPCODE.Binary, new Uint8Array(0), { length: 1001 });
  refused(head, CLOSE.MessageTooBig, opts);
  const huge = clientFrame(OPCODE.Binary, new Uint8Array(0), {
    length: 2n ** 62n,
    width: 64,
  });
  refused(huge, CLOSE.MessageTooBig, opts);
});

/** [name, frame bytes, close code] refused from the first bytes. */
const REFUSED: [string, Uint8Array, number][] = [
  // Autobahn 3.x: reserved bits without an extension
  [
    "RSV1 without compression",
    clientFrame(OPCODE.Text, "x", { rsv1: true }),
    1002,
  ],
  ["RSV2", clientFrame(OPCODE.Text, "x", { rsv2: true }), 1002],
  ["RSV3", clientFrame(OPCODE.Text, "x", { rsv3: true }), 1002],
  [
    "RSV1+RSV2+RSV3",
    clientFrame(OPCODE.Binary, "x", { rsv1: true, rsv2: true, rsv3: true }),
    1002,
  ],
  ["RSV on a ping", clientFrame(OPCODE.Ping, "x", { rsv3: true }), 1002],
  // Autobahn 4.x: reserved opcodes
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((
    op,
  ): [string, Uint8Array, number] => [
    `opcode ${op}`,
    clientFrame(op, "x"),
    1002,
  ]),
  // Autobahn 2.x / 5.x: control frames
  ["ping of 126 bytes", clientFrame(OPCODE.Ping, new Uint8Array(126)), 1002],
  ["close of 126 bytes", clientFrame(OPCODE.Close, new Uint8Array(126)), 1002],
  ["fragmented ping", clientFrame(OPCODE.Ping, "x", { fin: false }), 1002],
  ["fragmented pong", clientFrame(OPCODE.Pong, "x", { fin: false }), 1002],
  [
    "fragmented close",
    clientFrame(OPCODE.Close, closePayload(1000), { fin: false }),
    1002,
  ],
  // RFC 6455 §5.1: a server closes on an unmasked client frame
  ["unmasked text", clientFrame(OPCODE.Text, "x", { mask: false }), 1002],
  ["unmasked ping", clientFrame(OPCODE.Ping, "", { mask: false }), 1002],
];

for (const [name, frame, code] of REFUSED) {
  Deno.test(`FrameParser refuses ${name} with ${code}, from the first two bytes`, () => {
    refused(frame, code);
    refused(frame.subarray(0, 2), code);
  });
}

Deno.test("FrameParser allows RSV1 on a first frame only when compression is on", () => {
  const opts = { ...OPTS, allowRsv1: true };
  const rec = parseIn(clientFrame(OPCODE.Text, "x", { rsv1: true }), [], opts);
  assert.equal(rec.frames[0].rsv1, true);
  // RFC 7692 §6.1: never on a continuation or a control frame.
  refused(clientFrame(OPCODE.Continuation, "x", { rsv1: true }), 1002, opts);
  refused(clientFrame(OPCODE.Ping, "x", { rsv1: true }), 1002, opts);
});

Deno.test("FrameParser reports payload as it arrives, before the frame is whole", () => {
  const frame = clientFrame(OPCODE.Binary, new Uint8Array(1000).fill(1));
  const parser = new FrameParser(OPTS);
  const rec = new Recorder();
  parser.parse(frame.slice(0, 500), rec);
  assert.equal(rec.pieces, 1, "the first half is reported at once");
  assert.equal(rec.frames.length, 0);
  assert.equal(parser.idle, false);
  parser.parse(frame.slice(500), rec);
  assert.equal(rec.frames.length, 1);
  assert.equal(parser.idle, true);
});

Deno.test("FrameParser stops when frameEnd() returns true", () => {
  const parser = new FrameParser(OPTS);
  const seen: number[] = [];
  const sink: FrameSink = {
    frameStart: (_fin, _rsv1, opcode) => void seen.push(opcode),
    framePayload: () => {},
    frameEnd: () => true,
  };
  parser.parse(
    concat([clientFrame(OPCODE.Close), clientFrame(OPCODE.Text, "after")]),
    sink,
  );
  assert.deepEqual(seen, [OPCODE.Close]);
});

Deno.test("encodeFrame() writes unmasked server frames a parser reads back", () => {
  for (const size of SIZES) {
    const payload = new Uint8Array(size).fill(0x61);
    const bytes = encodeFrame(OPCODE.Binary, payload);
    assert.equal(bytes[1] & 0x80, 0, "server frames are never masked");
    const [f] = readServerFrames(bytes);
    assert.equal(f.opcode, OPCODE.Binary);
    assert.deepEqual(f.payload, payload);
  }
  const frag = readServerFrames(
    encodeFrame(OPCODE.Text, encoder.encode("a"), false, true),
  )[0];
  assert.equal(frag.fin, false);
  assert.equal(frag.rsv1, true);
});

Deno.test("encodeTextFrame() encodes short and long text, multi-byte included", () => {
  for (
    const text of [
      "",
      "Hello",
      "κόσμε 🎉".repeat(30),
      "x".repeat(70_000),
      "é".repeat(20_000),
    ]
  ) {
    const [f] = readServerFrames(encodeTextFrame(text));
    assert.equal(f.opcode, OPCODE.Text);
    assert.equal(decoder.decode(f.payload), text);
  }
});

Deno.test("isValidCloseCode() accepts Autobahn 7.7's codes and refuses 7.9's", () => {
  for (const code of VALID_CLOSE_CODES) {
    assert.ok(isValidCloseCode(code), String(code));
  }
  for (const code of INVALID_CLOSE_CODES) {
    assert.equal(isValidCloseCode(code), false, String(code));
  }
});

Deno.test("parseClosePayload() reads code and reason; refuses 1 byte, bad codes (1002) and bad UTF-8 (1007)", () => {
  assert.deepEqual(parseClosePayload(new Uint8Array(0)), {
    code: 1005,
    reason: "",
  });
  assert.deepEqual(parseClosePayload(closePayload(1000)), {
    code: 1000,
    reason: "",
  });
  assert.deepEqual(parseClosePayload(closePayload(4321, "bye κόσμε")), {
    code: 4321,
    reason: "bye κόσμε",
  });
  assert.throws(() => parseClosePayload(new Uint8Array([0x03])), {
    code: 1002,
  });
  for (const code of INVALID_CLOSE_CODES) {
    assert.throws(
      () => parseClosePayload(closePayload(code)),
      { code: 1002 },
      String(code),
    );
  }
  // Autobahn 7.5.1: a reason that is not UTF-8
  const bad = concat([
    closePayload(1000),
    new Uint8Array([0xce, 0xba, 0xed, 0xa0, 0x80]),
  ]);
  assert.throws(() => parseClosePayload(bad), { code: 1007 });
});

Deno.test("encodeCloseFrame() refuses codes that may not be sent and reasons over 123 bytes", () => {
  const [f] = readServerFrames(encodeCloseFrame(1001, "going"));
  assert.equal(f.opcode, OPCODE.Close);
  assert.deepEqual(parseClosePayload(f.payload), {
    code: 1001,
    reason: "going",
  });
  assert.equal(
    readServerFrames(encodeCloseFrame(undefined))[0].payload.length,
    0,
  );
  assert.equal(
    readServerFrames(encodeCloseFrame(1000, "r".repeat(123)))[0].payload.length,
    125,
  );
  assert.throws(() => encodeCloseFrame(1000, "r".repeat(124)), RangeError);
  assert.throws(() => encodeCloseFrame(1005), RangeError);
  assert.throws(() => encodeCloseFrame(1006), RangeError);
});

Deno.test("a client frame from the test fixture is masked with its key (the fixture itself is right)", () => {
  // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
  const opts: ClientFrameOptions = { key: [0x37, 0xfa, 0x21, 0x3d] };
  assert.deepEqual(
    clientFrame(OPCODE.Text, "Hello", opts),
    new Uint8Array([
      0x81,
      0x85,
      0x37,
      0xfa,
      0x21,
      0x3d,
      0x7f,
      0x9f,
      0x4d,
      0x51,
      0x58,
    ]),
  );
});
