/**
 * WebSocket apps as users write them, from real clients no one here wrote:
 * the default app's `/echo` and a Hono app (with `upgradeWebSocket` from
 * `hono/deno`, unchanged, and with ours), each from headless Chromium,
 * Deno's `WebSocket` and Python's `websockets`, with and without
 * compression.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { upgradeWebSocket as honoUpgrade } from "hono/deno";
import { serveFetch, upgradeWebSocket } from "../lib/app/fetch_adapter.ts";
import { startApp } from "./fixtures/app_server.ts";
import { PYTHON, pythonMissing, runPython } from "./fixtures/ws_python.ts";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";
import {
  encoder,
  openWebSocket,
  ReplyReader,
  send,
  withTimeout,
} from "./helpers/socket.ts";

const pythonSkip = pythonMissing();
const chromiumSkip = chromiumMissing();
for (
  const [what, why] of [["Python", pythonSkip], ["Chromium", chromiumSkip]]
) {
  if (why !== undefined) {
    console.log(
      `ws_apps_test: ${what} cases skipped: ${why}`,
    );
  }
}

/** What the default /echo route agrees with a client that offers compression. */
const ECHO_DEFLATE =
  "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/** Python's large message: "JSON-ish " this many times, under the 1 MiB default limit. */
const PY_REPEAT = 100_000;

/** What ws_client.py reports for a full exchange with an echo server. */
function pythonSaw(extensions: string | null) {
  return {
    extensions,
    text: "Hello, κόσμε",
    binary: true,
    fragmented: "frag1 frag2 frag3",
    fragmented_binary: [1, 2, 3],
    large: true,
    large_len: "JSON-ish ".length * PY_REPEAT,
    pong: true,
    close_code: 4001,
    close_reason: "asked to",
  };
}

/**
 * Run in the page: an echo exchange over `path` on the page's own host
 * (text, binary, 512 KiB of text, then a close the client starts).
 */
function pageExchange(path: string): string {
  return `(async () => {
    const ws = new WebSocket("ws://" + location.host + ${JSON.stringify(path)});
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("WebSocket error"));
    });
    const next = () => new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
    const out = { extensions: ws.extensions };
    const text = "κόσμε ".repeat(2000);
    let reply = next(); ws.send(text); out.text = (await reply) === text;
    const bytes = new Uint8Array(3000).map((_, i) => i % 251);
    reply = next(); ws.send(bytes);
    const back = new Uint8Array(await reply);
    out.binary = back.length === 3000 && back.every((b, i) => b === i % 251);
    const large = "x".repeat(512 * 1024);
    reply = next(); ws.send(large); out.large = (await reply) === large;
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close(4000, "bye");
    const e = await closed;
    out.close = [e.code, e.reason, e.wasClean];
    return out;
  })()`;
}

/** Loads `origin`'s page in `browser` and runs {@link pageExchange} on `path`. */
async function inChromium(
  browser: Browser,
  origin: string,
  path: string,
): Promise<unknown> {
  await within(browser.goto(`${origin}/`), 30_000, "the page loads");
  return await within(
    browser.eval(pageExchange(path)),
    60_000,
    "the page's WebSocket exchange",
  );
}

function roundTrip(ws: WebSocket, data: string | Uint8Array) {
  return withTimeout(
    new Promise<unknown>((resolve) => {
      ws.onmessage = (e) => resolve(e.data);
      ws.send(data);
    }),
    10_000,
    "echo",
  );
}

async function closeWith(ws: WebSocket, code: number): Promise<CloseEvent> {
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  ws.close(code, "bye");
  return await withTimeout(closed, 10_000, "close");
}

Deno.test("the default app's WebSocket /echo echoes Deno's WebSocket: text, binary, 512 KiB, close", async () => {
  await using app = await startApp();
  const ws = await openWebSocket(`ws://127.0.0.1:${app.port}/echo`);
  assert.equal(await roundTrip(ws, "Hello, κόσμε"), "Hello, κόσμε");
  const bytes = new Uint8Array(70_000).map((_, i) => i * 7);
  assert.deepEqual(
    new Uint8Array(await roundTrip(ws, bytes) as ArrayBuffer),
    bytes,
  );
  const large = "y".repeat(512 * 1024);
  assert.equal(await roundTrip(ws, large), large);
  const closed = await closeWith(ws, 4000);
  assert.equal(closed.code, 4000);
  assert.equal(closed.wasClean, true);
});

Deno.test("the default app's WebSocket /echo echoes text of every length 0-200 exactly: ASCII, two- and three-byte characters, and one astral", async () => {
  await using app = await startApp();
  const ws = await openWebSocket(`ws://127.0.0.1:${app.port}/echo`);
  // Across the short-text path (64 bytes), the 16-bit length (126 bytes)
  // and in every position of a character against the 4-byte mask.
  for (const unit of ["x", "é", "€"]) {
    for (let n = 0; n <= 200; n++) {
      const text = `${unit.repeat(n)}`;
      assert.equal(await roundTrip(ws, text), text, `${n} x ${unit}`);
      const mixed = `${"a".repeat(n % 7)}\u{1F600}${unit.repeat(n)}`;
      assert.equal(await roundTrip(ws, mixed), mixed, `mixed ${n} x ${unit}`);
    }
  }
  await closeWith(ws, 1000);
});

const plainEcho: [accept: string, type: RegExp][] = [
  ["*/*", /^text\/plain/],
  ["application/json", /^application\/json/],
  ["text/html", /^text\/html/],
];
for (const [accept, type] of plainEcho) {
  Deno.test(`the default app answers a plain GET /echo (as ${accept}) with 426, Upgrade: websocket and Connection: Upgrade over a real socket, and keeps the connection`, async () => {
    await using app = await startApp();
    using conn = await Deno.connect({ port: app.port });
    const reader = new ReplyReader(conn);
    for (const method of ["GET", "HEAD"]) {
      await send(
        conn,
        encoder.encode(
          `${method} /echo HTTP/1.1\r\nHost: localhost\r\nAccept: ${accept}\r\n\r\n`,
        ),
      );
      const reply = await reader.readReply({ head: method === "HEAD" });
      assert.equal(reply.status, 426, method);
      assert.equal(reply.headers.get("upgrade"), "websocket");
      assert.equal(reply.headers.get("connection"), "Upgrade");
      assert.match(reply.headers.get("content-type") ?? "", type);
      if (method === "GET") {
        assert.match(
          new TextDecoder().decode(reply.body),
          /This path takes a GET only as a WebSocket upgrade/,
        );
      }
    }
  });
}

Deno.test("the default app lists GET in the Allow of /echo's 405 and 204, answers POST /echo as before, and a WebSocket handshake elsewhere as a plain request", async () => {
  await using app = await startApp();
  const put = await fetch(`${app.origin}/echo`, { method: "PUT" });
  await put.body?.cancel();
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
  const options = await fetch(`${app.origin}/echo`, { method: "OPTIONS" });
  assert.equal(options.status, 204);
  assert.equal(options.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
  const post = await fetch(`${app.origin}/echo?a=1`, { method: "POST" });
  assert.equal(post.status, 200);
  assert.deepEqual((await post.json()).query, { a: "1" });
  const text = await fetch(`${app.origin}/echo/hi`, {
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });
  assert.equal(await text.text(), "hi");
});

/** A whole WebSocket handshake but for the path: what a client sends. */
const HANDSHAKE = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

const noWebSocket: [path: string, accept: string, type: RegExp][] = [
  ["/", "*/*", /^text\/plain/], // a static file is there: not its page
  ["/", "application/json", /^application\/json/],
  ["/", "text/html", /^text\/html/],
  ["/no/such/file", "*/*", /^text\/plain/],
];
for (const [path, accept, type] of noWebSocket) {
  Deno.test(`the default app answers a WebSocket handshake for ${path} (no WebSocket route) with 404 that says so, as ${accept}`, async () => {
    await using app = await startApp();
    const res = await fetch(`${app.origin}${path}`, {
      headers: { ...HANDSHAKE, accept },
    });
    const body = await res.text();
    assert.equal(res.status, 404);
    assert.match(res.headers.get("content-type") ?? "", type);
    assert.match(
      body,
      /Cannot upgrade to WebSocket: there is none at this path/,
    );
    // The same path without the handshake, or a HEAD, is served as ever.
    const page = await fetch(`${app.origin}${path}`);
    assert.equal(page.status, path === "/" ? 200 : 404);
    await page.body?.cancel();
    const head = await fetch(`${app.origin}${path}`, {
      method: "HEAD",
      headers: HANDSHAKE,
    });
    assert.equal(head.status, path === "/" ? 200 : 404);
  });
}

Deno.test(
  "Python's websockets client sees the 404 for a path with no WebSocket route, not a page",
  {
    ignore: pythonSkip !== undefined,
  },
  async () => {
    await using app = await startApp();
    const out = await new Deno.Command(PYTHON, {
      args: [
        "-c",
        `import asyncio, websockets
async def main():
    try:
        async with websockets.connect("ws://127.0.0.1:${app.port}/", open_timeout=10):
            print("opened")
    except websockets.InvalidStatusCode as e:
        print(e.status_code)
asyncio.run(main())`,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    assert.equal(dec.decode(out.stdout).trim(), "404");
  },
);

for (const mode of ["plain", "deflate"] as const) {
  Deno.test({
    name:
      `the default app's WebSocket /echo serves Python websockets (${mode}): text, binary, fragmented, large, ping, close`,
    ignore: pythonSkip !== undefined,
    async fn() {
      await using app = await startApp();
      const seen = await runPython(`ws://127.0.0.1:${app.port}/echo`, mode, [
        "echo",
        `repeat=${PY_REPEAT}`,
      ]);
      assert.deepEqual(
        seen,
        pythonSaw(mode === "deflate" ? ECHO_DEFLATE : null),
      );
    },
  });
}

/** A Hono app written for Deno.serve: `upgradeWebSocket` from `hono/deno`, a page, and our upgrade with compression. */
function honoApp(events: string[] = []): Hono {
  const app = new Hono();
  app.get("/", (c) => c.html("<!doctype html><title>hono</title>"));
  app.get(
    "/ws",
    honoUpgrade(() => ({
      onOpen: () => events.push("open"),
      onMessage: (e, ws) => ws.send(e.data as string | ArrayBuffer),
      onClose: (e) => events.push(`close ${e.code}`),
    })),
  );
  app.get("/ws-deflate", (c) => {
    const { socket, response } = upgradeWebSocket(c.req.raw, {
      compression: true,
    });
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  return app;
}

Deno.test("a Hono app with hono/deno's upgradeWebSocket runs unchanged: Deno's WebSocket echoes and both sides see the close", async () => {
  const events: string[] = [];
  await using server = serveFetch({
    port: 0,
    accessLog: false,
    fetch: honoApp(events).fetch,
  });
  const ws = await openWebSocket(`ws://127.0.0.1:${server.port}/ws`);
  assert.equal(await roundTrip(ws, "from Deno"), "from Deno");
  const bytes = new Uint8Array([1, 2, 3, 250]);
  assert.deepEqual(
    new Uint8Array(await roundTrip(ws, bytes) as ArrayBuffer),
    bytes,
  );
  assert.equal((await closeWith(ws, 4000)).code, 4000);
  assert.deepEqual(events, ["open", "close 4000"]);
  // Hono's plain routes are untouched.
  const page = await fetch(`http://127.0.0.1:${server.port}/`);
  assert.match(await page.text(), /<title>hono<\/title>/);
});

const honoRefusals: [
  name: string,
  path: string,
  headers: Record<string, string>,
  status: number,
  says: string,
][] = [
  [
    "an empty key",
    "/ws",
    {
      ...HANDSHAKE,
      "sec-websocket-key": "",
    },
    400,
    "Sec-WebSocket-Key is not 16 bytes of base64",
  ],
  [
    "version 8",
    "/ws",
    {
      ...HANDSHAKE,
      "sec-websocket-version": "8",
    },
    426,
    "Sec-WebSocket-Version must be 13",
  ],
  [
    "no Connection: upgrade",
    "/ws-deflate",
    {
      ...HANDSHAKE,
      connection: "keep-alive",
    },
    400,
    "Connection header does not name upgrade",
  ],
  [
    "a plain GET to upgradeWebSocket()",
    "/ws-deflate",
    {},
    426,
    "WebSocket only",
  ],
];
for (const [name, path, headers, status, says] of honoRefusals) {
  Deno.test(`a Hono app's WebSocket route answers ${name} with ${status} and why, not the 500 Hono's onError makes of the throw`, async () => {
    // Hono logs what it caught with console.error: kept out of the output.
    const logged: unknown[] = [];
    const error = console.error;
    console.error = (...args: unknown[]) => logged.push(args);
    try {
      await using server = serveFetch({
        port: 0,
        accessLog: false,
        fetch: honoApp([]).fetch,
      });
      for (const accept of ["application/json", "*/*"]) {
        const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
          headers: { ...headers, accept },
        });
        const body = await res.text();
        assert.equal(res.status, status, body);
        if (accept === "application/json") {
          assert.equal(JSON.parse(body).status, status);
        }
        assert.ok(body.includes(says), body);
        if (says === "WebSocket only") {
          // RFC 9110 §7.8: the Upgrade of a 426 is named in Connection too.
          assert.equal(res.headers.get("upgrade"), "websocket");
          assert.equal(res.headers.get("connection"), "Upgrade");
        }
      }
    } finally {
      console.error = error;
    }
    assert.equal(logged.length, 2, "Hono caught and logged each throw");
  });
}

for (
  const [path, mode, extensions] of [
    ["/ws", "plain", null],
    ["/ws-deflate", "deflate", "permessage-deflate"],
  ] as const
) {
  Deno.test({
    name:
      `a Hono app serves Python websockets (${mode}) on ${path}: text, binary, fragmented, large, ping, close`,
    ignore: pythonSkip !== undefined,
    async fn() {
      await using server = serveFetch({
        port: 0,
        accessLog: false,
        fetch: honoApp().fetch,
      });
      const seen = await runPython(
        `ws://127.0.0.1:${server.port}${path}`,
        mode,
        ["echo", `repeat=${PY_REPEAT}`],
      );
      assert.deepEqual(seen, pythonSaw(extensions));
    },
  });
}

Deno.test({
  name:
    "headless Chromium (one browser) talks WebSocket to the default app's /echo with permessage-deflate and to a Hono app's hono/deno upgradeWebSocket",
  ignore: chromiumSkip !== undefined,
  async fn(t) {
    await using browser = await Browser.launch();
    await t.step("the default app's /echo, compressed", async () => {
      await using app = await startApp();
      assert.deepEqual(await inChromium(browser, app.origin, "/echo"), {
        extensions: ECHO_DEFLATE,
        text: true,
        binary: true,
        large: true,
        close: [4000, "bye", true],
      });
    });
    await t.step("a Hono app's /ws (hono/deno)", async () => {
      const events: string[] = [];
      await using server = serveFetch({
        port: 0,
        accessLog: false,
        fetch: honoApp(events).fetch,
      });
      const origin = `http://127.0.0.1:${server.port}`;
      assert.deepEqual(await inChromium(browser, origin, "/ws"), {
        extensions: "",
        text: true,
        binary: true,
        large: true,
        close: [4000, "bye", true],
      });
      assert.deepEqual(events, ["open", "close 4000"]);
    });
  },
});

/**
 * Run in the page: one socket per size to `path`, each sending that many
 * random bytes; what came back ("echoed", "changed") or the close code.
 */
function pageLimits(path: string, sizes: readonly number[]): string {
  return `(async () => {
    const out = [];
    for (const size of ${JSON.stringify(sizes)}) {
      const ws = new WebSocket("ws://" + location.host + ${
    JSON.stringify(path)
  });
      ws.binaryType = "arraybuffer";
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("WebSocket error"));
      });
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) {
        crypto.getRandomValues(data.subarray(i, i + 65536));
      }
      const got = await new Promise((resolve) => {
        ws.onmessage = (e) => {
          const back = new Uint8Array(e.data);
          resolve(back.length === size && back.every((b, i) => b === data[i])
            ? "echoed" : "changed");
        };
        ws.onclose = (e) => resolve(e.code);
        ws.send(data);
      });
      out.push([ws.extensions !== "", got]);
      ws.onclose = null;
      ws.close();
    }
    return out;
  })()`;
}

Deno.test({
  name:
    "Chromium sends the default app's /echo 1 MiB less 16 and 1 MiB of random bytes compressed, and gets 1009 for 1 MiB + 1",
  ignore: chromiumSkip !== undefined,
  async fn() {
    await using browser = await Browser.launch();
    await using app = await startApp();
    await within(browser.goto(`${app.origin}/`), 30_000, "the page loads");
    const mib = 1024 * 1024;
    const got = await within(
      browser.eval(pageLimits("/echo", [mib - 16, mib, mib + 1])),
      60_000,
      "the page's WebSocket exchange",
    );
    assert.deepEqual(got, [[true, "echoed"], [true, "echoed"], [true, 1009]]);
  },
});
