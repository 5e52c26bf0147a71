/**
 * fromFetch() and serveFetch(): a real Hono app from npm on our engine,
 * over real sockets; upgradeWebSocket() as Deno.upgradeWebSocket works.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { stream as honoStream } from "hono/streaming";
import {
  fromFetch,
  serveFetch,
  toReply,
  toRequest,
  upgradeWebSocket,
} from "../lib/app/fetch_adapter.ts";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { parseHead } from "../lib/http/parser.ts";
import { serve } from "../lib/http/server.ts";
import { fake, flatten } from "./fixtures/app_request.ts";
import {
  connect,
  ReplyReader,
  send,
  sleep,
  withTimeout,
} from "./helpers/socket.ts";

function honoApp(): Hono {
  const app = new Hono();
  app.get(
    "/users/:id",
    (c) => c.json({ id: c.req.param("id"), q: c.req.query("q") ?? null }),
  );
  app.post("/items", async (c) => {
    const item = await c.req.json();
    return c.json({ created: item }, 201);
  });
  app.post("/count", async (c) => {
    let bytes = 0;
    for await (const piece of c.req.raw.body!) bytes += piece.length;
    return c.text(`${bytes}`);
  });
  app.get("/stream", (c) =>
    honoStream(c, async (s) => {
      for (const word of ["one ", "two ", "three"]) {
        await s.write(word);
        await sleep(5);
      }
    }));
  app.get("/cookies", (c) => {
    c.header("set-cookie", "a=1; Path=/", { append: true });
    c.header("set-cookie", "b=2; Path=/", { append: true });
    return c.text("two cookies");
  });
  app.get("/whoami", (c) => {
    const env = c.env as { remoteAddr: Deno.NetAddr };
    return c.text(`${env.remoteAddr.hostname} ${new URL(c.req.url).host}`);
  });
  app.get("/empty", (c) => c.body(null, 204));
  return app;
}

Deno.test("serveFetch() serves a Hono app: params, query and JSON out", async () => {
  await using server = serveFetch({
    port: 0,
    accessLog: false,
    fetch: honoApp().fetch,
  });
  const res = await fetch(`http://127.0.0.1:${server.port}/users/a%20b?q=x`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(await res.json(), { id: "a b", q: "x" });
  const missing = await fetch(`http://127.0.0.1:${server.port}/nope`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("fromFetch() passes a JSON body in and a 201 out", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  const res = await fetch(`http://127.0.0.1:${server.port}/items`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "pen" }),
  });
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), { created: { name: "pen" } });
});

Deno.test("fromFetch() streams a chunked request body to the app", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(
    conn,
    "POST /count HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
  );
  for (let i = 0; i < 5; i++) {
    await send(conn, "3e8\r\n" + "x".repeat(1000) + "\r\n");
    await sleep(2);
  }
  await send(conn, "0\r\n\r\n");
  const reply = await reader.readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "5000");
});

Deno.test("fromFetch() streams a response as it is made, chunked", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  using conn = await connect(server.port);
  await send(conn, "GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.chunked, true);
  assert.equal(reply.text, "one two three");
});

Deno.test("fromFetch() sends a complete body with Content-Length, and keeps the connection", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  for (let i = 0; i < 2; i++) {
    await send(conn, "GET /users/7 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const reply = await reader.readReply();
    assert.equal(reply.chunked, false);
    assert.equal(
      reply.headers.get("content-length"),
      String(reply.body.length),
    );
    assert.deepEqual(JSON.parse(reply.text), { id: "7", q: null });
  }
});

Deno.test("fromFetch() keeps repeated Set-Cookie fields apart", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  using conn = await connect(server.port);
  await send(conn, "GET /cookies HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const reply = await new ReplyReader(conn).readReply();
  const cookies = reply.fields.filter(([name]) =>
    name.toLowerCase() === "set-cookie"
  ).map(([, v]) => v);
  assert.deepEqual(cookies, ["a=1; Path=/", "b=2; Path=/"]);
});

Deno.test("fromFetch() gives the app the peer address and builds the URL from Host", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  using conn = await connect(server.port);
  await send(conn, "GET /whoami HTTP/1.1\r\nHost: example.test:8080\r\n\r\n");
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.text, "127.0.0.1 example.test:8080");
});

Deno.test("fromFetch() answers HEAD and 204 without a body", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    fromFetch(honoApp().fetch),
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, "HEAD /users/1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const head = await reader.readReply({ head: true });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  await send(conn, "GET /empty HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const empty = await reader.readReply();
  assert.equal(empty.status, 204);
  assert.equal(empty.body.length, 0);
});

Deno.test("fromFetch() answers HEAD with the length GET would send", async () => {
  const app = () => new Response("hello");
  await using server = serve({ port: 0, accessLog: false }, fromFetch(app));
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, "HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const head = await reader.readReply({ head: true });
  assert.equal(head.headers.get("content-length"), "5");
  await send(conn, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  assert.equal((await reader.readReply()).text, "hello", "no stray body bytes");
});

Deno.test("toRequest() never lets a path like //host change the URL's host", () => {
  const { req } = fake("GET", "//evil.test/x?y=1", { host: "good.test" });
  const request = toRequest(req);
  assert.equal(new URL(request.url).host, "good.test");
  assert.equal(new URL(request.url).pathname, "//evil.test/x");
  assert.equal(request.body, null);
});

Deno.test("toRequest() answers 400 for a Host the URL parser refuses", () => {
  const { req } = fake("GET", "/", { host: "bad host" });
  assert.throws(() => toRequest(req), { status: 400 });
});

Deno.test("toRequest() gives the app each field of a parsed head as sent, after its buffer was reused", () => {
  const raw = "GET /p HTTP/1.1\r\nHost: a.test\r\nAccept: text/html\r\n" +
    "X-Pad:  \t two words \t\r\nACCEPT: */*\r\nX-Empty:\r\n" +
    "Cookie: a=1; b=2\r\n\r\n";
  const buf = new TextEncoder().encode(raw);
  const head = parseHead(buf, 0, buf.length, DEFAULT_LIMITS);
  buf.fill(0x78); // the connection reads the next request into it
  const { req } = fake("GET", "/p");
  const request = toRequest({ ...req, headers: head.headers, host: head.host });
  assert.deepEqual([...request.headers], [
    ["accept", "text/html, */*"],
    ["cookie", "a=1; b=2"],
    ["host", "a.test"],
    ["x-empty", ""],
    ["x-pad", "two words"],
  ]);
});

/** A body the test feeds by hand: `push(null)` ends it. */
function liveBody() {
  let push!: (text: string | null) => void;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (t) =>
        t === null
          ? controller.close()
          : controller.enqueue(new TextEncoder().encode(t));
    },
  });
  return { body, push };
}

Deno.test("toReply() streams a body that is still being produced", async () => {
  const { body, push } = liveBody();
  push("first ");
  const reply = await toReply(new Response(body));
  assert.ok(
    reply.body instanceof ReadableStream,
    "not buffered: the rest is not here yet",
  );
  const read = flatten(reply); // reading before the rest is made
  push("second");
  push(null);
  assert.equal((await read).text, "first second");
});

Deno.test("toReply() hands over a stream at once when its first chunk is not here yet", async () => {
  const { body, push } = liveBody();
  // An event stream, idle: its first chunk comes only after toReply() is
  // done, so waiting for it would never end.
  const reply = await withTimeout(
    toReply(new Response(body)),
    5000,
    "the head must not wait for the first chunk",
  );
  push("late");
  push(null);
  assert.equal((await flatten(reply)).text, "late");
});

const WS_HEADERS = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

/** The engine reply fromFetch() makes of `app`'s answer to an upgrade request. */
function upgradeCall(
  app: (request: Request) => Response | Promise<Response>,
  headers: Record<string, string> = WS_HEADERS,
) {
  return Promise.resolve(fromFetch(app)(fake("GET", "/ws", { headers }).req));
}

Deno.test("upgradeWebSocket() on a fetch-adapter request answers 101 as Deno's does; the reply hands the socket over", async () => {
  let opened: { readyState: number; protocol: string } | undefined;
  const reply = await upgradeCall((request) => {
    const { socket, response } = upgradeWebSocket(request, {
      protocol: "chat",
    });
    opened = socket;
    const out = new Response(null, response); // middleware may rebuild it
    out.headers.set("x-seen", "yes");
    return out;
  }, { ...WS_HEADERS, "sec-websocket-protocol": "chat, other" });
  assert.equal(reply.status, 101);
  assert.ok(reply.upgrade !== undefined, "the socket is handed over");
  const fields = new Map(reply.headers as [string, string][]);
  assert.equal(
    fields.get("sec-websocket-accept"),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.equal(fields.get("sec-websocket-protocol"), "chat");
  assert.equal(fields.get("x-seen"), "yes");
  assert.equal(opened?.protocol, "chat");
  assert.equal(opened?.readyState, 0, "open once the engine writes the 101");
  reply.upgrade!.cancel();
});

Deno.test("fromFetch() closes an upgraded socket that never opens when the app answers otherwise or throws", async () => {
  const closes: number[] = [];
  const answered = await upgradeCall((request) => {
    const { socket } = upgradeWebSocket(request);
    socket.onclose = (e) => closes.push(e.code);
    return new Response("not today", { status: 403 });
  });
  assert.equal(answered.status, 403);
  assert.equal(answered.upgrade, undefined);
  await assert.rejects(
    upgradeCall((request) => {
      const { socket } = upgradeWebSocket(request);
      socket.onclose = (e) => closes.push(e.code);
      throw new Error("app bug");
    }),
    /app bug/,
  );
  assert.deepEqual(closes, [1006, 1006]);
});

Deno.test("upgradeWebSocket() refuses a bad handshake with 400 and a second call for one request", async () => {
  await assert.rejects(
    upgradeCall((request) => upgradeWebSocket(request).response, {
      ...WS_HEADERS,
      "sec-websocket-key": "nope",
    }),
    { name: "HttpError", status: 400 },
  );
  await assert.rejects(
    upgradeCall((request) => {
      upgradeWebSocket(request);
      return upgradeWebSocket(request).response;
    }),
    /called twice/,
  );
});

Deno.test("a 101 response without upgradeWebSocket() is a 500, not a hung connection", async () => {
  await using server = serveFetch({
    port: 0,
    accessLog: false,
    fetch: () => new Response(null, { status: 101 }),
  });
  const res = await fetch(`http://127.0.0.1:${server.port}/`);
  await res.body?.cancel();
  assert.equal(res.status, 500);
});

Deno.test("upgradeWebSocket() leaves Deno.serve's requests to Deno.upgradeWebSocket, so one app runs on both", async () => {
  fromFetch(() => new Response()); // routes Deno.upgradeWebSocket through ours
  const app = (request: Request) => {
    const { socket, response } = upgradeWebSocket(request);
    socket.onmessage = (e) => socket.send(`deno: ${e.data}`);
    return response;
  };
  const ac = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: ac.signal,
    onListen() {},
  }, app);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
    await new Promise((resolve) => ws.onopen = resolve);
    const got = new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
    ws.send("hi");
    assert.equal(await got, "deno: hi");
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
  } finally {
    ac.abort();
    await server.finished;
  }
});
