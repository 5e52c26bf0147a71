/**
 * Spindle's engine answering "hello", access log off. Prints `{"port":N}`
 * and exits when stdin closes.
 *
 * `--keep-alive-ms N` raises the idle timeout so the idle-connection memory
 * case measures held connections, not ones the engine already closed.
 */
import { parseArgs } from "node:util";
import { DEFAULT_LIMITS } from "../../lib/config.ts";
import type { Reply } from "../../lib/http/handler.ts";
import { serve } from "../../lib/http/server.ts";
import { announcePort, stdinClosed } from "./stdin_eof.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { "keep-alive-ms": { type: "string" } },
});
const keepAliveTimeoutMs = Number(
  values["keep-alive-ms"] ?? DEFAULT_LIMITS.keepAliveTimeoutMs,
);

const HELLO: Reply = Object.freeze({
  status: 200,
  headers: Object.freeze({ "content-type": "text/plain" }),
  body: "hello",
});

const server = serve({
  hostname: "127.0.0.1",
  port: 0,
  accessLog: false,
  limits: { keepAliveTimeoutMs },
}, () => HELLO);
announcePort(server.port);

await stdinClosed();
await server.shutdown();
Deno.exit(0);
