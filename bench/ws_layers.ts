/**
 * What one small WebSocket echo costs in-process, CPU per message: the
 * default app's /echo (a {@link WsConnection} with the route's handler)
 * against the floor loop of bench/servers/ws_floor.ts, both over a fake
 * socket that hands over one masked 32-byte text frame per read (no
 * syscalls, so the figures hold steady on a busy machine). The difference
 * is what our JS adds per message to the runtime's read and write.
 *
 *   deno run --allow-env --unstable-net bench/ws_layers.ts --rounds 30 [--sockets 256] [--pollute-kib 64] [--web]
 *
 * The last column is the heap bytes allocated per message (V8's count, the
 * lowest of the rounds): it moves by ~2% between runs, however busy the
 * machine, so an allocation saved shows where CPU time cannot.
 *
 * `--sockets N` serves the messages on N sockets at once, as case 15a's
 * load does: more live state per message, as on a real server.
 *
 * `--pollute-kib N` writes over N KiB of other memory before each read
 * hands over its frame (both rows), as the kernel's work for a socket's
 * message and the other sockets' evicts what a server keeps per socket
 * from the CPU's caches between two messages: with 64, what the echo adds
 * over the floor comes near what it adds over loopback sockets.
 *
 * `--web` echoes through the web API (`onmessage`, a `MessageEvent` a
 * message; case 15d) instead of the default app's handlers.
 *
 * `--large` is case 15b's load instead: one socket, masked 256 KiB binary
 * messages, each read giving what the buffer takes of the message (the
 * client writes a message at once, and a loopback read then gives up to
 * all of it), CPU per MiB echoed; `--read-kib N` caps each read at N KiB
 * instead (64: a slow link's pieces). Beside it, in alternating rounds, the
 * floor: bench/servers/ws_floor.ts's own loop (a fresh buffer per message,
 * read into, unmasked by the engine's `unmask()`, copied and written).
 */
import { cpuUsage } from "node:process";
import { getHeapStatistics } from "node:v8";
import { parseArgs } from "node:util";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { ECHO_SOCKET } from "../lib/app/routes.ts";
import { WsConnection } from "../lib/http/ws_connection.ts";
import { ServerWebSocket } from "../lib/http/ws/socket.ts";
import { FakeSocket } from "./fake_socket.ts";
import { maskedFrame } from "./ws_load.ts";
import { echoFrames } from "./servers/ws_floor.ts";

const FRAME = maskedFrame(0x1, new Uint8Array(32).fill(0x78));

/** `--pollute-kib` in bytes (0: none), and the memory written over. */
let polluteBytes = 0;
let polluted = new Uint8Array(0);

/** A socket that hands over `frame` per read, `count` times, then EOF. */
class FrameSocket extends FakeSocket {
  #left: number;

  constructor(count: number) {
    super();
    this.#left = count;
  }
  read(into: Uint8Array): Promise<number | null> {
    if (this.#left === 0) return Promise.resolve(null);
    this.#left--;
    if (polluteBytes > 0) polluted.fill(this.#left, 0, polluteBytes);
    into.set(FRAME);
    return Promise.resolve(FRAME.length);
  }
}

/** Case 15b's message: 256 KiB of binary. */
const LARGE = maskedFrame(0x2, new Uint8Array(256 * 1024).fill(0x78));

/**
 * A socket that hands over `LARGE` `count` times, each in reads of at most
 * `readBytes`, then EOF once every echo is written (an EOF drops what is not).
 */
class LargeSocket extends FakeSocket {
  readonly #echoBytes: number;
  readonly #readBytes: number;
  #left: number;
  #at = 0;
  #eof: (() => void) | undefined;

  constructor(count: number, readBytes: number) {
    super();
    this.#left = count;
    this.#readBytes = readBytes;
    this.#echoBytes = count * (LARGE.length - 4);
  }
  read(into: Uint8Array): Promise<number | null> {
    if (this.#left === 0) {
      if (this.sent >= this.#echoBytes) return Promise.resolve(null);
      return new Promise((resolve) => this.#eof = () => resolve(null));
    }
    const n = Math.min(into.length, this.#readBytes, LARGE.length - this.#at);
    into.set(LARGE.subarray(this.#at, this.#at + n));
    this.#at += n;
    if (this.#at === LARGE.length) {
      this.#at = 0;
      this.#left--;
    }
    return Promise.resolve(n);
  }
  override write(bytes: Uint8Array): Promise<number> {
    const done = super.write(bytes);
    if (this.#eof !== undefined && this.sent >= this.#echoBytes) this.#eof();
    return done;
  }
}

/** The default app's /echo on a fake socket; returns the bytes written. */
async function echoOne(
  count: number,
  socket: FakeSocket = new FrameSocket(count),
): Promise<number> {
  const conn = new WsConnection(DEFAULT_LIMITS, {
    deflate: null,
    client: "127.0.0.1",
  });
  const ws = new ServerWebSocket(conn, {
    url: "ws://127.0.0.1/echo",
    protocol: "",
    extensions: "",
    maxBacklogBytes: DEFAULT_LIMITS.wsMaxMessageBytes,
  });
  conn.attach(ws);
  if (values.web) {
    // Through the web API, as bench/servers/spindle_ws_web.ts (case 15d).
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => ws.send(e.data);
  } else {
    ws.handleWith(ECHO_SOCKET, undefined); // lib/app/routes.ts's /echo
  }
  await conn.run(socket, new Uint8Array(0));
  return socket.sent;
}

/** bench/servers/ws_floor.ts's loop on the fake socket. */
async function floorOne(count: number): Promise<number> {
  const conn = new FrameSocket(count);
  const buf = new Uint8Array(4096);
  while ((await conn.read(buf)) !== null) {
    const len = buf[1] & 0x7f;
    for (let i = 0; i < len; i++) buf[6 + i] ^= buf[2 + (i & 3)];
    buf[4] = buf[0];
    buf[5] = len;
    const reply = buf.subarray(4, 6 + len);
    for (let off = 0; off < reply.length;) {
      off += await conn.write(reply.subarray(off));
    }
  }
  return conn.sent;
}

/** `serve` on `sockets` fake sockets at once, `count` messages in all; bytes written. */
async function many(
  serve: (count: number) => Promise<number>,
  count: number,
  sockets: number,
): Promise<number> {
  const each = Array.from(
    { length: sockets },
    (_, i) =>
      serve(Math.floor(count / sockets) + (i < count % sockets ? 1 : 0)),
  );
  return (await Promise.all(each)).reduce((a, b) => a + b, 0);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "30" },
    sockets: { type: "string", default: "1" },
    large: { type: "boolean", default: false },
    "read-kib": { type: "string" },
    "pollute-kib": { type: "string", default: "0" },
    web: { type: "boolean", default: false },
  },
});
polluteBytes = Number(values["pollute-kib"]) * 1024;
polluted = new Uint8Array(polluteBytes);

/** bench/servers/ws_floor.ts's loop on `socket`; returns the bytes written. */
async function floorOn(socket: FakeSocket): Promise<number> {
  await echoFrames(socket, new Uint8Array(4096));
  return socket.sent;
}

/**
 * Case 15b in-process: CPU per MiB echoed by the floor's loop and by
 * /echo, rounds alternating, median and min of the rounds.
 */
async function measureLarge(rounds: number): Promise<void> {
  const messages = 200;
  const mib = messages * LARGE.length / (1024 * 1024);
  const readBytes = values["read-kib"] === undefined
    ? Infinity
    : Number(values["read-kib"]) * 1024;
  const large = (count: number) => new LargeSocket(count, readBytes);
  const rows = [{
    name: "floor: fresh buffer, read, unmask, copy, write",
    echo: (count: number) => floorOn(large(count)),
    perMiB: [] as number[],
  }, {
    name: "default app /echo, 256 KiB binary",
    echo: (count: number) => echoOne(count, large(count)),
    perMiB: [] as number[],
  }];
  for (const row of rows) {
    const sent = await row.echo(4);
    if (sent !== 4 * (256 * 1024 + 10)) {
      throw new Error(`${row.name}: sent ${sent} bytes`);
    }
  }
  for (let r = 0; r < rounds; r++) {
    for (const row of r % 2 === 0 ? rows : [...rows].reverse()) {
      const t = cpuUsage();
      await row.echo(messages);
      const used = cpuUsage(t);
      row.perMiB.push((used.user + used.system) / mib);
    }
  }
  console.log(
    "| Server | CPU µs per MiB (median) | min | min over the floor's |",
  );
  console.log("| --- | ---: | ---: | ---: |");
  const floorMin = Math.min(...rows[0].perMiB);
  for (const [i, row] of rows.entries()) {
    const sorted = row.perMiB.sort((a, b) => a - b);
    console.log(
      `| ${row.name} | ${Math.round(sorted[sorted.length >> 1])} | ${
        Math.round(sorted[0])
      } | ${i === 0 ? "" : Math.round(sorted[0] - floorMin)} |`,
    );
  }
}

if (values.large) {
  await measureLarge(Number(values.rounds));
  Deno.exit(0);
}
const sockets = Number(values.sockets);
/** Messages per round: enough that opening the sockets is a small part. */
const MESSAGES = Math.max(20_000, sockets * 500);
const serveFloor = (count: number) => many(floorOne, count, sockets);
const serveEcho = (count: number) => many(echoOne, count, sockets);

const ROWS = [
  { name: "floor: read, unmask, write", run: serveFloor },
  {
    name: values.web ? "/echo through the web API" : "default app /echo",
    run: serveEcho,
  },
];

for (const row of ROWS) {
  const sent = await row.run(2 * sockets);
  if (sent !== 2 * sockets * 34) {
    throw new Error(`${row.name}: sent ${sent} bytes`);
  }
}

/** Heap bytes V8 has allocated so far (Deno's node:v8 has it; its types do not). */
function allocatedBytes(): number {
  return Number(Reflect.get(getHeapStatistics(), "total_allocated_bytes"));
}

const times = ROWS.map(() => [] as number[]);
/** Heap bytes allocated per message, the lowest of the rounds: steady whatever else runs. */
const allocated = ROWS.map(() => Infinity);
for (let r = 0; r < Number(values.rounds); r++) {
  for (let i = 0; i < ROWS.length; i++) {
    const bytes = allocatedBytes();
    const t = cpuUsage();
    await ROWS[i].run(MESSAGES);
    const used = cpuUsage(t);
    times[i].push((used.user + used.system) * 1e3 / MESSAGES);
    allocated[i] = Math.min(
      allocated[i],
      (allocatedBytes() - bytes) / MESSAGES,
    );
  }
}
console.log(
  "| Server | CPU ns per message (median) | min | added | heap B per message |",
);
console.log("| --- | ---: | ---: | ---: | ---: |");
let floor = 0;
for (let i = 0; i < ROWS.length; i++) {
  const sorted = times[i].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1];
  if (i === 0) floor = median;
  console.log(
    `| ${ROWS[i].name} | ${Math.round(median)} | ${Math.round(sorted[0])} | ${
      i === 0 ? "" : Math.round(median - floor)
    } | ${Math.round(allocated[i])} |`,
  );
}
