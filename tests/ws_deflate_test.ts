/**
 * permessage-deflate's codec: RFC 7692's own examples, context takeover
 * and its absence, window sizes, a bomb stopped at the cap without being
 * inflated whole, and corrupt input.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  deflateAvailable,
  MessageDeflater,
  MessageInflater,
} from "../lib/http/ws/deflate.ts";
import { CLOSE, WsError } from "../lib/http/ws/frame.ts";
import { decoder, encoder } from "./fixtures/ws_frames.ts";
import { concat } from "./helpers/socket.ts";

const MAX = 1 << 20;

/** Inflates one message given as compressed pieces (frames). */
function inflate(
  inflater: MessageInflater,
  pieces: Uint8Array[],
  max = MAX,
): Uint8Array {
  const out: Uint8Array[] = [];
  inflater.begin(max);
  for (const p of pieces) inflater.write(p, out);
  inflater.end(out);
  return concat(out);
}

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("node:zlib in this Deno has the sync handle permessage-deflate drives", () => {
  assert.equal(deflateAvailable(), true);
});

Deno.test("MessageInflater reads RFC 7692 §7.2.3's examples", () => {
  const inflater = new MessageInflater(15, false);
  // §7.2.3.1: "Hello" in one compressed block.
  const hello = bytes(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00);
  assert.equal(decoder.decode(inflate(inflater, [hello])), "Hello");
  // §7.2.3.2: the second "Hello" refers back into the first (context takeover).
  const again = bytes(0xf2, 0x00, 0x11, 0x00, 0x00);
  assert.equal(decoder.decode(inflate(inflater, [again])), "Hello");
  // §7.2.3.1 again, split over two frames.
  assert.equal(
    decoder.decode(
      inflate(new MessageInflater(15, false), [
        hello.subarray(0, 3),
        hello.subarray(3),
      ]),
    ),
    "Hello",
  );
  // §7.2.3.3: a stored (uncompressed) block.
  const stored = bytes(
    0x00,
    0x05,
    0x00,
    0xfa,
    0xff,
    0x48,
    0x65,
    0x6c,
    0x6c,
    0x6f,
    0x00,
  );
  assert.equal(
    decoder.decode(inflate(new MessageInflater(15, false), [stored])),
    "Hello",
  );
  // §7.2.3.4: a final block (BFINAL 1) and the 0x00 the RFC puts after
  // it; the next message starts afresh. And the same without the 0x00.
  const finals = [
    bytes(0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00),
    bytes(0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00),
  ];
  for (const final of finals) {
    const inflater2 = new MessageInflater(15, false);
    assert.equal(decoder.decode(inflate(inflater2, [final])), "Hello");
    assert.equal(decoder.decode(inflate(inflater2, [hello])), "Hello");
    const split = [final.subarray(0, 4), final.subarray(4)];
    assert.equal(decoder.decode(inflate(inflater2, split)), "Hello");
  }
  // §7.2.3.5: two blocks in one message.
  const two = bytes(
    0xf2,
    0x48,
    0x05,
    0x00,
    0x00,
    0x00,
    0xff,
    0xff,
    0xca,
    0xc9,
    0xc9,
    0x07,
    0x00,
  );
  assert.equal(
    decoder.decode(inflate(new MessageInflater(15, false), [two])),
    "Hello",
  );
  // §7.2.3.6: an empty message is a single 0x00.
  assert.equal(
    inflate(new MessageInflater(15, false), [bytes(0x00)]).length,
    0,
  );
});

Deno.test("MessageDeflater output is what RFC 7692 says and a zlib inflater reads back", () => {
  const deflater = new MessageDeflater(15, false, 6);
  const first = deflater.compress(encoder.encode("Hello"));
  assert.deepEqual(first, bytes(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00));
  const second = deflater.compress(encoder.encode("Hello"));
  assert.ok(
    second.length < first.length,
    "the second refers back into the first",
  );
  const empty = new MessageDeflater(15, false, 6).compress(new Uint8Array(0));
  assert.deepEqual(empty, bytes(0x00), "§7.2.3.6");
});

const TEXT = encoder.encode(
  JSON.stringify(
    Array.from(
      { length: 300 },
      (_, i) => ({ id: i, name: `user ${i}`, ok: i % 3 === 0 }),
    ),
  ),
);

Deno.test("messages round-trip with context takeover, and later ones shrink", () => {
  const deflater = new MessageDeflater(15, false, 6);
  const inflater = new MessageInflater(15, false);
  const sizes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const c = deflater.compress(TEXT);
    sizes.push(c.length);
    assert.deepEqual(inflate(inflater, [c]), TEXT);
  }
  assert.ok(sizes[1] < sizes[0] / 2, `takeover: ${sizes}`);
});

Deno.test("messages round-trip without context takeover, each on its own", () => {
  const deflater = new MessageDeflater(15, true, 6);
  const sizes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c = deflater.compress(TEXT);
    sizes.push(c.length);
    // A fresh inflater each time: no message may refer to an earlier one.
    assert.deepEqual(inflate(new MessageInflater(15, true), [c]), TEXT);
  }
  assert.equal(new Set(sizes).size, 1, `same size every time: ${sizes}`);
});

Deno.test("a small server window (8 bits, run as 9) is read by a peer with a 256-byte window", () => {
  // Repeats at distances 200 and 300: only the first may be referenced.
  const unit = crypto.getRandomValues(new Uint8Array(200));
  const far = crypto.getRandomValues(new Uint8Array(300));
  const data = concat([unit, unit, unit, far, far, far]);
  for (const bits of [8, 9, 10, 15]) {
    const c = new MessageDeflater(bits, true, 6).compress(data);
    // The peer inflates with exactly the window it agreed to.
    const back = zlib.inflateRawSync(concat([c, bytes(0, 0, 0xff, 0xff)]), {
      windowBits: bits,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    assert.deepEqual(new Uint8Array(back), data, `${bits} bits`);
  }
});

Deno.test("MessageInflater stops a decompression bomb at the cap, having inflated no more than that", () => {
  // 64 MiB of zeros deflate to ~64 KiB.
  const bomb = zlib.deflateRawSync(new Uint8Array(64 << 20), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  assert.ok(bomb.length < 100_000);
  const inflater = new MessageInflater(15, false);
  const out: Uint8Array[] = [];
  inflater.begin(MAX);
  let error: unknown;
  try {
    inflater.write(new Uint8Array(bomb), out);
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof WsError);
  assert.equal(error.code, CLOSE.MessageTooBig);
  const produced = out.reduce((n, p) => n + p.length, 0);
  assert.ok(produced <= MAX, `kept ${produced} bytes, cap ${MAX}`);
});

Deno.test("MessageInflater counts the cap across frames of one message", () => {
  const deflater = new MessageDeflater(15, true, 6);
  const c = deflater.compress(new Uint8Array(10_000));
  const inflater = new MessageInflater(15, true);
  assert.equal(inflate(inflater, [c], 10_000).length, 10_000);
  assert.throws(
    () => inflate(inflater, [c.subarray(0, 5), c.subarray(5)], 9_999),
    { name: "WsError", code: CLOSE.MessageTooBig },
  );
});

Deno.test("MessageInflater refuses corrupt data with 1007", () => {
  assert.throws(
    () =>
      inflate(new MessageInflater(15, false), [bytes(0xff, 0xff, 0xff, 0x01)]),
    { name: "WsError", code: CLOSE.InvalidPayload },
  );
});

Deno.test("MessageInflater goes on after a final block, on a fresh window", () => {
  const final = bytes(0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00);
  const hello = bytes(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00);
  // "Hello" twice in one message: the second block starts a new stream.
  const both = inflate(new MessageInflater(15, false), [
    concat([final, hello]),
  ]);
  assert.equal(decoder.decode(both), "HelloHello");
  // A reference back past the final block cannot be honoured: 1007, not lost data.
  const inflater = new MessageInflater(15, false);
  inflate(inflater, [final]);
  const backRef = bytes(0xf2, 0x00, 0x11, 0x00, 0x00);
  assert.throws(() => inflate(inflater, [backRef]), {
    name: "WsError",
    code: CLOSE.InvalidPayload,
  });
});

Deno.test("a big message goes through in many output pieces", () => {
  const big = new Uint8Array(3 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  const c = new MessageDeflater(15, false, 1).compress(big);
  assert.deepEqual(inflate(new MessageInflater(15, false), [c], 4 << 20), big);
});
