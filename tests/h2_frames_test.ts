import assert from "node:assert/strict";
import {
  encodeFrame,
  ERROR,
  errorName,
  FRAME,
  type FrameInit,
  frameLength,
  H2Error,
  parseFrame,
  SETTING,
  UNKNOWN_FRAME,
  writeData,
  writeGoaway,
  writePing,
  writeRstStream,
  writeSettings,
  writeWindowUpdate,
} from "../lib/http/h2/frames.ts";
import { OutBuffer } from "../lib/http/response.ts";
import { hex, unhex } from "./helpers/bytes.ts";

const MAX = 16_384;
const bytes = (s: string) => new TextEncoder().encode(s);

function parse(b: Uint8Array, max = MAX) {
  return parseFrame(b, 0, b.length, max);
}

// Every frame type, and the flags and fields each can carry.
const ROUND_TRIPS: [what: string, frame: FrameInit][] = [
  ["DATA", {
    type: FRAME.DATA,
    streamId: 1,
    endStream: false,
    data: bytes("hello"),
    flowLength: 5,
  }],
  ["DATA ending the stream", {
    type: FRAME.DATA,
    streamId: 3,
    endStream: true,
    data: bytes(""),
    flowLength: 0,
  }],
  ["HEADERS", {
    type: FRAME.HEADERS,
    streamId: 1,
    endStream: true,
    endHeaders: true,
    priority: undefined,
    fragment: unhex("828684"),
  }],
  ["HEADERS with priority", {
    type: FRAME.HEADERS,
    streamId: 5,
    endStream: false,
    endHeaders: false,
    priority: { dependency: 3, exclusive: true, weight: 256 },
    fragment: unhex("82"),
  }],
  ["PRIORITY", {
    type: FRAME.PRIORITY,
    streamId: 7,
    priority: { dependency: 0, exclusive: false, weight: 16 },
  }],
  ["RST_STREAM", { type: FRAME.RST_STREAM, streamId: 1, code: ERROR.CANCEL }],
  ["SETTINGS", {
    type: FRAME.SETTINGS,
    ack: false,
    settings: [[SETTING.MAX_CONCURRENT_STREAMS, 100], [
      SETTING.INITIAL_WINDOW_SIZE,
      2 ** 31 - 1,
    ], [0xff, 7]],
  }],
  ["SETTINGS ack", { type: FRAME.SETTINGS, ack: true, settings: [] }],
  ["PUSH_PROMISE", {
    type: FRAME.PUSH_PROMISE,
    streamId: 1,
    endHeaders: true,
    promisedStreamId: 2,
    fragment: unhex("82"),
  }],
  ["PING", { type: FRAME.PING, ack: false, data: unhex("0102030405060708") }],
  ["PING ack", {
    type: FRAME.PING,
    ack: true,
    data: unhex("0102030405060708"),
  }],
  ["GOAWAY", {
    type: FRAME.GOAWAY,
    lastStreamId: 2 ** 31 - 1,
    code: ERROR.ENHANCE_YOUR_CALM,
    debug: bytes("calm"),
  }],
  ["WINDOW_UPDATE", {
    type: FRAME.WINDOW_UPDATE,
    streamId: 0,
    increment: 2 ** 31 - 1,
  }],
  ["CONTINUATION", {
    type: FRAME.CONTINUATION,
    streamId: 9,
    endHeaders: true,
    fragment: unhex("84"),
  }],
  ["an unknown type", {
    type: UNKNOWN_FRAME,
    frameType: 0xfa,
    streamId: 3,
    flags: 0xff,
    payload: bytes("xyz"),
  }],
];

for (const [what, frame] of ROUND_TRIPS) {
  Deno.test(`parseFrame() reads back ${what} as encodeFrame() wrote it`, () => {
    const b = encodeFrame(frame);
    assert.deepEqual(parse(b), frame);
    // One byte short: not yet a frame.
    assert.equal(parseFrame(b, 0, b.length - 1, MAX), null);
  });
}

for (const type of [FRAME.DATA, FRAME.HEADERS, FRAME.PUSH_PROMISE] as const) {
  Deno.test(`parseFrame() strips the padding of frame type ${type}`, () => {
    const frame: FrameInit = type === FRAME.DATA
      ? {
        type,
        streamId: 1,
        endStream: false,
        data: bytes("abc"),
        flowLength: 0,
        padding: 10,
      }
      : type === FRAME.HEADERS
      ? {
        type,
        streamId: 1,
        endStream: false,
        endHeaders: true,
        priority: { dependency: 0, exclusive: false, weight: 1 },
        fragment: bytes("abc"),
        padding: 10,
      }
      : {
        type,
        streamId: 1,
        endHeaders: true,
        promisedStreamId: 4,
        fragment: bytes("abc"),
        padding: 10,
      };
    const b = encodeFrame(frame);
    const parsed = parse(b)!;
    const body = "data" in parsed
      ? parsed.data
      : (parsed as { fragment: Uint8Array }).fragment;
    assert.equal(new TextDecoder().decode(body), "abc");
    if (parsed.type === FRAME.DATA) assert.equal(parsed.flowLength, 3 + 1 + 10);
  });
}

Deno.test("encodeFrame() writes the RFC 9113 §4.1 layout", () => {
  // Length 8, type 6, flags 1 (ACK), stream 0, then the payload.
  assert.equal(
    hex(
      encodeFrame({
        type: FRAME.PING,
        ack: true,
        data: unhex("0001020304050607"),
      }),
    ),
    "000008060100000000" + "0001020304050607",
  );
  // Padded HEADERS: pad length byte, priority, fragment, zeros.
  assert.equal(
    hex(encodeFrame({
      type: FRAME.HEADERS,
      streamId: 1,
      endStream: true,
      endHeaders: true,
      priority: { dependency: 3, exclusive: true, weight: 16 },
      fragment: unhex("82"),
      padding: 2,
    })),
    "000009" + "01" + "2d" + "00000001" + "02" + "800000030f" + "82" + "0000",
  );
});

Deno.test("the session's writers match encodeFrame()", () => {
  const out = new OutBuffer();
  writeSettings(out, [[SETTING.MAX_FRAME_SIZE, 16_384]]);
  writeSettings(out, [], true);
  writePing(out, unhex("0102030405060708"), true);
  writeGoaway(out, 5, ERROR.PROTOCOL_ERROR, bytes("no"));
  writeRstStream(out, 3, ERROR.REFUSED_STREAM);
  writeWindowUpdate(out, 1, 1000);
  writeData(out, 1, bytes("xhellox"), 1, 6, true);
  const expected = [
    encodeFrame({
      type: FRAME.SETTINGS,
      ack: false,
      settings: [[SETTING.MAX_FRAME_SIZE, 16_384]],
    }),
    encodeFrame({ type: FRAME.SETTINGS, ack: true, settings: [] }),
    encodeFrame({
      type: FRAME.PING,
      ack: true,
      data: unhex("0102030405060708"),
    }),
    encodeFrame({
      type: FRAME.GOAWAY,
      lastStreamId: 5,
      code: ERROR.PROTOCOL_ERROR,
      debug: bytes("no"),
    }),
    encodeFrame({
      type: FRAME.RST_STREAM,
      streamId: 3,
      code: ERROR.REFUSED_STREAM,
    }),
    encodeFrame({ type: FRAME.WINDOW_UPDATE, streamId: 1, increment: 1000 }),
    encodeFrame({
      type: FRAME.DATA,
      streamId: 1,
      endStream: true,
      data: bytes("hello"),
      flowLength: 5,
    }),
  ].map(hex).join("");
  assert.equal(hex(out.buf.subarray(0, out.len)), expected);
});

Deno.test("parseFrame() ignores the reserved bit of a stream id", () => {
  const b = encodeFrame({ type: FRAME.RST_STREAM, streamId: 1, code: 0 });
  b[5] |= 0x80;
  assert.equal((parse(b) as { streamId: number }).streamId, 1);
});

Deno.test("parseFrame() refuses a frame over the size limit from its header alone", () => {
  const header = unhex("004001" + "00" + "00" + "00000001"); // 16385 bytes of DATA
  assert.throws(() => parseFrame(header, 0, header.length, MAX), (err) => {
    assert.ok(err instanceof H2Error);
    assert.equal(err.code, ERROR.FRAME_SIZE_ERROR);
    assert.equal(err.streamId, 0);
    return true;
  });
  assert.equal(frameLength(header, 0), 16_385);
  assert.equal(parseFrame(header, 0, header.length, 1 << 20), null);
});

/** [what, frame bytes (header + payload), code, stream error on this stream (0: connection error)] */
const REFUSED: [string, string, number, number][] = [
  ["DATA on stream 0", "000001 00 00 00000000 61", ERROR.PROTOCOL_ERROR, 0],
  [
    "DATA with padding as long as the payload",
    "000002 00 08 00000001 02 00",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "padded DATA with no room for the pad length",
    "000000 00 08 00000001",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  ["HEADERS on stream 0", "000001 01 04 00000000 82", ERROR.PROTOCOL_ERROR, 0],
  [
    "HEADERS with PRIORITY too short for it",
    "000003 01 24 00000001 000000",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  [
    "HEADERS with padding past the fragment",
    "000003 01 0c 00000001 05 8282",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "PRIORITY on stream 0",
    "000005 02 00 00000000 0000000010",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "PRIORITY of 4 bytes",
    "000004 02 00 00000003 00000000",
    ERROR.FRAME_SIZE_ERROR,
    3,
  ],
  [
    "RST_STREAM on stream 0",
    "000004 03 00 00000000 00000000",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "RST_STREAM of 3 bytes",
    "000003 03 00 00000001 000000",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  ["SETTINGS on stream 1", "000000 04 00 00000001", ERROR.PROTOCOL_ERROR, 0],
  [
    "SETTINGS ack with a payload",
    "000006 04 01 00000000 000300000064",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  [
    "SETTINGS of 5 bytes",
    "000005 04 00 00000000 0003000000",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  [
    "SETTINGS_ENABLE_PUSH of 2",
    "000006 04 00 00000000 000200000002",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "SETTINGS_INITIAL_WINDOW_SIZE of 2^31",
    "000006 04 00 00000000 000480000000",
    ERROR.FLOW_CONTROL_ERROR,
    0,
  ],
  [
    "SETTINGS_MAX_FRAME_SIZE of 16383",
    "000006 04 00 00000000 000500003fff",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "SETTINGS_MAX_FRAME_SIZE of 2^24",
    "000006 04 00 00000000 000501000000",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "PUSH_PROMISE on stream 0",
    "000004 05 04 00000000 00000002",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "PING on stream 1",
    "000008 06 00 00000001 0000000000000000",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "PING of 7 bytes",
    "000007 06 00 00000000 00000000000000",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  [
    "GOAWAY on stream 1",
    "000008 07 00 00000001 0000000000000000",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "GOAWAY of 7 bytes",
    "000007 07 00 00000000 00000000000000",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  [
    "WINDOW_UPDATE of 3 bytes",
    "000003 08 00 00000001 000001",
    ERROR.FRAME_SIZE_ERROR,
    0,
  ],
  [
    "WINDOW_UPDATE of 0 on a stream",
    "000004 08 00 00000001 00000000",
    ERROR.PROTOCOL_ERROR,
    1,
  ],
  [
    "WINDOW_UPDATE of 0 on the connection",
    "000004 08 00 00000000 00000000",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
  [
    "CONTINUATION on stream 0",
    "000001 09 04 00000000 82",
    ERROR.PROTOCOL_ERROR,
    0,
  ],
];
for (const [what, raw, code, streamId] of REFUSED) {
  Deno.test(`parseFrame() refuses ${what} with ${errorName(code)}`, () => {
    const b = unhex(raw);
    assert.throws(() => parse(b), (err) => {
      assert.ok(err instanceof H2Error, String(err));
      assert.equal(errorName(err.code), errorName(code));
      assert.equal(err.streamId, streamId);
      return true;
    });
  });
}

Deno.test("parseFrame() keeps unknown settings and SETTINGS_NO_RFC7540_PRIORITIES", () => {
  const f = parse(unhex("00000c 04 00 00000000 00090000000100ff00000005"));
  assert.deepEqual(f, {
    type: FRAME.SETTINGS,
    ack: false,
    settings: [[SETTING.NO_RFC7540_PRIORITIES, 1], [0xff, 5]],
  });
});

Deno.test("errorName() names RFC 9113 codes and shows unknown ones in hex", () => {
  assert.equal(errorName(ERROR.ENHANCE_YOUR_CALM), "ENHANCE_YOUR_CALM");
  assert.equal(errorName(0x99), "0x99");
});

Deno.test("the session's writers write into the buffer they grew", () => {
  const out = new OutBuffer();
  for (let i = 0; i < 300; i++) {
    writeRstStream(out, 2 * i + 1, ERROR.CANCEL);
    writeWindowUpdate(out, 2 * i + 1, i + 1);
    writeGoaway(out, i, ERROR.ENHANCE_YOUR_CALM);
    writePing(out, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, i & 0xff), false);
    writeSettings(out, [[SETTING.MAX_CONCURRENT_STREAMS, i]]);
  }
  const all = out.buf.subarray(0, out.len);
  let at = 0;
  for (let i = 0; i < 300; i++) {
    const frames = [];
    for (let k = 0; k < 5; k++) {
      const f = parseFrame(all, at, all.length, MAX)!;
      at += 9 + frameLength(all, at);
      frames.push(f);
    }
    assert.deepEqual(frames[0], {
      type: FRAME.RST_STREAM,
      streamId: 2 * i + 1,
      code: ERROR.CANCEL,
    });
    assert.deepEqual(frames[1], {
      type: FRAME.WINDOW_UPDATE,
      streamId: 2 * i + 1,
      increment: i + 1,
    });
    assert.equal((frames[2] as { code: number }).code, ERROR.ENHANCE_YOUR_CALM);
    assert.equal((frames[3] as { data: Uint8Array }).data[7], i & 0xff);
    assert.deepEqual((frames[4] as { settings: unknown }).settings, [[
      SETTING.MAX_CONCURRENT_STREAMS,
      i,
    ]]);
  }
  assert.equal(at, all.length);
});
