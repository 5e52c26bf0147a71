/**
 * `--drain-delay`: after SIGTERM an instance behind a load balancer keeps
 * accepting and serving, with /health at 503 and every reply closing its
 * connection, until the balancer has taken it out; only then does the
 * listener close and the usual graceful shutdown run.
 */
import assert from "node:assert/strict";
import type { Handler } from "../lib/http/handler.ts";
import { serve, type ServeOptions, type Server } from "../lib/http/server.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { certificate, tlsConnect } from "./helpers/cert.ts";
import {
  connect,
  get,
  readReply,
  ReplyReader,
  send,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";
import { startTls, TRANSPORTS } from "./helpers/tls_server.ts";

const pem = await certificate();

/** Plain HTTP, and HTTPS on each of its transports. */
const LISTENERS: readonly (readonly [
  name: string,
  start: (options: ServeOptions, handler: Handler) => Promise<Server>,
  open: (port: number) => Promise<Deno.Conn>,
])[] = [
  ["plain", async (options, handler) => {
    const server = serve(options, handler);
    await server.ready;
    return server;
  }, connect],
  ...TRANSPORTS.map(([transport]) =>
    [
      `TLS on ${transport}`,
      (options: ServeOptions, handler: Handler) =>
        startTls(transport, pem!, handler, options.limits, options),
      (port: number) => tlsConnect(port, pem!.cert),
    ] as const
  ),
];

for (const [name, start, open] of LISTENERS) {
  Deno.test({
    name:
      `${name}: shutdown() with drainDelayMs serves new and kept-alive connections meanwhile, each reply closing, then stops`,
    ignore: name !== "plain" && pem === undefined,
  }, async () => {
    const stats = new EngineStats();
    const health: Handler = () => ({
      status: stats.draining ? 503 : 200,
      body: stats.draining ? "draining" : "ok",
    });
    const server = await start({
      port: 0,
      accessLog: false,
      stats,
      // Long enough for the requests below on a busy machine; the test waits it out.
      limits: { drainDelayMs: 3000 },
    }, health);
    using kept = await open(server.port);
    const reader = new ReplyReader(kept);
    await send(kept, get("/health"));
    const before = await reader.readReply();
    assert.equal(before.status, 200);
    assert.notEqual(before.headers.get("connection"), "close");

    const stopped = server.shutdown();
    await waitFor(() => stats.draining, "the drain to start");
    // The kept-alive connection: answered, and told to close.
    await send(kept, get("/health"));
    const during = await reader.readReply();
    assert.equal(during.status, 503);
    assert.equal(during.headers.get("connection"), "close");
    // A new connection is still accepted and served, not refused.
    using fresh = await open(server.port);
    await send(fresh, get("/health"));
    const reply = await readReply(fresh);
    assert.equal(reply.status, 503);
    assert.equal(reply.text, "draining");
    assert.equal(reply.headers.get("connection"), "close");
    assert.equal(stats.accepted, 2, "the listener is still open");
    await withTimeout(stopped, 10_000, "shutdown after the delay");
    await assert.rejects(
      connect(server.port),
      Deno.errors.ConnectionRefused,
      "then the listener is closed",
    );
  });
}
