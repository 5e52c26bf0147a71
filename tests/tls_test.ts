/**
 * HTTPS over real sockets with a certificate made for the test by openssl:
 * raw TLS and curl, keep-alive over TLS, `req.secure`, big replies, and
 * clients that do not speak TLS at all.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { certificate, type Pem } from "./helpers/cert.ts";
import {
  connect,
  get,
  hasTool,
  ReplyReader,
  run,
  send,
  waitFor,
} from "./helpers/socket.ts";

function start(pem: Pem, handler: Handler, limits: Partial<Limits> = {}) {
  return serve(
    { port: 0, accessLog: false, cert: pem.cert, key: pem.key, limits },
    handler,
  );
}

const whoAmI: Handler = (req) => ({
  status: 200,
  body: `${req.secure ? "secure" : "plain"} ${req.path}`,
});

Deno.test("serve() speaks HTTPS with keep-alive, and req.secure is true", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using server = start(pem, whoAmI);
  using conn = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
  });
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

Deno.test("serve() over TLS answers pipelined requests and a 4 MiB reply intact", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  const big = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  await using server = start(pem, (req) => ({
    status: 200,
    body: req.path === "/big" ? big : req.path,
  }));
  using conn = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
  });
  await send(conn, get("/1") + get("/big") + get("/2"));
  const reader = new ReplyReader(conn);
  assert.equal((await reader.readReply()).text, "/1");
  const reply = await reader.readReply({ timeoutMs: 10_000 });
  assert.equal(reply.body.length, big.length);
  assert.deepEqual(reply.body, big);
  assert.equal((await reader.readReply()).text, "/2");
});

Deno.test("serve() over TLS works with curl --cacert and reuses the connection", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  if (!(await hasTool("curl"))) {
    console.log("skipped: curl is not installed");
    return;
  }
  await using server = start(pem, whoAmI);
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

Deno.test("serve() over TLS survives clients that do not speak TLS", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using server = start(pem, whoAmI, { headTimeoutMs: 300 });
  // Plain HTTP to the TLS port: the handshake fails and the socket closes.
  using plain = await connect(server.port);
  await send(plain, get("/"));
  const reader = new ReplyReader(plain);
  const rest = await reader.readUntilClose(2000);
  assert.doesNotMatch(new TextDecoder().decode(rest), /HTTP\/1\.1 200/);
  await waitFor(() => server.stats.active === 0, "the connection closed");
  // And a real client is still served.
  using tls = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
  });
  await send(tls, get("/ok"));
  assert.equal((await new ReplyReader(tls).readReply()).text, "secure /ok");
});

Deno.test("serve() over TLS survives a client that leaves mid-reply", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using server = start(pem, (req) => ({
    status: 200,
    body: req.path === "/big" ? new Uint8Array(16 * 1024 * 1024) : "ok",
  }));
  const conn = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
  });
  await send(conn, get("/big"));
  const reader = new ReplyReader(conn);
  await reader.fill(Date.now() + 5000);
  conn.close();
  await waitFor(() => server.stats.active === 0, "the connection closed");
  using again = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
  });
  await send(again, get("/"));
  assert.equal((await new ReplyReader(again).readReply()).text, "ok");
});

Deno.test("serve() over TLS closes a kept-alive connection after keepAliveTimeoutMs idle", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using server = start(pem, whoAmI, { keepAliveTimeoutMs: 300 });
  using conn = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
  });
  const reader = new ReplyReader(conn);
  await send(conn, get("/"));
  await reader.readReply();
  const t0 = performance.now();
  assert.equal(await reader.closed(2000), true);
  assert.ok(performance.now() - t0 >= 250);
  await waitFor(() => server.stats.active === 0, "the connection closed");
});

// Deno 2.9.6 defers closing a TLS socket from Deno.listenTls until its
// handshake ends (denoland/deno PR #14547), and a client that never sends a
// ClientHello never ends it. The engine accepts plain TCP and runs TLS in
// node:tls over that socket (lib/http/tls.ts), so closing really closes.
Deno.test("serve() over TLS closes the socket of a client that never starts a handshake", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using server = start(pem, whoAmI, { headTimeoutMs: 300 });
  using silent = await connect(server.port);
  await waitFor(() => server.stats.active === 0, "the engine to drop it");
  assert.equal(await new ReplyReader(silent).closed(2000), true);
});

Deno.test("serve() over TLS negotiates http/1.1 by ALPN with a client that offers only it", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using server = start(pem, whoAmI);
  using conn = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [pem.cert],
    alpnProtocols: ["http/1.1"], // h2 first gets h2: tests/h2_connection_test.ts
  });
  const info = await conn.handshake();
  assert.equal(info.alpnProtocol, "http/1.1");
  await send(conn, get("/alpn"));
  assert.equal((await new ReplyReader(conn).readReply()).text, "secure /alpn");
});
