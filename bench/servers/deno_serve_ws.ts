/**
 * Reference server: `Deno.serve` with `Deno.upgradeWebSocket`, echoing
 * every message on any path (as Spindle's WebSocket /echo does) and
 * answering "hello" to plain requests, on 127.0.0.1 and the port given as
 * the first argument. Stops on SIGTERM.
 */
const port = Number(Deno.args[0] ?? 0);

Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (req) => {
  if (req.headers.get("upgrade") !== "websocket") {
    return new Response("hello", { headers: { "content-type": "text/plain" } });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (e) => socket.send(e.data);
  return response;
});
