/**
 * Reference server for the engine cases: `Deno.serve` answering "hello".
 * Prints `{"port":N}` and exits when stdin closes.
 */
import { announcePort, stdinClosed } from "./stdin_eof.ts";

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => announcePort(port),
}, () => new Response("hello", { headers: { "content-type": "text/plain" } }));

await stdinClosed();
await server.shutdown();
Deno.exit(0);
