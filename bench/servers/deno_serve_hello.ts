/**
 * Reference server: `Deno.serve` answering "hello" to any path, on
 * 127.0.0.1 and the port given as the first argument. Stops on SIGTERM.
 */
const port = Number(Deno.args[0] ?? 0);

Deno.serve(
  { hostname: "127.0.0.1", port, onListen() {} },
  () => new Response("hello", { headers: { "content-type": "text/plain" } }),
);
