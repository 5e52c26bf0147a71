/**
 * The WebSocket session on the engine against real clients over real
 * sockets: Deno's own `WebSocket`, Python's `websockets` (Debian
 * python3-websockets) with and without permessage-deflate, and headless
 * Chromium with it. The server (tests/fixtures/ws_echo_server.ts) records
 * every session event; tests/ws_apps_test.ts drives the default app and a
 * Hono app the same way.
 */
import assert from "node:assert/strict";
import { startEchoServer } from "./fixtures/ws_echo_server.ts";
import { pythonMissing, runPython } from "./fixtures/ws_python.ts";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";
import { withTimeout } from "./helpers/socket.ts";

const pythonSkip = pythonMissing();
if (pythonSkip !== undefined) {
  console.log(`ws_interop_test: Python cases skipped: ${pythonSkip}`);
}

const LIMITS = { wsMaxMessageBytes: 8 << 20, wsMaxFrameBytes: 8 << 20 };

/** Opens a Deno WebSocket and resolves once it is open. */
async function connect(url: string, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = (e) =>
        reject(new Error(`WebSocket error: ${(e as ErrorEvent).message}`));
    }),
    10_000,
    "WebSocket open",
  );
  return ws;
}

/** Sends `data` and resolves with the next message. */
function roundTrip(
  ws: WebSocket,
  data: string | Uint8Array,
): Promise<string | ArrayBuffer> {
  return withTimeout(
    new Promise((resolve) => {
      ws.onmessage = (e) => resolve(e.data);
      ws.send(data);
    }),
    10_000,
    "echo",
  );
}

function closed(ws: WebSocket): Promise<CloseEvent> {
  return withTimeout(
    new Promise((resolve) => (ws.onclose = resolve)),
    10_000,
    "close",
  );
}

Deno.test("Deno's WebSocket exchanges text, binary and large messages, then closes cleanly", async () => {
  await using server = startEchoServer({
    limits: LIMITS,
    upgrade: { protocols: ["chat"], compression: true },
  });
  const ws = await connect(`ws://127.0.0.1:${server.port}/`, [
    "chat",
    "superchat",
  ]);
  assert.equal(ws.protocol, "chat");
  assert.equal(
    ws.extensions,
    "",
    "Deno's client offers no compression; none is agreed",
  );
  assert.equal(await roundTrip(ws, "Hello, κόσμε 🎉"), "Hello, κόσμε 🎉");
  const bytes = new Uint8Array(70_000).map((_, i) => i * 7);
  assert.deepEqual(
    new Uint8Array(await roundTrip(ws, bytes) as ArrayBuffer),
    bytes,
  );
  const big = "x".repeat(4 << 20);
  assert.equal(await roundTrip(ws, big), big);
  const closing = closed(ws);
  ws.close(4000, "bye");
  const event = await closing;
  assert.equal(event.code, 4000);
  assert.equal(event.wasClean, true);
  await server.connections[0].done;
  assert.deepEqual(server.connections[0].events.at(-1), {
    type: "close",
    code: 4000,
    reason: "bye",
    wasClean: true,
  });
});

Deno.test("Deno's WebSocket sees a server-initiated close with its code", async () => {
  await using server = startEchoServer({ limits: LIMITS });
  const ws = await connect(`ws://127.0.0.1:${server.port}/`);
  const closing = closed(ws);
  ws.send("close:4001");
  const event = await closing;
  assert.equal(event.code, 4001);
  assert.equal(event.reason, "asked to");
  assert.equal(event.wasClean, true);
  await server.connections[0].done;
});

Deno.test("a client over the message limit is closed with 1009", async () => {
  await using server = startEchoServer({ limits: { wsMaxMessageBytes: 1000 } });
  const ws = await connect(`ws://127.0.0.1:${server.port}/`);
  const closing = closed(ws);
  ws.send("y".repeat(1001));
  const event = await closing;
  assert.equal(event.code, 1009);
  await server.connections[0].done;
});

Deno.test("Deno's WebSocket sending far over the limit still reads our 1009 and its reason: the rest of its message is read away, not reset", async () => {
  // Deno's client reads nothing while a send is under way: a socket closed
  // under its 8 MiB write resets it, and it reports code 0, no reason.
  await using server = startEchoServer(); // the default 1 MiB limits
  const ws = await connect(`ws://127.0.0.1:${server.port}/`);
  const closing = closed(ws);
  ws.send(new Uint8Array(8 << 20));
  const event = await closing;
  assert.deepEqual([event.code, event.reason, event.wasClean], [
    1009,
    "Frame of 8388608 bytes is over the 1048576-byte limit",
    true,
  ]);
  await server.connections[0].done;
});

Deno.test("a plain GET to the WebSocket endpoint gets 400; version 8 gets 426", async () => {
  await using server = startEchoServer();
  const plain = await fetch(`http://127.0.0.1:${server.port}/`);
  await plain.body?.cancel();
  assert.equal(plain.status, 400);
  const old = await fetch(`http://127.0.0.1:${server.port}/`, {
    headers: {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version": "8",
    },
  });
  await old.body?.cancel();
  assert.equal(old.status, 426);
  assert.equal(old.headers.get("sec-websocket-version"), "13");
});

for (const mode of ["deflate", "plain"] as const) {
  Deno.test({
    name:
      `Python websockets (${mode}) exchanges text, binary, fragmented and large messages, pings, and a close`,
    ignore: pythonSkip !== undefined,
    async fn() {
      await using server = startEchoServer({
        limits: LIMITS,
        upgrade: { compression: true },
      });
      const seen = await runPython(`ws://127.0.0.1:${server.port}/`, mode);
      assert.deepEqual(seen, {
        extensions: mode === "deflate" ? "permessage-deflate" : null,
        text: "Hello, κόσμε",
        binary: true,
        fragmented: "frag1 frag2 frag3",
        fragmented_binary: [1, 2, 3],
        large: true,
        large_len: "JSON-ish ".length * 120_000,
        pong: true,
        close_code: 4001,
        close_reason: "asked to",
      });
      const [conn] = server.connections;
      await conn.done;
      assert.equal(
        conn.extensions,
        mode === "deflate" ? "permessage-deflate" : undefined,
      );
      assert.ok(
        conn.events.some((e) => e.type === "ping"),
        "the ping reached the session",
      );
      assert.deepEqual(conn.events.at(-1), {
        type: "close",
        code: 4001,
        reason: "asked to",
        wasClean: true,
      });
    },
  });
}

Deno.test({
  name:
    "Python websockets with compression but no context takeover asked by the server",
  ignore: pythonSkip !== undefined,
  async fn() {
    await using server = startEchoServer({
      limits: LIMITS,
      upgrade: {
        compression: {
          clientNoContextTakeover: true,
          serverNoContextTakeover: true,
          serverMaxWindowBits: 10,
        },
      },
    });
    const seen = await runPython(`ws://127.0.0.1:${server.port}/`, "deflate");
    assert.equal(
      seen.extensions,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
    );
    assert.equal(seen.large, true);
    assert.equal(seen.fragmented, "frag1 frag2 frag3");
    await server.connections[0].done;
  },
});

Deno.test("the web-API-shaped ServerWebSocket serves Deno's WebSocket: open, echo, close", async () => {
  const serverLog: string[] = [];
  await using server = startEchoServer({
    limits: LIMITS,
    app(ws) {
      ws.binaryType = "arraybuffer";
      ws.onopen = () => serverLog.push(`open ${ws.url}`);
      ws.onmessage = (e) => {
        if (e.data === "bye") ws.close(4002, "server says bye");
        else ws.send(e.data);
      };
      ws.onclose = (e) => serverLog.push(`close ${e.code} ${e.wasClean}`);
    },
  });
  const ws = await connect(`ws://127.0.0.1:${server.port}/room?id=1`);
  assert.equal(await roundTrip(ws, "κόσμε"), "κόσμε");
  const bytes = new Uint8Array([1, 2, 3, 250]);
  assert.deepEqual(
    new Uint8Array(await roundTrip(ws, bytes) as ArrayBuffer),
    bytes,
  );
  const closing = closed(ws);
  ws.send("bye");
  const event = await closing;
  assert.equal(event.code, 4002);
  assert.equal(event.reason, "server says bye");
  await server.connections[0].done;
  assert.deepEqual(serverLog, [
    `open ws://127.0.0.1:${server.port}/room?id=1`,
    "close 4002 true",
  ]);
});

const chromiumSkip = chromiumMissing();
if (chromiumSkip !== undefined) {
  console.log(`ws_interop_test: Chromium case skipped: ${chromiumSkip}`);
}

Deno.test({
  name:
    "headless Chromium negotiates permessage-deflate and exchanges compressed text and binary",
  ignore: chromiumSkip !== undefined,
  async fn() {
    await using server = startEchoServer({
      limits: LIMITS,
      upgrade: { compression: true },
    });
    await using browser = await Browser.launch();
    // The page reports back over the socket what it received, then closes;
    // the evaluation ends with the close.
    const closed = browser.eval(`new Promise((resolve, reject) => {
      const ws = new WebSocket("ws://127.0.0.1:${server.port}/");
      ws.binaryType = "arraybuffer";
      const text = "κόσμε ".repeat(2000);
      const bytes = new Uint8Array(3000).map((_, i) => i % 251);
      const got = [];
      ws.onopen = () => { ws.send(text); ws.send(bytes); };
      ws.onmessage = (e) => {
        got.push(typeof e.data === "string"
          ? e.data === text
          : new Uint8Array(e.data).every((b, i) => b === i % 251) && e.data.byteLength === 3000);
        if (got.length === 2) {
          ws.send("report " + got.join(" ") + " " + ws.extensions);
          ws.close(1000, "done");
        }
      };
      ws.onerror = () => reject(new Error("WebSocket error"));
      ws.onclose = (e) => resolve(e.code);
    })`);
    assert.equal(
      await within(closed, 60_000, "Chromium's WebSocket session"),
      1000,
    );
    assert.equal(server.connections.length, 1);
    const [conn] = server.connections;
    await within(conn.done, 60_000, "the server's side of the session");
    assert.equal(conn.extensions, "permessage-deflate");
    const texts = conn.events.filter((e) => e.type === "text").map((e) =>
      (e as { data: string }).data
    );
    assert.equal(texts.at(-1), "report true true permessage-deflate");
    assert.deepEqual(conn.events.at(-1), {
      type: "close",
      code: 1000,
      reason: "done",
      wasClean: true,
    });
  },
});
