/** `--hsts`: Strict-Transport-Security on every HTTPS reply, never on plain HTTP. */
import assert from "node:assert/strict";
import { startApp } from "./fixtures/app_server.ts";
import { certificate, tlsConnect } from "./helpers/cert.ts";
import { H2Client } from "./helpers/h2_client.ts";
import { get, ReplyReader, send } from "./helpers/socket.ts";
import { TRANSPORTS } from "./helpers/tls_server.ts";

Deno.test("hsts() adds Strict-Transport-Security to HTTPS replies, errors included", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using app = await startApp({
    app: { hstsMaxAgeS: 600 },
    serve: { cert: pem.cert, key: pem.key },
  });
  using conn = await tlsConnect(app.port, pem.cert);
  const reader = new ReplyReader(conn);
  for (const [path, status] of [["/", 200], ["/missing", 404]] as const) {
    await send(conn, get(path));
    const reply = await reader.readReply();
    assert.equal(reply.status, status);
    assert.equal(
      reply.headers.get("strict-transport-security"),
      "max-age=600",
      path,
    );
  }
});

for (const [transport, limits] of TRANSPORTS) {
  Deno.test(`${transport}: hsts() adds Strict-Transport-Security to HTTP/2 replies, errors included`, async () => {
    const pem = await certificate();
    if (pem === undefined) return;
    await using app = await startApp({
      app: { hstsMaxAgeS: 600 },
      serve: { cert: pem.cert, key: pem.key, limits },
    });
    await using h2 = await H2Client.connect(app.port, { caCert: pem.cert });
    assert.equal(h2.alpn, "h2");
    for (const [path, status] of [["/", 200], ["/missing", 404]] as const) {
      const reply = await h2.request(path);
      assert.equal(reply.status, status);
      assert.equal(
        reply.headers.get("strict-transport-security"),
        "max-age=600",
        path,
      );
    }
  });
}

Deno.test("hsts() adds nothing over plain HTTP", async () => {
  await using app = await startApp({ app: { hstsMaxAgeS: 600 } });
  const res = await fetch(`${app.origin}/`);
  await res.body?.cancel();
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("strict-transport-security"), null);
});

Deno.test("no Strict-Transport-Security over HTTPS unless asked", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  await using app = await startApp({ serve: { cert: pem.cert, key: pem.key } });
  using conn = await tlsConnect(app.port, pem.cert);
  await send(conn, get("/"));
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.headers.get("strict-transport-security"), undefined);
});
