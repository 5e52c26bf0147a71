/** Semaphore: permits, the bounded FIFO queue behind them, and cancelling. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Semaphore } from "../lib/http/semaphore.ts";

/**
 * Permits free now, seen through the public API: taken one by one, then
 * given back. Free permits and waiters never coexist, so none goes to a
 * waiter on the way back.
 */
function freePermits(s: Semaphore): number {
  let n = 0;
  while (s.tryAcquire()) n++;
  for (let i = 0; i < n; i++) s.release();
  return n;
}

for (const permits of [0, -1, NaN]) {
  Deno.test(`Semaphore() throws RangeError for ${permits} permits`, () => {
    assert.throws(() => new Semaphore(permits, 1), RangeError);
  });
}

Deno.test("Semaphore.tryAcquire() takes permits until none are free", () => {
  const s = new Semaphore(2, 1);
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), false);
  assert.equal(freePermits(s), 0);
  s.release();
  assert.equal(freePermits(s), 1);
  assert.equal(s.tryAcquire(), true);
});

Deno.test("Semaphore.enqueue() says no at once when the queue is full", () => {
  const s = new Semaphore(1, 2);
  s.tryAcquire();
  assert.notEqual(s.enqueue(), undefined);
  assert.notEqual(s.enqueue(), undefined);
  assert.equal(s.enqueue(), undefined);
  assert.equal(s.waiting, 2);
  assert.equal(new Semaphore(1, 0).enqueue(), undefined, "a queue of 0");
});

Deno.test("Semaphore.release() hands the permit to waiters first in, first out", async () => {
  const s = new Semaphore(1, 3);
  s.tryAcquire();
  const order: number[] = [];
  const tickets = [0, 1, 2].map((i) => {
    const t = s.enqueue()!;
    t.granted.then((ok) => ok && order.push(i));
    return t;
  });
  s.release();
  assert.equal(
    freePermits(s),
    0,
    "the permit went to a waiter, not back to the pool",
  );
  assert.equal(s.waiting, 2);
  assert.equal(await tickets[0].granted, true);
  s.release();
  s.release();
  await Promise.all(tickets.map((t) => t.granted));
  assert.deepEqual(order, [0, 1, 2]);
  s.release();
  assert.equal(freePermits(s), 1);
});

Deno.test("Semaphore ticket cancel() refuses the waiter and frees its place", async () => {
  const s = new Semaphore(1, 1);
  s.tryAcquire();
  const t = s.enqueue()!;
  t.cancel();
  assert.equal(await t.granted, false);
  assert.equal(s.waiting, 0);
  assert.notEqual(s.enqueue(), undefined, "the place is free again");
  s.release(); // goes to the new waiter
  assert.equal(freePermits(s), 0);
});

Deno.test("Semaphore ticket cancel() after the grant changes nothing", async () => {
  const s = new Semaphore(1, 1);
  s.tryAcquire();
  const t = s.enqueue()!;
  s.release();
  t.cancel();
  assert.equal(await t.granted, true);
  assert.equal(freePermits(s), 0);
});

Deno.test("Semaphore.cancelAll() refuses every waiter", async () => {
  const s = new Semaphore(1, 5);
  s.tryAcquire();
  const tickets = [1, 2, 3].map(() => s.enqueue()!);
  s.cancelAll();
  assert.deepEqual(await Promise.all(tickets.map((t) => t.granted)), [
    false,
    false,
    false,
  ]);
  assert.equal(s.waiting, 0);
  s.release();
  assert.equal(freePermits(s), 1);
});

type Op =
  | { kind: "acquire" }
  | { kind: "enqueue" }
  | { kind: "release" }
  | { kind: "cancel"; which: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.constant({ kind: "acquire" as const }),
  fc.constant({ kind: "enqueue" as const }),
  fc.constant({ kind: "release" as const }),
  fc.nat(10).map((which) => ({ kind: "cancel" as const, which })),
);

Deno.test("Semaphore never holds more permits than it has, whatever the order of calls", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 0, max: 4 }),
      fc.array(op, { maxLength: 60 }),
      async (permits, maxQueue, ops) => {
        const s = new Semaphore(permits, maxQueue);
        let held = 0;
        const waiters: { cancel: () => void; settled: boolean }[] = [];
        for (const o of ops) {
          if (o.kind === "acquire") {
            if (s.tryAcquire()) held++;
          } else if (o.kind === "enqueue") {
            if (freePermits(s) > 0) continue; // callers try tryAcquire() first
            const t = s.enqueue();
            if (t === undefined) {
              assert.equal(s.waiting, maxQueue);
              continue;
            }
            const w = { cancel: t.cancel, settled: false };
            waiters.push(w);
            t.granted.then((ok) => {
              w.settled = true;
              if (ok) held++;
            });
          } else if (o.kind === "release") {
            if (held === 0) continue;
            held--;
            s.release();
          } else {
            waiters[o.which]?.cancel();
          }
          await Promise.resolve(); // let grants land
          await Promise.resolve();
          const waiting = s.waiting; // before freePermits() gives any back
          assert.ok(waiting <= maxQueue);
          const free = freePermits(s);
          assert.ok(
            free === 0 || waiting === 0,
            "no waiting beside a free permit",
          );
          assert.equal(free + held, permits);
        }
      },
    ),
    { numRuns: 300 },
  );
});
