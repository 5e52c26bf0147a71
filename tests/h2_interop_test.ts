/**
 * H2Session against HTTP/2 clients no one here wrote: nghttp and h2load
 * (Debian nghttp2-client), curl and Node's http2 client, over plain TCP
 * with prior knowledge (h2c), through a bare socket adapter
 * (tests/fixtures/h2c_server.ts): the session alone. The engine faces the
 * same clients in tests/h2_engine_interop_test.ts.
 * Each test is ignored, with its reason, when its tool is missing.
 */
import assert from "node:assert/strict";
import { startH2c } from "./fixtures/h2c_server.ts";
import { NODE_H2_ASK } from "./helpers/h2.ts";
import { missingTool } from "./helpers/socket.ts";

const missing = missingTool;

const NGHTTP = "/usr/bin/nghttp";
const H2LOAD = "/usr/bin/h2load";
const CURL = "/usr/bin/curl";
const NODE = "/usr/bin/node";
for (const tool of [NGHTTP, H2LOAD, CURL, NODE]) {
  const why = missing(tool);
  if (why !== undefined) {
    console.log(`h2_interop_test: ${why}; its tests are ignored`);
  }
}

async function run(
  cmd: string,
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const r = await child.output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout), err: d.decode(r.stderr) };
}

Deno.test({
  name: "nghttp gets a reply and sees every frame well formed",
  ignore: missing(NGHTTP) !== undefined,
  async fn() {
    await using server = startH2c();
    const r = await run(NGHTTP, [
      "-v",
      `http://127.0.0.1:${server.port}/echo/hello`,
    ]);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /recv \(stream_id=13\) :status: 200/);
    assert.match(r.out, /recv DATA frame <length=5, flags=0x01, stream_id=13>/);
    assert.match(r.out, /\nhello\[/); // the body, printed before the next log line
    assert.doesNotMatch(r.out, /recv GOAWAY|recv RST_STREAM|PROTOCOL_ERROR/);
  },
});

Deno.test({
  name:
    "nghttp gets 413 for a body past maxBodyBytes, then RST_STREAM NO_ERROR stops its upload",
  ignore: missing(NGHTTP) !== undefined,
  async fn() {
    await using server = startH2c();
    const body = await Deno.makeTempFile({ prefix: "spindle_h2_" });
    try {
      await Deno.writeFile(body, new Uint8Array(2_000_000));
      const r = await run(NGHTTP, [
        "-v",
        "-d",
        body,
        `http://127.0.0.1:${server.port}/up`,
      ]);
      assert.equal(r.code, 0, r.err + r.out);
      assert.match(r.out, /recv \(stream_id=13\) :status: 413/);
      assert.match(r.out, /Request body is larger than 1048576 bytes/);
      // curl 7.88 calls this stop an error when its upload is cut short
      // (curl/curl#22987); RFC 9113 §8.1 asks for it, as httpd and Go do.
      assert.match(
        r.out,
        /recv RST_STREAM frame <length=4, flags=0x00, stream_id=13>\s+\(error_code=NO_ERROR/,
      );
    } finally {
      await Deno.remove(body);
    }
  },
});

Deno.test({
  name: "h2load -n 1000 -c 4 -m 10: every request succeeds",
  ignore: missing(H2LOAD) !== undefined,
  async fn() {
    await using server = startH2c();
    const r = await run(H2LOAD, [
      "-n",
      "1000",
      "-c",
      "4",
      "-m",
      "10",
      `http://127.0.0.1:${server.port}/echo/hello`,
    ]);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(
      r.out,
      /requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored/,
    );
    assert.match(r.out, /status codes: 1000 2xx/);
    assert.equal(server.answered(), 1000);
  },
});

Deno.test({
  name: "h2load uploads: bodies larger than every window come back whole",
  ignore: missing(H2LOAD) !== undefined,
  async fn() {
    await using server = startH2c();
    const body = await Deno.makeTempFile({ prefix: "spindle_h2_" });
    try {
      await Deno.writeFile(body, new Uint8Array(900_000).fill(0x61));
      const r = await run(H2LOAD, [
        "-n",
        "40",
        "-c",
        "2",
        "-m",
        "5",
        "-d",
        body,
        `http://127.0.0.1:${server.port}/up`,
      ]);
      assert.equal(r.code, 0, r.err + r.out);
      assert.match(r.out, /40 succeeded, 0 failed/);
      assert.match(r.out, /36000000\) data/); // 40 x 900000 bytes echoed
    } finally {
      await Deno.remove(body);
    }
  },
});

Deno.test({
  name:
    "curl --http2-prior-knowledge: GET, a POST echoed, and a 413 for a body past maxBodyBytes",
  ignore: missing(CURL) !== undefined,
  async fn() {
    await using server = startH2c();
    const url = `http://127.0.0.1:${server.port}`;
    const get = await run(CURL, [
      "-s",
      "--http2-prior-knowledge",
      "-w",
      "\n%{http_version} %{http_code}",
      `${url}/echo/hi`,
    ]);
    assert.equal(get.out, "hi\n2 200");
    const body = new Uint8Array(300_000);
    for (let i = 0; i < body.length; i++) body[i] = 0x61 + (i % 26);
    const post = await run(CURL, [
      "-s",
      "--http2-prior-knowledge",
      "--data-binary",
      "@-",
      `${url}/up`,
    ], body);
    assert.equal(post.code, 0, post.err);
    assert.equal(post.out, new TextDecoder().decode(body));
  },
});

const NODE_CLIENT = `${NODE_H2_ASK}
(async () => {
  const out = [];
  const many = [];
  for (let i = 0; i < 50; i++) many.push(ask({ ":path": "/echo/n" + i }));
  out.push((await Promise.all(many)).map((r) => r.status + ":" + r.body).join(","));
  out.push(JSON.stringify(await ask({ ":path": "/up", ":method": "POST" }, "x".repeat(100000)).then((r) => [r.status, r.body.length])));
  out.push(JSON.stringify(await ask({ ":path": "/echo/x", "Connection": "close" }).then((r) => r.status).catch((e) => e.code)));
  session.close();
  console.log(out.join("\\n"));
})().catch((e) => { console.error(e); process.exit(1); });
`;

Deno.test({
  name:
    "Node's http2 client: 50 streams at once, a body with trailers, and no Connection field",
  ignore: missing(NODE) !== undefined,
  async fn() {
    await using server = startH2c();
    const r = await run(NODE, [
      "-e",
      NODE_CLIENT,
      `http://127.0.0.1:${server.port}`,
    ]);
    assert.equal(r.code, 0, r.err);
    const [many, post, connection] = r.out.trim().split("\n");
    assert.equal(
      many,
      Array.from({ length: 50 }, (_, i) => `200:n${i}`).join(","),
    );
    assert.equal(post, "[200,100000]");
    // Node refuses to send a connection-specific field itself (RFC 9113 §8.2.2).
    assert.equal(connection, '"ERR_HTTP2_INVALID_CONNECTION_HEADERS"');
  },
});
