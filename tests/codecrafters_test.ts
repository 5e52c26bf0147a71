/**
 * The stages of CodeCrafters' "Build your own HTTP server" against the
 * default app, over raw sockets as its tester sends them: port, 200, 404,
 * echo, user-agent, concurrent connections, files, compression, persistent
 * connections and Connection: close. Exact header values matter here
 * (`Content-Type: text/plain`, no charset), and so do stray bytes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gunzip } from "./fixtures/app_request.ts";
import { startApp } from "./fixtures/app_server.ts";
import {
  connect,
  decoder,
  encoder,
  type RawReply,
  ReplyReader,
  send,
} from "./helpers/socket.ts";

const LETTERS =
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890";

function randomWord(n = 12): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => LETTERS[b % LETTERS.length]).join("");
}

function request(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body = "",
): string {
  let head =
    `${method} ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nUser-Agent: curl/8.4.0\r\nAccept: */*\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (body !== "") head += `Content-Length: ${encoder.encode(body).length}\r\n`;
  return head + "\r\n" + body;
}

/**
 * Reads one reply and checks no byte came after it (the tester's
 * unread-data check); on kept-alive connections the next reply, which must
 * start with its status line, catches any later stray byte.
 */
async function replyAlone(reader: ReplyReader): Promise<RawReply> {
  const reply = await reader.readReply();
  assert.equal(reader.buffered.length, 0, "no bytes after the reply");
  return reply;
}

function assertStatusLine(reply: RawReply, line: string): void {
  assert.equal(reply.head.split("\r\n")[0], line);
}

Deno.test("CodeCrafters stages: bind, 200, 404, echo, user-agent", async () => {
  await using app = await startApp();
  const port = app.port;
  // Stage 1: the port takes connections.
  (await connect(port)).close();
  // Stage 2 and 3: / is 200, anything unknown 404.
  const root = await sendOnce(port, request(port, "GET", "/"));
  assertStatusLine(root, "HTTP/1.1 200 OK");
  const missing = await sendOnce(
    port,
    request(port, "GET", `/${randomWord()}`),
  );
  assertStatusLine(missing, "HTTP/1.1 404 Not Found");
  // Stage 4: /echo/{str}.
  const word = randomWord();
  const echo = await sendOnce(port, request(port, "GET", `/echo/${word}`));
  assertStatusLine(echo, "HTTP/1.1 200 OK");
  assert.equal(echo.headers.get("content-type"), "text/plain");
  assert.equal(echo.headers.get("content-length"), String(word.length));
  assert.equal(echo.text, word);
  // Stage 5: /user-agent.
  const agent = `${randomWord(6)}/${randomWord(4)}`;
  const ua = await sendOnce(
    port,
    request(port, "GET", "/user-agent").replace("curl/8.4.0", agent),
  );
  assert.equal(ua.headers.get("content-type"), "text/plain");
  assert.equal(ua.headers.get("content-length"), String(agent.length));
  assert.equal(ua.text, agent);
});

/** Connects, sends, reads one reply alone. */
async function sendOnce(port: number, raw: string): Promise<RawReply> {
  using conn = await connect(port);
  await send(conn, raw);
  return await replyAlone(new ReplyReader(conn));
}

Deno.test("CodeCrafters stage: concurrent connections, answered in reverse order", async () => {
  await using app = await startApp();
  const conns = await Promise.all(
    Array.from({ length: 8 }, () => connect(app.port)),
  );
  try {
    // The tester opens them all first, then uses the newest first.
    for (const conn of [...conns].reverse()) {
      await send(conn, request(app.port, "GET", "/"));
      assertStatusLine(
        await replyAlone(new ReplyReader(conn)),
        "HTTP/1.1 200 OK",
      );
    }
  } finally {
    for (const conn of conns) conn.close();
  }
});

Deno.test("CodeCrafters stages: GET and POST /files/{name} with --directory", async () => {
  await using app = await startApp();
  const port = app.port;
  const name = `${randomWord(10)}_${randomWord(6)}`;
  const content = `${randomWord(20)} ${randomWord(30)}`;
  await Deno.writeTextFile(join(app.directory, name), content);
  const got = await sendOnce(port, request(port, "GET", `/files/${name}`));
  assertStatusLine(got, "HTTP/1.1 200 OK");
  assert.equal(got.headers.get("content-type"), "application/octet-stream");
  assert.equal(got.headers.get("content-length"), String(content.length));
  assert.equal(got.text, content);
  const none = await sendOnce(
    port,
    request(port, "GET", `/files/non-existent_${randomWord()}`),
  );
  assertStatusLine(none, "HTTP/1.1 404 Not Found");
  const posted = randomWord(40);
  const created = await sendOnce(
    port,
    request(port, "POST", `/files/${name}_new`, {
      "Content-Type": "application/octet-stream",
    }, posted),
  );
  assertStatusLine(created, "HTTP/1.1 201 Created");
  assert.equal(
    await Deno.readTextFile(join(app.directory, `${name}_new`)),
    posted,
  );
});

const encodings: [acceptEncoding: string, gzip: boolean][] = [
  ["gzip", true],
  ["invalid-encoding", false],
  ["invalid-encoding-1, gzip, invalid-encoding-2", true],
  ["invalid-encoding-1, invalid-encoding-2", false],
];
Deno.test("CodeCrafters stages: Content-Encoding negotiation and a gzip body", async () => {
  await using app = await startApp();
  for (const [acceptEncoding, gzip] of encodings) {
    const word = randomWord();
    const reply = await sendOnce(
      app.port,
      request(app.port, "GET", `/echo/${word}`, {
        "Accept-Encoding": acceptEncoding,
      }),
    );
    assertStatusLine(reply, "HTTP/1.1 200 OK");
    assert.equal(reply.headers.get("content-type"), "text/plain");
    assert.equal(
      reply.headers.get("content-length"),
      String(reply.body.length),
    );
    if (gzip) {
      assert.equal(
        reply.headers.get("content-encoding"),
        "gzip",
        acceptEncoding,
      );
      assert.deepEqual(
        [...reply.body.subarray(0, 2)],
        [0x1f, 0x8b],
        "gzip magic",
      );
      assert.equal(await gunzip(reply.body), word);
    } else {
      assert.equal(
        reply.headers.get("content-encoding"),
        undefined,
        acceptEncoding,
      );
      assert.equal(reply.text, word);
    }
  }
});

Deno.test("CodeCrafters stages: persistent connections, several at once, then Connection: close", async () => {
  await using app = await startApp();
  const port = app.port;
  using a = await connect(port);
  using b = await connect(port);
  const readers = new Map([[a, new ReplyReader(a)], [b, new ReplyReader(b)]]);
  // Requests alternate between two kept-alive connections.
  for (const conn of [a, b, a, a, b]) {
    const word = randomWord();
    await send(conn, request(port, "GET", `/echo/${word}`));
    const reply = await replyAlone(readers.get(conn)!);
    assert.equal(reply.text, word);
    assert.equal(reply.headers.get("connection"), undefined, "kept alive");
  }
  // Connection: close gets its answer, the header, and then the close.
  await send(a, request(port, "GET", "/user-agent", { Connection: "close" }));
  const last = await readers.get(a)!.readReply();
  assert.equal(last.status, 200);
  assert.equal(last.headers.get("connection"), "close");
  assert.equal(
    decoder.decode(await readers.get(a)!.readUntilClose()),
    "",
    "closed, nothing after",
  );
  // The other connection still works.
  await send(b, request(port, "GET", "/"));
  assert.equal((await readers.get(b)!.readReply()).status, 200);
});
