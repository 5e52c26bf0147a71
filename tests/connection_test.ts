/**
 * Connection behaviour over real sockets: keep-alive and close, request
 * limits per connection, pipelining, partial writes to a slow reader,
 * 100-continue, unread bodies, and clients that vanish at any point.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import { HttpError, STATUS } from "../lib/http/errors.ts";
import type { Handler, ServerRequest } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import {
  connect,
  decoder,
  encoder,
  exchange,
  get,
  lacks,
  ReplyReader,
  run,
  send,
  sleep,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

function start(handler: Handler, limits: Partial<Limits> = {}) {
  return serve({ port: 0, accessLog: false, limits }, handler);
}

/** Answers with the method, path and body it read: "POST /a [body]". */
const echo: Handler = async (req) => ({
  status: 200,
  body: `${req.method} ${req.path} [${await req.body.text()}]`,
});

const keepAlive: [
  name: string,
  request: string,
  replyConnection: string | undefined,
  kept: boolean,
][] = [
  ["HTTP/1.1 by default", get(), undefined, true],
  [
    "HTTP/1.1 with Connection: close",
    get("/", "Connection: close\r\n"),
    "close",
    false,
  ],
  [
    "HTTP/1.1 with Connection: Close, TE",
    get("/", "Connection: Close, TE\r\n"),
    "close",
    false,
  ],
  ["HTTP/1.0 by default", "GET / HTTP/1.0\r\n\r\n", "close", false],
  [
    "HTTP/1.0 with Connection: keep-alive",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "keep-alive",
    true,
  ],
  [
    "HTTP/1.1 when the handler replies Connection: close",
    get("/bye"),
    "close",
    false,
  ],
];
for (const [name, request, replyConnection, kept] of keepAlive) {
  Deno.test(`Connection ${kept ? "keeps" : "closes"} the socket for ${name}`, async () => {
    await using server = start((req) => ({
      status: 200,
      headers: req.path === "/bye"
        ? { connection: "close" }
        : {} as Record<string, string>,
      body: "ok",
    }));
    using conn = await connect(server.port);
    const reader = new ReplyReader(conn);
    await send(conn, request);
    const reply = await reader.readReply();
    assert.equal(reply.status, 200);
    assert.equal(reply.text, "ok");
    assert.equal(reply.headers.get("connection"), replyConnection);
    // A kept connection says how long it stays open idle; a closing one does not.
    assert.equal(
      reply.headers.get("keep-alive"),
      kept ? "timeout=5" : undefined,
    );
    if (kept) {
      await send(conn, get());
      assert.equal((await reader.readReply()).status, 200);
      assert.equal(server.stats.active, 1);
    } else {
      assert.equal(await reader.closed(), true, "server closed the socket");
      conn.close(); // else the server lingers, reading what we might still send
      await waitFor(() => server.stats.active === 0, "active back to 0");
    }
  });
}

Deno.test("Connection says Keep-Alive: timeout=N in whole seconds of keepAliveTimeoutMs, nothing under a second", async () => {
  for (const [ms, field] of [[2500, "timeout=2"], [500, undefined]] as const) {
    await using server = start(() => ({ status: 200, body: "ok" }), {
      keepAliveTimeoutMs: ms,
    });
    const reply = await exchange(server.port, get());
    assert.equal(reply.headers.get("keep-alive"), field, `${ms} ms`);
  }
});

Deno.test("Connection ends an HTTP/1.0 stream reply with the close", async () => {
  await using server = start(() => ({
    status: 200,
    body: ReadableStream.from([encoder.encode("ab"), encoder.encode("cd")]),
  }));
  const reply = await exchange(
    server.port,
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  );
  // No chunked coding for 1.0: the body runs to the close.
  assert.equal(reply.headers.has("transfer-encoding"), false);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(reply.text, "abcd");
});

Deno.test("Connection closes after maxRequestsPerConnection replies", async () => {
  await using server = start(() => ({ status: 200, body: "x" }), {
    maxRequestsPerConnection: 3,
  });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  for (let i = 1; i <= 3; i++) {
    await send(conn, get());
    const reply = await reader.readReply();
    assert.equal(reply.status, 200);
    assert.equal(
      reply.headers.get("connection"),
      i === 3 ? "close" : undefined,
    );
  }
  assert.equal(await reader.closed(), true);
  assert.equal(server.stats.requests, 3);
});

Deno.test("Connection answers ten pipelined requests in order, with bodies among them", async () => {
  await using server = start(async (req) => {
    // Later requests finish sooner: order must come from the connection.
    await sleep(10 - Number(req.path.slice(1)));
    return await echo(req);
  });
  using conn = await connect(server.port);
  const requests: string[] = [];
  const expected: string[] = [];
  for (let i = 0; i < 10; i++) {
    if (i === 3) {
      requests.push(
        `POST /${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world`,
      );
      expected.push(`POST /${i} [hello world]`);
    } else if (i === 6) {
      requests.push(
        `PUT /${i} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
          "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
      );
      expected.push(`PUT /${i} [abcde]`);
    } else {
      requests.push(get(`/${i}`));
      expected.push(`GET /${i} []`);
    }
  }
  await send(conn, requests.join("")); // one write
  const reader = new ReplyReader(conn);
  const got: string[] = [];
  for (let i = 0; i < 10; i++) got.push((await reader.readReply()).text);
  assert.deepEqual(got, expected);
  assert.equal(server.stats.requests, 10);
});

Deno.test("Connection sends a small reply in one write", async () => {
  await using server = start(() => ({
    status: 200,
    headers: { "content-type": "text/plain", "x-pad": "p".repeat(200) },
    body: "s".repeat(1000),
  }));
  using conn = await connect(server.port);
  await send(conn, get());
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  assert.equal(reader.reads[0], reply.head.length + reply.body.length);
});

/** A body whose every byte is known from its offset. */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 10)) & 0xff;
  return out;
}

const bigReplies: [name: string, body: () => Uint8Array | ReadableStream][] = [
  ["bytes", () => pattern(6 * 1024 * 1024)],
  [
    "a chunked stream",
    () => {
      const all = pattern(6 * 1024 * 1024);
      const piece = 512 * 1024;
      const parts: Uint8Array[] = [];
      for (let o = 0; o < all.length; o += piece) {
        parts.push(all.slice(o, o + piece));
      }
      return ReadableStream.from(parts);
    },
  ],
];
for (const [name, body] of bigReplies) {
  Deno.test(`Connection delivers 6 MiB of ${name} intact to a client that reads slowly`, async () => {
    await using server = start(() => ({ status: 200, body: body() }));
    using conn = await connect(server.port);
    await send(conn, get() + get("/small"));
    // The reader pauses every 16 reads: the server's writes outrun it, fill
    // the socket buffers and go out in partial writes.
    const reader = new ReplyReader(conn);
    let reads = 0;
    const origFill = reader.fill.bind(reader);
    reader.fill = async (deadline: number) => {
      if (++reads % 16 === 0) await sleep(5);
      return await origFill(deadline);
    };
    const reply = await reader.readReply({ timeoutMs: 10_000 });
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, 6 * 1024 * 1024);
    assert.deepEqual(reply.body, pattern(6 * 1024 * 1024));
    // The pipelined request behind it is answered on the same connection.
    assert.equal((await reader.readReply()).status, 200);
  });
}

/** Sends a head with Expect: 100-continue and returns its reader. */
async function expectContinue(
  conn: Deno.Conn,
  path: string,
  length: number,
  extra = "",
): Promise<ReplyReader> {
  await send(
    conn,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n` +
      `Expect: 100-continue\r\n${extra}\r\n`,
  );
  return new ReplyReader(conn);
}

Deno.test("Connection sends 100 Continue once the handler reads the body", async () => {
  await using server = start(echo);
  using conn = await connect(server.port);
  const reader = await expectContinue(conn, "/up", 5);
  const interim = await reader.readReply();
  assert.equal(interim.head, "HTTP/1.1 100 Continue\r\n\r\n");
  await send(conn, "12345");
  const reply = await reader.readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "POST /up [12345]");
  // And the connection is still good.
  await send(conn, get("/next"));
  assert.equal((await reader.readReply()).text, "GET /next []");
});

const earlyAnswers: [name: string, handler: Handler, status: number][] = [
  ["401 returned", () => ({ status: 401, body: "who are you" }), 401],
  ["413 thrown", () => {
    throw new HttpError(STATUS.ContentTooLarge, "too big for this route");
  }, 413],
];
for (const [name, handler, status] of earlyAnswers) {
  Deno.test(`Connection answers without 100 Continue and closes, when the handler answers first (${name})`, async () => {
    let calls = 0;
    await using server = start((req) => {
      calls++;
      return handler(req);
    });
    using conn = await connect(server.port);
    const reader = await expectContinue(conn, "/up", 100_000);
    const reply = await reader.readReply();
    assert.equal(reply.status, status);
    assert.equal(reply.headers.get("connection"), "close");
    assert.equal(await reader.closed(), true);
    assert.equal(calls, 1);
  });
}

Deno.test("Connection sends no 100 Continue to an HTTP/1.0 client", async () => {
  await using server = start(echo);
  using conn = await connect(server.port);
  await send(
    conn,
    "POST / HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
  );
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "POST / [hi]");
});

Deno.test("Connection answers 417 to an expectation other than 100-continue", async () => {
  let calls = 0;
  await using server = start(() => {
    calls++;
    return { status: 200 };
  });
  using conn = await connect(server.port);
  await send(conn, get("/", "Expect: 200-ok\r\n"));
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  assert.equal(reply.status, 417);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(await reader.closed(), true);
  assert.equal(calls, 0);
});

Deno.test("Connection drops a small unread body and keeps the connection", async () => {
  await using server = start(() => ({ status: 200, body: "ignored it" }));
  using conn = await connect(server.port);
  const body = "b".repeat(1000);
  await send(
    conn,
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
      get("/after"),
  );
  const reader = new ReplyReader(conn);
  const first = await reader.readReply();
  assert.equal(first.headers.get("connection"), undefined);
  const second = await reader.readReply();
  assert.equal(second.text, "ignored it");
  assert.equal(server.stats.requests, 2);
});

const unreadClosing: [name: string, head: string][] = [
  ["a large Content-Length body", "Content-Length: 500000\r\n"],
  ["a chunked body", "Transfer-Encoding: chunked\r\n"],
];
for (const [name, header] of unreadClosing) {
  Deno.test(`Connection closes after replying, when ${name} is left unread`, async () => {
    await using server = start(() => ({ status: 200, body: "no thanks" }));
    using conn = await connect(server.port);
    await send(conn, `POST / HTTP/1.1\r\nHost: x\r\n${header}\r\n`);
    const reader = new ReplyReader(conn);
    const reply = await reader.readReply();
    assert.equal(reply.text, "no thanks");
    assert.equal(reply.headers.get("connection"), "close");
    assert.equal(await reader.closed(), true);
  });
}

/** Waits until the server holds no connection and still answers. */
async function assertRecovered(
  server: { port: number; stats: { active: number } },
): Promise<void> {
  await waitFor(() => server.stats.active === 0, "stats.active back to 0");
  const reply = await exchange(server.port, get("/", "Connection: close\r\n"));
  assert.equal(reply.status, 200);
}

Deno.test("Connection survives a client that leaves mid-head", async () => {
  await using server = start(() => ({ status: 200 }));
  let sent = 0;
  for (const cut of ["G", "GET / HTTP/1.1\r\nHost: x\r\nX-A:"]) {
    const conn = await connect(server.port);
    await send(conn, cut);
    sent += cut.length;
    await waitFor(() => server.stats.bytesIn >= sent, "the server to read it");
    conn.close();
  }
  await assertRecovered(server);
  assert.equal(server.stats.requests, 1);
});

Deno.test("Connection survives a client that leaves mid-body", async () => {
  let failed: unknown;
  await using server = start(async (req) => {
    if (req.method === "POST") {
      try {
        await req.body.bytes();
      } catch (err) {
        failed = err;
        throw err;
      }
    }
    return { status: 200 };
  });
  let sent = 0;
  for (const head of ["Content-Length: 100000", "Transfer-Encoding: chunked"]) {
    failed = undefined;
    const conn = await connect(server.port);
    const start = head.startsWith("Content") ? "x".repeat(5000) : "1000\r\nabc";
    const raw = `POST / HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n${start}`;
    await send(conn, raw);
    sent += raw.length;
    await waitFor(() => server.stats.bytesIn >= sent, "the server to read it");
    conn.close();
    await waitFor(() => failed !== undefined, "the body read to fail");
    assert.ok(failed instanceof HttpError, String(failed));
    assert.equal(failed.status, 400);
  }
  await assertRecovered(server);
});

Deno.test("Connection survives and stops the stream, when a client leaves mid-reply", async () => {
  let stopped = 0;
  let yielded = 0;
  await using server = start((req) => ({
    status: 200,
    body: req.path !== "/endless" ? "ok" : (async function* () {
      try {
        const piece = new Uint8Array(256 * 1024);
        for (;;) {
          yielded++;
          yield piece;
        }
      } finally {
        stopped++;
      }
    })(),
  }));
  const conn = await connect(server.port);
  await send(conn, get("/endless"));
  const reader = new ReplyReader(conn);
  const deadline = Date.now() + 5000;
  while (reader.buffered.length < 1024 * 1024) await reader.fill(deadline);
  conn.close();
  await waitFor(() => stopped === 1, "the generator's finally to run");
  await assertRecovered(server);
  assert.ok(yielded >= 4);
});

Deno.test("Connection closes, with no second reply, when a reply stream throws an HttpError after its head", async () => {
  await using server = start(() => ({
    status: 200,
    body: (async function* () {
      yield encoder.encode("first piece");
      throw new HttpError(STATUS.BadRequest, "stream refused mid-body");
    })(),
  }));
  using conn = await connect(server.port);
  await send(conn, get());
  const text = decoder.decode(await new ReplyReader(conn).readUntilClose());
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.match(text, /first piece/);
  // Only a head that cannot be parsed gets an error reply of its own.
  assert.doesNotMatch(text, /HTTP\/1\.1 400/);
  await waitFor(() => server.stats.active === 0, "stats.active back to 0");
});

Deno.test("Connection survives a client that resets while the handler runs", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let started = false;
  await using server = start(async (req) => {
    if (req.path === "/slow") {
      started = true;
      await released;
    }
    return { status: 200, body: "late" };
  });
  const conn = await connect(server.port);
  await send(conn, get("/slow"));
  await waitFor(() => started, "the handler to start");
  conn.close(); // the server finds it gone when it replies
  release();
  await assertRecovered(server);
});

Deno.test({
  name:
    "Connection keeps one connection for two curl requests and speaks HTTP/1.0 to curl -0",
  ignore: await lacks("curl"),
}, async () => {
  await using server = start((req) => ({
    status: 200,
    body: `${req.version} ${req.path}\n`,
  }));
  const url = `http://127.0.0.1:${server.port}`;
  const twice = await run("curl", ["-sv", `${url}/a`, `${url}/b`]);
  assert.equal(twice.code, 0, twice.stderr);
  assert.equal(twice.stdout, "HTTP/1.1 /a\nHTTP/1.1 /b\n");
  assert.match(twice.stderr, /Re-using existing connection/);
  assert.equal(server.stats.accepted, 1);

  const old = await run("curl", ["-sv", "-0", `${url}/c`]);
  assert.equal(old.code, 0, old.stderr);
  assert.equal(old.stdout, "HTTP/1.0 /c\n");
  assert.match(old.stderr, /< Connection: close/i);

  const oldKept = await run("curl", [
    "-sv",
    "-0",
    "-H",
    "Connection: keep-alive",
    `${url}/d`,
    `${url}/e`,
  ]);
  assert.equal(oldKept.code, 0, oldKept.stderr);
  assert.equal(oldKept.stdout, "HTTP/1.0 /d\nHTTP/1.0 /e\n");
  assert.match(oldKept.stderr, /< Connection: keep-alive/i);
  assert.match(oldKept.stderr, /Re-using existing connection/);
  await waitFor(() => server.stats.active === 0, "curl's connections closed");
});

Deno.test("Connection reads nothing past a reply's close into a new request", async () => {
  // After "Connection: close" the bytes of a second request are not served.
  let calls = 0;
  await using server = start(() => {
    calls++;
    return { status: 200 };
  });
  using conn = await connect(server.port);
  await send(conn, get("/", "Connection: close\r\n") + get("/2"));
  const raw = await withTimeout(
    new ReplyReader(conn).readUntilClose(),
    5000,
    "close",
  );
  assert.equal(decoder.decode(raw).match(/HTTP\/1\.1 200/g)?.length, 1);
  assert.equal(calls, 1);
});

/** A mixed batch: GETs with headers of many sizes, and POSTs with bodies. */
function mixedRequests(n: number): { raw: string; expected: string[] } {
  let raw = "";
  const expected: string[] = [];
  for (let i = 0; i < n; i++) {
    const pad = "p".repeat((i * 397) % 3000);
    if (i % 5 === 2) {
      const body = "b".repeat((i * 131) % 5000);
      raw += `POST /${i} HTTP/1.1\r\nHost: x\r\nX-Pad: ${pad}\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`;
      expected.push(`POST /${i} [${body}]`);
    } else {
      raw += get(`/${i}`, `X-Pad: ${pad}\r\n`);
      expected.push(`GET /${i} []`);
    }
  }
  return { raw, expected };
}

Deno.test("Connection answers 300 pipelined requests of mixed sizes in order", async () => {
  await using server = start(echo);
  using conn = await connect(server.port);
  const { raw, expected } = mixedRequests(300);
  const writing = send(conn, raw); // ~0.5 MB: read replies while it goes
  const reader = new ReplyReader(conn);
  for (let i = 0; i < expected.length; i++) {
    assert.equal((await reader.readReply()).text, expected[i], `reply ${i}`);
  }
  await writing;
});

Deno.test("Connection parses requests split at every kind of boundary", async () => {
  await using server = start(echo);
  using conn = await connect(server.port);
  conn.setNoDelay(true);
  const { raw, expected } = mixedRequests(20);
  const bytes = encoder.encode(raw);
  const reader = new ReplyReader(conn);
  // Pieces of 1 to 3000 bytes, a pause between some.
  let seed = 7;
  for (let off = 0; off < bytes.length;) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (seed % (seed % 3 === 0 ? 17 : 3000));
    await send(conn, bytes.subarray(off, off + n));
    off += n;
    if (seed % 4 === 0) await sleep(1);
  }
  for (let i = 0; i < expected.length; i++) {
    assert.equal((await reader.readReply()).text, expected[i], `reply ${i}`);
  }
});

Deno.test("serve() closes quietly, without a stray 408, when an unread body stalls after the reply", async () => {
  await using server = serve(
    {
      port: 0,
      accessLog: false,
      limits: { bodyTimeoutMs: 200, headTimeoutMs: 200 },
    },
    () => ({ status: 200, body: "answered first" }),
  );
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  // 100 bytes announced, 10 sent: the reply goes out, then the drop of the rest stalls.
  await send(conn, get("/", "Content-Length: 100\r\n") + "0123456789");
  const reply = await reader.readReply();
  assert.equal(reply.status, 200);
  assert.equal(await reader.closed(), true);
  assert.equal(reader.buffered.length, 0, "nothing after the 200");
});

Deno.test("Connection: a request a handler keeps stays itself after later requests", async () => {
  let kept: ServerRequest | undefined;
  await using server = start((req) => {
    const before = kept;
    kept ??= req;
    const first = before ?? req;
    return {
      status: 200,
      body: [
        first.method,
        first.target,
        first.path,
        first.query,
        first.version,
        first.host,
        first.headers.get("x-n"),
        first.secure,
        first.remoteAddr.hostname,
        first.limits.maxHeaderCount,
        first.startTime === kept.startTime,
      ].join(" "),
    };
  }, { maxHeaderCount: 50 });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  const sent = [
    "GET /a?q=1 HTTP/1.1\r\nHost: one.test\r\nX-N: 1\r\n\r\n",
    "POST /b HTTP/1.0\r\nHost: two.test\r\nX-N: 2\r\nConnection: keep-alive\r\n" +
    "Content-Length: 0\r\n\r\n",
  ];
  const bodies = [];
  for (const raw of sent) {
    await send(conn, raw);
    bodies.push(decoder.decode((await reader.readReply()).body));
  }
  const first = "GET /a?q=1 /a q=1 HTTP/1.1 one.test 1 false 127.0.0.1 50 true";
  assert.deepEqual(bodies, [first, first]);
});

Deno.test("Connection hands the handler the peer's address as a plain object, one per connection", async () => {
  const seen: Deno.NetAddr[] = [];
  await using server = start((req) => {
    seen.push(req.remoteAddr);
    return { status: 200, body: "ok" };
  });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  for (let i = 0; i < 2; i++) {
    await send(conn, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    await reader.readReply();
  }
  const port = (conn.localAddr as Deno.NetAddr).port;
  assert.deepEqual({ ...seen[0] }, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port,
  });
  assert.equal(seen[1], seen[0]);
  // Deno's own has no prototype (and a map of its own, in dictionary mode):
  // a line reading it per request went megamorphic.
  assert.equal(Object.getPrototypeOf(seen[0]), Object.prototype);
});

Deno.test("Connection: a kept request's headers, first read after later requests took its buffer, are its own", async () => {
  let kept: ServerRequest | undefined;
  await using server = start((req) => {
    if (kept === undefined) {
      kept = req; // not a field read yet
      return { status: 200, body: "kept" };
    }
    const h = kept.headers;
    return {
      status: 200,
      body: JSON.stringify({
        fields: [...h],
        size: h.size,
        n: h.get("X-N"),
        list: h.getJoined("x-list"),
        ua: h.get("user-agent"),
        host: kept.host,
      }),
    };
  });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  // Each later head is longer than the first, so its bytes cover the first's.
  const sent = [
    "GET /a HTTP/1.1\r\nHost: one.test\r\nX-N: 1\r\nX-List: a\r\n" +
    "User-Agent: first/1.0\r\nX-List:  b \r\n\r\n",
    "GET /b HTTP/1.1\r\nHost: two.test\r\nX-N: 2222\r\nX-List: cc\r\n" +
    "User-Agent: second/2.0 (longer)\r\nX-List: dd\r\nX-Pad: " +
    "y".repeat(100) + "\r\n\r\n",
    "GET /c HTTP/1.1\r\nHost: three.test\r\nUser-Agent: third/3.0\r\n" +
    "X-Pad: " + "z".repeat(200) + "\r\n\r\n",
  ];
  const bodies = [];
  for (const raw of sent) {
    await send(conn, raw);
    bodies.push(decoder.decode((await reader.readReply()).body));
  }
  const first = JSON.stringify({
    fields: [
      ["host", "one.test"],
      ["x-n", "1"],
      ["x-list", "a"],
      ["user-agent", "first/1.0"],
      ["x-list", "b"],
    ],
    size: 5,
    n: "1",
    list: "a, b",
    ua: "first/1.0",
    host: "one.test",
  });
  assert.deepEqual(bodies, ["kept", first, first]);
});

Deno.test("the request loop stays optimized when connections first reach their request limit", async () => {
  // V8 deoptimizes a function the first time its optimized code reaches an
  // operation it never ran: the loop's way out to lingering after the last
  // reply allowed, if the loop made that call itself. Traced, compiled on
  // the main thread so the trace is the same on a busy machine.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--v8-flags=--trace-opt,--trace-deopt,--no-concurrent-recompilation",
      new URL("./fixtures/serve_deopt.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(stderr, /served 36000/);
  const loop = new TextDecoder().decode(out.stdout).split("\n")
    .filter((line) => line.includes("<JSFunction #serve "));
  assert.ok(
    loop.some((line) =>
      line.startsWith("[completed compiling") && line.includes("TURBOFAN")
    ),
    "the loop was optimized",
  );
  assert.deepEqual(loop.filter((line) => line.includes("deoptimizing")), []);
});
