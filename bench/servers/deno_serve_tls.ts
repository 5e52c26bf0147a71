/**
 * Reference server: `Deno.serve` over TLS answering "hello" to any path,
 * on 127.0.0.1; arguments: port, certificate file, key file. Deno.serve
 * offers h2 and http/1.1 by ALPN. Stops on SIGTERM.
 */
const [port, certFile, keyFile] = Deno.args;

Deno.serve(
  {
    hostname: "127.0.0.1",
    port: Number(port),
    cert: Deno.readTextFileSync(certFile),
    key: Deno.readTextFileSync(keyFile),
    onListen() {},
  },
  () => new Response("hello", { headers: { "content-type": "text/plain" } }),
);
