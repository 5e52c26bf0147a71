/**
 * The default app served by the engine over HTTP/2, to clients no one here
 * wrote: nghttp and h2load (Debian nghttp2-client), curl and Node's http2
 * client, over TLS with ALPN h2 and over h2c (prior knowledge). The routes,
 * the static files, uploads and the Host guard work unchanged. Each test is
 * ignored, with its reason, when its tool is missing.
 */
import assert from "node:assert/strict";
import { startApp } from "./fixtures/app_server.ts";
import { certificate } from "./helpers/cert.ts";
import { NODE_H2_ASK } from "./helpers/h2.ts";
import { missingTool, run } from "./helpers/socket.ts";

const missing = missingTool;

const NGHTTP = "/usr/bin/nghttp";
const H2LOAD = "/usr/bin/h2load";
const CURL = "/usr/bin/curl";
const NODE = "/usr/bin/node";
for (const tool of [NGHTTP, H2LOAD, CURL, NODE]) {
  const why = missing(tool);
  if (why !== undefined) {
    console.log(`h2_engine_interop_test: ${why}; its tests are ignored`);
  }
}
const pem = await certificate();
const TOOL_MS = 60_000;

/** The default app over TLS (ALPN h2), its folders made for the test. */
function tlsApp() {
  return startApp({ serve: { cert: pem!.cert, key: pem!.key } });
}

Deno.test({
  name:
    "nghttp gets the default app's pages over TLS with ALPN h2, frames well formed",
  ignore: missing(NGHTTP) !== undefined || pem === undefined,
  async fn() {
    await using app = await tlsApp();
    const r = await run(NGHTTP, [
      "-nv",
      `https://localhost:${app.port}/echo/hello`,
      `https://localhost:${app.port}/`,
    ], TOOL_MS);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /The negotiated protocol: h2/);
    assert.match(r.stdout, /recv \(stream_id=13\) :status: 200/);
    assert.match(r.stdout, /recv \(stream_id=15\) :status: 200/);
    assert.doesNotMatch(r.stdout, /recv RST_STREAM|PROTOCOL_ERROR/);
  },
});

Deno.test({
  name:
    "nghttp: :authority is the Host the guard checks (421 for another name)",
  ignore: missing(NGHTTP) !== undefined || pem === undefined,
  async fn() {
    await using app = await tlsApp();
    const r = await run(NGHTTP, [
      "-nv",
      "-H",
      ":authority: evil.example",
      `https://localhost:${app.port}/echo/hello`,
    ], TOOL_MS);
    assert.match(r.stdout, /recv \(stream_id=13\) :status: 421/);
  },
});

Deno.test({
  name:
    "h2load -n 2000 -c 4 -m 32 over TLS: every request of the default app succeeds",
  ignore: missing(H2LOAD) !== undefined || pem === undefined,
  async fn() {
    await using app = await tlsApp();
    const r = await run(H2LOAD, [
      "-n",
      "2000",
      "-c",
      "4",
      "-m",
      "32",
      `https://localhost:${app.port}/echo/hello`,
    ], TOOL_MS);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Application protocol: h2/);
    assert.match(
      r.stdout,
      /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed/,
    );
    assert.match(r.stdout, /status codes: 2000 2xx/);
  },
});

Deno.test({
  name:
    "h2load over h2c (prior knowledge), and HTTP/1.1 still answers on the port",
  ignore: missing(H2LOAD) !== undefined,
  async fn() {
    await using app = await startApp({ serve: { h2c: true } });
    const r = await run(H2LOAD, [
      "-n",
      "500",
      "-c",
      "2",
      "-m",
      "10",
      `http://127.0.0.1:${app.port}/echo/hello`,
    ], TOOL_MS);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /500 succeeded, 0 failed/);
    const plain = await fetch(`${app.origin}/echo/hi`);
    assert.equal(await plain.text(), "hi");
  },
});

Deno.test({
  name:
    "curl --http2: static page, gzip, JSON upload and a 404 page, all over h2",
  ignore: missing(CURL) !== undefined || pem === undefined,
  async fn() {
    await using app = await tlsApp();
    const url = `https://localhost:${app.port}`;
    const curl = (...args: string[]) =>
      run(CURL, [
        "-s",
        "--http2",
        "--cacert",
        pem!.certFile,
        "-w",
        "\n%{http_version} %{http_code}",
        ...args,
      ], TOOL_MS);
    const page = await curl(`${url}/`);
    assert.match(page.stdout, /<p>home<\/p>\n\n2 200$/);
    const gz = await curl("--compressed", "-D", "-", `${url}/echo/hello`);
    assert.match(gz.stdout, /content-encoding: gzip/);
    assert.match(gz.stdout, /hello\n2 200$/);
    const up = await curl(
      "-H",
      "content-type: application/json",
      "-d",
      '{"name":"pen"}',
      `${url}/upload`,
    );
    assert.match(up.stdout, /2 201$/);
    const missingPage = await curl(`${url}/nothing-here`);
    assert.match(missingPage.stdout, /2 404$/);
  },
});

Deno.test({
  name: "curl --http2-prior-knowledge talks h2c to a server with h2c on",
  ignore: missing(CURL) !== undefined,
  async fn() {
    await using app = await startApp({ serve: { h2c: true } });
    const r = await run(CURL, [
      "-s",
      "--http2-prior-knowledge",
      "-w",
      "\n%{http_version} %{http_code}",
      `${app.origin}/echo/h2c`,
    ], TOOL_MS);
    assert.equal(r.stdout, "h2c\n2 200");
  },
});

const NODE_CLIENT = `${NODE_H2_ASK}
(async () => {
  const out = [];
  const many = [];
  for (let i = 0; i < 50; i++) many.push(ask({ ":path": "/echo/n" + i }));
  out.push((await Promise.all(many)).map((r) => r.status + ":" + r.body).join(","));
  const put = await ask({ ":path": "/files/up.bin", ":method": "POST" }, "x".repeat(100000));
  out.push(String(put.status));
  const back = await ask({ ":path": "/files/up.bin" });
  out.push(back.status + ":" + back.body.length);
  session.close();
  console.log(out.join("\\n"));
})().catch((e) => { console.error(e); process.exit(1); });
`;

Deno.test({
  name:
    "Node's http2 client: 50 streams at once, an upload with trailers, and the file back",
  ignore: missing(NODE) !== undefined || pem === undefined,
  async fn() {
    await using app = await tlsApp();
    const r = await run(NODE, [
      "-e",
      NODE_CLIENT,
      `https://localhost:${app.port}`,
      pem!.certFile,
    ], TOOL_MS);
    assert.equal(r.code, 0, r.stderr);
    const [many, put, back] = r.stdout.trim().split("\n");
    assert.equal(
      many,
      Array.from({ length: 50 }, (_, i) => `200:n${i}`).join(","),
    );
    assert.equal(put, "201");
    assert.equal(back, "200:100000");
  },
});
