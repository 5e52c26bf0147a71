/**
 * Request bodies: `BodyReader` over a fake socket (Content-Length, chunked
 * with extensions and trailers, every cut point, every limit), then the
 * same bodies through a real server.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import { BodyReader, parseJsonBytes } from "../lib/http/body.ts";
import { HttpError } from "../lib/http/errors.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { listDir, startApp } from "./fixtures/app_server.ts";
import { cutAt, FakeSocket, readAll } from "./fixtures/byte_source.ts";
import {
  exchange,
  latin1Bytes,
  latin1Text,
  parseResponses,
  request,
} from "./fixtures/raw_http.ts";
import { hasTool, run } from "./helpers/socket.ts";

const LIMITS: Limits = Object.freeze({
  ...DEFAULT_LIMITS,
  maxBodyBytes: 64,
  maxChunkLineBytes: 32,
  maxTrailerBytes: 48,
});

/** A reader over `pieces` (Latin-1 text), as the connection would make it. */
function reader(
  pieces: readonly (string | Uint8Array)[],
  contentLength: number,
  chunked: boolean,
  limits: Limits = LIMITS,
): { src: FakeSocket; body: BodyReader } {
  const src = new FakeSocket(
    pieces.map((p) => typeof p === "string" ? latin1Bytes(p) : p),
  );
  return { src, body: new BodyReader(src, contentLength, chunked, limits) };
}

/** Everything the socket still holds after the body: the next request. */
async function rest(src: FakeSocket): Promise<string> {
  while (await src.fill()) {
    // gather what was not read yet
  }
  return latin1Text(src.buffered());
}

async function rejects(
  promise: Promise<unknown>,
  status: number,
  label = "",
): Promise<void> {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof HttpError, `${label}: not an HttpError: ${err}`);
    assert.equal(err.status, status, `${label}: ${err.message}`);
    return true;
  });
}

// Content-Length

Deno.test("BodyReader.bytes() reads a Content-Length body and no further", async () => {
  const { src, body } = reader(["hel", "loGET / HTTP/1.1\r\n"], 5, false);
  assert.equal(body.length, 5);
  assert.equal(body.unread, 5);
  assert.equal(latin1Text(await body.bytes()), "hello");
  assert.equal(body.consumed, true);
  assert.equal(body.unread, 0);
  assert.equal(await body.next(), null);
  assert.equal(await rest(src), "GET / HTTP/1.1\r\n", "next request kept");
});

Deno.test("BodyReader.next() takes buffered bytes first, then reads the socket", async () => {
  const src = new FakeSocket([latin1Bytes("abc"), latin1Bytes("defXYZ")]);
  await src.fill(); // as if "abc" came with the head
  const body = new BodyReader(src, 6, false, LIMITS);
  assert.equal(latin1Text((await body.next())!), "abc");
  assert.equal(latin1Text((await body.next())!), "def");
  assert.equal(await body.next(), null);
  assert.equal(src.unsent, 3);
});

Deno.test("BodyReader has nothing to read for Content-Length 0", async () => {
  const { src, body } = reader(["GET"], 0, false);
  assert.equal(body.consumed, true);
  assert.equal((await body.bytes()).length, 0);
  assert.equal(src.reads, 0);
  assert.equal(src.continues, 0);
});

Deno.test("BodyReader sends 100 Continue once, on the first read", async () => {
  const { src, body } = reader(["he", "l", "lo"], 5, false);
  assert.equal(body.started, false);
  assert.equal(src.continues, 0);
  await body.next();
  assert.equal(body.started, true);
  await body.bytes();
  assert.equal(src.continues, 1);
});

Deno.test("BodyReader answers 413 from Content-Length before reading or 100 Continue", async () => {
  const { src, body } = reader(["x".repeat(65)], 65, false);
  await rejects(body.bytes(), 413);
  assert.equal(src.reads, 0);
  assert.equal(src.continues, 0);
});

Deno.test("BodyReader answers 413 when the caller's maxBytes is below Content-Length", async () => {
  const { src, body } = reader(["hello"], 5, false);
  await rejects(body.bytes(4), 413);
  assert.equal(src.continues, 0);
  // The ceiling is limits.maxBodyBytes, whatever the caller asks.
  const big = reader(["x".repeat(64)], 64, false, {
    ...LIMITS,
    maxBodyBytes: 63,
  });
  await rejects(big.body.bytes(1000), 413);
});

Deno.test("BodyReader answers 400 when a Content-Length body ends early", async () => {
  const { body } = reader(["hel"], 5, false);
  await assert.rejects(body.bytes(), (err) => {
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, 400);
    assert.equal(err.close, true);
    assert.equal(err.expose, "Request body ended early");
    return true;
  });
});

Deno.test("BodyReader reads a Content-Length body cut at any two points", async () => {
  const raw = latin1Bytes("0123456789abcdefNEXT");
  for (let a = 0; a < raw.length; a++) {
    for (let b = a; b < raw.length; b++) {
      const src = new FakeSocket(cutAt(raw, [a, b]));
      const body = new BodyReader(src, 16, false, LIMITS);
      const label = `cut at ${a}, ${b}`;
      assert.equal(latin1Text(await body.bytes()), "0123456789abcdef", label);
      assert.equal(await rest(src), "NEXT", label);
    }
  }
});

// Chunked

const chunkedOk: [name: string, raw: string, body: string][] = [
  ["one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"],
  ["two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"],
  ["no chunks", "0\r\n\r\n", ""],
  [
    "hex sizes in either case",
    "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n",
    "0123456789abcdefghijk",
  ],
  ["leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"],
  [
    "more leading zeros than the digit bound",
    `${"0".repeat(20)}5\r\nhello\r\n${"0".repeat(20)}\r\n\r\n`,
    "hello",
  ],
  [
    "extensions",
    '5;name=value;flag\r\nhello\r\n0;last="a;b\\"c"\r\n\r\n',
    "hello",
  ],
  [
    "whitespace before an extension",
    "5 ;a=1\r\nhello\r\n0\t;b\r\n\r\n",
    "hello",
  ],
  [
    "obs-text in a quoted extension value",
    '5;x="caf\xe9"\r\nhello\r\n0\r\n\r\n',
    "hello",
  ],
  [
    "quoted-pairs and BWS around = in extensions",
    '5;a = "\\"q\\\\";b\t=\tc ;d\r\nhello\r\n0;e="; \t"\r\n\r\n',
    "hello",
  ],
  ["trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:z\r\n\r\n", "hello"],
  ["a chunk holding CR LF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"],
  [
    "body bytes that look like chunk lines",
    "5\r\n0\r\n\r\n\r\n0\r\n\r\n",
    "0\r\n\r\n",
  ],
  [
    "a body of exactly maxBodyBytes",
    `40\r\n${"b".repeat(64)}\r\n0\r\n\r\n`,
    "b".repeat(64),
  ],
  [
    "a size line of exactly maxChunkLineBytes",
    `5;${"e".repeat(28)}\r\nhello\r\n0\r\n\r\n`,
    "hello",
  ],
  [
    "trailers of exactly maxTrailerBytes",
    `0\r\nX: ${"t".repeat(43)}\r\n\r\n`,
    "",
  ],
];
for (const [name, raw, want] of chunkedOk) {
  Deno.test(`BodyReader decodes chunked: ${name}`, async () => {
    const { src, body } = reader([raw + "NEXT"], -1, true);
    assert.equal(body.length, null);
    assert.equal(body.unread, -1);
    assert.equal(latin1Text(await body.bytes()), want);
    assert.equal(body.consumed, true);
    assert.equal(await rest(src), "NEXT", "the next request's bytes stay");
  });
}

Deno.test("BodyReader decodes every chunked case cut at any byte", async () => {
  for (const [name, raw, want] of chunkedOk) {
    const bytes = latin1Bytes(raw + "NEXT");
    for (let cut = 1; cut < bytes.length; cut++) {
      const src = new FakeSocket(cutAt(bytes, [cut]));
      const body = new BodyReader(src, -1, true, LIMITS);
      assert.equal(latin1Text(await body.bytes()), want, `${name} @${cut}`);
      assert.equal(await rest(src), "NEXT", `${name} @${cut}`);
    }
  }
});

Deno.test("BodyReader decodes a chunked body sent one byte at a time", async () => {
  const raw = latin1Bytes(
    "3;x=y\r\nabc\r\n1\r\nd\r\n0\r\nT: 1\r\n\r\nNEXT",
  );
  const src = new FakeSocket(Array.from(raw, (_, k) => raw.subarray(k, k + 1)));
  const body = new BodyReader(src, -1, true, LIMITS);
  const pieces: string[] = [];
  for await (const p of body.chunks()) pieces.push(latin1Text(p));
  assert.equal(pieces.join(""), "abcd");
  assert.equal(await rest(src), "NEXT");
});

const chunkedBad: [name: string, raw: string, status: number][] = [
  ["a size that is not hex", "x\r\nhello\r\n0\r\n\r\n", 400],
  ["an empty size line", "\r\nhello\r\n0\r\n\r\n", 400],
  ["a negative size", "-1\r\nx\r\n0\r\n\r\n", 400],
  ["a size with a plus", "+5\r\nhello\r\n0\r\n\r\n", 400],
  ["a size with 0x", "0x5\r\nhello\r\n0\r\n\r\n", 400],
  ["two sizes", "5 5\r\nhello\r\n0\r\n\r\n", 400],
  ["a space before the size", " 5\r\nhello\r\n0\r\n\r\n", 400],
  ["a bare LF after the size", "5\nhello\r\n0\r\n\r\n", 400],
  ["a bare CR after the size", "5\rhello\r\n0\r\n\r\n", 400],
  ["a bare LF after the last chunk", "5\r\nhello\r\n0\n\r\n", 400],
  // RFC 9112 §7.1.1 as llhttp's strict mode reads it (issue #9).
  ["an extension with no name", "2;\r\nab\r\n0\r\n\r\n", 400],
  ["an extension that is only a value", "2;=x\r\nab\r\n0\r\n\r\n", 400],
  ["an empty extension between two", "2;a;;b\r\nab\r\n0\r\n\r\n", 400],
  [
    "an unterminated quoted string",
    '5;lovew3="abc";love="def; ghi\r\nhello\r\n0\r\n\r\n',
    400,
  ],
  [
    "a quoted string ending in a backslash",
    '5;a="b\\\r\nhello\r\n0\r\n\r\n',
    400,
  ],
  [
    "a control byte in a quoted string",
    '5;a="b\x01"\r\nhello\r\n0\r\n\r\n',
    400,
  ],
  ["bytes after a quoted string", '5;a="b"c\r\nhello\r\n0\r\n\r\n', 400],
  [
    "a space after the size and nothing else",
    "a \r\n0123456789\r\n0\r\n\r\n",
    400,
  ],
  ["a tab after the last size", "5\r\nhello\r\n0\t\r\n\r\n", 400],
  ["a space after an extension name", "5;a \r\nhello\r\n0\r\n\r\n", 400],
  ["a space after an extension value", "5;a=1 \r\nhello\r\n0\r\n\r\n", 400],
  ["an extension with = and no value", "5;a=\r\nhello\r\n0\r\n\r\n", 400],
  ["two tokens as a value", "5;a=b c\r\nhello\r\n0\r\n\r\n", 400],
  ["a comma between extensions", "5;a,b\r\nhello\r\n0\r\n\r\n", 400],
  ["obs-text in a token value", "5;x=caf\xe9\r\nhello\r\n0\r\n\r\n", 400],
  ["NUL in an extension", "5;a\0b\r\nhello\r\n0\r\n\r\n", 400],
  ["DEL in an extension", "5;a\x7f\r\nhello\r\n0\r\n\r\n", 400],
  [
    "a size line over maxChunkLineBytes",
    `5;${"e".repeat(40)}\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  ["an endless size line", `5;${"e".repeat(200)}`, 400],
  ["too many size digits", `1${"0".repeat(13)}\r\nx\r\n`, 413],
  ["a chunk size over maxBodyBytes", "41\r\nabc", 413],
  ["a huge chunk size", "fffffffffffff\r\nabc", 413],
  [
    "chunks adding up past maxBodyBytes",
    `40\r\n${"b".repeat(64)}\r\n1\r\nx\r\n0\r\n\r\n`,
    413,
  ],
  ["data longer than its size", "5\r\nhelloX\r\n0\r\n\r\n", 400],
  ["data shorter than its size", "5\r\nhell\r\n0\r\n\r\n", 400],
  ["no CRLF after the data", "5\r\nhello0\r\n\r\n", 400],
  ["an end in the middle of a size line", "5", 400],
  ["an end in the middle of the data", "5\r\nhel", 400],
  ["an end before the CRLF after the data", "5\r\nhello\r", 400],
  ["no last chunk", "5\r\nhello\r\n", 400],
  ["an end in the middle of the trailers", "0\r\nX: y\r\n", 400],
  ["a trailer without a colon", "0\r\nX y\r\n\r\n", 400],
  ["a space before a trailer colon", "0\r\nX : y\r\n\r\n", 400],
  ["an empty trailer name", "0\r\n: y\r\n\r\n", 400],
  ["an obs-folded trailer", "0\r\nX: y\r\n z\r\n\r\n", 400],
  ["a control byte in a trailer", "0\r\nX: a\x01\r\n\r\n", 400],
  ["a bare LF in the trailers", "0\r\nX: y\n\r\n", 400],
  ["a bare CR in the trailers", "0\r\nX: a\rb\r\n\r\n", 400],
  [
    "trailers over maxTrailerBytes",
    `0\r\n${"X: 1234567890\r\n".repeat(4)}\r\n`,
    431,
  ],
  [
    "trailers one byte over maxTrailerBytes",
    `0\r\nX: ${"t".repeat(44)}\r\n\r\n`,
    431,
  ],
  ["an endless trailer line", `0\r\nX: ${"t".repeat(200)}`, 431],
];
for (const [name, raw, status] of chunkedBad) {
  Deno.test(`BodyReader answers ${status} for chunked with ${name}`, async () => {
    const { body } = reader([raw], -1, true);
    await assert.rejects(body.bytes(), (err) => {
      assert.ok(err instanceof HttpError, `not an HttpError: ${err}`);
      assert.equal(err.status, status, err.message);
      assert.equal(err.close, true, "a framing error must close");
      return true;
    });
  });
}

Deno.test("BodyReader answers the same for every bad chunked case cut at any byte", async () => {
  for (const [name, raw, status] of chunkedBad) {
    const bytes = latin1Bytes(raw);
    for (let cut = 1; cut < bytes.length; cut++) {
      const read = (body: BodyReader) =>
        cut % 2 === 0 ? body.bytes() : Array.fromAsync(body.chunks());
      const body = new BodyReader(
        new FakeSocket(cutAt(bytes, [cut])),
        -1,
        true,
        LIMITS,
      );
      await rejects(read(body), status, `${name} @${cut}`);
    }
  }
});

// Framing against data (issue #9): tiny chunks pass, piles of framing do not.

/** `count` one-byte chunks, each size line carrying `ext`, then the last chunk. */
function oneByteChunks(count: number, ext = ""): string {
  return `1${ext}\r\nx\r\n`.repeat(count) + "0\r\n\r\n";
}

Deno.test("BodyReader takes a body of one-byte chunks up to maxBodyBytes", async () => {
  const limits = { ...LIMITS, maxChunkExcessBytes: 0 };
  const { body } = reader([oneByteChunks(64)], -1, true, limits);
  assert.equal(latin1Text(await body.bytes()), "x".repeat(64));
});

Deno.test("BodyReader answers 400 once chunk framing outweighs the data past maxChunkExcessBytes", async () => {
  // Each chunk: a 31-byte size line, 2 CRLFs, 1 byte of data; 16 bytes of
  // framing are free per chunk and 2 per data byte: 17 bytes of excess.
  const ext = `;e=${"v".repeat(27)}`;
  const limits = { ...LIMITS, maxChunkExcessBytes: 3 * 17 };
  const ok = reader([oneByteChunks(3, ext)], -1, true, limits);
  assert.equal(latin1Text(await ok.body.bytes()), "xxx");
  const over = reader([oneByteChunks(4, ext)], -1, true, limits);
  await rejects(over.body.bytes(), 400);
  // Padding the size with zeros is framing too.
  const padded = `${"0".repeat(30)}1\r\nx\r\n`.repeat(4) + "0\r\n\r\n";
  await rejects(reader([padded], -1, true, limits).body.bytes(), 400);
  // Data pays framing back: a big chunk between flooded ones resets the count.
  const mixed = `1${ext}\r\nx\r\n`.repeat(3) + `1a\r\n${"y".repeat(26)}\r\n` +
    oneByteChunks(3, ext);
  const paid = reader([mixed], -1, true, limits);
  assert.equal((await paid.body.bytes()).length, 3 + 26 + 3);
});

Deno.test("BodyReader.next() makes one piece of all the chunks one read holds", async () => {
  const limits = { ...LIMITS, maxBodyBytes: 4096 };
  const raw = latin1Bytes(oneByteChunks(1000) + "NEXT");
  // Two reads: the first holds 700 whole chunks and part of the next one.
  const src = new FakeSocket(cutAt(raw, [700 * 6 + 3]));
  const body = new BodyReader(src, -1, true, limits);
  const sizes: number[] = [];
  for await (const p of body.chunks()) sizes.push(p.length);
  assert.deepEqual(sizes, [700, 300]);
  assert.equal(await rest(src), "NEXT");
});

Deno.test("BodyReader checks the caller's maxBytes while de-chunking", async () => {
  const { body } = reader(["3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"], -1, true);
  await rejects(body.bytes(5), 413);
});

Deno.test("BodyReader reads big chunks past the buffer and small ones through it, cut anywhere", async () => {
  const limits = { ...LIMITS, maxBodyBytes: 64 * 1024 };
  const big = "b".repeat(20_000);
  const raw = latin1Bytes(
    `4e20\r\n${big}\r\n3\r\nabc\r\n${"1\r\nz\r\n".repeat(9)}0\r\n\r\nNEXT`,
  );
  const want = big + "abc" + "z".repeat(9);
  const cuts = [1, 5, 6, 100, 8192, 12_000, 20_006, 20_008, 20_013, 20_020];
  for (const cut of cuts) {
    for (const whole of [true, false]) {
      const src = new FakeSocket(cutAt(raw, [cut, cut + 4000]));
      const body = new BodyReader(src, -1, true, limits);
      const got = whole
        ? await body.bytes()
        : new Uint8Array(await new Response(body.stream()).arrayBuffer());
      assert.equal(latin1Text(got), want, `cut ${cut}, bytes() ${whole}`);
      assert.equal(await rest(src), "NEXT", `cut ${cut}`);
    }
  }
});

Deno.test("BodyReader.bytes() grows one buffer for a chunked body and stops at the limit", async () => {
  const limits = { ...LIMITS, maxBodyBytes: 40_000 };
  const piece = "c".repeat(1000);
  const raw = `3e8\r\n${piece}\r\n`.repeat(40) + "0\r\n\r\n";
  const bytes = await reader([raw], -1, true, limits).body.bytes();
  assert.equal(bytes.length, 40_000);
  assert.ok(bytes.buffer.byteLength <= 40_000, "never past the limit");
  const over = `3e8\r\n${piece}\r\n`.repeat(41) + "0\r\n\r\n";
  await rejects(reader([over], -1, true, limits).body.bytes(), 413);
});

// The RequestBody helpers

Deno.test("BodyReader.text() decodes UTF-8 and answers 400 for invalid UTF-8", async () => {
  const utf8 = new TextEncoder().encode("héllo ✓");
  assert.equal(
    await reader([utf8], utf8.length, false).body.text(),
    "héllo ✓",
  );
  await rejects(reader(["\xff\xfe"], 2, false).body.text(), 400);
});

Deno.test("BodyReader.json() parses JSON and answers 400 for malformed JSON", async () => {
  const raw = '{"a":[1,2]}';
  assert.deepEqual(await reader([raw], raw.length, false).body.json(), {
    a: [1, 2],
  });
  await rejects(reader(["{"], 1, false).body.json(), 400);
  await rejects(reader([""], 0, false).body.json(), 400);
});

Deno.test("BodyReader.stream() and chunks() give the same bytes as bytes()", async () => {
  const raw = "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  const streamed = await new Response(
    reader([raw], -1, true).body.stream(),
  ).text();
  assert.equal(streamed, "abcdefg");
  const pieces: string[] = [];
  for await (const p of reader([raw], -1, true).body.chunks()) {
    pieces.push(latin1Text(p));
  }
  assert.deepEqual(pieces, ["abcdefg"], "chunks read together, one piece");
});

Deno.test("BodyReader.stream() errors with the HttpError of a bad body", async () => {
  const stream = reader(["5\r\nhelloX"], -1, true).body.stream();
  await rejects(new Response(stream).text(), 400);
});

Deno.test("BodyReader.discard() drops the rest so the next head can be read", async () => {
  const raw = latin1Bytes(
    "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "3\r\nabc\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
  );
  const src = new FakeSocket([raw]);
  const first = await src.readHead(LIMITS);
  const body = new BodyReader(src, first!.contentLength, true, LIMITS);
  assert.equal(latin1Text((await body.next())!), "abc");
  await body.discard();
  assert.equal((await src.readHead(LIMITS))?.path, "/2");
});

Deno.test("readAll() parses pipelined requests with bodies cut at any byte", async () => {
  const raw = latin1Bytes(
    "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
      "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "2;x\r\nde\r\n0\r\nT: 1\r\n\r\n" +
      "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
  );
  const show = (rs: Awaited<ReturnType<typeof readAll>>) =>
    rs.map((r) => `${r.head.path}=${latin1Text(r.body)}`).join(" ");
  assert.equal(show(await readAll([raw], LIMITS)), "/1=abc /2=de /3=");
  for (let cut = 1; cut < raw.length; cut++) {
    assert.equal(
      show(await readAll(cutAt(raw, [cut, cut + 1]), LIMITS)),
      "/1=abc /2=de /3=",
      `cut at ${cut}`,
    );
  }
});

// Over a socket

/** Echoes the body with its framing as the handler saw it. */
const echo: Handler = async (req) => {
  const body = latin1Text(await req.body.bytes());
  return {
    status: 200,
    headers: { "content-type": "text/plain" },
    body: `${req.method} ${req.path} len=${req.body.length} [${body}]`,
  };
};

function startEcho(limits: Partial<Limits> = LIMITS) {
  return serve({ port: 0, accessLog: false, limits }, echo);
}

const H = "Host: a.test\r\n";
const TE = "Transfer-Encoding: chunked\r\n";

const SOCKET_PAIR = `POST /c HTTP/1.1\r\n${H}${TE}\r\n` +
  `4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-T: v\r\n\r\n` +
  `POST /l HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`;
const SOCKET_WANT = [
  "POST /c len=null [abcdefg]",
  "POST /l len=5 [hello]",
];

Deno.test("serve() reads a chunked body with extensions and trailers, then the next request", async () => {
  await using server = startEcho();
  const replies = await request(server.port, [SOCKET_PAIR]);
  assert.deepEqual(replies.map((r) => r.text), SOCKET_WANT);
});

Deno.test("serve() reads bodies cut at any byte in two writes", async () => {
  await using server = startEcho();
  const bytes = latin1Bytes(SOCKET_PAIR);
  for (let cut = 1; cut < bytes.length; cut++) {
    const replies = await request(server.port, cutAt(bytes, [cut]), {
      pauseMs: 2,
    });
    assert.deepEqual(replies.map((r) => r.text), SOCKET_WANT, `cut ${cut}`);
  }
});

Deno.test("serve() reads bodies sent one byte at a time", async () => {
  await using server = startEcho();
  const bytes = latin1Bytes(SOCKET_PAIR);
  const pieces = Array.from(bytes, (_, k) => bytes.subarray(k, k + 1));
  const replies = await request(server.port, pieces, { pauseMs: 1 });
  assert.deepEqual(replies.map((r) => r.text), SOCKET_WANT);
});

const socketBad: [name: string, body: string, status: number][] = [
  ["a malformed chunk size", "zz\r\n", 400],
  ["chunk data longer than its size", "2\r\nabc\r\n0\r\n\r\n", 400],
  [
    "a chunked body over maxBodyBytes",
    `41\r\n${"x".repeat(65)}\r\n0\r\n\r\n`,
    413,
  ],
  ["a declared chunk over maxBodyBytes, data not sent", "ffff\r\n", 413],
  ["trailers over maxTrailerBytes", `0\r\nX: ${"t".repeat(60)}\r\n\r\n`, 431],
];
for (const [name, body, status] of socketBad) {
  Deno.test(`serve() answers ${status} with Connection: close for ${name}`, async () => {
    await using server = startEcho();
    const bytes = await exchange(
      server.port,
      [`POST / HTTP/1.1\r\n${H}${TE}\r\n${body}`],
      { halfClose: false, timeoutMs: 2000 },
    );
    const replies = parseResponses(bytes);
    assert.equal(replies.length, 1);
    assert.equal(replies[0].status, status);
    assert.equal(replies[0].headers.get("connection"), "close");
  });
}

Deno.test("serve() answers 400 with Connection: close to a flood of chunk extensions", async () => {
  await using server = startEcho({ ...LIMITS, maxChunkExcessBytes: 500 });
  const flood = `1;${"e".repeat(28)}\r\nx\r\n`.repeat(60); // 16 bytes over each
  const bytes = await exchange(
    server.port,
    [`POST / HTTP/1.1\r\n${H}${TE}\r\n${flood}`],
    { halfClose: false, timeoutMs: 5000 },
  );
  const [reply] = parseResponses(bytes);
  assert.equal(reply.status, 400);
  assert.match(latin1Text(reply.body), /chunk framing outweighs the data/);
  assert.equal(reply.headers.get("connection"), "close");
});

Deno.test("serve() answers 400 when the client stops mid-body", async () => {
  await using server = startEcho();
  const [reply] = await request(server.port, [
    `POST / HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nabc`,
  ]);
  assert.equal(reply.status, 400);
  assert.equal(reply.headers.get("connection"), "close");
});

/** Reads from `conn` until `text` has arrived; returns all that came. */
async function readUntil(conn: Deno.Conn, text: string): Promise<string> {
  const scratch = new Uint8Array(4096);
  let got = "";
  while (!got.includes(text)) {
    const n = await conn.read(scratch);
    if (n === null) break;
    got += latin1Text(scratch.subarray(0, n));
  }
  return got;
}

Deno.test("serve() sends 100 Continue before the body of Expect: 100-continue", async () => {
  await using server = startEcho();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const head = `PUT /e HTTP/1.1\r\n${H}Expect: 100-continue\r\n` +
    "Content-Length: 2\r\nConnection: close\r\n\r\n";
  await conn.write(latin1Bytes(head));
  const interim = await readUntil(conn, "\r\n\r\n");
  assert.equal(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  await conn.write(latin1Bytes("ok"));
  const final = parseResponses(latin1Bytes(await readUntil(conn, "]")));
  assert.equal(final[0].text, "PUT /e len=2 [ok]");
});

Deno.test("serve() answers 413 to Expect: 100-continue over the limit without 100", async () => {
  await using server = startEcho();
  const replies = await request(
    server.port,
    [`PUT / HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 65\r\n\r\n`],
    { halfClose: false, timeoutMs: 2000 },
  );
  assert.deepEqual(replies.map((r) => r.status), [413]);
});

// Real clients and a real server process (issue #9)

Deno.test({
  name: "POST /upload stores what curl sends chunked, in its own chunk sizes",
  ignore: !(await hasTool("curl")),
  async fn() {
    await using app = await startApp();
    const dir = await Deno.makeTempDir({ prefix: "spindle-curl-" });
    try {
      const json = JSON.stringify({ items: "q".repeat(900_000) });
      await Deno.writeTextFile(`${dir}/up.json`, json);
      const out = await run("curl", [
        ...["-s", "-o", "/dev/null", "-w", "%{http_code}"],
        ...["-H", "Transfer-Encoding: chunked"],
        ...["-H", "Content-Type: application/json"],
        ...["--data-binary", `@${dir}/up.json`, `${app.origin}/upload`],
      ], 30_000);
      assert.equal(out.stdout, "201", out.stderr);
      const [name] = await listDir(app.uploads);
      assert.equal(await Deno.readTextFile(`${app.uploads}/${name}`), json);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Peak resident memory of process `pid` so far (VmHWM), in bytes. */
async function peakRssBytes(pid: number): Promise<number> {
  // Deno wants --allow-all to read another process's /proc; cat does not.
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/status`],
    stdout: "piped",
  }).output();
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(new TextDecoder().decode(out.stdout));
  if (m === null) throw new Error(`No VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** A body of `bytes` (a JSON string) sent in one-byte chunks: 6 bytes of wire each. */
function oneByteChunked(bytes: number): Uint8Array {
  const body = `"${"x".repeat(bytes - 2)}"`;
  const wire = new Uint8Array(bytes * 6 + 5);
  for (let k = 0; k < bytes; k++) {
    wire.set([0x31, CR_, LF_, body.charCodeAt(k), CR_, LF_], k * 6);
  }
  wire.set(latin1Bytes("0\r\n\r\n"), bytes * 6);
  return wire;
}
const CR_ = 0x0d;
const LF_ = 0x0a;

Deno.test({
  name:
    "main.ts stores a 1 MB upload in a million one-byte chunks within bounded memory",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const MiB = 1024 * 1024;
    const dir = await Deno.makeTempDir({ prefix: "spindle-flood-" });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        "--allow-net=127.0.0.1",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        new URL("../main.ts", import.meta.url).pathname,
        ...["--port", "0", "--root", dir, "--uploads", `${dir}/up`],
        ...["--max-body", "1m", "--upload-max", "1m", "--quiet"],
        ...["--log-format", "json"],
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      let first = "";
      while (!first.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`server exited: ${first}`);
        first += value;
      }
      const port = JSON.parse(first.split("\n")[0]).properties.port as number;
      // Warm up: the first request loads the app's code.
      const warm = parseResponses(
        await exchange(port, [
          "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ]),
      );
      assert.equal(warm[0].status, 200);
      const before = await peakRssBytes(child.pid);
      const body = oneByteChunked(1_000_000);
      const replies = parseResponses(
        await exchange(port, [
          `POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n${TE}` +
          "Content-Type: application/json\r\nConnection: close\r\n\r\n",
          body,
        ], { timeoutMs: 60_000 }),
      );
      assert.equal(replies[0].status, 201, replies[0].text);
      const grown = (await peakRssBytes(child.pid)) - before;
      // Before coalescing: +525 MiB (a Uint8Array per chunk). Now ~15 MiB:
      // the body once, its text and JSON, the code those paths compile.
      assert.ok(
        grown < 32 * MiB,
        `peak RSS grew ${(grown / MiB).toFixed(0)} MiB`,
      );
      const [file] = await Array.fromAsync(Deno.readDir(`${dir}/up`));
      assert.equal((await Deno.stat(`${dir}/up/${file.name}`)).size, 1_000_000);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await lines.cancel();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
Deno.test("POST /upload stores a fetch() stream of 20,000 four-byte writes", async () => {
  await using app = await startApp();
  const piece = new TextEncoder().encode('"a",');
  let left = 20_000;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => c.enqueue(new TextEncoder().encode("[")),
    pull(c) {
      if (left-- > 0) return c.enqueue(piece);
      c.enqueue(new TextEncoder().encode('"z"]'));
      c.close();
    },
  });
  const res = await fetch(`${app.origin}/upload`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
  });
  assert.equal(res.status, 201, await res.clone().text());
  assert.equal((await res.json()).bytes, 1 + 20_000 * 4 + 4);
});

const encoder = new TextEncoder();

Deno.test("parseJsonBytes() accepts any JSON value and names what is wrong", () => {
  for (
    const ok of ["{}", "[]", "1", '"s"', "null", ' {"a": [1, {"b": null}]} ']
  ) {
    parseJsonBytes(encoder.encode(ok));
  }
  for (const bad of ["", "{", "{'a':1}", "[1,]", "NaN"]) {
    assert.throws(
      () => parseJsonBytes(encoder.encode(bad)),
      { status: 400 },
      bad,
    );
  }
  assert.throws(() => parseJsonBytes(Uint8Array.of(0x22, 0xff, 0x22)), /UTF-8/);
});
