/**
 * Stand-in for Spindle's static server while lib/http/server.ts or
 * lib/app/static_files.ts is missing: `Deno.serve` streaming files from the
 * root given as the first argument. Not a reference in the report.
 */
import { join, normalize } from "node:path";
import { announcePort, stdinClosed } from "./stdin_eof.ts";

const root = Deno.args[0];
if (!root) {
  console.error("Usage: deno_serve_static.ts <root>");
  Deno.exit(2);
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => announcePort(port),
}, async (req) => {
  const path = normalize(decodeURIComponent(new URL(req.url).pathname));
  if (path.includes("..")) return new Response("Bad Request", { status: 400 });
  try {
    const file = await Deno.open(join(root, path));
    const { size } = await file.stat();
    return new Response(file.readable, {
      headers: { "content-length": `${size}` },
    });
  } catch {
    return new Response("Not Found", { status: 404 });
  }
});

await stdinClosed();
await server.shutdown();
Deno.exit(0);
