/** The pool of buffers big frames are written from. */
import assert from "node:assert/strict";
import { FrameBuffers } from "../lib/http/ws/frame_buffers.ts";

const KIB = 1024;

Deno.test("FrameBuffers makes buffers a multiple of its step long and lends a kept one that fits", () => {
  const pool = new FrameBuffers(64 * KIB, 1024 * KIB);
  const a = pool.take(262_154);
  assert.equal(a.length, 320 * KIB);
  pool.give(a);
  assert.equal(pool.freeBytes, 320 * KIB);
  // Any size it fits without wasting more than the size again.
  assert.equal(pool.take(200_000), a);
  assert.equal(pool.freeBytes, 0);
  pool.give(a);
  const small = pool.take(100_000); // 320 KiB is over twice 100,000
  assert.notEqual(small, a);
  assert.equal(small.length, 128 * KIB);
  const big = pool.take(400_000); // too long for a
  assert.notEqual(big, a);
  assert.equal(big.length, 448 * KIB);
  // The smallest that fits goes first.
  pool.give(big);
  assert.equal(pool.take(300_000), a);
  assert.equal(pool.take(300_000), big);
});

Deno.test("FrameBuffers keeps at most maxBytes, dropping the oldest kept first", () => {
  const pool = new FrameBuffers(64 * KIB, 512 * KIB);
  const one = pool.take(128 * KIB);
  const two = pool.take(256 * KIB);
  const three = pool.take(192 * KIB);
  pool.give(one);
  pool.give(two);
  assert.equal(pool.freeBytes, 384 * KIB);
  pool.give(three); // 576 KiB: the oldest (one) goes
  assert.equal(pool.freeBytes, 448 * KIB);
  assert.equal(pool.take(128 * KIB), three); // one is gone
  assert.equal(pool.take(256 * KIB), two);
  assert.equal(pool.freeBytes, 0);
  // A buffer over maxBytes alone is never kept.
  pool.give(new Uint8Array(576 * KIB));
  assert.equal(pool.freeBytes, 0);
});
