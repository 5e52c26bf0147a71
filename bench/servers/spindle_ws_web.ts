/**
 * Spindle's WebSocket echo through the web API: the engine and the router
 * with a route whose handler sets `onmessage` (a `MessageEvent` a message)
 * and echoes with `send()`, as `Deno.serve`'s reference server
 * (deno_serve_ws.ts) and a web-standard app do; the default app's `/echo`
 * uses handlers that get plain values instead. Listens on 127.0.0.1 and the
 * port given as the first argument, path `/echo`; exits on SIGTERM.
 */
import { Router } from "../../lib/app/router.ts";
import { serve } from "../../lib/http/server.ts";

const app = new Router().ws("/echo", (ws) => {
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => ws.send(e.data);
});

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  accessLog: false,
}, app.handler());

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
