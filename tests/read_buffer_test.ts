import assert from "node:assert/strict";
import { ReadBuffer, readBuffers } from "../lib/http/read_buffer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Puts `text` where the next read would, as a read would. */
function put(rb: ReadBuffer, text: string, maxBytes = 1 << 20): void {
  const bytes = encoder.encode(text);
  const space = rb.space(maxBytes);
  assert.ok(space.length >= bytes.length, "room for the read");
  space.set(bytes);
  rb.received(bytes.length);
}

function text(rb: ReadBuffer): string {
  return decoder.decode(rb.buffered());
}

Deno.test("ReadBuffer reads into a 512-byte buffer of its own", () => {
  const rb = new ReadBuffer();
  const lent = readBuffers.lent;
  assert.equal(rb.space(16 * 1024).length, 512);
  put(rb, "GET / HTTP/1.1\r\n\r\n");
  assert.equal(text(rb), "GET / HTTP/1.1\r\n\r\n");
  assert.equal(readBuffers.lent, lent, "nothing borrowed");
});

Deno.test("ReadBuffer consume() drops bytes and starts over once all are gone", () => {
  const rb = new ReadBuffer();
  put(rb, "abcdef");
  rb.consume(2);
  assert.equal(text(rb), "cdef");
  assert.equal(rb.scanFrom, 2, "a search resumes past what was consumed");
  rb.consume(4);
  assert.ok(rb.empty);
  assert.deepEqual([rb.start, rb.end, rb.scanFrom], [0, 0, 0]);
});

Deno.test("ReadBuffer space() moves unconsumed bytes to the front before growing", () => {
  const rb = new ReadBuffer();
  put(rb, "x".repeat(500));
  put(rb, "x".repeat(500)); // grown to 2 KiB
  put(rb, "x".repeat(500) + "y".repeat(100));
  rb.consume(1500);
  const grown = rb.buf;
  assert.ok(rb.space(16 * 1024).length >= 512);
  assert.equal(rb.buf, grown, "the same buffer, compacted");
  assert.equal(rb.start, 0);
  assert.equal(text(rb), "y".repeat(100));
});

Deno.test("ReadBuffer grows to 2 KiB of its own, then borrows a work buffer, then doubles", () => {
  const rb = new ReadBuffer();
  const lent = readBuffers.lent;
  const size = readBuffers.size;
  put(rb, "a".repeat(500));
  put(rb, "b".repeat(500));
  assert.equal(rb.buf.length, 2048, "its own, grown once");
  put(rb, "c".repeat(1000));
  assert.equal(rb.buf.length, 2048, "room left for a read");
  assert.equal(readBuffers.lent, lent);
  put(rb, "d".repeat(100));
  assert.equal(rb.buf.length, size, "a work buffer");
  assert.equal(readBuffers.lent, lent + 1);
  put(rb, "e".repeat(size - 2100), 64 * 1024);
  put(rb, "f", 64 * 1024);
  assert.equal(rb.buf.length, 2 * size, "a head limit above it");
  assert.equal(readBuffers.lent, lent, "the work buffer went back");
  assert.equal(
    text(rb),
    "a".repeat(500) + "b".repeat(500) + "c".repeat(1000) + "d".repeat(100) +
      "e".repeat(size - 2100) + "f",
  );
});

Deno.test("ReadBuffer space() stops growing once maxBytes are buffered", () => {
  const rb = new ReadBuffer();
  put(rb, "a".repeat(300), 300);
  assert.equal(rb.space(300).length, 212, "what is left, no more");
  assert.equal(rb.buf.length, 512);
});

Deno.test("ReadBuffer lend() moves the bytes to a work buffer and giveBack() returns it", () => {
  const rb = new ReadBuffer();
  const lent = readBuffers.lent;
  put(rb, "head|body");
  rb.consume(5);
  rb.lend();
  assert.equal(rb.buf.length, readBuffers.size);
  assert.equal(readBuffers.lent, lent + 1);
  assert.equal(text(rb), "body");
  rb.lend(); // already lent: nothing more taken
  assert.equal(readBuffers.lent, lent + 1);
  rb.consume(4);
  rb.giveBack();
  assert.equal(readBuffers.lent, lent);
  assert.equal(rb.buf.length, 512, "its own again");
});

Deno.test("ReadBuffer release() gives a work buffer back, or leaves it to whoever holds a view", () => {
  for (const keep of [false, true]) {
    const rb = new ReadBuffer();
    const lent = readBuffers.lent;
    rb.lend();
    const free = readBuffers.free;
    put(rb, "PRI * HTTP/2.0");
    const view = rb.buffered();
    rb.release(keep);
    assert.equal(readBuffers.lent, lent, `not counted as lent (keep ${keep})`);
    assert.equal(readBuffers.free, keep ? free : free + 1);
    assert.equal(rb.buf.length, 0);
    assert.ok(rb.empty);
    if (keep) assert.equal(decoder.decode(view), "PRI * HTTP/2.0");
  }
});
