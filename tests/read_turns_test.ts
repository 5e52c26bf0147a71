/**
 * Read turns: first come first served, at most the limit at a time, turns
 * of unanswered reads passed on; and, over real sockets, a saturated server
 * serves each of its many keep-alive connections in turn.
 */
import assert from "node:assert/strict";
import { ReadTurns } from "../lib/http/read_turns.ts";
import { serve } from "../lib/http/server.ts";
import { waitFor } from "./helpers/socket.ts";
import { countTimers } from "./helpers/timers.ts";
import { runWithGc } from "./helpers/gc_child.ts";
import { runWithNatives } from "./helpers/natives.ts";

Deno.test("ReadTurns gives turns at once up to its limit, then in the order asked", async () => {
  using turns = new ReadTurns(2);
  const a = turns.take();
  const b = turns.take();
  assert.equal(typeof a, "number");
  assert.equal(typeof b, "number");
  const order: string[] = [];
  const c = turns.take();
  const d = turns.take();
  assert.ok(c instanceof Promise && d instanceof Promise);
  const got = [c.then(() => order.push("c")), d.then(() => order.push("d"))];
  assert.equal(turns.waiting, 2);
  turns.give(a as number);
  await got[0];
  assert.deepEqual(order, ["c"]);
  turns.give(b as number);
  await got[1];
  assert.deepEqual(order, ["c", "d"]);
  assert.equal(turns.waiting, 0);
  turns.give(await c);
  turns.give(await d);
  // All given back: the next two are at once again.
  assert.equal(typeof turns.take(), "number");
  assert.equal(typeof turns.take(), "number");
});

Deno.test("ReadTurns passes on the turn of a read that is never answered, and a late give() is ignored", async () => {
  using turns = new ReadTurns(1);
  const idle = turns.take() as number; // an idle connection's read: never answered
  const waiter = turns.take();
  assert.ok(waiter instanceof Promise);
  const turn = await waiter; // after a tick or two of the clock, no give()
  assert.equal(turns.waiting, 0);
  turns.give(idle); // its read ends at last: the aged turn is not counted twice
  const next = turns.take();
  assert.ok(next instanceof Promise, "one turn, held by the waiter");
  turns.give(turn);
  turns.give(await next);
});

Deno.test("ReadTurns lets a read keep its turn through a few busy ticks before passing it on", async () => {
  // A saturated loop answers a read in turn a tick or two late (its op past
  // tokio's budget); aging it then puts one read more in flight.
  using turns = new ReadTurns(1);
  const held = turns.take() as number;
  const waiter = turns.take(); // the clock starts
  assert.ok(waiter instanceof Promise);
  let woken = false;
  waiter.then(() => woken = true);
  // An interval started after the clock ticks in the same turns of the loop
  // or one later: at its second tick, the clock has ticked two or three times.
  let ticks = 0;
  const wokenAtTwo = await new Promise<boolean>((resolve) => {
    const id = setInterval(() => {
      if (++ticks < 2) return;
      clearInterval(id);
      queueMicrotask(() => resolve(woken)); // after the clock's wake, if any
    }, 0);
  });
  assert.equal(wokenAtTwo, false, "passed on after two ticks");
  turns.give(held); // answered: the waiter gets the turn from give()
  const turn = await waiter;
  const next = turns.take();
  assert.ok(next instanceof Promise, "one turn, held by the waiter");
  turns.give(turn);
  turns.give(await next);
});

Deno.test("ReadTurns keeps first come first served past hundreds of waiters, woken while others join", async () => {
  using turns = new ReadTurns(1);
  let turn = turns.take() as number;
  const order: number[] = [];
  const waiters: Promise<number>[] = [];
  const join = (n: number) => {
    for (let i = 0; i < n; i++) {
      const id = waiters.length;
      const p = turns.take() as Promise<number>;
      waiters.push(p.then((t) => (order.push(id), t)));
    }
  };
  const wake = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const next = waiters[order.length];
      turns.give(turn);
      turn = await next;
    }
  };
  join(100);
  await wake(50); // the head moves on...
  join(150); // ...while more join than the queue held: it wraps and grows
  assert.equal(turns.waiting, 200);
  await wake(200);
  assert.deepEqual(order, Array.from({ length: 250 }, (_, i) => i));
  assert.equal(turns.waiting, 0);
  turns.give(turn);
  assert.equal(typeof turns.take(), "number", "all given back: a turn at once");
});

Deno.test("ReadTurns starts its clock once while waiters come and go, and stops it when nobody waits", async () => {
  using timers = countTimers();
  using turns = new ReadTurns(1);
  let turn = turns.take() as number;
  // A server just past its turns: one waiter at a time, woken at once, so
  // nobody is left waiting between two reads, 200 times over.
  for (let i = 0; i < 200; i++) {
    const next = turns.take();
    assert.ok(next instanceof Promise);
    assert.equal(turns.waiting, 1);
    turns.give(turn);
    turn = await next;
    assert.equal(turns.waiting, 0);
  }
  // A timer armed for each first waiter and cleared for each last one
  // would have been 200 of each.
  assert.deepEqual(timers.count, { timeouts: 0, intervals: 1, cleared: 0 });
  // Nobody waits now: the clock stops at its next tick, by itself.
  await waitFor(() => timers.count.cleared === 1, "the idle clock to stop");
  assert.equal(timers.count.intervals, 1);
  turns.give(turn);
});

Deno.test("ReadTurns starts turns only once startAt reads are held, then holds reads to its limit until a tick nobody waited through", async () => {
  using timers = countTimers();
  using turns = new ReadTurns(2, 4);
  // Past the limit, up to startAt: at once, and no clock.
  const held = [turns.take(), turns.take(), turns.take(), turns.take()];
  assert.ok(held.every((t) => typeof t === "number"), "4 at once, limit 2");
  assert.equal(timers.count.intervals, 0);
  // One more: turns start, and no read starts until the held ones are
  // down below the limit.
  const first = turns.take();
  assert.ok(first instanceof Promise);
  turns.give(held[0] as number);
  turns.give(held[1] as number);
  assert.equal(turns.waiting, 1, "2 held still: the limit");
  turns.give(held[2] as number);
  assert.equal(turns.waiting, 0, "1 held: the waiter reads");
  // Turns are on: the limit holds even with nobody waiting before.
  const second = turns.take();
  assert.ok(second instanceof Promise, "2 held, turns on");
  turns.give(held[3] as number);
  turns.give(await first);
  turns.give(await second);
  // A tick nobody waited through stops the clock and the turns.
  await waitFor(() => timers.count.cleared === 1, "the idle clock to stop");
  const again = [turns.take(), turns.take(), turns.take(), turns.take()];
  assert.ok(again.every((t) => typeof t === "number"), "turns off again");
  for (const t of again) turns.give(t as number);
});

/**
 * A child Deno with `gc()` exposed: a saturated ReadTurns (always someone
 * waiting, as at 1000 busy connections) wakes 1,000 waiters in turn, and
 * the child prints how many of their promises survive a full collection.
 */
const WOKEN_KEPT = `
import { ReadTurns } from ${
  JSON.stringify(import.meta.resolve("../lib/http/read_turns.ts"))
};
const turns = new ReadTurns(1);
let turn = turns.take();
// Three waiters queued at all times: one aging tick passes on at most one.
const queued = [turns.take(), turns.take(), turns.take()];
const woken = [];
for (let i = 0; i < 1000; i++) {
  queued.push(turns.take());
  const next = queued.shift();
  turns.give(turn);
  turn = await next;
  woken.push(new WeakRef(next));
}
if (turns.waiting === 0) throw new Error("the queue emptied: nothing shown");
await new Promise((r) => setTimeout(r, 0)); // WeakRefs hold until the job ends
gc();
// The last one may still sit in this module's frame.
console.log(woken.slice(0, -1).filter((w) => w.deref() !== undefined).length);
Deno.exit(0);
`;

Deno.test("ReadTurns holds no waiter it woke, even while others still wait", async () => {
  const kept = await runWithGc(WOKEN_KEPT);
  // A list read from its head and emptied only when no one waits kept
  // every one of them (and grew by one per read) while a saturated server
  // never let it empty.
  assert.equal(kept, "0");
});

Deno.test("ReadTurns refuses a limit below one", () => {
  assert.throws(() => new ReadTurns(0), RangeError);
});

/** Is wrk installed? The load below is what users run against servers. */
async function hasWrk(): Promise<boolean> {
  try {
    const out = await new Deno.Command("wrk", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.code === 1 || out.success; // wrk --version exits with 1
  } catch {
    return false;
  }
}

/** Connections in the fairness load: many more than read turns. */
const FAIR_CONNS = 256;

Deno.test({
  name:
    `serve() saturated by ${FAIR_CONNS} keep-alive connections serves each in turn: none is starved`,
  ignore: !(await hasWrk()), // needs wrk, as the benchmarks do
}, async () => {
  const served = new Map<number, number>();
  await using server = serve({
    port: 0,
    hostname: "127.0.0.1",
    accessLog: false,
  }, (req) => {
    const port = req.remoteAddr.port;
    served.set(port, (served.get(port) ?? 0) + 1);
    return { status: 200, body: "hello" };
  });
  // wrk keeps every connection busy for 3 s: the server is the bottleneck.
  const out = await new Deno.Command("wrk", {
    args: [
      "-t1",
      `-c${FAIR_CONNS}`,
      "-d3s",
      "--timeout",
      "10s",
      `http://127.0.0.1:${server.port}/`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  await waitFor(() => served.size >= FAIR_CONNS, "every connection's requests");
  const counts = [...served.values()].sort((x, y) => x - y);
  const median = counts[counts.length >> 1];
  assert.ok(median >= 20, `too little load to judge: median ${median}`);
  // Served in turn, each connection gets the same share to within a few
  // requests (measured, busy machine: under 1% apart). Without turns, those
  // whose reads queue behind the others got 58-88% of the median and a few
  // got 113-147% of it.
  const [least, most] = [counts[0], counts.at(-1)!];
  const spread = `least ${least}, median ${median}, most ${most}`;
  assert.ok(least >= median * 0.95, `a connection was starved: ${spread}`);
  assert.ok(most <= median * 1.05, `a connection was favoured: ${spread}`);
});

Deno.test("ReadTurns: taking a turn with the limit's worth held, turns off, keeps an optimized caller optimized", async () => {
  // One field compared whether turns are on or not: V8 otherwise
  // deoptimizes take() (and the loop it is inlined into) the first time all
  // 64 of a server's connections read at once.
  const { before, after } = await runWithNatives<number[]>(
    new URL("./fixtures/turns_deopt.ts", import.meta.url),
  );
  assert.equal(before[1] & 64, 0, "caller optimized before (64: interpreted)");
  assert.deepEqual(after, before);
});
