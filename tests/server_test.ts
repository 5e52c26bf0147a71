/**
 * serve() over real sockets: the shape of every reply (status line, Date,
 * framing), HEAD and bodiless statuses, errors that never leak a stack, and
 * the access log.
 */
import assert from "node:assert/strict";
import { HttpError, STATUS } from "../lib/http/errors.ts";
import {
  FileBody,
  type Handler,
  type Reply,
  type ReplyBody,
} from "../lib/http/handler.ts";
import { dateHeader } from "../lib/http/response.ts";
import { serve } from "../lib/http/server.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import {
  connect,
  encoder,
  exchange,
  get,
  ReplyReader,
  send,
  sleep,
  waitFor,
} from "./helpers/socket.ts";

const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

function start(handler: Handler) {
  return serve({ port: 0, accessLog: false }, handler);
}

async function* pieces(...texts: string[]): AsyncGenerator<Uint8Array> {
  for (const t of texts) {
    await sleep(1);
    yield encoder.encode(t);
  }
}

function streamOf(...texts: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(texts.map((t) => encoder.encode(t)));
}

Deno.test("serve() binds port 0 to a real port on 127.0.0.1", async () => {
  await using server = start(() => ({ status: 200 }));
  assert.notEqual(server.port, 0);
  assert.equal(server.addr.port, server.port);
  assert.equal(server.addr.hostname, "127.0.0.1");
});

Deno.test("serve() answers with a status line, Date and Content-Length, when the body is a string", async () => {
  await using server = start(() => ({
    status: 200,
    headers: { "content-type": "text/plain; charset=utf-8", "x-a": "1" },
    body: "héllo",
  }));
  const reply = await exchange(server.port, get());
  assert.equal(reply.head.split("\r\n")[0], "HTTP/1.1 200 OK");
  const date = reply.headers.get("date")!;
  assert.match(date, IMF_FIXDATE);
  assert.ok(Math.abs(Date.parse(date) - Date.now()) < 10_000, date);
  assert.equal(reply.headers.get("content-length"), "6"); // bytes, not chars
  assert.equal(reply.headers.get("x-a"), "1");
  assert.equal(reply.headers.has("transfer-encoding"), false);
  assert.equal(reply.headers.has("connection"), false); // 1.1 keeps by default
  assert.equal(reply.text, "héllo");
});

const framings: [
  name: string,
  body: () => ReplyBody,
  headers: Record<string, string>,
  framing: "length" | "chunked",
  text: string,
][] = [
  ["a string", () => "abc", {}, "length", "abc"],
  ["bytes", () => encoder.encode("abcd"), {}, "length", "abcd"],
  ["null", () => null, {}, "length", ""],
  ["an empty string", () => "", {}, "length", ""],
  ["a ReadableStream", () => streamOf("ab", "", "cd"), {}, "chunked", "abcd"],
  ["an async generator", () => pieces("x", "yz"), {}, "chunked", "xyz"],
  [
    "a stream with content-length",
    () => streamOf("ab", "cd"),
    { "content-length": "4" },
    "length",
    "abcd",
  ],
];
for (const [name, body, headers, framing, text] of framings) {
  Deno.test(`serve() frames ${name} with ${framing}`, async () => {
    await using server = start(() => ({ status: 200, headers, body: body() }));
    using conn = await connect(server.port);
    const reader = new ReplyReader(conn);
    // Twice on one connection: the framing must leave the next reply intact.
    await send(conn, get() + get());
    for (let i = 0; i < 2; i++) {
      const reply = await reader.readReply();
      assert.equal(reply.status, 200);
      assert.equal(reply.text, text);
      if (framing === "length") {
        assert.equal(
          reply.headers.get("content-length"),
          String(encoder.encode(text).length),
        );
        assert.equal(reply.chunked, false);
      } else {
        assert.equal(reply.headers.get("transfer-encoding"), "chunked");
        assert.equal(reply.headers.has("content-length"), false);
      }
    }
  });
}

Deno.test("serve() sends a FileBody range with its length and closes the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/f.txt`;
    await Deno.writeTextFile(path, "0123456789".repeat(100_000)); // 1 MB
    await using server = start(async () => ({
      status: 200,
      body: new FileBody(await Deno.open(path), 5, 999_990),
    }));
    const reply = await exchange(server.port, get());
    assert.equal(reply.headers.get("content-length"), "999990");
    assert.equal(reply.body.length, 999_990);
    assert.equal(reply.text.slice(0, 7), "5678901");
    assert.equal(reply.text.slice(-5), "01234");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve() answers HEAD with the GET headers and no body", async () => {
  const cancelled: string[] = [];
  await using server = start((req): Reply => {
    if (req.path === "/stream") {
      return {
        status: 200,
        body: new ReadableStream({ cancel: () => void cancelled.push("s") }),
      };
    }
    if (req.path === "/length") {
      return { status: 200, headers: { "content-length": "1234" } };
    }
    if (req.path === "/unknown") return { status: 200 }; // no body, no length
    return { status: 200, headers: { "x-m": req.method }, body: "hello" };
  });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  const head = (path: string) =>
    `HEAD ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
  await send(
    conn,
    head("/") + head("/stream") + head("/length") + head("/unknown") + get("/"),
  );
  const h = await reader.readReply({ head: true });
  assert.equal(h.status, 200);
  assert.equal(h.headers.get("content-length"), "5");
  assert.equal(h.headers.get("x-m"), "HEAD");
  const s = await reader.readReply({ head: true });
  assert.equal(s.status, 200);
  // A handler may answer HEAD with only the length GET would have.
  const l = await reader.readReply({ head: true });
  assert.equal(l.headers.get("content-length"), "1234");
  // No body and no length: no Content-Length at all, not a 0 GET would contradict.
  const u = await reader.readReply({ head: true });
  assert.equal(u.status, 200);
  assert.equal(u.headers.get("content-length"), undefined);
  // The GET after both must be the next bytes: no body leaked from a HEAD.
  const g = await reader.readReply();
  assert.equal(g.headers.get("x-m"), "GET");
  assert.equal(g.text, "hello");
  await waitFor(() => cancelled.length === 1, "the HEAD stream cancelled");
});

for (const status of [204, 304]) {
  Deno.test(`serve() sends ${status} without a body or framing, even when the handler gives one`, async () => {
    await using server = start((req) =>
      req.path === "/next"
        ? { status: 200, body: "next" }
        : { status, headers: { etag: '"x"' }, body: "must not appear" }
    );
    using conn = await connect(server.port);
    const reader = new ReplyReader(conn);
    await send(conn, get("/") + get("/next"));
    const reply = await reader.readReply();
    assert.equal(reply.status, status);
    assert.equal(reply.headers.has("content-length"), false);
    assert.equal(reply.headers.has("transfer-encoding"), false);
    assert.equal(reply.headers.get("etag"), '"x"');
    const next = await reader.readReply();
    assert.equal(next.text, "next"); // not "must not appear..."
  });
}

Deno.test("dateHeader() is cached within a second and rebuilt in the next", () => {
  const t = Date.UTC(2024, 0, 2, 3, 4, 5);
  const a = dateHeader(t);
  assert.equal(a, "Date: Tue, 02 Jan 2024 03:04:05 GMT\r\n");
  assert.equal(dateHeader(t + 999), a);
  assert.equal(dateHeader(t + 1000), "Date: Tue, 02 Jan 2024 03:04:06 GMT\r\n");
});

Deno.test("serve() refreshes Date each second on a kept connection", async () => {
  await using server = start(() => ({ status: 200 }));
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, get());
  const first = (await reader.readReply()).headers.get("date")!;
  await sleep(1050);
  await send(conn, get());
  const second = (await reader.readReply()).headers.get("date")!;
  assert.notEqual(second, first);
  assert.ok(Date.parse(second) > Date.parse(first));
});

Deno.test("serve() answers OPTIONS * with 204 and Allow", async () => {
  await using server = start(() => ({ status: 500 }));
  const reply = await exchange(
    server.port,
    "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
  );
  assert.equal(reply.status, 204);
  assert.match(reply.headers.get("allow")!, /GET.*OPTIONS/);
});

const failures: [
  name: string,
  handler: Handler,
  status: number,
  text: RegExp,
][] = [
  [
    "a thrown Error",
    () => {
      throw new Error("secret database password");
    },
    500,
    /^Internal Server Error\n$/,
  ],
  [
    "a rejected promise",
    () =>
      Promise.reject(
        new TypeError("secret detail"),
      ),
    500,
    /^Internal Server Error\n$/,
  ],
  ["no reply", () => undefined as never, 500, /^Internal Server Error\n$/],
  ["a status out of range", () => ({ status: 42 }), 500, /^Internal/],
  [
    "a header with CRLF",
    () => ({
      status: 200,
      headers: { "x-a": "1\r\nSet-Cookie: evil=1" },
    }),
    500,
    /^Internal/,
  ],
  [
    "a bad header name",
    () => ({
      status: 200,
      headers: { "x a": "1" },
    }),
    500,
    /^Internal/,
  ],
  [
    "an HttpError",
    () => {
      throw new HttpError(STATUS.NotFound, "no row 7 in table users", {
        expose: "Not here",
      });
    },
    404,
    /^Not here\n$/,
  ],
  [
    "an HttpError without expose",
    () => {
      throw new HttpError(STATUS.Forbidden, "secret rule 12");
    },
    403,
    /^Forbidden\n$/,
  ],
];
for (const [name, handler, status, text] of failures) {
  Deno.test(`serve() answers ${status} without details, for ${name}`, async () => {
    await using logs = await captureLogs();
    await using server = serve({ port: 0, accessLog: false }, handler);
    using conn = await connect(server.port);
    const reader = new ReplyReader(conn);
    await send(conn, get() + get("/again"));
    const reply = await reader.readReply();
    assert.equal(reply.status, status);
    assert.match(reply.text, text);
    assert.doesNotMatch(reply.head + reply.text, /secret|evil|\bat /);
    assert.equal(
      reply.headers.get("content-type"),
      "text/plain; charset=utf-8",
    );
    // The connection survives a handler's failure.
    assert.equal((await reader.readReply()).status, status);
    if (status === 500) {
      const errors = logs.records.filter((r) => r.level === "error");
      assert.ok(errors.length >= 1, "the error is logged");
      assert.ok(
        errors.some((r) =>
          Object.values(r.properties).some((v) =>
            v instanceof Error && typeof v.stack === "string"
          )
        ),
        "the log keeps the Error with its stack",
      );
    }
  });
}

const nosniffCases: [name: string, raw: string, status: number][] = [
  ["a handler's reply", get("/ok"), 200],
  ["a handler that sets nosniff itself", get("/own"), 200],
  ["a handler's HttpError", get("/missing"), 404],
  ["a handler that throws", get("/throw"), 500],
  ["a head the parser refuses", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400],
  [
    "an unknown transfer coding",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    501,
  ],
];
for (const [name, raw, status] of nosniffCases) {
  Deno.test(`serve() sends X-Content-Type-Options: nosniff once, on ${name}`, async () => {
    await using server = start((req) => {
      if (req.path === "/ok") return { status: 200, body: "ok" };
      if (req.path === "/own") {
        return {
          status: 200,
          headers: { "X-Content-Type-Options": "sniff-away" },
          body: "ok",
        };
      }
      if (req.path === "/missing") throw new HttpError(STATUS.NotFound, "no");
      throw new Error("boom");
    });
    const reply = await exchange(server.port, raw);
    assert.equal(reply.status, status);
    assert.deepEqual(
      reply.fields.filter(([n]) =>
        n.toLowerCase() === "x-content-type-options"
      ),
      [["X-Content-Type-Options", "nosniff"]],
    );
  });
}

Deno.test("serve() renders an HttpError as JSON or HTML by Accept", async () => {
  await using server = start(() => {
    throw new HttpError(STATUS.TooManyRequests, "slow down", {
      expose: "Slow <down>",
      headers: { "retry-after": "7" },
    });
  });
  const json = await exchange(
    server.port,
    get("/", "Accept: application/json\r\n"),
  );
  assert.equal(json.status, 429);
  assert.equal(json.headers.get("retry-after"), "7");
  assert.deepEqual(JSON.parse(json.text), {
    error: "Slow <down>",
    status: 429,
  });
  const html = await exchange(server.port, get("/", "Accept: text/html\r\n"));
  assert.match(html.headers.get("content-type")!, /^text\/html/);
  assert.match(html.text, /Slow &lt;down&gt;/);
});

Deno.test("serve() closes a chunked reply mid-way, when its stream throws", async () => {
  await using logs = await captureLogs();
  await using server = start(() => ({
    status: 200,
    body: (async function* () {
      yield encoder.encode("part one");
      await sleep(5);
      throw new Error("stream broke");
    })(),
  }));
  using conn = await connect(server.port);
  await send(conn, get());
  const reader = new ReplyReader(conn);
  const raw = new TextDecoder().decode(await reader.readUntilClose());
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(raw, /part one/);
  assert.doesNotMatch(
    raw,
    /\r\n0\r\n\r\n$/,
    "no final chunk: the client sees a cut",
  );
  await waitFor(() => server.stats.active === 0, "the connection released");
  assert.ok(logs.records.some((r) => r.level === "error"));
});

Deno.test("serve() closes, when a stream is longer than its content-length", async () => {
  await using server = start(() => ({
    status: 200,
    headers: { "content-length": "3" },
    body: streamOf("abc", "def"),
  }));
  using conn = await connect(server.port);
  await send(conn, get() + get());
  const reader = new ReplyReader(conn);
  const first = await reader.readReply();
  assert.equal(first.text, "abc");
  // Never "def" parsed as the start of the next reply.
  assert.equal((await reader.readUntilClose()).length, 0);
});

Deno.test("serve() logs one access line per request with client, method, target, version, status, bytes and duration", async () => {
  await using logs = await captureLogs();
  await using server = serve(
    { port: 0 },
    (req) =>
      req.path === "/missing"
        ? Promise.reject(new HttpError(STATUS.NotFound, "no such thing"))
        : { status: 200, body: "twelve bytes" },
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(
    conn,
    get("/a?b=1") +
      "POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
  );
  const ok = await reader.readReply();
  const missing = await reader.readReply();
  await waitFor(() => logs.access().length === 2, "two access lines");
  const [a, b] = logs.access();
  assert.equal(a.client, "127.0.0.1");
  assert.equal(a.method, "GET");
  assert.equal(a.target, "/a?b=1");
  assert.equal(a.version, "HTTP/1.1");
  assert.equal(a.status, 200);
  assert.equal(a.bytes, ok.head.length + ok.body.length);
  assert.equal(a.aborted, false);
  assert.equal(a.error, null);
  assert.ok(Number.isInteger(a.ms) && a.ms >= 0);
  assert.equal(b.method, "POST");
  assert.equal(b.status, 404);
  assert.equal(b.bytes, missing.head.length + missing.body.length);
  assert.equal(b.error, "no such thing", "the reason travels with the line");
  // A client's 404 is its access line, not a warning.
  assert.deepEqual(logs.records.filter((r) => r.level !== "info"), []);
});

Deno.test("serve() logs no access record, when accessLog is false", async () => {
  await using logs = await captureLogs();
  await using server = serve({ port: 0, accessLog: false }, () => ({
    status: 200,
  }));
  await exchange(server.port, get());
  assert.equal(logs.access().length, 0);
});

Deno.test("serve() throws RangeError for maxConns 0 and leaves no listener open", () => {
  assert.throws(
    () =>
      serve(
        { port: 0, accessLog: false, limits: { maxConns: 0 } },
        () => ({ status: 200 }),
      ),
    RangeError,
  );
  // The resource sanitizer fails this test if the listener was left open.
});

Deno.test("serve() logs an access record for a request it could not parse", async () => {
  await using logs = await captureLogs();
  await using server = serve({ port: 0 }, () => ({ status: 200, body: "ok" }));
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, get("/fine") + "GET /bad HTTP/1.1\r\nHost : x\r\n\r\n");
  assert.equal((await reader.readReply()).status, 200);
  const bad = await reader.readReply();
  assert.equal(bad.status, 400);
  assert.equal(bad.headers.get("connection"), "close");
  await waitFor(() => logs.access().length === 2, "two access lines");
  const access = logs.access();
  assert.equal(access[0].target, "/fine");
  assert.equal(access[1].status, 400);
  assert.equal(access[1].client, "127.0.0.1");
  assert.equal(access[1].method, null);
  assert.equal(access[1].request, "GET /bad HTTP/1.1", "the line as sent");
  assert.match(access[1].error ?? "", /malformed field name/);
  assert.equal(access[1].bytes, bad.head.length + bad.body.length);
  assert.deepEqual(logs.records.filter((r) => r.level !== "info"), []);
});
