/**
 * The engine speaking HTTP/2 over real sockets: serve() with `h2c` (prior
 * knowledge on plain TCP) or TLS with ALPN h2, driven frame by frame by
 * tests/helpers/h2_client.ts. The handler API, bodies, errors, the access
 * line, deadlines and shutdown, as HTTP/1.1 has them.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import { HttpError } from "../lib/http/errors.ts";
import { FileBody, type Handler } from "../lib/http/handler.ts";
import { serve, type ServeOptions } from "../lib/http/server.ts";
import { TlsCertificate } from "../lib/http/tls.ts";
import { makeSelfSigned } from "../lib/self_signed.ts";
import { certificate } from "./helpers/cert.ts";
import { startTls, TRANSPORTS } from "./helpers/tls_server.ts";
import {
  ERROR,
  type Fields,
  FRAME,
  H2Client,
  SETTING,
  streamOf,
} from "./helpers/h2_client.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import { exchange, get, withTimeout } from "./helpers/socket.ts";

const text = new TextEncoder();

/** A request's pseudo-header fields over h2c. */
function head(path: string, method = "GET"): Fields {
  return [
    [":method", method],
    [":scheme", "http"],
    [":path", path],
    [":authority", "localhost"],
  ];
}

function h2c(
  handler: Handler,
  limits: Partial<Limits> = {},
  extra: ServeOptions = {},
) {
  return serve(
    { port: 0, h2c: true, accessLog: false, limits, ...extra },
    handler,
  );
}

const echo: Handler = async (req) => {
  if (req.method === "POST" || req.method === "PUT") {
    const body = await req.body.bytes();
    return { status: 200, body };
  }
  return {
    status: 200,
    headers: { "content-type": "text/plain" },
    body: `${req.version} ${req.method} ${req.path} ${req.query} ${req.host}`,
  };
};

Deno.test("serve({h2c}) answers a prior-knowledge HTTP/2 request with the handler's reply", async () => {
  await using server = h2c(echo);
  await using c = await H2Client.connect(server.port);
  const r = await c.request("/a/b?x=1");
  assert.equal(r.status, 200);
  assert.equal(r.text, "HTTP/2 GET /a/b x=1 localhost");
  assert.equal(r.headers.get("content-type"), "text/plain");
  assert.equal(r.headers.get("content-length"), String(r.body.length));
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  assert.ok(r.headers.has("date"));
  // Our SETTINGS came first, with the limits.
  const settings = c.frames.find((f) => f.type === FRAME.SETTINGS && !f.ack);
  assert.ok(settings?.type === FRAME.SETTINGS);
  assert.deepEqual(
    new Map(settings.settings).get(SETTING.MAX_CONCURRENT_STREAMS),
    DEFAULT_LIMITS.h2MaxConcurrentStreams,
  );
});

Deno.test("serve({h2c}) keeps serving HTTP/1.1 on the same port", async () => {
  await using server = h2c(echo);
  const reply = await exchange(server.port, get("/plain"));
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "HTTP/1.1 GET /plain  localhost");
});

Deno.test("serve() without h2c answers the HTTP/2 preface as HTTP/1.1 does: 505", async () => {
  await using server = serve({ port: 0, accessLog: false }, echo);
  const reply = await exchange(
    server.port,
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  );
  assert.equal(reply.status, 505);
});

const pem = await certificate();

for (const [transport] of TRANSPORTS) {
  Deno.test({
    name:
      `${transport}: serve() over TLS offers h2 by ALPN, and only http/1.1 with http2: false`,
    ignore: pem === undefined,
  }, async () => {
    {
      await using server = await startTls(transport, pem!, echo);
      await using c = await H2Client.connect(server.port, {
        caCert: pem!.cert,
      });
      assert.equal(c.alpn, "h2");
      const r = await c.request("/tls");
      assert.equal(r.text, "HTTP/2 GET /tls  localhost");
    }
    {
      await using server = await startTls(transport, pem!, echo, {}, {
        http2: false,
      });
      using conn = await Deno.connectTls({
        hostname: "localhost",
        port: server.port,
        caCerts: [pem!.cert],
        alpnProtocols: ["h2", "http/1.1"],
      });
      assert.equal((await conn.handshake()).alpnProtocol, "http/1.1");
    }
  });

  Deno.test({
    name:
      `${transport}: serve() over TLS presents a replaced certificate to new h2 handshakes; open h2 connections keep theirs`,
    ignore: pem === undefined,
  }, async () => {
    const certificate = new TlsCertificate(pem!.cert, pem!.key);
    await using server = await startTls(transport, pem!, echo, {}, {
      certificate,
    });
    await using before = await H2Client.connect(server.port, {
      caCert: pem!.cert,
    });
    assert.equal((await before.request("/a")).status, 200);
    const next = await makeSelfSigned({ dns: ["localhost"], ips: [] });
    certificate.replace(next.cert, next.key);
    await using after = await H2Client.connect(server.port, {
      caCert: next.cert,
    });
    assert.equal(after.alpn, "h2");
    assert.equal((await after.request("/b")).text, "HTTP/2 GET /b  localhost");
    assert.equal(
      (await before.request("/c")).text,
      "HTTP/2 GET /c  localhost",
      "the open connection serves on",
    );
    using stale = await Deno.connectTls({
      hostname: "localhost",
      port: server.port,
      caCerts: [pem!.cert],
      alpnProtocols: ["h2"],
    });
    await assert.rejects(
      stale.handshake(),
      "the old certificate is no longer presented",
    );
  });
}

Deno.test("serve({h2c}) streams many requests at once on one connection, counted once", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let waiting = 0;
  let arrived!: () => void;
  const allIn = new Promise<void>((r) => arrived = r);
  await using server = h2c(async (req) => {
    if (++waiting === 20) arrived();
    await gate;
    return { status: 200, body: req.path };
  });
  await using c = await H2Client.connect(server.port);
  const replies = Array.from({ length: 20 }, (_, i) => c.request(`/n${i}`));
  await allIn;
  assert.equal(server.stats.active, 1);
  release();
  const texts = (await Promise.all(replies)).map((r) => r.text);
  assert.deepEqual(texts, Array.from({ length: 20 }, (_, i) => `/n${i}`));
  assert.equal(server.stats.requests, 20);
});

Deno.test("an HTTP/2 request body larger than every window arrives whole", async () => {
  await using server = h2c(echo, { maxBodyBytes: 4 * 1024 * 1024 });
  await using c = await H2Client.connect(server.port);
  const body = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = i % 251;
  const r = await c.request("/up", { body });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, body);
  // The server gave the window back as the handler read.
  assert.ok(
    c.frames.filter((f) => f.type === FRAME.WINDOW_UPDATE).length > 4,
  );
});

Deno.test("an HTTP/2 body past maxBodyBytes gets 413, by Content-Length or as it arrives", async () => {
  await using server = h2c(echo, { maxBodyBytes: 1000 });
  await using c = await H2Client.connect(server.port);
  const declared = await c.request("/up", {
    body: new Uint8Array(2000),
    fields: [["content-length", "2000"], ["accept", "application/json"]],
  });
  assert.equal(declared.status, 413);
  assert.deepEqual(JSON.parse(declared.text), {
    error: "Request body is larger than 1000 bytes",
    status: 413,
  });
  const streamed = await c.request("/up", { body: new Uint8Array(2000) });
  assert.equal(streamed.status, 413);
  // The connection is still good.
  assert.equal((await c.request("/after")).status, 200);
});

Deno.test("an HTTP/2 request with expect: 100-continue gets 100 once the handler reads", async () => {
  await using server = h2c(echo);
  await using c = await H2Client.connect(server.port);
  const id = c.nextStream();
  await c.send(
    c.headers(id, [...head("/up", "POST"), ["expect", "100-continue"]], false),
  );
  const first = await c.until((f) => streamOf(f) === id && !!f.fields);
  assert.deepEqual(first.fields?.[0], [":status", "100"]);
  await c.send(c.data(id, "abc"));
  const r = await c.reply(id);
  assert.equal(r.status, 200);
  assert.equal(r.text, "abc");
});

Deno.test("HTTP/2 HEAD gets the length GET would send and no DATA; 204 and 304 get no length", async () => {
  await using server = h2c((req) => {
    if (req.path === "/204") {
      return { status: 204, headers: { "content-length": "5" } };
    }
    if (req.path === "/304") return { status: 304, body: "ignored" };
    return { status: 200, body: "hello" };
  });
  await using c = await H2Client.connect(server.port);
  const head = await c.request("/", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), "5");
  assert.equal(head.body.length, 0);
  for (const path of ["/204", "/304"]) {
    const r = await c.request(path);
    assert.equal(r.headers.has("content-length"), false, path);
    assert.equal(r.body.length, 0, path);
  }
  assert.equal(c.frames.filter((f) => f.type === FRAME.DATA).length, 0);
});

Deno.test("HTTP/2 replies send files, streams and iterables whole, past the client's windows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = new Uint8Array(700_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 253;
    await Deno.writeFile(`${dir}/f.bin`, big);
    await using server = h2c(async (req) => {
      if (req.path === "/file") {
        const file = await Deno.open(`${dir}/f.bin`);
        return { status: 200, body: new FileBody(file, 1000, 500_000) };
      }
      if (req.path === "/stream") {
        return {
          status: 200,
          body: new ReadableStream({
            start(c) {
              for (let i = 0; i < 40; i++) c.enqueue(big.subarray(0, 10_000));
              c.close();
            },
          }),
        };
      }
      return {
        status: 200,
        headers: { "content-length": "6" },
        body: (async function* () {
          yield text.encode("abc");
          yield text.encode("def");
        })(),
      };
    });
    // The RFC's default windows (64 KiB), opened as the client reads.
    await using c = await H2Client.connect(server.port, {
      settings: [],
      openWindow: false,
      creditData: true,
    });
    const file = await c.request("/file");
    assert.equal(file.status, 200);
    assert.equal(file.headers.get("content-length"), "500000");
    assert.deepEqual(file.body, big.subarray(1000, 501_000));
    const stream = await c.request("/stream");
    assert.equal(stream.body.length, 400_000);
    assert.equal(stream.headers.has("content-length"), false);
    const it = await c.request("/iterable");
    assert.equal(it.text, "abcdef");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HTTP/2 errors go through the engine's one error path: status, format, 500 without the stack", async () => {
  await using logs = await captureLogs();
  await using server = h2c((req) => {
    if (req.path === "/gone") {
      throw new HttpError(404, "gone", { expose: "It went" });
    }
    if (req.path === "/bad-field") {
      return { status: 200, headers: { "x\n": "1" } };
    }
    throw new Error("secret stack detail");
  });
  await using c = await H2Client.connect(server.port);
  const gone = await c.request("/gone", {
    fields: [["accept", "text/html"]],
  });
  assert.equal(gone.status, 404);
  assert.match(gone.headers.get("content-type")!, /text\/html/);
  assert.match(gone.text, /It went/);
  const crash = await c.request("/crash", {
    fields: [["accept", "application/json"]],
  });
  assert.equal(crash.status, 500);
  assert.doesNotMatch(crash.text, /secret/);
  const field = await c.request("/bad-field");
  assert.equal(field.status, 500);
  assert.ok(
    logs.of("spindle", "http").some((r) => r.level === "error"),
    "the crash is logged",
  );
});

Deno.test("HTTP/2 requests the session refuses get their status on the stream: 400, 431, 501", async () => {
  await using server = h2c(echo, { h2MaxHeaderListBytes: 2000 });
  await using c = await H2Client.connect(server.port);
  const cases: [string, [string, string][], number][] = [
    ["upper case", [["X-Upper", "1"]], 400],
    ["too big", [["x-big", "a".repeat(3000)]], 431],
  ];
  for (const [what, fields, status] of cases) {
    const r = await c.request("/", { fields });
    assert.equal(r.status, status, what);
  }
  const connect = c.nextStream();
  await c.send(c.headers(connect, [
    [":method", "CONNECT"],
    [":authority", "example.com:443"],
  ]));
  assert.equal((await c.reply(connect)).status, 501);
});

Deno.test("each HTTP/2 stream writes an access line with HTTP/2.0", async () => {
  await using logs = await captureLogs();
  await using server = h2c(echo, {}, { accessLog: true });
  await using c = await H2Client.connect(server.port);
  await c.request("/logged?q=1", { fields: [["user-agent", "h2-test"]] });
  const [line] = logs.access();
  assert.equal(line.method, "GET");
  assert.equal(line.target, "/logged?q=1");
  assert.equal(line.version, "HTTP/2.0");
  assert.equal(line.status, 200);
  assert.equal(line.userAgent, "h2-test");
  assert.ok(line.bytes > 0);
});

Deno.test("a client that resets a stream while its handler runs: the handler's slot is held until it settles, the line says 499", async () => {
  await using logs = await captureLogs();
  let finish!: () => void;
  const done = new Promise<void>((r) => finish = r);
  let started!: () => void;
  const running = new Promise<void>((r) => started = r);
  await using server = h2c(
    async () => {
      started();
      await done;
      return { status: 200, body: "late" };
    },
    { h2MaxConcurrentStreams: 1 },
    { accessLog: true },
  );
  await using c = await H2Client.connect(server.port);
  const id = c.nextStream();
  await c.send(c.headers(id, head("/slow")));
  await running;
  await c.send({ type: FRAME.RST_STREAM, streamId: id, code: ERROR.CANCEL });
  // Its handler still runs: a new stream is refused, not served.
  const next = c.nextStream();
  await c.send(c.headers(next, head("/next")));
  const refused = await c.until((f) =>
    f.type === FRAME.RST_STREAM && f.streamId === next
  );
  assert.ok(refused.type === FRAME.RST_STREAM);
  assert.equal(refused.code, ERROR.REFUSED_STREAM);
  finish();
  const again = await c.request("/again");
  assert.equal(again.status, 200);
  const lines = logs.access();
  assert.equal(lines[0].target, "/slow");
  assert.equal(lines[0].status, 499);
  assert.equal(lines[0].aborted, true);
  // Nothing was sent on the reset stream.
  assert.equal(
    c.frames.some((f) => streamOf(f) === id && f.type !== FRAME.RST_STREAM),
    false,
  );
});

Deno.test("graceful shutdown: GOAWAY names the last stream, which still gets its reply, then the close", async () => {
  let started!: () => void;
  const running = new Promise<void>((r) => started = r);
  let finish!: () => void;
  const done = new Promise<void>((r) => finish = r);
  const server = h2c(async () => {
    started();
    await done;
    return { status: 200, body: "finished" };
  });
  await using c = await H2Client.connect(server.port);
  const id = c.nextStream();
  await c.send(c.headers(id, head("/slow")));
  await running;
  const stopping = server.shutdown();
  const goaway = await c.goaway();
  assert.equal(goaway.lastStreamId, id);
  assert.equal(goaway.code, ERROR.NO_ERROR);
  finish();
  const r = await c.reply(id);
  assert.equal(r.text, "finished");
  await c.closedWithin();
  await stopping;
});

Deno.test("an HTTP/2 connection idle past keepAliveTimeoutMs gets GOAWAY NO_ERROR, then the close", async () => {
  await using server = h2c(echo, { keepAliveTimeoutMs: 200 });
  await using c = await H2Client.connect(server.port);
  assert.equal((await c.request("/")).status, 200);
  await c.assertGoaway(ERROR.NO_ERROR);
});

Deno.test("a client that sends the preface and no request is closed after headTimeoutMs", async () => {
  await using server = h2c(echo, { headTimeoutMs: 200 });
  await using c = await H2Client.connect(server.port);
  await c.assertGoaway(ERROR.NO_ERROR);
});

Deno.test("an HTTP/2 body that stops arriving gets 408 on its stream after bodyTimeoutMs", async () => {
  await using server = h2c(echo, { bodyTimeoutMs: 200 });
  await using c = await H2Client.connect(server.port);
  const id = c.nextStream();
  await c.send(
    c.headers(id, head("/up", "POST"), false),
    c.data(id, "part", false),
  );
  const r = await c.reply(id);
  assert.equal(r.status, 408);
  // The client's upload is stopped; the connection serves on.
  assert.equal((await c.request("/")).status, 200);
});

Deno.test("h2c: a preface split across reads is still HTTP/2", async () => {
  await using server = h2c(echo);
  await using c = await H2Client.connect(server.port, { preface: false });
  const preface = text.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  for (const piece of [preface.subarray(0, 3), preface.subarray(3, 18)]) {
    await c.send(piece);
    await new Promise((r) => setTimeout(r, 20)); // separate reads (the test passes either way)
  }
  await c.send(preface.subarray(18), {
    type: FRAME.SETTINGS,
    ack: false,
    settings: [],
  });
  const r = await c.request("/split");
  assert.equal(r.text, "HTTP/2 GET /split  localhost");
});

Deno.test("a text reply held back by a shut window is sent intact after other replies", async () => {
  await using server = h2c((req) => ({
    status: 200,
    body: req.path.slice(1).repeat(5000),
  }));
  // Stream windows of 1000 bytes, grown only when we say.
  await using c = await H2Client.connect(server.port, {
    settings: [[SETTING.INITIAL_WINDOW_SIZE, 1000]],
  });
  const ids: number[] = [];
  for (const path of ["/a", "/b", "/c"]) {
    const id = c.nextStream();
    ids.push(id);
    await c.send(c.headers(id, head(path)));
  }
  for (const id of ids) {
    await c.until((f) => f.type === FRAME.DATA && streamOf(f) === id);
  }
  await c.send(
    ...ids.map((id) => ({
      type: FRAME.WINDOW_UPDATE,
      streamId: id,
      increment: 4000,
    } as const)),
  );
  const texts = await Promise.all(
    ids.map(async (id) => (await c.reply(id)).text),
  );
  assert.deepEqual(texts, ["a", "b", "c"].map((x) => x.repeat(5000)));
});

Deno.test("a client that resets an event stream cancels it at once, though it waits for its next event", async () => {
  let cancelled!: () => void;
  const cancel = new Promise<void>((r) => cancelled = r);
  await using server = h2c((req) =>
    req.path !== "/events" ? { status: 204 } : {
      status: 200,
      headers: { "content-type": "text/event-stream" },
      body: new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(text.encode("data: first\n\n"));
        },
        cancel: () => cancelled(),
      }),
    }
  );
  await using c = await H2Client.connect(server.port);
  const id = c.nextStream();
  await c.send(c.headers(id, head("/events")));
  await c.until((f) => f.type === FRAME.DATA && streamOf(f) === id);
  await c.send({ type: FRAME.RST_STREAM, streamId: id, code: ERROR.CANCEL });
  await withTimeout(cancel, 10_000, "the event stream to be cancelled");
  assert.equal((await c.request("/after")).status, 204);
});
