/**
 * The default app (createApp) over real sockets: every route, its error
 * paths, and the middleware around them as main.ts wires them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_APP, DEFAULT_STATIC } from "../lib/app/settings.ts";
import { createApp } from "../lib/app/routes.ts";
import type { Reply } from "../lib/http/handler.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { fake, gunzip } from "./fixtures/app_request.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import {
  canMountTmpfs,
  INDEX_HTML,
  listDir,
  startApp,
} from "./fixtures/app_server.ts";
import {
  connect,
  encoder,
  exchange,
  ReplyReader,
  send,
  waitFor,
} from "./helpers/socket.ts";

function raw(method: string, target: string, headers = "", body = ""): string {
  const length = body === "" && method === "GET"
    ? ""
    : `Content-Length: ${encoder.encode(body).length}\r\n`;
  return `${method} ${target} HTTP/1.1\r\nHost: localhost\r\n${headers}${length}\r\n${body}`;
}

Deno.test("GET /echo/{text} answers text/plain with the decoded text", async () => {
  await using app = await startApp();
  const table: [target: string, body: string, type: string][] = [
    ["/echo/abc", "abc", "text/plain"],
    ["/echo/a%20b", "a b", "text/plain"],
    ["/echo/%C3%A9t%C3%A9", "été", "text/plain; charset=utf-8"],
  ];
  for (const [target, body, type] of table) {
    const reply = await exchange(app.port, raw("GET", target));
    assert.equal(reply.status, 200, target);
    assert.equal(reply.text, body);
    assert.equal(reply.headers.get("content-type"), type);
    assert.equal(
      reply.headers.get("content-length"),
      String(encoder.encode(body).length),
    );
  }
});

Deno.test("GET /echo/{text} gzips when accepted, however short", async () => {
  await using app = await startApp();
  const reply = await exchange(
    app.port,
    raw("GET", "/echo/abc", "Accept-Encoding: gzip\r\n"),
  );
  assert.equal(reply.headers.get("content-encoding"), "gzip");
  assert.equal(reply.headers.get("content-length"), String(reply.body.length));
  assert.equal(await gunzip(reply.body), "abc");
  const head = await exchange(
    app.port,
    raw("HEAD", "/echo/abc", "Accept-Encoding: gzip\r\n"),
    { head: true },
  );
  assert.equal(
    head.headers.get("content-length"),
    reply.headers.get("content-length"),
  );
  assert.equal(head.body.length, 0);
});

Deno.test("GET /user-agent answers the User-Agent value", async () => {
  await using app = await startApp();
  const reply = await exchange(
    app.port,
    raw("GET", "/user-agent", "User-Agent: spindle-test/1.0\r\n"),
  );
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "spindle-test/1.0");
  assert.equal(reply.headers.get("content-type"), "text/plain");
  // The answer differs by client: no shared cache may hand it to another one.
  assert.equal(reply.headers.get("vary"), "User-Agent");
  const none = await exchange(app.port, raw("GET", "/user-agent"));
  assert.equal(none.status, 200);
  assert.equal(none.text, "");
});

Deno.test("POST /echo answers JSON with the query and the user agent", async () => {
  await using app = await startApp();
  const res = await fetch(`${app.origin}/echo?x=1&x=2&y=%20z&flag`, {
    method: "POST",
    headers: { "user-agent": "ua/2" },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    query: { x: ["1", "2"], y: " z", flag: "" },
    userAgent: "ua/2",
  });
});

Deno.test("GET /files/{name} sends the file as octet-stream, 404 when missing", async () => {
  await using app = await startApp();
  const bytes = Uint8Array.from({ length: 300 }, (_, i) => i & 255);
  await Deno.writeFile(join(app.directory, "blob.bin"), bytes);
  const res = await fetch(`${app.origin}/files/blob.bin`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/octet-stream");
  assert.deepEqual(await res.bytes(), bytes);
  const missing = await fetch(`${app.origin}/files/nope.bin`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  await Deno.mkdir(join(app.directory, "sub"));
  const folder = await fetch(`${app.origin}/files/sub`);
  assert.equal(folder.status, 404, "a folder is not a file");
  await folder.body?.cancel();
});

Deno.test("POST /files/{name} stores the raw body, 201, replacing an older file", async () => {
  await using app = await startApp();
  for (const content of ["first version", "second"]) {
    const res = await fetch(`${app.origin}/files/note.txt`, {
      method: "POST",
      body: content,
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("location"), "/files/note.txt");
    await res.body?.cancel();
    assert.equal(
      await Deno.readTextFile(join(app.directory, "note.txt")),
      content,
    );
  }
  assert.deepEqual(await listDir(app.directory), ["note.txt"]);
});

const badNames: [target: string, status: number][] = [
  ["/files/a/b", 400], // a separator
  ["/files/.hidden", 400],
  ["/files/..", 400], // canonicalPath: dot segment
  ["/files/%2e%2e", 400],
  ["/files/a%2Fb", 400], // encoded slash
  ["/files/a%5Cb", 400], // backslash
  ["/files/a%00b", 400],
  ["/files/" + "%C3%A9".repeat(128), 400], // 128 characters, 256 bytes
  ["/files/", 404],
];
for (const [target, status] of badNames) {
  const label = target.length > 40 ? `${target.slice(0, 30)}...` : target;
  Deno.test(`/files answers ${status} for ${label}, reading and writing nothing`, async () => {
    await using app = await startApp();
    for (const method of ["GET", "POST"]) {
      const reply = await exchange(app.port, raw(method, target, "", "data"));
      assert.equal(reply.status, status, `${method} ${target}`);
    }
    assert.deepEqual(await listDir(app.directory), []);
  });
}

Deno.test("POST /files/{name} answers 409 when a folder has the name, leaving it as it was", async () => {
  await using app = await startApp();
  await Deno.mkdir(join(app.directory, "sub"));
  await Deno.writeTextFile(join(app.directory, "sub", "x"), "x");
  const reply = await exchange(app.port, raw("POST", "/files/sub", "", "data"));
  assert.equal(reply.status, 409);
  assert.deepEqual(await listDir(app.directory), ["sub"]);
  assert.deepEqual(await listDir(join(app.directory, "sub")), ["x"]);
});

Deno.test("GET /files/{name} answers 404 at once for a FIFO, never opening it", async () => {
  await using app = await startApp();
  const fifo = join(app.directory, "pipe");
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(made.success, "mkfifo");
  try {
    const res = await fetch(`${app.origin}/files/pipe`, {
      signal: AbortSignal.timeout(10_000), // else it would hang
    });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } catch (err) {
    // Unblock the server's open() so the server can stop, then fail.
    (await Deno.open(fifo, { write: true })).close();
    throw err;
  }
});

Deno.test("POST /files/{name} leaves no file when the client sends half and closes", async () => {
  await using app = await startApp();
  const conn = await connect(app.port);
  await send(
    conn,
    "POST /files/part.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n",
  );
  await send(conn, "x".repeat(50_000));
  // The first half is on disk, in a temp file (atomic_write.ts's prefix).
  const dir = app.directory;
  const tempSize = () => {
    const temp = [...Deno.readDirSync(dir)].find((e) =>
      e.name.startsWith(".tmp-")
    );
    return temp === undefined ? -1 : Deno.statSync(join(dir, temp.name)).size;
  };
  await waitFor(() => tempSize() === 50_000, "the half-written temp file");
  conn.close();
  await waitFor(
    () => app.stats.active === 0,
    "the server to drop the connection",
  );
  assert.deepEqual(await listDir(app.directory), []);
});

Deno.test("/files routes do not exist without a directory", async () => {
  await using app = await startApp({ app: { directory: undefined } });
  assert.equal((await exchange(app.port, raw("GET", "/files/x"))).status, 404);
  assert.notEqual(
    (await exchange(app.port, raw("POST", "/files/x", "", "data"))).status,
    201,
  );
});

Deno.test("GET /health answers 200 while serving and 503 while draining", async () => {
  await using app = await startApp();
  const ok = await fetch(`${app.origin}/health`);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("cache-control"), "no-store");
  assert.deepEqual(await ok.json(), { status: "ok" });
  app.stats.draining = true;
  const draining = await fetch(`${app.origin}/health`);
  assert.equal(draining.status, 503);
  assert.deepEqual(await draining.json(), { status: "draining" });
  app.stats.draining = false;
});

Deno.test("GET /metrics answers Prometheus text to loopback with route templates", async () => {
  await using app = await startApp();
  await (await fetch(`${app.origin}/echo/one`)).body?.cancel();
  await (await fetch(`${app.origin}/echo/two`)).body?.cancel();
  await (await fetch(`${app.origin}/no-such-file`)).body?.cancel();
  const res = await fetch(`${app.origin}/metrics`);
  assert.equal(res.status, 200);
  assert.match(
    res.headers.get("content-type") ?? "",
    /^text\/plain; version=0\.0\.4/,
  );
  const body = await res.text();
  assert.match(
    body,
    /^spindle_http_requests_total\{route="\/echo\/\{text\}",status="2xx"\} 2$/m,
  );
  assert.match(
    body,
    /^spindle_http_requests_total\{route="static",status="4xx"\} 1$/m,
  );
  assert.doesNotMatch(body, /echo\/one/, "raw paths never become labels");
  for (
    const name of [
      "spindle_received_bytes_total",
      "spindle_sent_bytes_total",
      "spindle_connections_active",
      "spindle_connections_queued",
      "spindle_connections_rejected_total",
      "spindle_rate_limited_total",
      "spindle_uptime_seconds",
    ]
  ) {
    assert.match(body, new RegExp(`^${name} [0-9.]+$`, "m"), name);
  }
});

Deno.test("GET /metrics refuses clients beyond loopback unless metricsPublic", async () => {
  const viaProxy = { "x-forwarded-for": "203.0.113.7" };
  {
    await using app = await startApp({ app: { trustProxy: ["127.0.0.1"] } });
    const res = await fetch(`${app.origin}/metrics`, { headers: viaProxy });
    assert.equal(res.status, 403);
    await res.body?.cancel();
  }
  {
    await using app = await startApp({
      app: { trustProxy: ["127.0.0.1"], metricsPublic: true },
    });
    const res = await fetch(`${app.origin}/metrics`, { headers: viaProxy });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
});

Deno.test("GET /metrics refuses a loopback proxy's far clients, unless metricsPublic", async () => {
  // No --trust-proxy: the peer (a proxy on loopback) is the client, yet its
  // headers say who asked. Each header form is refused on its own.
  const table: [headers: Record<string, string>, status: number][] = [
    [{}, 200],
    [{ "x-forwarded-for": "127.0.0.1" }, 200],
    [{ forwarded: 'for="[::1]"' }, 200],
    [{ "x-forwarded-for": "203.0.113.7" }, 403],
    [{ "x-forwarded-for": "127.0.0.1, 203.0.113.7" }, 403],
    [{ forwarded: "for=192.0.2.60;proto=https" }, 403],
    [{ forwarded: "for=unknown" }, 403],
  ];
  {
    await using app = await startApp();
    for (const [headers, status] of table) {
      const res = await fetch(`${app.origin}/metrics`, { headers });
      assert.equal(res.status, status, JSON.stringify(headers));
      if (status === 403) {
        assert.match(await res.text(), /loopback clients only/);
      } else await res.body?.cancel();
    }
  }
  {
    await using app = await startApp({ app: { metricsPublic: true } });
    for (const [headers] of table) {
      const res = await fetch(`${app.origin}/metrics`, { headers });
      assert.equal(res.status, 200, JSON.stringify(headers));
      await res.body?.cancel();
    }
  }
});

Deno.test("GET /metrics judges the client a PROXY header names (a balancer on loopback)", async () => {
  // HAProxy on this machine: every connection comes from loopback, and the
  // PROXY header says who is behind it.
  await using app = await startApp({
    app: { trustProxy: ["loopback"] },
    serve: { proxyProtocolFrom: () => true },
  });
  const table: [header: string, status: number][] = [
    ["PROXY TCP4 203.0.113.9 127.0.0.1 5000 80\r\n", 403],
    ["PROXY TCP6 2001:db8::9 ::1 5000 80\r\n", 403],
    ["PROXY TCP4 127.0.0.1 127.0.0.1 5000 80\r\n", 200], // a local client
    ["PROXY UNKNOWN\r\n", 200], // the balancer's own connection
  ];
  for (const [header, status] of table) {
    const reply = await exchange(app.port, header + raw("GET", "/metrics"));
    assert.equal(reply.status, status, header);
  }
});

Deno.test("the app answers 421 to a foreign Host on loopback, and logs it", async () => {
  await using logs = await captureLogs();
  await using app = await startApp();
  const evil = await exchange(
    app.port,
    "GET / HTTP/1.1\r\nHost: rebind.evil.test\r\n\r\n",
  );
  assert.equal(evil.status, 421);
  const refusals = logs.of("spindle", "app", "host");
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0].properties.host, "rebind.evil.test");
  const good = await exchange(
    app.port,
    `GET / HTTP/1.1\r\nHost: localhost:${app.port}\r\n\r\n`,
  );
  assert.equal(good.status, 200);
  assert.equal(app.metrics.misdirected, 1);
});

Deno.test("the app takes any Host given allowedHosts: [*], and only listed ones otherwise", async () => {
  {
    await using app = await startApp({ app: { allowedHosts: ["*"] } });
    assert.equal(
      (await exchange(
        app.port,
        "GET / HTTP/1.1\r\nHost: anything.test\r\n\r\n",
      )).status,
      200,
    );
  }
  {
    await using app = await startApp({ app: { allowedHosts: ["site.test"] } });
    assert.equal(
      (await exchange(app.port, "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"))
        .status,
      200,
    );
    assert.equal(
      (await exchange(app.port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        .status,
      421,
    );
  }
});

Deno.test("the app rate-limits per client with 429, Retry-After, and counts it", async () => {
  const clock = { now: 1_000_000 };
  await using app = await startApp({
    app: { rateLimit: { limit: 2, windowMs: 10_000 } },
    now: () => clock.now,
  });
  const statuses: number[] = [];
  let last;
  for (let i = 0; i < 3; i++) {
    last = await exchange(app.port, raw("GET", "/echo/hi"));
    statuses.push(last.status);
  }
  assert.deepEqual(statuses, [200, 200, 429]);
  assert.equal(last?.headers.get("retry-after"), "15");
  assert.equal(last?.headers.get("ratelimit-remaining"), "0");
  assert.equal(app.metrics.rateLimited, 1);
  clock.now += 15_000;
  assert.equal((await exchange(app.port, raw("GET", "/echo/hi"))).status, 200);
});

Deno.test("the app never counts or refuses /health against the rate limit (load balancer checks)", async () => {
  const clock = { now: 1_000_000 };
  await using app = await startApp({
    app: { rateLimit: { limit: 1, windowMs: 10_000 } },
    now: () => clock.now,
  });
  for (let i = 0; i < 5; i++) {
    const reply = await exchange(app.port, raw("GET", "/health"));
    assert.equal(reply.status, 200, `check ${i}`);
    assert.equal(reply.headers.get("ratelimit-limit"), undefined);
  }
  assert.equal((await exchange(app.port, raw("GET", "/echo/a"))).status, 200);
  assert.equal((await exchange(app.port, raw("GET", "/echo/a"))).status, 429);
  assert.equal((await exchange(app.port, raw("GET", "/health"))).status, 200);
});

Deno.test("the app answers CORS preflights on API routes when --cors is set", async () => {
  await using app = await startApp({ app: { cors: "https://ui.test" } });
  const reply = await exchange(
    app.port,
    raw(
      "OPTIONS",
      "/upload",
      "Origin: https://ui.test\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n",
    ),
  );
  assert.equal(reply.status, 204);
  assert.equal(
    reply.headers.get("access-control-allow-origin"),
    "https://ui.test",
  );
  assert.equal(
    reply.headers.get("access-control-allow-methods"),
    "POST, OPTIONS",
  );
  assert.equal(
    reply.headers.get("access-control-allow-headers"),
    "content-type",
  );
});

Deno.test("the app serves static files for other paths, and refuses bad paths with 400", async () => {
  await using app = await startApp();
  const home = await exchange(app.port, raw("GET", "/"));
  assert.equal(home.status, 200);
  assert.equal(home.text, INDEX_HTML);
  assert.equal(
    (await exchange(app.port, raw("GET", "/missing.html"))).status,
    404,
  );
  for (const target of ["/%ZZ", "/a/../index.html", "/echo/%2F"]) {
    assert.equal(
      (await exchange(app.port, raw("GET", target))).status,
      400,
      target,
    );
  }
});

Deno.test("the app answers 405 with Allow, in JSON on API routes", async () => {
  await using app = await startApp();
  const reply = await exchange(app.port, raw("DELETE", "/health"));
  assert.equal(reply.status, 405);
  assert.equal(reply.headers.get("allow"), "GET, HEAD, OPTIONS");
  assert.equal(reply.headers.get("content-type"), "application/json");
  const options = await exchange(app.port, raw("OPTIONS", "/echo"));
  assert.equal(options.status, 204);
  // GET works there too, as a WebSocket upgrade.
  assert.equal(options.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
});

Deno.test("the app keeps a connection across routes and errors", async () => {
  await using app = await startApp();
  using conn = await connect(app.port);
  const reader = new ReplyReader(conn);
  const sequence: [string, number][] = [
    [raw("GET", "/echo/a"), 200],
    [raw("POST", "/upload", "Content-Type: application/json\r\n", "{bad"), 400],
    [raw("GET", "/nope"), 404],
    [raw("POST", "/upload", "Content-Type: application/json\r\n", "[1]"), 201],
    [raw("GET", "/user-agent"), 200],
  ];
  for (const [request, status] of sequence) {
    await send(conn, request);
    assert.equal((await reader.readReply()).status, status);
  }
});

Deno.test({
  name:
    "POST /files/{name} answers 507 on a really full file system and leaves no partial file",
  ignore: !(await canMountTmpfs()),
  async fn() {
    const dir = await Deno.makeTempDir();
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=16k", "tmpfs", dir],
    }).output();
    assert.ok(mounted.success);
    try {
      await using app = await startApp({ app: { directory: dir } });
      const big = "x".repeat(40_000); // more than the whole file system
      const res = await fetch(`${app.origin}/files/big.bin`, {
        method: "POST",
        body: big,
      });
      assert.equal(res.status, 507);
      assert.match(await res.text(), /Disk is full/);
      assert.deepEqual(await listDir(dir), []);
    } finally {
      await new Deno.Command("umount", { args: [dir] }).output();
      await Deno.remove(dir);
    }
  },
});

Deno.test("createApp() answers /echo, /user-agent and /health synchronously, with frozen constant fields", async () => {
  const base = await Deno.makeTempDir({ prefix: "spindle-app-" });
  try {
    const stats = new EngineStats();
    const handler = createApp({
      ...DEFAULT_APP,
      static: { ...DEFAULT_STATIC, root: base },
      uploads: join(base, "uploads"),
    }, { stats, hostname: "127.0.0.1", port: () => 8080 });
    for (const target of ["/echo/abc", "/user-agent", "/health"]) {
      const reply = handler(fake("GET", target).req);
      assert.ok(!(reply instanceof Promise), `${target}: no promise`);
      assert.equal(reply.status, 200, target);
      // A frozen record the engine meets again is copied as encoded bytes.
      assert.ok(Object.isFrozen(reply.headers), `${target}: frozen fields`);
    }
    const health = handler(fake("GET", "/health").req) as Reply;
    assert.equal(health.body, '{"status":"ok"}\n');
    stats.draining = true;
    const draining = handler(fake("GET", "/health").req) as Reply;
    assert.equal(draining.status, 503);
    assert.equal(draining.body, '{"status":"draining"}\n');
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
