/**
 * The engine's WebSocket handover over real sockets: the 101 and the bytes
 * sent with it, the connection cap, graceful shutdown with 1001, the idle,
 * close and write timers, backpressure, and requests that cannot switch.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { ServerWebSocket } from "../lib/http/ws/socket.ts";
import { BIG_BUFFERS } from "../lib/http/ws/session.ts";
import {
  SMALL_BUFFERS,
  upgradeWebSocket,
  WsConnection,
} from "../lib/http/ws_connection.ts";
import { OPCODE } from "../lib/http/ws/frame.ts";
import { clientFrame, closePayload } from "./fixtures/ws_frames.ts";
import {
  connect,
  decoder,
  get,
  readReply,
  ReplyReader,
  send,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";
import { RawWs, upgradeRequest, WS_ACCEPT } from "./helpers/ws_raw.ts";
import { certificate } from "./helpers/cert.ts";

/** Echoes every message; "close:<code>" closes with that code; "flood" sends until dropped. */
function echoApp(seen: ServerWebSocket[] = []): Handler {
  return (req) => {
    if (req.headers.get("upgrade") === undefined) {
      return { status: 200, body: `plain ${req.path}` };
    }
    const { socket, reply } = upgradeWebSocket(req);
    seen.push(socket);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => {
      if (e.data === "flood") {
        const chunk = new Uint8Array(256 * 1024);
        const timer = setInterval(() => {
          if (socket.readyState !== socket.OPEN) clearInterval(timer);
          else socket.send(chunk);
        }, 1);
      } else if (typeof e.data === "string" && e.data.startsWith("close:")) {
        socket.close(Number(e.data.slice(6)), "asked to");
      } else socket.send(e.data);
    };
    return reply;
  };
}

function start(handler: Handler, limits: Partial<Limits> = {}) {
  return serve({ port: 0, accessLog: false, limits }, handler);
}

/** Resolves with the close event once `ws` has closed. */
function closeEvent(ws: ServerWebSocket): Promise<CloseEvent> {
  if (ws.readyState === ws.CLOSED) throw new Error("closed already");
  return withTimeout(
    new Promise((resolve) =>
      ws.addEventListener("close", (e) => resolve(e as CloseEvent))
    ),
    10_000,
    "the server socket's close event",
  );
}

/** Resolves with the close event's code once `ws` has closed. */
async function closeCode(ws: ServerWebSocket): Promise<number> {
  return (await closeEvent(ws)).code;
}

Deno.test("upgradeWebSocket() answers 101 with the handshake's fields and reads the frames sent with the request", async () => {
  await using server = start(echoApp());
  using ws = await RawWs.open(
    server.port,
    upgradeRequest("/chat"),
    clientFrame(OPCODE.Text, "sent with the handshake"),
  );
  assert.equal(ws.reply.status, 101);
  assert.match(ws.reply.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.equal(ws.reply.headers.get("upgrade"), "websocket");
  assert.equal(ws.reply.headers.get("connection"), "Upgrade");
  assert.equal(ws.reply.headers.get("sec-websocket-accept"), WS_ACCEPT);
  // A 1xx reply has no body: no framing fields (RFC 9110 §15.2).
  assert.equal(ws.reply.headers.has("content-length"), false);
  assert.equal(ws.reply.headers.has("transfer-encoding"), false);
  const echo = await ws.frame();
  assert.equal(echo.opcode, OPCODE.Text);
  assert.equal(decoder.decode(echo.payload), "sent with the handshake");
  await ws.send(clientFrame(OPCODE.Close, closePayload(1000)));
  assert.deepEqual(await ws.closeFrame(), [1000, ""]);
  assert.equal(await ws.ended(), true, "the server closes its side");
  await waitFor(() => server.stats.active === 0, "the connection closed");
});

Deno.test("requests pipelined before an upgrade are answered first, in order", async () => {
  await using server = start(echoApp());
  using conn = await connect(server.port);
  await send(conn, get("/first") + upgradeRequest("/ws"));
  const reader = new ReplyReader(conn);
  const first = await reader.readReply();
  assert.equal(first.status, 200);
  assert.equal(first.text, "plain /first");
  assert.equal((await reader.readReply()).status, 101);
});

Deno.test("the connection cap counts a WebSocket until it closes", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen), { maxConns: 1, maxQueue: 4 });
  using ws = await RawWs.open(server.port);
  assert.equal(ws.reply.status, 101);
  using waiter = await connect(server.port);
  await send(waiter, get("/after"));
  await waitFor(() => server.stats.queued === 1, "the next connection queued");
  const answered = readReply(waiter, { timeoutMs: 10_000 });
  const closed = closeCode(seen[0]);
  await ws.send(clientFrame(OPCODE.Close, closePayload(1000)));
  assert.equal(await closed, 1000);
  assert.deepEqual(await ws.closeFrame(), [1000, ""]);
  assert.equal(await ws.ended(), true);
  assert.equal((await answered).text, "plain /after");
});

Deno.test("shutdown() closes a WebSocket with 1001 and waits for the peer's answer", async () => {
  const seen: ServerWebSocket[] = [];
  const server = start(echoApp(seen));
  using ws = await RawWs.open(server.port);
  const closed = closeCode(seen[0]);
  const stopping = server.shutdown();
  assert.deepEqual(await ws.closeFrame(), [1001, "Server is shutting down"]);
  await ws.send(clientFrame(OPCODE.Close, closePayload(1001)));
  assert.equal(await closed, 1001);
  assert.equal(await ws.ended(), true);
  await withTimeout(stopping, 5000, "shutdown");
  assert.equal(server.stats.active, 0);
});

Deno.test("an idle WebSocket is pinged, closed with 1001 if it stays silent, and dropped if it does not answer the close", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen), {
    wsIdleTimeoutMs: 100,
    wsCloseTimeoutMs: 200,
  });
  using ws = await RawWs.open(server.port);
  const closed = closeCode(seen[0]);
  assert.equal((await ws.frame()).opcode, OPCODE.Ping);
  assert.deepEqual(await ws.closeFrame(), [1001, "Idle timeout"]);
  assert.equal(await ws.ended(), true);
  assert.equal(await closed, 1006, "no answer to our close: dropped");
});

Deno.test("a WebSocket that answers pings stays open past many idle timeouts", async () => {
  await using server = start(echoApp(), { wsIdleTimeoutMs: 60 });
  using ws = await RawWs.open(server.port);
  for (let i = 0; i < 4; i++) {
    const ping = await ws.frame();
    assert.equal(ping.opcode, OPCODE.Ping, `ping ${i}`);
    await ws.send(clientFrame(OPCODE.Pong, ping.payload));
  }
  await ws.send(clientFrame(OPCODE.Text, "still here"));
  let frame = await ws.frame();
  while (frame.opcode === OPCODE.Ping) frame = await ws.frame();
  assert.equal(decoder.decode(frame.payload), "still here");
});

Deno.test("a peer that does not answer our close frame is dropped after wsCloseTimeoutMs", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen), { wsCloseTimeoutMs: 200 });
  using ws = await RawWs.open(server.port);
  const closed = closeCode(seen[0]);
  await ws.send(clientFrame(OPCODE.Text, "close:4000"));
  assert.deepEqual(await ws.closeFrame(), [4000, "asked to"]);
  assert.equal(await ws.ended(), true);
  assert.equal(await closed, 1006);
  await waitFor(() => server.stats.active === 0, "the slot given back");
});

Deno.test("a peer that stops reading is dropped after writeTimeoutMs", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen), {
    writeTimeoutMs: 300,
    wsMaxQueuedBytes: 64 << 20, // the write timeout acts first
  });
  using ws = await RawWs.open(server.port);
  const closed = closeCode(seen[0]);
  await ws.send(clientFrame(OPCODE.Text, "flood"));
  // Never read: the kernel's buffers fill, the server's write stalls.
  assert.equal(await closed, 1006);
  await waitFor(() => server.stats.active === 0, "the slot given back");
});

Deno.test("a send past wsMaxQueuedBytes drops a peer that is not reading", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen), {
    writeTimeoutMs: 60_000, // the queue limit acts first
    wsMaxQueuedBytes: 1024 * 1024,
  });
  using ws = await RawWs.open(server.port);
  const closed = closeCode(seen[0]);
  await ws.send(clientFrame(OPCODE.Text, "flood"));
  assert.equal(await closed, 1006);
  assert.ok(seen[0].bufferedAmount <= 2 * 1024 * 1024, "queue stayed bounded");
  await waitFor(() => server.stats.active === 0, "the slot given back");
});

Deno.test("a client that sends but never reads stops being read: echo replies queue to the limit, then the write timeout drops it", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen), {
    writeTimeoutMs: 500,
    wsMaxMessageBytes: 64 * 1024,
    wsMaxQueuedBytes: 256 * 1024,
  });
  using ws = await RawWs.open(server.port);
  const closed = closeEvent(seen[0]);
  const message = clientFrame(OPCODE.Binary, new Uint8Array(60 * 1024));
  let sent = 0;
  // 256 MiB would take the server seconds to echo; it stops reading long before.
  const writing = (async () => {
    try {
      while (sent < 256 << 20) {
        await ws.send(message);
        sent += message.length;
      }
    } catch {
      // the server dropped us
    }
  })();
  const event = await closed;
  assert.equal(event.code, 1006);
  // Not the queue limit: replies never passed it, as reading had stopped.
  assert.equal(event.reason, "Write timeout");
  await withTimeout(writing, 10_000, "the client's writes end");
  assert.ok(
    sent < 256 << 20,
    `the server stopped reading (${sent} bytes sent)`,
  );
});

const refusals: [string, string, number, RegExp][] = [
  [
    "HTTP/1.0",
    upgradeRequest("/ws").replace("HTTP/1.1", "HTTP/1.0"),
    400,
    /HTTP\/1\.0 has no upgrade/,
  ],
  [
    "a body",
    upgradeRequest("/ws", "Content-Length: 3\r\n") + "abc",
    400,
    /the request has a body/,
  ],
  [
    "version 8",
    upgradeRequest("/ws").replace("Version: 13", "Version: 8"),
    426,
    /Sec-WebSocket-Version must be 13/,
  ],
  [
    "no key",
    upgradeRequest("/ws").replace(/Sec-WebSocket-Key: .*\r\n/, ""),
    400,
    /Sec-WebSocket-Key/,
  ],
];
for (const [what, request, status, text] of refusals) {
  Deno.test(`an upgrade request with ${what} is answered ${status}, not switched`, async () => {
    await using server = start(echoApp());
    using ws = await RawWs.open(server.port, request);
    assert.equal(ws.reply.status, status);
    assert.match(decoder.decode(ws.reply.body), text);
    if (status === 426) {
      assert.equal(ws.reply.headers.get("sec-websocket-version"), "13");
    }
  });
}

Deno.test("a reply with an upgrade but a status other than 101 is a 500, and the socket never opens", async () => {
  let socket: ServerWebSocket | undefined;
  await using server = start((req) => {
    const upgrade = upgradeWebSocket(req);
    socket = upgrade.socket;
    return { ...upgrade.reply, status: 200 };
  });
  using ws = await RawWs.open(server.port);
  assert.equal(ws.reply.status, 500);
  assert.equal(ws.reply.headers.get("connection"), "close");
  assert.equal(socket?.readyState, socket?.CLOSED);
});

Deno.test("a WebSocket's url is ws:// with the Host, path and query", async () => {
  const seen: ServerWebSocket[] = [];
  await using server = start(echoApp(seen));
  using ws = await RawWs.open(server.port, upgradeRequest("/room?id=7"));
  assert.equal(ws.reply.status, 101);
  assert.equal(seen[0].url, "ws://localhost/room?id=7");
  await ws.send(clientFrame(OPCODE.Text, "x"));
  assert.equal(decoder.decode((await ws.frame()).payload), "x");
});

Deno.test("a WebSocket over TLS: wss:// url, small and big messages echoed, clean close", async () => {
  const pem = await certificate();
  const seen: ServerWebSocket[] = [];
  await using server = serve({
    port: 0,
    accessLog: false,
    cert: pem.cert,
    key: pem.key,
  }, echoApp(seen));
  await server.ready; // node's TLS listener binds a turn later
  using ws = await RawWs.open(
    server.port,
    upgradeRequest("/tls"),
    new Uint8Array(0),
    (port) =>
      Deno.connectTls({ hostname: "localhost", port, caCerts: [pem.cert] }),
  );
  assert.equal(ws.reply.status, 101);
  assert.equal(seen[0].url, "wss://localhost/tls");
  await ws.send(clientFrame(OPCODE.Text, "over tls"));
  assert.equal(decoder.decode((await ws.frame()).payload), "over tls");
  // Big enough that its rest is read straight into the message's buffer.
  const big = new Uint8Array(300_000).map((_, i) => i & 0xff);
  await ws.send(clientFrame(OPCODE.Binary, big));
  assert.deepEqual((await ws.frame()).payload, big);
  await ws.send(clientFrame(OPCODE.Close, closePayload(1000)));
  assert.deepEqual(await ws.closeFrame(), [1000, ""]);
  assert.equal(await ws.ended(), true);
});

/**
 * A socket whose reads hand over `wire` in pieces no longer than the next
 * of `cuts` (or all that is left, when cuts run out) and than the buffer
 * read into; reads and writes are recorded. EOF once everything is read
 * and `want` bytes are written.
 */
class ScriptedSocket {
  readonly remoteAddr: Deno.NetAddr = {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 40000,
  };
  /** Length of each buffer read into, and what each read gave. */
  readonly reads: [number, number][] = [];
  readonly writes: Uint8Array[] = [];
  readonly #wire: Uint8Array;
  readonly #cuts: number[];
  readonly #want: number;
  #at = 0;
  #written = 0;
  #eof: (() => void) | undefined;

  constructor(wire: Uint8Array, cuts: number[], want: number) {
    this.#wire = wire;
    this.#cuts = [...cuts];
    this.#want = want;
  }
  read(into: Uint8Array): Promise<number | null> {
    if (this.#at === this.#wire.length) {
      if (this.#written >= this.#want) return Promise.resolve(null);
      return new Promise((resolve) => this.#eof = () => resolve(null));
    }
    const cut = this.#cuts.shift() ?? Infinity;
    const n = Math.min(into.length, cut, this.#wire.length - this.#at);
    into.set(this.#wire.subarray(this.#at, this.#at + n));
    this.#at += n;
    this.reads.push([into.length, n]);
    return Promise.resolve(n);
  }
  write(bytes: Uint8Array): Promise<number> {
    this.writes.push(bytes.slice());
    this.#written += bytes.length;
    if (this.#written >= this.#want) this.#eof?.();
    return Promise.resolve(bytes.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

/** /echo's handler over `socket`, through a WsConnection; resolves once the connection is done. */
function echoOn(socket: ScriptedSocket | FedSocket): Promise<void> {
  const conn = new WsConnection(DEFAULT_LIMITS, {
    deflate: null,
    client: "127.0.0.1",
  });
  const ws = new ServerWebSocket(conn, {
    url: "ws://127.0.0.1/echo",
    protocol: "",
    extensions: "",
  });
  conn.attach(ws);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => ws.send(e.data);
  return conn.run(socket as never, new Uint8Array(0));
}

/** What /echo's handler writes back over `socket`. */
async function echoOver(socket: ScriptedSocket): Promise<Uint8Array> {
  await echoOn(socket);
  const out = new Uint8Array(socket.writes.reduce((n, w) => n + w.length, 0));
  let off = 0;
  for (const w of socket.writes) {
    out.set(w, off);
    off += w.length;
  }
  return out;
}

/** An unmasked server frame of `payload`, as the echo should be. */
function serverFrame(opcode: number, payload: Uint8Array): Uint8Array {
  return clientFrame(opcode, payload, { mask: false });
}

Deno.test("a big message is read in two reads (its header, then the rest straight into its buffer) and echoed in one write", async () => {
  const payload = new Uint8Array(300_000).map((_, i) => (i * 13) & 0xff);
  const frame = clientFrame(OPCODE.Binary, payload);
  const echo = serverFrame(OPCODE.Binary, payload);
  // Two messages back to back, the whole of each there when read.
  const wire = new Uint8Array(frame.length * 2);
  wire.set(frame);
  wire.set(frame, frame.length);
  const socket = new ScriptedSocket(
    wire,
    [frame.length, frame.length],
    2 * echo.length,
  );
  const out = await echoOver(socket);
  assert.deepEqual(socket.reads.slice(0, 4), [
    [512, 512], // a small read: the header and 498 bytes
    [frame.length - 512, frame.length - 512], // the rest, exactly
    [512, 512], // the next message, the same way
    [frame.length - 512, frame.length - 512],
  ]);
  assert.deepEqual(socket.writes.map((w) => w.length), [
    echo.length,
    echo.length,
  ]);
  assert.ok(out.every((b, i) => b === echo[i % echo.length]), "echoed exactly");
});

Deno.test("a big message echoes byte for byte whatever its reads' boundaries, with small messages and pings around it", async () => {
  const payload = new Uint8Array(200_000).map((_, i) => (i * 7 + 3) & 0xff);
  const big = clientFrame(OPCODE.Binary, payload);
  const small = clientFrame(OPCODE.Text, "after");
  const pingFrame = clientFrame(OPCODE.Ping, "p");
  const wire = new Uint8Array(big.length + small.length + pingFrame.length);
  wire.set(big);
  wire.set(pingFrame, big.length);
  wire.set(small, big.length + pingFrame.length);
  const expected = [
    serverFrame(OPCODE.Binary, payload),
    serverFrame(OPCODE.Pong, new TextEncoder().encode("p")),
    serverFrame(OPCODE.Text, new TextEncoder().encode("after")),
  ];
  const want = expected.reduce((n, f) => n + f.length, 0);
  const splits: number[][] = [];
  // The first read ending at every byte of the header and just past it.
  for (let first = 1; first <= 20; first++) splits.push([first]);
  // Every read one byte for the header, then pieces of uneven sizes.
  splits.push([...Array(14).fill(1), 1, 2, 3, 65_536, 7, 100_000]);
  splits.push([14, 49_999, 1, 50_000, 99_985, 1, 1, 1]);
  // Pieces ending at the big frame's last byte and inside the ping.
  splits.push([big.length - 1, 1, 3, 1]);
  for (const cuts of splits) {
    const socket = new ScriptedSocket(wire, cuts, want);
    const out = await echoOver(socket);
    let off = 0;
    for (const f of expected) {
      assert.ok(
        out.length >= off + f.length &&
          f.every((b, i) => b === out[off + i]),
        `reads cut at ${cuts.slice(0, 6).join(",")}...`,
      );
      off += f.length;
    }
    assert.equal(out.length, want);
  }
});

/** A ScriptedSocket whose writes take at most `cap` bytes each. */
class ShortWriteSocket extends ScriptedSocket {
  readonly #cap: number;
  constructor(wire: Uint8Array, want: number, cap: number) {
    super(wire, [], want);
    this.#cap = cap;
  }
  override write(bytes: Uint8Array): Promise<number> {
    return super.write(bytes.subarray(0, this.#cap));
  }
}

Deno.test("writes that take part of their bytes: the rest follows in order, byte for byte", async () => {
  const payload = new Uint8Array(100_000).map((_, i) => (i * 11 + 5) & 0xff);
  const frames = [
    clientFrame(OPCODE.Text, "hello"),
    clientFrame(OPCODE.Binary, payload),
    clientFrame(OPCODE.Text, "after"),
  ];
  const wire = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  frames.reduce((off, f) => (wire.set(f, off), off + f.length), 0);
  const expected = [
    serverFrame(OPCODE.Text, new TextEncoder().encode("hello")),
    serverFrame(OPCODE.Binary, payload),
    serverFrame(OPCODE.Text, new TextEncoder().encode("after")),
  ];
  const want = new Uint8Array(expected.reduce((n, f) => n + f.length, 0));
  expected.reduce((off, f) => (want.set(f, off), off + f.length), 0);
  for (const cap of [3, 4096]) {
    const socket = new ShortWriteSocket(wire, want.length, cap);
    const out = await echoOver(socket);
    assert.ok(socket.writes.every((w) => w.length <= cap));
    assert.equal(out.length, want.length, `writes of at most ${cap}`);
    assert.ok(out.every((b, i) => b === want[i]), `writes of at most ${cap}`);
  }
});

/**
 * A socket fed by the test: each read waits until `feed()` hands it bytes
 * (at most what its buffer holds; the rest waits for the next read), so a
 * test sees the buffer an idle socket waits on. EOF at `end()`.
 */
class FedSocket {
  readonly remoteAddr: Deno.NetAddr = {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 40001,
  };
  readonly writes: Uint8Array[] = [];
  /** The buffer of the read in progress, while one waits. */
  waiting: Uint8Array | undefined;
  #queued: Uint8Array[] = [];
  #ended = false;
  #give: (() => void) | undefined;
  #readWaits: (() => void)[] = [];

  read(into: Uint8Array): Promise<number | null> {
    return new Promise((resolve) => {
      this.#give = () => {
        const next = this.#queued[0];
        if (next === undefined) {
          if (!this.#ended) return;
          this.waiting = this.#give = undefined;
          return resolve(null);
        }
        const n = Math.min(into.length, next.length);
        into.set(next.subarray(0, n));
        if (n === next.length) this.#queued.shift();
        else this.#queued[0] = next.subarray(n);
        this.waiting = this.#give = undefined;
        resolve(n);
      };
      this.waiting = into;
      this.#give();
      if (this.waiting !== undefined) {
        for (const wake of this.#readWaits.splice(0)) wake();
      }
    });
  }
  /** Resolves once a read waits with nothing left to give it: the socket is idle. */
  idle(): Promise<Uint8Array> {
    if (this.waiting !== undefined && this.#queued.length === 0) {
      return Promise.resolve(this.waiting);
    }
    return new Promise((resolve) =>
      this.#readWaits.push(() => resolve(this.idle()))
    )
      .then((buf) => buf as Uint8Array);
  }
  /** `bytes` arrive as one read's worth (split further only by the buffer's size). */
  feed(bytes: Uint8Array): void {
    this.#queued.push(bytes.slice());
    this.#give?.();
  }
  end(): void {
    this.#ended = true;
    this.#give?.();
  }
  write(bytes: Uint8Array): Promise<number> {
    this.writes.push(bytes.slice());
    return Promise.resolve(bytes.length);
  }
  /** Every byte written so far, taken (the next call starts after them). */
  written(): Uint8Array {
    const all = new Uint8Array(this.writes.reduce((n, w) => n + w.length, 0));
    let off = 0;
    for (const w of this.writes.splice(0)) {
      all.set(w, off);
      off += w.length;
    }
    return all;
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.end();
  }
}

Deno.test("an idle session that then gets a message in pieces (its header, a character and the 512-byte buffer's end all cut) echoes it byte for byte", async () => {
  const text = "é".repeat(200) + "€ end"; // over 512 bytes of UTF-8
  const frame = clientFrame(OPCODE.Text, text);
  const echo = serverFrame(OPCODE.Text, new TextEncoder().encode(text));
  // Cuts: inside the header (after 1, 2 and 5 bytes: before the length's
  // second byte and inside the mask), inside a two-byte character (an odd
  // offset into the payload), and pieces across the small buffer's end.
  const cuts = [1, 1, 3, 6, 51, 700];
  const socket = new FedSocket();
  const done = echoOn(socket);
  await socket.idle();
  for (const round of [1, 2]) {
    let at = 0;
    for (const cut of cuts) {
      if (at >= frame.length) break;
      socket.feed(frame.subarray(at, Math.min(frame.length, at + cut)));
      at += cut;
      await socket.idle();
    }
    if (at < frame.length) socket.feed(frame.subarray(at));
    await socket.idle();
    assert.deepEqual(socket.written(), echo, `round ${round}`);
  }
  socket.end();
  await done;
});

Deno.test("an idle session waits on its 512-byte buffer, never on a 64 KiB one, even after a read that filled either at a message's end", async () => {
  const lentBefore = BIG_BUFFERS.lent;
  const socket = new FedSocket();
  const done = echoOn(socket);
  const own = await socket.idle();
  assert.equal(own.length, 512, "idle from the start");
  assert.equal(own.buffer.byteLength, 64 * 1024, "a view of a shared slab");
  // 512 bytes exactly, ending with a message: the small buffer is full.
  const exact = clientFrame(OPCODE.Binary, new Uint8Array(504).fill(7));
  assert.equal(exact.length, 512);
  socket.feed(exact);
  assert.equal((await socket.idle()).length, 512, "after a full small read");
  assert.equal(BIG_BUFFERS.lent, lentBefore);
  assert.equal(socket.written().length, 4 + 504);
  // A message over the small buffer, then small ones up to 512 + 64 KiB
  // bytes: the small read ends inside the first, so a 64 KiB read takes
  // the rest, and it is full, at the end of the last message.
  const first = clientFrame(OPCODE.Binary, new Uint8Array(1016).fill(2));
  const small = clientFrame(OPCODE.Binary, new Uint8Array(122).fill(1));
  assert.equal(first.length + 508 * small.length, 512 + 65_536);
  const batch = new Uint8Array(512 + 65_536);
  batch.set(first);
  for (let at = first.length; at < batch.length; at += small.length) {
    batch.set(small, at);
  }
  socket.feed(batch);
  assert.equal((await socket.idle()).length, 512, "after a full big read");
  assert.equal(
    BIG_BUFFERS.lent,
    lentBefore,
    "no 64 KiB buffer held while idle",
  );
  assert.equal(socket.written().length, 4 + 1016 + 508 * (2 + 122));
  // Inside a message the rest is on the way: a full read then takes a big
  // buffer, given back once the message is whole.
  socket.feed(clientFrame(OPCODE.Binary, new Uint8Array(5000).fill(3)));
  assert.equal((await socket.idle()).length, 512);
  assert.equal(BIG_BUFFERS.lent, lentBefore);
  assert.equal(socket.written().length, 4 + 5000);
  socket.end();
  await done;
  // Given back once the socket is closed: the next socket takes it.
  const next = SMALL_BUFFERS.take();
  assert.equal(next, own);
  SMALL_BUFFERS.give(next);
});

Deno.test("over a real socket, an idle WebSocket that then gets a message in many writes echoes it byte for byte", async () => {
  await using server = start(echoApp());
  using ws = await RawWs.open(server.port, upgradeRequest("/echo"));
  await ws.send(clientFrame(OPCODE.Text, "first"));
  assert.equal(decoder.decode((await ws.frame()).payload), "first");
  // The server now waits on an idle socket.
  const payload = new Uint8Array(3000).map((_, i) => (i * 31 + 5) & 0xff);
  const frame = clientFrame(OPCODE.Binary, payload);
  for (const [from, to] of [[0, 1], [1, 3], [3, 7], [7, 600], [600, 3008]]) {
    await ws.send(frame.subarray(from, to));
  }
  const echo = await ws.frame();
  assert.equal(echo.opcode, OPCODE.Binary);
  assert.deepEqual(echo.payload, payload);
});
