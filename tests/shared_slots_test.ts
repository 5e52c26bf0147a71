/** SharedSlots: one connection cap and one queue over every engine. */
import assert from "node:assert/strict";
import {
  createSlotMemory,
  reclaimSlots,
  SharedSlots,
  slotCounts,
} from "../lib/shared/slots.ts";
import { inThreads } from "./helpers/threads.ts";
import { withTimeout } from "./helpers/socket.ts";

/** Two engines' views of one cap of `permits` and a queue of `queue`. */
function twoEngines(permits: number, queue: number) {
  const memory = createSlotMemory(2);
  return {
    memory,
    a: new SharedSlots(memory, 0, permits, queue),
    b: new SharedSlots(memory, 1, permits, queue),
  };
}

Deno.test("SharedSlots.tryAcquire() counts the permits of every engine", () => {
  const { memory, a, b } = twoEngines(3, 0);
  assert.equal(a.tryAcquire(), true);
  assert.equal(a.tryAcquire(), true);
  assert.equal(b.tryAcquire(), true);
  assert.equal(
    b.tryAcquire(),
    false,
    "the third permit went to the other engine",
  );
  assert.equal(a.tryAcquire(), false);
  a.release();
  assert.equal(
    b.tryAcquire(),
    true,
    "a permit freed by one engine serves another",
  );
  assert.deepEqual(slotCounts(memory), { held: 3, waiting: 0 });
  assert.equal(a.inUse, 3);
});

Deno.test("SharedSlots.enqueue() says no once every engine's waiters fill the queue", () => {
  const { a, b } = twoEngines(1, 2);
  a.tryAcquire();
  assert.notEqual(a.enqueue(), undefined);
  assert.notEqual(b.enqueue(), undefined);
  assert.equal(b.enqueue(), undefined);
  assert.equal(a.enqueue(), undefined);
  assert.equal(a.waiting, 2);
  assert.equal(b.inUse, 3);
  a.cancelAll();
  b.cancelAll();
  assert.equal(a.waiting, 0);
});

Deno.test("SharedSlots.release() hands the permit to a waiter in its own engine first", async () => {
  const { memory, a, b } = twoEngines(1, 2);
  a.tryAcquire();
  const mine = a.enqueue()!;
  const theirs = b.enqueue()!;
  a.release();
  assert.equal(await mine.granted, true);
  assert.deepEqual(slotCounts(memory), { held: 1, waiting: 1 });
  theirs.cancel();
  assert.equal(await theirs.granted, false);
  assert.deepEqual(slotCounts(memory), { held: 1, waiting: 0 });
});

Deno.test("SharedSlots wakes a waiter in another engine when a permit frees", async () => {
  const { memory, a, b } = twoEngines(1, 1);
  a.tryAcquire();
  const ticket = b.enqueue()!;
  a.release();
  assert.equal(await withTimeout(ticket.granted, 5000, "the wake-up"), true);
  assert.deepEqual(slotCounts(memory), { held: 1, waiting: 0 });
  b.release();
});

Deno.test("reclaimSlots() frees what a dead engine held and wakes the waiters", async () => {
  const { memory, a, b } = twoEngines(2, 4);
  a.tryAcquire();
  a.tryAcquire(); // then engine a dies, holding both
  const ticket = b.enqueue()!;
  reclaimSlots(memory, 0);
  assert.equal(await withTimeout(ticket.granted, 5000, "the wake-up"), true);
  assert.deepEqual(slotCounts(memory), { held: 1, waiting: 0 });
  b.release();
});

Deno.test("SharedSlots never lets two threads hold more than the permits", async () => {
  const memory = createSlotMemory(2);
  const task = (cell: number) => ({
    task: "slots",
    memory,
    cell,
    permits: 3,
    rounds: 200_000,
  });
  const seen = await inThreads<{ most: number }>([task(0), task(1)]);
  for (const { most } of seen) assert.ok(most <= 3, `saw ${most} held`);
  assert.deepEqual(slotCounts(memory), { held: 0, waiting: 0 });
});

Deno.test("SharedSlots() throws RangeError for no permit or a cell it lacks", () => {
  const memory = createSlotMemory(1);
  assert.throws(() => new SharedSlots(memory, 0, 0, 1), RangeError);
  assert.throws(() => new SharedSlots(memory, 1, 1, 1), RangeError);
});
