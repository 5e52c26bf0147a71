/**
 * Spindle's engine with `staticFiles()` over the root given as the first
 * argument, access log off. Prints `{"port":N}` and exits when stdin closes.
 */
import { DEFAULT_STATIC } from "../../lib/config.ts";
import { staticFiles } from "../../lib/app/static_files.ts";
import { serve } from "../../lib/http/server.ts";
import { announcePort, stdinClosed } from "./stdin_eof.ts";

const root = Deno.args[0];
if (!root) {
  console.error("Usage: spindle_static.ts <root>");
  Deno.exit(2);
}

const server = serve(
  { hostname: "127.0.0.1", port: 0, accessLog: false },
  staticFiles({ ...DEFAULT_STATIC, root }),
);
announcePort(server.port);

await stdinClosed();
await server.shutdown();
Deno.exit(0);
