/**
 * HTTPS over real sockets with the test certificate (tests/fixtures/):
 * raw TLS and curl, keep-alive over TLS, `req.secure`, big replies, and
 * clients that do not speak TLS at all.
 */
import assert from "node:assert/strict";
import type net from "node:net";
import nodeTls from "node:tls";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { listenTls } from "../lib/http/tls.ts";
import { certificate, type Pem, tlsConnect } from "./helpers/cert.ts";
import { startTls, TRANSPORTS } from "./helpers/tls_server.ts";
import {
  connect,
  get,
  lacks,
  ReplyReader,
  run,
  send,
  sleep,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

const whoAmI: Handler = (req) => ({
  status: 200,
  body: `${req.secure ? "secure" : "plain"} ${req.path}`,
});

for (const [transport] of TRANSPORTS) {
  const start = (pem: Pem, handler: Handler, limits?: Partial<Limits>) =>
    startTls(transport, pem, handler, limits);

  Deno.test(`${transport}: serve() speaks HTTPS with keep-alive, and req.secure is true`, async () => {
    const pem = await certificate();
    await using server = await start(pem, whoAmI);
    using conn = await tlsConnect(server.port, pem.cert);
    const reader = new ReplyReader(conn);
    for (const path of ["/a", "/b", "/c"]) {
      await send(conn, get(path));
      const reply = await reader.readReply();
      assert.equal(reply.status, 200);
      assert.equal(reply.text, `secure ${path}`);
      assert.equal(reply.headers.get("connection"), undefined);
    }
    assert.equal(server.stats.accepted, 1, "one connection for three requests");
  });

  Deno.test(`${transport}: serve() over TLS answers pipelined requests and a 4 MiB reply intact`, async () => {
    const pem = await certificate();
    const big = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    await using server = await start(pem, (req) => ({
      status: 200,
      body: req.path === "/big" ? big : req.path,
    }));
    using conn = await tlsConnect(server.port, pem.cert);
    await send(conn, get("/1") + get("/big") + get("/2"));
    const reader = new ReplyReader(conn);
    assert.equal((await reader.readReply()).text, "/1");
    const reply = await reader.readReply({ timeoutMs: 10_000 });
    assert.equal(reply.body.length, big.length);
    assert.deepEqual(reply.body, big);
    assert.equal((await reader.readReply()).text, "/2");
  });

  Deno.test({
    name:
      `${transport}: serve() over TLS works with curl --cacert and reuses the connection`,
    ignore: await lacks("curl"),
  }, async () => {
    const pem = await certificate();
    await using server = await start(pem, whoAmI);
    const url = `https://localhost:${server.port}`;
    const out = await run("curl", [
      "-sv",
      "--http1.1",
      "--cacert",
      pem.certFile,
      "--resolve",
      `localhost:${server.port}:127.0.0.1`,
      `${url}/x`,
      `${url}/y`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, "secure /xsecure /y");
    assert.match(out.stderr, /Re-using existing connection/);
    await waitFor(() => server.stats.active === 0, "curl's connection closed");
  });

  Deno.test(`${transport}: serve() over TLS survives clients that do not speak TLS`, async () => {
    const pem = await certificate();
    await using server = await start(pem, whoAmI, { headTimeoutMs: 5000 });
    // Plain HTTP to the TLS port: the handshake fails and the socket closes.
    using plain = await connect(server.port);
    await send(plain, get("/"));
    const reader = new ReplyReader(plain);
    const rest = await reader.readUntilClose();
    assert.doesNotMatch(new TextDecoder().decode(rest), /HTTP\/1\.1 200/);
    await waitFor(() => server.stats.active === 0, "the connection closed");
    // And a real client is still served.
    using tls = await tlsConnect(server.port, pem.cert);
    await send(tls, get("/ok"));
    assert.equal((await new ReplyReader(tls).readReply()).text, "secure /ok");
  });

  Deno.test(`${transport}: serve() over TLS survives a client that leaves mid-reply`, async () => {
    const pem = await certificate();
    await using server = await start(pem, (req) => ({
      status: 200,
      body: req.path === "/big" ? new Uint8Array(16 * 1024 * 1024) : "ok",
    }));
    const conn = await tlsConnect(server.port, pem.cert);
    await send(conn, get("/big"));
    const reader = new ReplyReader(conn);
    await reader.fill(Date.now() + 5000);
    conn.close();
    await waitFor(() => server.stats.active === 0, "the connection closed");
    using again = await tlsConnect(server.port, pem.cert);
    await send(again, get("/"));
    assert.equal((await new ReplyReader(again).readReply()).text, "ok");
  });

  Deno.test(`${transport}: serve() over TLS closes a kept-alive connection after keepAliveTimeoutMs idle`, async () => {
    const pem = await certificate();
    await using server = await start(pem, whoAmI, { keepAliveTimeoutMs: 300 });
    using conn = await tlsConnect(server.port, pem.cert);
    const reader = new ReplyReader(conn);
    const t0 = performance.now(); // the idle time starts after the reply
    await send(conn, get("/"));
    await reader.readReply();
    assert.equal(await reader.closed(), true);
    assert.ok(performance.now() - t0 >= 280);
    await waitFor(() => server.stats.active === 0, "the connection closed");
  });

  // Deno 2.9.6 defers closing a TLS socket from Deno.listenTls until its
  // handshake ends (denoland/deno PR #14547), and a client that never sends a
  // ClientHello never ends it. The engine accepts plain TCP and runs TLS in
  // node:tls over that socket (lib/http/tls.ts), so closing really closes.
  Deno.test(`${transport}: serve() over TLS closes the socket of a client that never starts a handshake`, async () => {
    const pem = await certificate();
    await using server = await start(pem, whoAmI, { headTimeoutMs: 300 });
    using silent = await connect(server.port);
    await waitFor(() => server.stats.active === 0, "the engine to drop it");
    assert.equal(await new ReplyReader(silent).closed(), true);
  });

  Deno.test(`${transport}: serve() over TLS closes a client that starts a handshake and stalls, at the head deadline`, async () => {
    const pem = await certificate();
    await using server = await start(pem, whoAmI, { headTimeoutMs: 300 });
    const t0 = performance.now(); // before the server's clock starts
    using stalled = await connect(server.port);
    // The first bytes of a ClientHello record, then nothing.
    await stalled.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    assert.equal(await new ReplyReader(stalled).closed(), true);
    assert.ok(performance.now() - t0 >= 200, "closed before the deadline");
    await waitFor(() => server.stats.active === 0, "the engine to drop it");
  });

  Deno.test(`${transport}: serve() over TLS answers a client that sends its request and then closes its side`, async () => {
    const pem = await certificate();
    // The handler answers once the client has sent its FIN (node's
    // "finish"): the FIN is in before the reply goes out.
    const finished = Promise.withResolvers<void>();
    await using server = await start(pem, async (req) => {
      await withTimeout(finished.promise, 10_000, "the client's FIN");
      return whoAmI(req);
    });
    // node's client: end() sends the request, close_notify and FIN at once,
    // as `printf 'GET ...' | openssl s_client` does.
    const text = await new Promise<string>((resolve, reject) => {
      const socket = nodeTls.connect(
        {
          host: "127.0.0.1",
          port: server.port,
          servername: "localhost",
          ca: pem.cert,
        },
        () => socket.end(get("/half")),
      );
      let got = "";
      socket.on("finish", () => finished.resolve());
      socket.on("data", (d) => got += d);
      socket.on("close", () => resolve(got));
      socket.on("error", reject);
    });
    assert.match(text, /^HTTP\/1\.1 200 [\s\S]*secure \/half$/);
  });

  Deno.test(`${transport}: serve() over TLS negotiates h2 by ALPN, and http/1.1 with a client that offers only it or with http2 off`, async () => {
    const pem = await certificate();
    const cases: [offered: string[], http2: boolean, chosen: string][] = [
      [["h2", "http/1.1"], true, "h2"],
      [["http/1.1"], true, "http/1.1"], // h2 itself: tests/h2_connection_test.ts
      [["h2", "http/1.1"], false, "http/1.1"],
    ];
    for (const [offered, http2, chosen] of cases) {
      await using server = await startTls(transport, pem, whoAmI, {}, {
        http2,
      });
      using conn = await Deno.connectTls({
        hostname: "localhost",
        port: server.port,
        caCerts: [pem.cert],
        alpnProtocols: offered,
      });
      const info = await conn.handshake();
      assert.equal(info.alpnProtocol, chosen, `${offered} with http2 ${http2}`);
      if (chosen !== "http/1.1") continue;
      await send(conn, get("/alpn"));
      assert.equal(
        (await new ReplyReader(conn).readReply()).text,
        "secure /alpn",
      );
    }
  });
}

Deno.test("listenTls(): its own probe, accepted before its connect is reported, is neither taken for a stall nor handed over as a client", async () => {
  const accepted: net.Socket[] = [];
  let stalls = 0;
  const listener = listenTls(
    { hostname: "127.0.0.1", port: 0, backlog: 16 },
    (raw) => accepted.push(raw),
    (err) => assert.fail(err),
    () => stalls++,
  );
  const { port } = await listener.ready;
  using _held = await connect(port);
  try {
    await waitFor(() => accepted.length === 1, "the held socket accepted");
    // Held sockets since the last call, nothing accepted since: a probe
    // goes out on the second call. The listener is clock-driven: a probe
    // still unsettled a second later at the third call counts as a stall.
    listener.watch(true);
    listener.watch(true);
    // A client right behind the probe: accepted while the probe's connect
    // may still be unreported, it waits for that, then is handed on.
    using behind = await connect(port);
    await waitFor(() => accepted.length === 2, "the client behind handed on");
    assert.equal(accepted[1].remotePort, behind.localAddr.port);
    await sleep(1100);
    listener.watch(true);
    assert.equal(stalls, 0, "a listener that accepts called stalled");
    assert.equal(accepted.length, 2, "the probe handed over as a client");
    // It still accepts, on the same socket.
    using next = await connect(port);
    await waitFor(() => accepted.length === 3, "a new client accepted");
    assert.equal(accepted[2].remotePort, next.localAddr.port);
  } finally {
    listener.close();
    for (const raw of accepted) raw.destroy();
  }
});

Deno.test("node's socket: serve() holding a quiet connection counts its listener's own probe as no client, and serves on", async () => {
  const pem = await certificate();
  const transport = TRANSPORTS[1][0];
  await using server = await startTls(transport, pem, whoAmI, {
    keepAliveTimeoutMs: 60_000,
  });
  using conn = await tlsConnect(server.port, pem.cert);
  const reader = new ReplyReader(conn);
  await send(conn, get("/held"));
  assert.equal((await reader.readReply()).text, "secure /held");
  // The sweeper has the listener probed once it was quiet for a watch
  // (about a second) with a socket held, and calls a probe unanswered at
  // the next watch a stall: it listened afresh and closed a silent socket,
  // every 2.5 s, resetting clients in the kernel's queue meanwhile.
  await sleep(4000);
  assert.equal(server.stats.accepted, 1, "a probe counted as a client");
  await send(conn, get("/still"));
  assert.equal((await reader.readReply()).text, "secure /still");
  using other = await tlsConnect(server.port, pem.cert);
  await send(other, get("/new"));
  assert.equal((await new ReplyReader(other).readReply()).text, "secure /new");
  assert.equal(server.stats.accepted, 2);
});
