/**
 * What a request costs the engine with many busy connections, in-process:
 * its own `Connection` over fake sockets (no system calls, so the figures
 * hold steady on a busy machine) sharing one server's read turns, as under
 * wrk. A read is answered with one wrk request a turn of the event loop
 * later, all answers of a turn together (as op results arrive), and writes
 * are dropped.
 *
 *   deno run --allow-read --allow-write --allow-env --unstable-net bench/conns_layers.ts
 *   deno run ... bench/conns_layers.ts --conns 64,1000,4000 --rounds 9 --requests 400000
 *
 * Prints CPU ns per request, the median and min of interleaved rounds, for
 * each number of connections. What rises past 64 connections (the read
 * turns) is what waiting for a turn and touching 1000 connections' state
 * in turn cost.
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { Connection } from "../lib/http/connection.ts";
import { DeadlineWheel, timeoutsOf } from "../lib/http/deadlines.ts";
import type { Reply } from "../lib/http/handler.ts";
import { POLL_BUDGET, READ_TURNS, ReadTurns } from "../lib/http/read_turns.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { FakeSocket } from "./fake_socket.ts";

const REQUEST = new TextEncoder().encode(
  "GET /echo/hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
);
const HELLO: Reply = Object.freeze({
  status: 200,
  headers: Object.freeze({ "content-type": "text/plain" }),
  body: "hello",
});
const TIMEOUTS = timeoutsOf(DEFAULT_LIMITS);
const stats = new EngineStats();

/** Reads answered at the next turn of the event loop, all together. */
const pending: Array<() => void> = [];
const loop = new MessageChannel();
loop.port1.onmessage = () => {
  for (const answer of pending.splice(0)) answer();
};

/** Requests left to hand over in this round; reads past them see EOF. */
let left = 0;

class BusyConn extends FakeSocket {
  readonly localAddr: Deno.NetAddr = {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 8080,
  };

  read(into: Uint8Array): Promise<number | null> {
    return new Promise((resolve) => {
      if (pending.length === 0) loop.port2.postMessage(0);
      pending.push(() => {
        if (left <= 0) return resolve(null);
        left--;
        into.set(REQUEST);
        resolve(REQUEST.length);
      });
    });
  }

  setNoDelay(): void {}
}

/** Serves `requests` over `conns` connections; CPU ns per request. */
async function round(conns: number, requests: number): Promise<number> {
  left = requests;
  const turns = new ReadTurns(READ_TURNS, POLL_BUDGET); // as serve() has them
  const wheel = new DeadlineWheel(1000, TIMEOUTS.keepAliveMs);
  const started = cpuUsage();
  const runs: Promise<void>[] = [];
  for (let i = 0; i < conns; i++) {
    const c = new Connection(new BusyConn() as unknown as Deno.Conn, {
      limits: DEFAULT_LIMITS,
      handler: () => HELLO,
      stats,
      secure: false,
      accessLog: false,
      onClose: () => {},
      timeouts: TIMEOUTS,
      keepAliveMs: () => TIMEOUTS.keepAliveMs,
      wheel,
      turns,
    });
    runs.push(c.run());
  }
  await Promise.all(runs);
  const used = cpuUsage(started);
  return (used.user + used.system) * 1000 / requests;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      conns: { type: "string", default: "64,1000" },
      rounds: { type: "string", default: "7" },
      requests: { type: "string", default: "400000" },
    },
  });
  const counts = values.conns.split(",").map(Number);
  const requests = Number(values.requests);
  const times = new Map(counts.map((n) => [n, [] as number[]]));
  await round(counts.at(-1)!, requests); // warm-up
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const n of counts) times.get(n)!.push(await round(n, requests));
  }
  console.log("| Connections | ns/req (median) | min |");
  console.log("| ---: | ---: | ---: |");
  for (const [n, t] of times) {
    t.sort((a, b) => a - b);
    const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
    console.log(`| ${n} | ${fmt(t[t.length >> 1])} | ${fmt(t[0])} |`);
  }
  loop.port1.close(); // an open port keeps the process alive
}
