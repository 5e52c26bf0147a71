/**
 * `--drain-delay`: after SIGTERM an instance behind a load balancer keeps
 * accepting and serving, with /health at 503 and every reply closing its
 * connection, until the balancer has taken it out; only then does the
 * listener close and the usual graceful shutdown run.
 */
import assert from "node:assert/strict";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { EngineStats } from "../lib/http/stats.ts";
import {
  connect,
  get,
  readReply,
  ReplyReader,
  send,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

Deno.test("shutdown() with drainDelayMs serves new and kept-alive connections meanwhile, each reply closing, then stops", async () => {
  const stats = new EngineStats();
  const health: Handler = () => ({
    status: stats.draining ? 503 : 200,
    body: stats.draining ? "draining" : "ok",
  });
  const server = serve({
    port: 0,
    accessLog: false,
    stats,
    // Long enough for the requests below on a busy machine; the test waits it out.
    limits: { drainDelayMs: 3000 },
  }, health);
  using kept = await connect(server.port);
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
  using fresh = await connect(server.port);
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
