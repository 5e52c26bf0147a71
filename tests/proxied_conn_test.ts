/**
 * `--proxy-protocol` in the engine, over real sockets: the client a PROXY
 * header names becomes the request's remote address (plain and TLS on both
 * transports, v1 and v2, header split or sent with the request or hello), the per-address cap counts
 * it, and a trusted peer without a good header in time is closed while an
 * untrusted one's header is just a bad request.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { V2_SIGNATURE } from "../lib/http/proxy_protocol.ts";
import { serve, type ServeOptions } from "../lib/http/server.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import { certificate, tlsConnect } from "./helpers/cert.ts";
import { startTls, TRANSPORTS } from "./helpers/tls_server.ts";
import {
  concat,
  connect,
  encoder,
  get,
  readReply,
  ReplyReader,
  send,
  sleep,
  WAIT_MS,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

const whoAsked: Handler = (req) => ({
  status: 200,
  body: `${req.remoteAddr.hostname} ${req.remoteAddr.port}`,
});

function start(
  limits: Partial<Limits> = {},
  options: Partial<ServeOptions> = {},
) {
  return serve({
    port: 0,
    accessLog: false,
    limits,
    proxyProtocolFrom: () => true, // every test peer is loopback: trusted
    ...options,
  }, whoAsked);
}

const V1 = "PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n";

/** A v2 PROXY header for TCP over IPv4, from `a.b.c.d:port`. */
function v2From(addr: string, port: number): Uint8Array {
  const src = addr.split(".").map(Number);
  return concat([
    V2_SIGNATURE,
    Uint8Array.of(
      0x21,
      0x11,
      0,
      12,
      ...src,
      127,
      0,
      0,
      1,
      port >> 8,
      port & 0xff,
      0x01,
      0xbb,
    ),
  ]);
}

/** Resolves once the server has closed `conn` without a byte of reply. */
async function closedWithoutReply(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(1024);
  const got = await withTimeout(
    conn.read(buf).catch((err) => {
      if (err instanceof Deno.errors.ConnectionReset) return null;
      throw err;
    }),
    WAIT_MS,
    "the server to close the connection",
  );
  assert.equal(got, null, "no reply, just the close");
}

Deno.test("serve() takes the client from a v1 PROXY header sent with the request", async () => {
  await using server = start();
  using conn = await connect(server.port);
  await send(conn, V1 + get("/") + get("/again"));
  const reader = new ReplyReader(conn);
  assert.equal((await reader.readReply()).text, "203.0.113.7 40000");
  assert.equal(
    (await reader.readReply()).text,
    "203.0.113.7 40000",
    "every request on the connection is that client's",
  );
});

Deno.test("serve() takes the client from a v2 PROXY header sent one byte at a time", async () => {
  await using server = start();
  using conn = await connect(server.port);
  const bytes = concat([v2From("198.51.100.20", 1234), encoder.encode(get())]);
  for (const b of bytes) {
    await conn.write(Uint8Array.of(b));
    await sleep(1);
  }
  assert.equal((await readReply(conn)).text, "198.51.100.20 1234");
});

Deno.test("serve() keeps the socket's address for a v2 LOCAL header (a health check)", async () => {
  await using server = start();
  using conn = await connect(server.port);
  await send(
    conn,
    concat([V2_SIGNATURE, Uint8Array.of(0x20, 0, 0, 0), encoder.encode(get())]),
  );
  const reply = await readReply(conn);
  assert.match(reply.text, /^127\.0\.0\.1 \d+$/);
  assert.equal(reply.text, `127.0.0.1 ${conn.localAddr.port}`);
});

Deno.test("serve() closes a trusted peer's connection that starts without a PROXY header", async () => {
  await using server = start();
  using conn = await connect(server.port);
  await send(conn, get());
  await closedWithoutReply(conn);
});

const malformed: [string, string | Uint8Array][] = [
  ["a v1 line with a bad address", "PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n"],
  ["a v1 line without CRLF", `PROXY UNKNOWN ${"x".repeat(120)}`],
  [
    "a v2 header of version 3",
    concat([V2_SIGNATURE, Uint8Array.of(0x31, 0x11, 0, 0)]),
  ],
];
for (const [name, header] of malformed) {
  Deno.test(`serve() closes a trusted peer's connection on ${name}`, async () => {
    await using server = start();
    using conn = await connect(server.port);
    await send(conn, header);
    await send(conn, get()).catch(() => {}); // may meet the close
    await closedWithoutReply(conn);
  });
}

Deno.test("serve() closes a PROXY header longer than maxProxyHeaderBytes", async () => {
  await using server = start({ maxProxyHeaderBytes: 64 });
  using conn = await connect(server.port);
  const header = v2From("203.0.113.7", 1);
  header[15] = 12 + 100; // room for a 97-byte NOOP TLV
  const tlv = Uint8Array.of(0x04, 0, 97, ...new Array(97).fill(0));
  await send(conn, concat([header, tlv, encoder.encode(get())]));
  await closedWithoutReply(conn);
});

Deno.test("serve() closes a trusted peer that sends no PROXY header within headTimeoutMs", async () => {
  await using server = start({ headTimeoutMs: 200 });
  using silent = await connect(server.port);
  using partial = await connect(server.port);
  await send(partial, "PROXY TCP4 203.0.113.7 ");
  const since = Date.now();
  await closedWithoutReply(silent);
  await closedWithoutReply(partial);
  assert.ok(Date.now() - since >= 150, "not before the timeout");
});

Deno.test("serve() answers 400 to a PROXY header from a peer it does not trust", async () => {
  await using server = start({}, { proxyProtocolFrom: () => false });
  for (
    const header of [V1, concat([v2From("203.0.113.7", 1)])]
  ) {
    using conn = await connect(server.port);
    await send(conn, header);
    await send(conn, get()).catch(() => {});
    const reply = await readReply(conn);
    assert.equal(reply.status, 400, "nobody else can claim an address");
  }
});

const pem = await certificate();

/**
 * A stand-in for HAProxy in TCP mode: takes a TLS client's first bytes (its
 * hello) and sends them to `port` in one write behind `header`, so the
 * server reads both at once; then relays both ways.
 */
function proxyRelay(
  port: number,
  header: Uint8Array,
): AsyncDisposable & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const relaying: Promise<unknown>[] = [];
  const accepting = (async () => {
    for await (const client of listener) {
      const buf = new Uint8Array(16 * 1024);
      const n = await client.read(buf);
      const server = await connect(port);
      conns.push(client, server);
      await send(server, concat([header, buf.subarray(0, n ?? 0)]));
      relaying.push(
        client.readable.pipeTo(server.writable).catch(() => {}),
        server.readable.pipeTo(client.writable).catch(() => {}),
      );
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by its pipe */ }
      }
      await Promise.all(relaying);
    },
  };
}

for (const [transport] of TRANSPORTS) {
  const startTlsProxied = (limits: Partial<Limits> = {}) =>
    startTls(transport, pem!, whoAsked, limits, {
      proxyProtocolFrom: () => true,
    });
  const tlsOver = (conn: Deno.TcpConn) =>
    Deno.startTls(conn, { hostname: "localhost", caCerts: [pem!.cert] });

  Deno.test({
    name:
      `${transport}: serve() reads the PROXY header before TLS, alone or in one segment with the hello`,
    ignore: pem === undefined, // certificate() printed why
  }, async () => {
    await using server = await startTlsProxied();
    {
      const tcp = await connect(server.port);
      await send(tcp, V1);
      using tls = await tlsOver(tcp);
      await send(tls, get());
      assert.equal((await readReply(tls)).text, "203.0.113.7 40000");
    }
    {
      await using relay = proxyRelay(server.port, v2From("198.51.100.20", 7));
      using tls = await tlsConnect(relay.port, pem!.cert);
      const reader = new ReplyReader(tls);
      await send(tls, get() + get("/again"));
      assert.equal((await reader.readReply()).text, "198.51.100.20 7");
      assert.equal((await reader.readReply()).text, "198.51.100.20 7");
    }
  });

  Deno.test({
    name:
      `${transport}: serve() over TLS takes a v2 PROXY header sent one byte at a time, and a LOCAL one keeps the socket's address`,
    ignore: pem === undefined,
  }, async () => {
    await using server = await startTlsProxied();
    {
      const tcp = await connect(server.port);
      for (const b of v2From("198.51.100.20", 1234)) {
        await tcp.write(Uint8Array.of(b));
        await sleep(1);
      }
      using tls = await tlsOver(tcp);
      await send(tls, get());
      assert.equal((await readReply(tls)).text, "198.51.100.20 1234");
    }
    {
      const tcp = await connect(server.port);
      await send(tcp, concat([V2_SIGNATURE, Uint8Array.of(0x20, 0, 0, 0)]));
      const local = tcp.localAddr.port;
      using tls = await tlsOver(tcp);
      await send(tls, get());
      assert.equal((await readReply(tls)).text, `127.0.0.1 ${local}`);
    }
  });

  Deno.test({
    name:
      `${transport}: serve() over TLS closes a trusted peer that sends its hello without a PROXY header, or none in time`,
    ignore: pem === undefined,
  }, async () => {
    await using server = await startTlsProxied({ headTimeoutMs: 300 });
    using hello = await connect(server.port);
    // The first bytes of a ClientHello record: not a PROXY header.
    await send(hello, Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01));
    await closedWithoutReply(hello);
    using partial = await connect(server.port);
    await send(partial, "PROXY TCP4 203.0.113.7 ");
    await closedWithoutReply(partial);
    await waitFor(
      () => server.stats.active === 0 && server.stats.accepted === 2,
      "both counted, neither served",
    );
  });

  Deno.test({
    name:
      `${transport}: serve() over TLS takes a proxied connection that sent only its header for silent, and closes it to make room`,
    ignore: pem === undefined,
  }, async () => {
    await using server = await startTlsProxied({ maxConns: 1, maxQueue: 0 });
    using quiet = await connect(server.port);
    await send(quiet, V1);
    await waitFor(() => server.stats.active === 1, "the header read");
    const tcp = await connect(server.port);
    await send(tcp, v2From("198.51.100.20", 5));
    using tls = await tlsOver(tcp);
    await send(tls, get());
    assert.equal((await readReply(tls)).text, "198.51.100.20 5");
    await closedWithoutReply(quiet);
  });

  Deno.test({
    name:
      `${transport}: serve() over TLS shutdown closes connections still waiting for their PROXY header`,
    ignore: pem === undefined,
  }, async () => {
    const server = await startTlsProxied();
    using conn = await connect(server.port);
    await send(conn, "PROXY TCP4 ");
    await waitFor(() => server.stats.accepted === 1, "accepted");
    await withTimeout(server.shutdown(), WAIT_MS, "shutdown");
    await closedWithoutReply(conn);
  });
}

Deno.test("serve() counts the per-address cap against the proxied client", async () => {
  await using server = start({ maxConnsPerIp: 1 });
  using first = await connect(server.port);
  await send(first, concat([v2From("203.0.113.7", 1), encoder.encode(get())]));
  assert.equal((await readReply(first)).status, 200);
  // `first` stays open: a second connection of the same client is one too many.
  using second = await connect(server.port);
  await send(second, concat([v2From("203.0.113.7", 2), encoder.encode(get())]));
  assert.equal((await readReply(second)).status, 429);
  using other = await connect(server.port);
  await send(other, concat([v2From("203.0.113.8", 3), encoder.encode(get())]));
  assert.equal((await readReply(other)).status, 200, "another client passes");
});

Deno.test("serve() shutdown closes connections still waiting for their PROXY header", async () => {
  const server = start();
  using conn = await connect(server.port);
  await send(conn, "PROXY TCP4 ");
  await sleep(20); // accepted and waiting
  await withTimeout(server.shutdown(), WAIT_MS, "shutdown");
  await closedWithoutReply(conn);
});

Deno.test("serve() logs the PROXY client in access lines, and a bad header with its peer", async () => {
  await using logs = await captureLogs();
  await using server = serve({
    port: 0,
    proxyProtocolFrom: () => true,
  }, whoAsked);
  using good = await connect(server.port);
  await send(good, V1 + get("/hello"));
  await readReply(good);
  using bad = await connect(server.port);
  await send(bad, "PROXY TCP4 nowhere\r\n");
  await closedWithoutReply(bad);
  assert.deepEqual(
    logs.access().map((a) => `${a.client} ${a.target} ${a.status}`),
    ["203.0.113.7 /hello 200"],
  );
  const warnings = logs.of("spindle", "server").filter((r) =>
    r.level === "warning"
  );
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].properties.peer, "127.0.0.1");
  assert.match(String(warnings[0].properties.reason), /^Cannot read PROXY/);
});
