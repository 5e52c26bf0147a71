/**
 * fromFetch() and serveFetch(): a real Hono app from npm on our engine,
 * over real sockets.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { stream as honoStream } from "hono/streaming";
import {
  fromFetch,
  serveFetch,
  toReply,
  toRequest,
} from "../lib/app/fetch_adapter.ts";
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
  setTimeout(() => {
    push("second");
    push(null);
  }, 10);
  assert.equal((await flatten(reply)).text, "first second");
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
