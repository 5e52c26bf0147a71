import assert from "node:assert/strict";
import { HttpError } from "../lib/http/errors.ts";
import { AppRequest, NO_PARAMS } from "../lib/app/app_request.ts";
import { json, text } from "../lib/app/replies.ts";
import { afterNext, type Middleware, Router } from "../lib/app/router.ts";
import type { Reply } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { call, fake } from "./fixtures/app_request.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import { H2Client } from "./helpers/h2_client.ts";
import { runNatives } from "./helpers/natives.ts";
import { connect, readReply, send, waitFor } from "./helpers/socket.ts";

function demo(): Router {
  return new Router()
    .get("/", () => text("home"))
    .get("/users/me", () => text("me"))
    .get("/users/{id}", (req) => json(req.params))
    .put("/users/:id", (req) => json({ put: req.params.id }))
    .get("/users/{id}/posts/{post}", (req) => json(req.params))
    .get("/files/{*rest}", (req) => json(req.params))
    .post("/echo", () => text("posted"))
    .delete("/echo", () => text("deleted"));
}

const matches: [
  method: string,
  path: string,
  template: string | null,
  params: Record<string, string>,
][] = [
  ["GET", "/", "/", {}],
  ["GET", "/users/me", "/users/me", {}], // static beats the {id} pattern
  ["GET", "/users/42", "/users/{id}", { id: "42" }],
  ["PUT", "/users/42", "/users/:id", { id: "42" }],
  ["GET", "/users/7/posts/x.y", "/users/{id}/posts/{post}", {
    id: "7",
    post: "x.y",
  }],
  ["GET", "/files/a/b/c.txt", "/files/{*rest}", { rest: "a/b/c.txt" }],
  ["GET", "/files/", "/files/{*rest}", { rest: "" }],
  ["HEAD", "/users/42", "/users/{id}", { id: "42" }], // HEAD runs GET
  ["GET", "/users/", null, {}], // a param is never empty
  ["GET", "/users/42/", null, {}], // no trailing-slash guessing
  ["GET", "/users/42/posts", null, {}],
  ["GET", "/files", null, {}], // the tail needs its "/"
  ["GET", "/nope", null, {}],
];
for (const [method, path, template, params] of matches) {
  Deno.test(`Router.match() finds ${template ?? "nothing"} for ${method} ${path}`, () => {
    const m = demo().match(method, path);
    if (template === null) {
      assert.equal(m.kind, "none");
      return;
    }
    assert.equal(m.kind, "route");
    if (m.kind !== "route") return;
    assert.equal(m.route.template, template);
    assert.deepEqual({ ...m.params }, params);
  });
}

Deno.test("Router.match() shares one frozen params object on the static fast path", () => {
  const m = demo().match("GET", "/users/me");
  assert.equal(m.kind === "route" && m.params, NO_PARAMS);
  assert.ok(Object.isFrozen(NO_PARAMS));
});

Deno.test("Router stores params under V8's shared strings for their names (natives syntax)", async () => {
  // A name sliced from the template made the params object's keyed store
  // megamorphic on every request (~45 ns over sockets).
  const shared = await runNatives<Record<string, boolean>>(
    new URL("./fixtures/route_params_natives.ts", import.meta.url),
  );
  assert.deepEqual(shared, { text: true, id: true, post: true, name: true });
});

Deno.test("Router: each request keeps its own params, whatever the router matches next", async () => {
  const kept: AppRequest[] = [];
  const handler = new Router()
    .get("/users/me", (req) => (kept.push(req), text("me")))
    .get("/users/{id}", async (req) => {
      kept.push(req);
      await Promise.resolve(); // another request is routed meanwhile
      return json(req.params);
    })
    .handler();
  const first = call(handler, fake("GET", "/users/42").req);
  const second = call(handler, fake("GET", "/users/7").req);
  await call(handler, fake("GET", "/users/me").req);
  assert.equal((await first).text, '{"id":"42"}\n');
  assert.equal((await second).text, '{"id":"7"}\n');
  assert.deepEqual(kept.map((r) => ({ ...r.params })), [
    { id: "42" },
    { id: "7" },
    {},
  ]);
  // The table's match() still carries its params.
  const m = demo().match("GET", "/users/42");
  assert.deepEqual(m.kind === "route" && { ...m.params }, { id: "42" });
});

Deno.test("Router.match() reports the path's methods when only the method is wrong", () => {
  const m = demo().match("PATCH", "/users/42");
  assert.equal(m.kind, "method");
  if (m.kind !== "method") return;
  // Both templates that fit the path contribute: GET (so HEAD) and PUT.
  assert.equal(m.allow, "GET, PUT, HEAD, OPTIONS");
});

Deno.test("Router.match() takes the first pattern with this method, not just the first that fits", () => {
  const router = new Router()
    .get("/a/{x}", () => text("get"))
    .post("/{*rest}", () => text("post"));
  const m = router.match("POST", "/a/b");
  assert.equal(m.kind === "route" && m.route.template, "/{*rest}");
});

const badTemplates = [
  "no-slash",
  "/a/{*rest}/b",
  "/a/{x}/{x}",
  "/a/{1x}",
  "/a/b{x}",
];
for (const template of badTemplates) {
  Deno.test(`Router.route() refuses the template ${template}`, () => {
    assert.throws(() => new Router().get(template, () => text("")), TypeError);
  });
}

Deno.test("Router.route() refuses the same method and template twice", () => {
  const router = new Router().get("/x", () => text(""));
  assert.throws(() => router.get("/x", () => text("")), /registered twice/);
  assert.throws(
    () => router.all("/y", () => text("")).all("/y", () => text("")),
    /twice/,
  );
});

Deno.test("Router.handler() answers 405 with Allow for a known path and another method", async () => {
  const a = await call(demo().handler(), fake("PATCH", "/echo").req);
  assert.equal(a.status, 405);
  assert.equal(a.headers.get("allow"), "POST, DELETE, OPTIONS");
});

Deno.test("Router.handler() answers OPTIONS with 204 and Allow", async () => {
  const a = await call(demo().handler(), fake("OPTIONS", "/users/5").req);
  assert.equal(a.status, 204);
  assert.equal(a.headers.get("allow"), "GET, PUT, HEAD, OPTIONS");
});

Deno.test("Router.handler() runs the GET handler for HEAD", async () => {
  const seen: string[] = [];
  const router = new Router().get("/x", (req) => {
    seen.push(req.method);
    return text("body");
  });
  const a = await call(router.handler(), fake("HEAD", "/x").req);
  assert.equal(a.status, 200);
  assert.deepEqual(seen, ["HEAD"]);
});

Deno.test("Router.handler() answers 404 for an unknown path, or calls the fallback", async () => {
  const router = demo();
  assert.equal(
    (await call(router.handler(), fake("GET", "/nope").req)).status,
    404,
  );
  const routes: (string | undefined)[] = [];
  router.use((req, next) => {
    routes.push(req.route);
    return next();
  });
  router.fallback((req) => text(`fallback ${req.path}`), "static");
  const a = await call(router.handler(), fake("GET", "/nope").req);
  assert.equal(a.text, "fallback /nope");
  assert.deepEqual(routes, ["static"]);
});

Deno.test("Router.handler() decodes params once, from the canonical path", async () => {
  const handler = demo().handler();
  const table: [target: string, id: string][] = [
    ["/users/a%20b", "a b"],
    ["/users/%C3%A9", "é"],
    ["/users/%2541", "%41"], // decoded once: not "A"
  ];
  for (const [target, id] of table) {
    const a = await call(handler, fake("GET", target).req);
    assert.equal(a.status, 200, target);
    assert.deepEqual(JSON.parse(a.text), { id }, target);
  }
});

Deno.test("Router.handler() answers 400 for paths canonicalPath() refuses, after middleware ran", async () => {
  const seen: (string | undefined)[] = [];
  const router = demo().use((req, next) => {
    seen.push(req.route);
    return next();
  });
  for (
    const target of [
      "/users/%2F",
      "/files/../etc/passwd",
      "/users/%ZZ",
      "/files/a//b",
    ]
  ) {
    const a = await call(router.handler(), fake("GET", target).req);
    assert.equal(a.status, 400, target);
  }
  assert.deepEqual(seen, [undefined, undefined, undefined, undefined]);
});

Deno.test("Router.use() runs middleware in order, around the route, and lets one answer early", async () => {
  const log: string[] = [];
  const tag = (name: string): Middleware => async (req, next) => {
    log.push(`${name}>`);
    if (req.header("x-stop") === name) return text(`stopped by ${name}`);
    const reply = await next();
    log.push(`<${name}`);
    return reply;
  };
  const router = new Router().use(tag("a"), tag("b")).get("/x", () => {
    log.push("route");
    return text("x");
  }, { use: [tag("r")] });
  await call(router.handler(), fake("GET", "/x").req);
  assert.deepEqual(log, ["a>", "b>", "r>", "route", "<r", "<b", "<a"]);
  log.length = 0;
  const a = await call(
    router.handler(),
    fake("GET", "/x", { headers: { "x-stop": "b" } }).req,
  );
  assert.equal(a.text, "stopped by b");
  assert.deepEqual(log, ["a>", "b>", "<a"]);
});

Deno.test("Router.handler() checks the contract from the head: 413 before reading, no 100 Continue", async () => {
  let ran = false;
  const router = new Router().post("/up", async (req) => {
    ran = true;
    return text(await req.text());
  }, { maxBodyBytes: 8, contentType: "application/json" });
  const f = fake("POST", "/up", {
    headers: { "content-type": "application/json", expect: "100-continue" },
    body: "x".repeat(9),
  });
  const a = await call(router.handler(), f.req);
  assert.equal(a.status, 413);
  assert.equal(a.error?.close, true);
  assert.equal(f.continues(), 0);
  assert.equal(f.body.started, false);
  assert.equal(ran, false);
});

const mediaCases: [contentType: string | undefined, status: number][] = [
  ["application/json", 200],
  ["Application/JSON; charset=utf-8", 200],
  ["application/ld+json", 200],
  ["text/plain", 415],
  [undefined, 415],
  ["application/jsonx", 415],
];
for (const [contentType, status] of mediaCases) {
  Deno.test(`Router.handler() answers ${status} for Content-Type ${contentType} on a JSON route`, async () => {
    const router = new Router().post("/up", (req) => text(req.path), {
      contentType: ["application/json", "application/*+json"],
    });
    const headers: Record<string, string> = { expect: "100-continue" };
    if (contentType) headers["content-type"] = contentType;
    const f = fake("POST", "/up", { headers, body: "{}" });
    const a = await call(router.handler(), f.req);
    assert.equal(a.status, status);
    if (status === 415) assert.equal(f.continues(), 0);
  });
}

Deno.test("Router.handler() enforces the route limit on a chunked body while reading", async () => {
  const router = new Router().post(
    "/up",
    async (req) => text(await req.text()),
    {
      maxBodyBytes: 4,
    },
  );
  const small = await call(
    router.handler(),
    fake("POST", "/up", { body: "abcd", chunked: true }).req,
  );
  assert.equal(small.text, "abcd");
  const big = await call(
    router.handler(),
    fake("POST", "/up", { body: "abcde", chunked: true }).req,
  );
  assert.equal(big.status, 413);
});

Deno.test("Router.handler({ maxBodyBytes }) holds routes without a limit, and the fallback, to it; a route's own limit wins", async () => {
  const router = new Router()
    .post("/plain", async (req) => text(await req.text()))
    .post("/big", async (req) => text(String((await req.bytes()).length)), {
      maxBodyBytes: 16,
    })
    .fallback(async (req) => text(String((await req.bytes()).length)));
  const handler = router.handler({ maxBodyBytes: 4 });
  const cases: [
    path: string,
    body: string,
    chunked: boolean,
    status: number,
  ][] = [
    ["/plain", "abcd", false, 200],
    ["/plain", "abcde", false, 413], // from Content-Length, before reading
    ["/plain", "abcde", true, 413], // while reading
    ["/big", "x".repeat(16), false, 200],
    ["/big", "x".repeat(17), true, 413],
    ["/elsewhere", "abcde", true, 413],
  ];
  for (const [path, body, chunked, status] of cases) {
    const f = fake("POST", path, { body, chunked });
    const a = await call(handler, f.req);
    assert.equal(a.status, status, `${path} ${body.length} ${chunked}`);
  }
});

/** A router whose errors show how the engine renders them: one JSON route, one plain. */
function errorRouter(): Router {
  return new Router()
    .get("/api", () => {
      throw new HttpError(409, "clash", {
        expose: "It clashed",
        headers: { "x-why": "test" },
      });
    }, { jsonErrors: true })
    .post("/api", (req) => text(req.path), {
      maxBodyBytes: 1,
      jsonErrors: true,
    })
    .get("/broken", () => {
      throw new HttpError(500, "disk on fire");
    }, { jsonErrors: true })
    .get("/page", () => {
      throw new HttpError(409, "clash", { expose: "It clashed" });
    });
}

Deno.test("Router.handler() has the engine render JSON errors on jsonErrors routes unless the client names HTML or JSON", async () => {
  await using logs = await captureLogs();
  await using server = serve({ port: 0 }, errorRouter().handler());
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;
  for (const accept of [undefined, "*/*", "text/plain"]) {
    const headers: Record<string, string> = accept ? { accept } : {};
    const res = await fetch(url("/api"), { headers });
    assert.equal(res.status, 409);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("x-why"), "test");
    assert.equal(res.headers.get("cache-control"), "no-store"); // as every error
    assert.deepEqual(await res.json(), { error: "It clashed", status: 409 });
  }
  const html = await fetch(url("/api"), { headers: { accept: "text/html" } });
  assert.match(html.headers.get("content-type")!, /^text\/html/);
  assert.match(await html.text(), /<p>It clashed<\/p>/);
  const page = await fetch(url("/page"));
  assert.match(page.headers.get("content-type")!, /^text\/plain/);
  assert.equal(await page.text(), "It clashed\n");
  // 405s on a JSON route's path are JSON too.
  const wrong = await fetch(url("/api"), { method: "DELETE" });
  assert.equal(wrong.headers.get("content-type"), "application/json");
  assert.equal(wrong.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
  await wrong.body?.cancel();
  // One log path: the access line says why on either route, and a server
  // failure on a JSON route is logged as on any other.
  const broken = await fetch(url("/broken"));
  assert.deepEqual(await broken.json(), {
    error: "Internal Server Error",
    status: 500,
  });
  await waitFor(() => logs.access().length === 7, "seven access lines");
  const why = logs.access().map((l) => l.error);
  assert.deepEqual(why, [
    "clash",
    "clash",
    "clash",
    "clash",
    "clash",
    "DELETE not allowed on /api",
    "disk on fire",
  ]);
  const errors = logs.of("spindle", "http").filter((r) => r.level === "error");
  assert.equal(errors.length, 1, "the 500 is logged");
  assert.equal(errors[0].properties.reason, "disk on fire");
});

Deno.test("Router.handler() closes the connection after a JSON error that says so", async () => {
  await using server = serve(
    { port: 0, accessLog: false },
    errorRouter().handler(),
  );
  using conn = await connect(server.port);
  await send(
    conn,
    "POST /api HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nxx",
  );
  const reply = await readReply(conn);
  assert.equal(reply.status, 413);
  assert.equal(reply.headers.get("content-type"), "application/json");
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(JSON.parse(reply.text).status, 413);
});

Deno.test("Router.handler() has JSON errors rendered over HTTP/2 too", async () => {
  await using server = serve(
    { port: 0, h2c: true, accessLog: false },
    errorRouter().handler(),
  );
  await using c = await H2Client.connect(server.port);
  const r = await c.request("/api");
  assert.equal(r.status, 409);
  assert.equal(r.headers.get("content-type"), "application/json");
  assert.deepEqual(JSON.parse(r.text), { error: "It clashed", status: 409 });
  const big = await c.request("/api", {
    body: "xx",
    fields: [["content-length", "2"]],
  });
  assert.equal(big.status, 413);
  assert.equal(big.headers.get("connection"), undefined, "none in HTTP/2");
  assert.equal(JSON.parse(big.text).status, 413);
});

Deno.test("Router.onError() turns what layers, routes and the fallback throw into replies", async () => {
  const seen: string[] = [];
  const router = new Router()
    .use((req, next) => {
      if (req.path === "/layer") throw new HttpError(429, "slow down");
      return next();
    })
    .get("/sync", () => {
      throw new HttpError(409, "sync clash");
    })
    .get("/async", () => Promise.reject(new Error("async bug")))
    .get("/engine", () => {
      throw new HttpError(422, "left to the engine");
    })
    .fallback(() => {
      throw new HttpError(404, "no such thing");
    })
    .onError((err, req) => {
      seen.push(`${req.path} ${(err as Error).message}`);
      if (req.path === "/engine") throw err;
      return json({ oops: (err as Error).message }, { status: 599 });
    });
  const handler = router.handler();
  for (const path of ["/layer", "/sync", "/async", "/elsewhere"]) {
    const a = await call(handler, fake("GET", path).req);
    assert.equal(a.status, 599, path);
    assert.equal(JSON.parse(a.text).oops, seen.at(-1)!.slice(path.length + 1));
  }
  assert.equal((await call(handler, fake("GET", "/engine").req)).status, 422);
  assert.deepEqual(seen, [
    "/layer slow down",
    "/sync sync clash",
    "/async async bug",
    "/elsewhere no such thing",
    "/engine left to the engine",
  ]);
});

Deno.test("Router.all() answers every method, and the contract's methods narrow it", async () => {
  const router = new Router()
    .all("/any", (req) => text(req.method))
    .route("/some", { methods: ["GET", "POST"] }, (req) => text(req.method));
  const handler = router.handler();
  assert.equal((await call(handler, fake("PATCH", "/any").req)).text, "PATCH");
  assert.equal((await call(handler, fake("POST", "/some").req)).text, "POST");
  const a = await call(handler, fake("PUT", "/some").req);
  assert.equal(a.status, 405);
  assert.equal(a.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
});

const UPGRADE = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

Deno.test("Router.ws() takes a WebSocket upgrade, with the route's params, and leaves other requests to the path's routes", async () => {
  const seen: string[] = [];
  const router = new Router()
    .post("/echo", () => text("posted"))
    .ws("/echo", () => {})
    .ws("/rooms/{room}", (ws, req) => {
      seen.push(`${req.params.room} ${ws.url}`);
    });
  const handler = router.handler();
  const room = await call(
    handler,
    fake("GET", "/rooms/blue?x=1", { headers: UPGRADE }).req,
  );
  assert.equal(room.status, 101);
  assert.equal(
    room.headers.get("sec-websocket-accept"),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.deepEqual(seen, ["blue ws://localhost/rooms/blue?x=1"]);
  assert.equal(
    (await call(handler, fake("GET", "/echo", { headers: UPGRADE }).req))
      .status,
    101,
  );
  // No upgrade: the path answers as its HTTP routes say, POST included.
  assert.equal(
    (await call(handler, fake("POST", "/echo", { headers: UPGRADE }).req))
      .text,
    "posted",
  );
});

Deno.test("Router.ws() with handlers: open gets the socket and the request, messages come as plain values, close gets the client's code and reason (Deno's WebSocket over a real socket)", async () => {
  const closed = Promise.withResolvers<[string, number, string]>();
  const router = new Router().ws("/rooms/{room}", {
    open: (ws, req) => ws.send(`welcome to ${req.params.room}`),
    message: (ws, data) =>
      ws.send(typeof data === "string" ? `text ${data}` : data.reverse()),
    close: (ws, code, reason) =>
      closed.resolve([new URL(ws.url).pathname, code, reason]),
  });
  await using server = serve(
    { port: 0, hostname: "127.0.0.1", accessLog: false },
    router.handler(),
  );
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/rooms/blue`);
  ws.binaryType = "arraybuffer";
  const got: unknown[] = [];
  const three = Promise.withResolvers<void>();
  ws.onmessage = (e) => {
    got.push(typeof e.data === "string" ? e.data : [...new Uint8Array(e.data)]);
    if (got.length === 3) three.resolve();
  };
  ws.onopen = () => {
    ws.send("hi");
    ws.send(new Uint8Array([1, 2, 3]));
  };
  await three.promise;
  assert.deepEqual(got, ["welcome to blue", "text hi", [3, 2, 1]]);
  const clientClosed = new Promise((resolve) => ws.onclose = resolve);
  ws.close(4001, "bye");
  assert.deepEqual(await closed.promise, ["/rooms/blue", 4001, "bye"]);
  await clientClosed;
});

Deno.test("Router.ws() on a path whose other routes take no GET: a plain GET or HEAD gets 426 with Upgrade and Connection, other methods 405 with GET in Allow", async () => {
  const router = new Router()
    .post("/echo", () => text("posted"))
    .ws("/echo", () => {})
    .get("/rooms/{room}/info", () => text("info"))
    .put("/rooms/{room}", () => text("put"))
    .ws("/rooms/{room}", () => {});
  const handler = router.handler();
  for (const path of ["/echo", "/rooms/blue"]) {
    for (const method of ["GET", "HEAD"]) {
      const plain = await call(handler, fake(method, path).req);
      assert.equal(plain.status, 426, `${method} ${path}`);
      assert.equal(plain.headers.get("upgrade"), "websocket");
      assert.equal(plain.headers.get("connection"), "Upgrade");
      assert.ok(!plain.headers.has("allow"));
    }
    // A HEAD handshake is refused as on a WebSocket-only path.
    const head = await call(
      handler,
      fake("HEAD", path, { headers: UPGRADE }).req,
    );
    assert.equal(head.status, 400);
  }
  const put = await call(handler, fake("PUT", "/echo").req);
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
  const options = await call(handler, fake("OPTIONS", "/echo").req);
  assert.equal(options.status, 204);
  assert.equal(options.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
  const del = await call(handler, fake("DELETE", "/rooms/blue").req);
  assert.equal(del.status, 405);
  assert.equal(del.headers.get("allow"), "GET, PUT, HEAD, OPTIONS");
  assert.equal(
    (await call(handler, fake("PUT", "/rooms/blue").req)).text,
    "put",
  );
  assert.equal(
    (await call(handler, fake("GET", "/rooms/blue/info").req)).text,
    "info",
  );
});

Deno.test("Router.ws() takes an upgrade on a path an HTTP route fits too, whichever was added first, and reads Upgrade only on paths with a WebSocket route", async () => {
  const router = new Router()
    .ws("/rooms/{room}", () => {})
    .get("/{page}/{name}", (req) => text(`page ${req.params.page}`))
    .get("/lobby", () => text("lobby"))
    .ws("/{room}", () => {});
  const handler = router.handler();
  const status = async (path: string, headers?: Record<string, string>) =>
    (await call(handler, fake("GET", path, { headers }).req)).status;
  // The WebSocket pattern comes first: an upgrade takes it, a plain GET
  // goes on to the HTTP pattern after it.
  assert.equal(await status("/rooms/blue", UPGRADE), 101);
  assert.equal(
    (await call(handler, fake("GET", "/rooms/blue").req)).text,
    "page rooms",
  );
  // An exact HTTP route beats a WebSocket pattern, upgrade or not.
  assert.equal(
    (await call(handler, fake("GET", "/lobby", { headers: UPGRADE }).req))
      .text,
    "lobby",
  );
  assert.equal(await status("/hall", UPGRADE), 101);
  assert.equal(await status("/hall"), 426);

  // Counts the lookups of Upgrade a request's head gets.
  const upgradeLookups = async (path: string) => {
    const { req } = fake("GET", path, { headers: UPGRADE });
    let lookups = 0;
    const get = req.headers.get.bind(req.headers);
    req.headers.get = (name: string) => {
      if (name === "upgrade") lookups++;
      return get(name);
    };
    await call(handler, req);
    return lookups;
  };
  assert.equal(await upgradeLookups("/a/b"), 0); // no WebSocket route fits
  assert.equal(await upgradeLookups("/rooms/blue"), 1);
});

Deno.test("Router.ws() answers 426 with Upgrade: websocket to a plain request on a WebSocket-only path", async () => {
  const router = new Router().ws("/live", () => {}).fallback(() =>
    text("static")
  );
  const a = await call(router.handler(), fake("GET", "/live").req);
  assert.equal(a.status, 426);
  assert.equal(a.headers.get("upgrade"), "websocket");
  assert.equal(
    (await call(router.handler(), fake("GET", "/other").req)).text,
    "static",
  );
});

Deno.test("Router.ws() answers 400 to a handshake with a method other than GET on a WebSocket-only path, not a 426 that asks for it", async () => {
  const router = new Router().ws("/live", () => {});
  for (const method of ["POST", "PUT", "HEAD"]) {
    const reply = await call(
      router.handler(),
      fake(method, "/live", { headers: UPGRADE }).req,
    );
    assert.equal(reply.status, 400, method);
    assert.equal(
      reply.text,
      `Cannot upgrade to WebSocket: method is ${method}, not GET`,
    );
  }
});

Deno.test("Router answers a WebSocket handshake for a path with no route (fallback or none) with 404, and reads Upgrade there only for a GET", async () => {
  const withFallback = new Router().get("/page", () => text("page"))
    .fallback(() => text("static"));
  const bare = new Router().get("/page", () => text("page"));
  for (const router of [withFallback, bare]) {
    const refused = await call(
      router.handler(),
      fake("GET", "/index.html", { headers: UPGRADE }).req,
    );
    assert.equal(refused.status, 404);
    assert.equal(
      refused.text,
      "Cannot upgrade to WebSocket: there is none at this path",
    );
    // A path with an HTTP route answers as if Upgrade were not there.
    const page = fake("GET", "/page", { headers: UPGRADE }).req;
    assert.equal((await call(router.handler(), page)).text, "page");
  }
  const head = fake("HEAD", "/index.html", { headers: UPGRADE }).req;
  assert.equal((await call(withFallback.handler(), head)).text, "static");
  const plain = fake("GET", "/index.html").req;
  assert.equal((await call(withFallback.handler(), plain)).text, "static");
});

Deno.test("Router.ws() refuses a bad handshake (400), an origin not allowed (403), and a handler that throws (500, socket never opened)", async () => {
  const thrown: string[] = [];
  const router = new Router()
    .ws("/ws", () => {}, { origins: ["https://app.example"] })
    .ws("/broken", (ws) => {
      ws.onclose = () => thrown.push("closed before open");
      throw new Error("handler bug");
    });
  const handler = router.handler();
  const badKey = { ...UPGRADE, "sec-websocket-key": "short" };
  assert.equal(
    (await call(handler, fake("GET", "/ws", { headers: badKey }).req)).status,
    400,
  );
  const origin = { ...UPGRADE, origin: "https://evil.example" };
  assert.equal(
    (await call(handler, fake("GET", "/ws", { headers: origin }).req)).status,
    403,
  );
  const ok = { ...UPGRADE, origin: "https://app.example" };
  assert.equal(
    (await call(handler, fake("GET", "/ws", { headers: ok }).req)).status,
    101,
  );
  await assert.rejects(
    call(handler, fake("GET", "/broken", { headers: UPGRADE }).req),
    /handler bug/,
  );
  assert.deepEqual(thrown, ["closed before open"]);
});

Deno.test("Router.ws() refuses the same template twice", () => {
  assert.throws(
    () => new Router().ws("/a", () => {}).ws("/a", () => {}),
    /twice/,
  );
});

Deno.test("Router.match() tells apart static paths of one length", () => {
  const templates = ["/ab", "/cb", "/ac", "/a", "/abc"];
  const router = new Router();
  for (const t of templates) router.get(t, () => text(t));
  for (const t of templates) {
    const m = router.match("GET", t);
    assert.equal(m.kind === "route" && m.route.template, t);
  }
  for (const path of ["/bb", "/aa", "/b", "/abd"]) {
    assert.equal(router.match("GET", path).kind, "none", path);
  }
  // Past eight of one length the Map answers; the result is the same.
  const many = new Router();
  for (let i = 0; i < 20; i++) {
    many.get(`/p${i % 10}${i >= 10 ? "x" : "y"}`, () => text(""));
  }
  for (let i = 0; i < 20; i++) {
    const path = `/p${i % 10}${i >= 10 ? "x" : "y"}`;
    const m = many.match("GET", path);
    assert.equal(m.kind === "route" && m.route.template, path);
  }
  assert.equal(many.match("GET", "/p0z").kind, "none");
});

Deno.test("Router.handler() answers synchronously when the handler and every layer are", () => {
  const handler = new Router()
    .use((_req, next) => next())
    .use((req, next) => afterNext(req, next, (_req, reply) => reply))
    .get("/x/{id}", (req) => text(req.params.id), {
      use: [(_req, next) => next()],
    })
    .handler();
  const reply = handler(fake("GET", "/x/7").req);
  assert.ok(!(reply instanceof Promise), "no promise for a synchronous chain");
  assert.equal((reply as Reply).body, "7");
});

Deno.test("Router.handler() throws at once what a synchronous chain throws", () => {
  const handler = new Router()
    .use((req, next) => afterNext(req, next, (_req, reply) => reply))
    .get("/x", () => {
      throw new HttpError(409, "clash");
    })
    .handler();
  assert.throws(() => handler(fake("GET", "/x").req), { status: 409 });
  // A JSON route throws it on the same way, having told the engine to
  // render it as JSON.
  const f = fake("GET", "/x");
  const json = new Router()
    .get("/x", () => {
      throw new HttpError(409, "clash");
    }, { jsonErrors: true })
    .handler();
  assert.throws(() => json(f.req), { status: 409 });
  assert.equal(f.req.errorAccept, "application/json");
});

Deno.test("afterNext() hands over replies and errors, synchronous or not", async () => {
  const r = new AppRequest(fake("GET", "/").req, "/");
  const seen: string[] = [];
  const onReply = (_req: unknown, reply: Reply) => {
    seen.push(`reply ${reply.status}`);
    return { ...reply, status: reply.status + 1 };
  };
  const onError = (_req: unknown, err: unknown) => {
    seen.push(`error ${(err as Error).message}`);
    return { status: 500 };
  };
  const sync = afterNext(r, () => ({ status: 200 }), onReply, onError);
  assert.equal((sync as Reply).status, 201);
  const later = afterNext(
    r,
    () => Promise.resolve({ status: 300 }),
    onReply,
    onError,
  );
  assert.ok(later instanceof Promise);
  assert.equal((await later).status, 301);
  const thrown = afterNext(
    r,
    () => {
      throw new Error("now");
    },
    onReply,
    onError,
  );
  assert.equal((thrown as Reply).status, 500);
  const rejected = await afterNext(
    r,
    () => Promise.reject(new Error("later")),
    onReply,
    onError,
  );
  assert.equal(rejected.status, 500);
  assert.throws(
    () =>
      afterNext(r, () => {
        throw new Error("no handler");
      }, onReply),
    /no handler/,
  );
  assert.deepEqual(seen, [
    "reply 200",
    "reply 300",
    "error now",
    "error later",
  ]);
});

Deno.test("Router.use() leaves routesOnly middleware out for the fallback and 404s", async () => {
  const ran: string[] = [];
  // Both kinds of middleware: a function around next(), and hooks.
  const tag = (name: string, routesOnly: boolean): Middleware =>
    routesOnly
      ? {
        before: (req) => {
          ran.push(`${name} ${req.matched}`);
          return undefined;
        },
        routesOnly,
      }
      : (req, next) => {
        ran.push(`${name} ${req.matched}`);
        return next();
      };
  const router = new Router()
    .use(tag("all", false), tag("routes", true))
    .get("/api", () => text("api"));
  const noFallback = router.handler();
  assert.equal((await call(noFallback, fake("GET", "/nope").req)).status, 404);
  assert.equal((await call(noFallback, fake("POST", "/api").req)).status, 405);
  router.fallback(() => text("file"), "static");
  const handler = router.handler();
  await call(handler, fake("GET", "/api").req);
  await call(handler, fake("GET", "/page.html").req);
  assert.deepEqual(ran, [
    "all none",
    "all method",
    "routes method",
    "all route",
    "routes route",
    "all fallback",
  ]);
});

Deno.test("Router: a route's own layers run inside the router's, after the contract check, whose error only the router's layers see", async () => {
  const seen: string[] = [];
  const hooks = (name: string): Middleware => ({
    before: () => (seen.push(`${name} before`), undefined),
    after: (_req, reply) => (seen.push(`${name} after`), reply),
    error: (_req, err) => {
      seen.push(`${name} error`);
      throw err;
    },
  });
  const router = new Router()
    .use(hooks("router"))
    .post("/items", () => (seen.push("handler"), text("ok")), {
      contentType: "application/json",
      use: [hooks("route"), (_req, next) => {
        seen.push("route fn");
        return next();
      }],
    });
  const handler = router.handler();
  const json = { "content-type": "application/json" };
  const ok = await call(
    handler,
    fake("POST", "/items", { headers: json, body: "{}" }).req,
  );
  assert.equal(ok.status, 200);
  assert.deepEqual(seen, [
    "router before",
    "route before",
    "route fn",
    "handler",
    "route after",
    "router after",
  ]);
  seen.length = 0;
  const refused = await call(
    handler,
    fake("POST", "/items", { body: "x" }).req,
  );
  assert.equal(refused.status, 415);
  assert.deepEqual(seen, ["router before", "router error"]);
  // A layer added later reaches the route from the next request on.
  seen.length = 0;
  router.use(hooks("later"));
  await call(
    handler,
    fake("POST", "/items", { headers: json, body: "{}" }).req,
  );
  assert.deepEqual(seen.slice(0, 3), [
    "router before",
    "later before",
    "route before",
  ]);
});

Deno.test("Router.use() reaches a handler made before it, from the next request on", async () => {
  const router = new Router().get("/x", () => text("x"));
  const handler = router.handler();
  assert.equal((await call(handler, fake("GET", "/x").req)).text, "x");
  router.use((req, next) =>
    afterNext(req, next, (_req, reply) => ({ ...reply, body: "wrapped" }))
  );
  assert.equal((await call(handler, fake("GET", "/x").req)).text, "wrapped");
});
