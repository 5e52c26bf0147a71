/**
 * Spindle's engine alone: a fixed "hello" reply, no router, access log off.
 * Listens on 127.0.0.1 and the port given as the first argument; exits on
 * SIGTERM (through Deno.exit, so a --cpu-prof profile gets written).
 */
import type { Reply } from "../../lib/http/handler.ts";
import { serve } from "../../lib/http/server.ts";

const HELLO: Reply = Object.freeze({
  status: 200,
  headers: Object.freeze({ "content-type": "text/plain" }),
  body: "hello",
});

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  accessLog: false,
}, () => HELLO);

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
