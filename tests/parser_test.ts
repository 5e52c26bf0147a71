/**
 * The request-head parser, RFC 9112 strict: `findHeadEnd()` and `parseHead()`
 * driven with byte arrays, then the same rules through a real server.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import { HttpError } from "../lib/http/errors.ts";
import type { Handler } from "../lib/http/handler.ts";
import {
  checkHeadSoFar,
  findHeadEnd,
  parseHead,
  type RequestHead,
} from "../lib/http/parser.ts";
import { serve } from "../lib/http/server.ts";
import { cutAt, FakeSocket } from "./fixtures/byte_source.ts";
import {
  exchangeBytes,
  exchangeReplies,
  latin1Bytes,
  parseReplies,
} from "./helpers/socket.ts";

/** Small limits, so every limit is reached with a few bytes. */
const LIMITS: Limits = Object.freeze({
  ...DEFAULT_LIMITS,
  maxTargetBytes: 64,
  maxHeadBytes: 512,
  maxHeaderCount: 8,
  maxBodyBytes: 100,
  // Far past every wait here (5 s): a close a test waits for is the
  // server's own answer, never one of these running out.
  headTimeoutMs: 60_000,
  keepAliveTimeoutMs: 60_000,
});

/** Parses a whole head given as Latin-1 text (one char per byte). */
function parse(raw: string, limits: Limits = LIMITS): RequestHead {
  const buf = latin1Bytes(raw);
  const end = findHeadEnd(buf, 0, buf.length);
  assert.notEqual(end, -1, `no end of head in ${JSON.stringify(raw)}`);
  return parseHead(buf, 0, end, limits);
}

const H = "Host: example.test\r\n";

// findHeadEnd()

Deno.test("findHeadEnd() finds a blank line split across reads", () => {
  const buf = latin1Bytes(`GET / HTTP/1.1\r\n${H}\r\n`);
  for (let cut = 1; cut < buf.length; cut++) {
    assert.equal(findHeadEnd(buf, 0, cut), -1, `early at ${cut}`);
    assert.equal(
      findHeadEnd(buf, Math.max(0, cut - 3), buf.length),
      buf.length,
      `resumed at ${cut}`,
    );
  }
});

Deno.test("findHeadEnd() resumes one byte at a time and stops at the first end", () => {
  const raw = `GET / HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`;
  const buf = latin1Bytes(raw);
  const firstEnd = raw.indexOf("\r\n\r\n") + 4;
  let from = 0;
  let found = -1;
  for (let end = 1; end <= buf.length && found === -1; end++) {
    found = findHeadEnd(buf, from, end);
    if (found === -1) from = Math.max(0, end - 3);
    else assert.equal(end, firstEnd, "found only once the end arrived");
  }
  assert.equal(found, firstEnd);
  assert.equal(findHeadEnd(buf, firstEnd, buf.length), buf.length);
});

const ends: [name: string, raw: string, end: number][] = [
  ["CRLF CRLF", "GET / HTTP/1.1\r\nA: b\r\n\r\nX", 24],
  ["bare LF LF, for the parser to refuse", "GET / HTTP/1.1\nA: b\n\nX", 21],
  ["LF CRLF, for the parser to refuse", "GET / HTTP/1.1\nA: b\n\r\nX", 22],
  ["nothing while the head is open", "GET / HTTP/1.1\r\nA: b\r\n", -1],
  ["nothing for a CR CR", "GET / HTTP/1.1\r\r\r\r", -1],
];
for (const [name, raw, end] of ends) {
  Deno.test(`findHeadEnd() gives ${end} for ${name}`, () => {
    const buf = latin1Bytes(raw);
    assert.equal(findHeadEnd(buf, 0, buf.length), end);
  });
}

Deno.test("findHeadEnd() does not look past end at stale bytes", () => {
  const buf = latin1Bytes(`GET / HTTP/1.1\r\n${H}\r\n`);
  assert.equal(findHeadEnd(buf, 0, buf.length - 1), -1);
  assert.equal(findHeadEnd(buf, 0, buf.length - 2), -1);
});

// parseHead(): what it accepts

Deno.test("parseHead() reads an origin-form request", () => {
  const head = parse(
    "GET /a/b%20c?x=1&y HTTP/1.1\r\nHost: example.test:8080\r\n" +
      "User-Agent: t/1.0\r\nX-Empty:\r\nX-Pad: \t padded value \t\r\n\r\n",
  );
  assert.equal(head.method, "GET");
  assert.equal(head.target, "/a/b%20c?x=1&y");
  assert.equal(head.path, "/a/b%20c");
  assert.equal(head.query, "x=1&y");
  assert.equal(head.minor, 1);
  assert.equal(head.host, "example.test:8080");
  assert.equal(head.contentLength, -1);
  assert.equal(head.chunked, false);
  assert.equal(head.keepAlive, true);
  assert.equal(head.expectContinue, false);
  assert.deepEqual([...head.headers], [
    ["host", "example.test:8080"],
    ["user-agent", "t/1.0"],
    ["x-empty", ""],
    ["x-pad", "padded value"],
  ]);
});

Deno.test("parseHead() folds field names to lower case and keeps values as sent", () => {
  const head = parse(`GET / HTTP/1.1\r\n${H}X-MiXeD: VaLuE\r\n\r\n`);
  assert.equal(head.headers.get("x-mixed"), "VaLuE");
  assert.equal(head.headers.get("X-Mixed"), "VaLuE");
});

Deno.test("parseHead() keeps obs-text and inner tabs in a field value", () => {
  const head = parse(`GET / HTTP/1.1\r\n${H}X: caf\xe9\ta\xff\r\n\r\n`);
  assert.equal(head.headers.get("x"), "caf\xe9\ta\xff");
});

for (
  const method of [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "PATCH",
  ]
) {
  Deno.test(`parseHead() accepts method ${method}`, () => {
    assert.equal(parse(`${method} /x HTTP/1.1\r\n${H}\r\n`).method, method);
  });
}

Deno.test("parseHead() reads an absolute-form target and takes its authority as host", () => {
  const head = parse(
    "GET http://Other.test:81/p/q?r=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
  );
  assert.equal(head.host, "Other.test:81");
  assert.equal(head.path, "/p/q");
  assert.equal(head.query, "r=1");
  assert.equal(head.target, "http://Other.test:81/p/q?r=1");
});

Deno.test("parseHead() splits an origin-form target at its first ?", () => {
  for (
    const [target, path, query] of [
      ["/a?b?c", "/a", "b?c"],
      ["/a?", "/a", ""],
      ["/?x", "/", "x"],
      ["/a/b", "/a/b", ""],
    ]
  ) {
    const head = parse(`GET ${target} HTTP/1.1\r\n${H}\r\n`);
    assert.deepEqual([head.target, head.path, head.query], [
      target,
      path,
      query,
    ]);
  }
});

Deno.test("parseHead() gives path / for an absolute-form target without one", () => {
  const head = parse(`GET HTTPS://other.test HTTP/1.1\r\n${H}\r\n`);
  assert.equal(head.host, "other.test");
  assert.equal(head.path, "/");
  assert.equal(head.query, "");
});

Deno.test("parseHead() reads asterisk-form for OPTIONS", () => {
  const head = parse(`OPTIONS * HTTP/1.1\r\n${H}\r\n`);
  assert.equal(head.path, "*");
  assert.equal(head.target, "*");
});

const versions: [raw: string, minor: 0 | 1, keepAlive: boolean][] = [
  ["GET / HTTP/1.0\r\n\r\n", 0, false],
  ["GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, true],
  ["GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", 0, false],
  [`GET / HTTP/1.1\r\n${H}\r\n`, 1, true],
  [`GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 1, false],
  [`GET / HTTP/1.1\r\n${H}Connection: upgrade,  CLOSE \r\n\r\n`, 1, false],
  [
    `GET / HTTP/1.1\r\n${H}Connection: x\r\nConnection: close\r\n\r\n`,
    1,
    false,
  ],
  [`GET / HTTP/1.2\r\n${H}\r\n`, 1, true],
  [`GET / HTTP/1.9\r\n${H}\r\n`, 1, true],
];
for (const [raw, minor, keepAlive] of versions) {
  Deno.test(`parseHead() gives minor ${minor}, keep-alive ${keepAlive} for ${JSON.stringify(raw)}`, () => {
    const head = parse(raw);
    assert.equal(head.minor, minor);
    assert.equal(head.keepAlive, keepAlive);
  });
}

Deno.test("parseHead() lets an HTTP/1.0 request go without Host", () => {
  assert.equal(parse("GET / HTTP/1.0\r\n\r\n").host, "");
});

Deno.test("parseHead() accepts an empty Host (an authority-less target URI)", () => {
  assert.equal(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n").host, "");
});

const framings: [name: string, fields: string, cl: number, chunked: boolean][] =
  [
    ["no body", "", -1, false],
    ["Content-Length", "Content-Length: 5\r\n", 5, false],
    ["Content-Length 0", "Content-Length: 0\r\n", 0, false],
    ["leading zeros", "Content-Length: 007\r\n", 7, false],
    ["the limit itself", "Content-Length: 100\r\n", 100, false],
    [
      "the same Content-Length twice",
      "Content-Length: 5\r\ncontent-length: 5\r\n",
      5,
      false,
    ],
    ["chunked", "Transfer-Encoding: chunked\r\n", -1, true],
    ["Chunked in any case", "Transfer-Encoding: ChUnKeD \r\n", -1, true],
  ];
for (const [name, fields, cl, chunked] of framings) {
  Deno.test(`parseHead() reads framing: ${name}`, () => {
    const head = parse(`POST / HTTP/1.1\r\n${H}${fields}\r\n`);
    assert.equal(head.contentLength, cl);
    assert.equal(head.chunked, chunked);
  });
}

Deno.test("parseHead() sets expectContinue for HTTP/1.1 only", () => {
  const e = "Expect: 100-Continue\r\nContent-Length: 1\r\n";
  assert.equal(parse(`PUT / HTTP/1.1\r\n${H}${e}\r\n`).expectContinue, true);
  assert.equal(parse(`PUT / HTTP/1.0\r\n${e}\r\n`).expectContinue, false);
});

Deno.test("parseHead() accepts a target of exactly maxTargetBytes and maxHeaderCount fields", () => {
  const target = "/" + "t".repeat(LIMITS.maxTargetBytes - 1);
  const fields = Array.from(
    { length: LIMITS.maxHeaderCount - 1 },
    (_, k) => `X-${k}: ${k}\r\n`,
  ).join("");
  const head = parse(`GET ${target} HTTP/1.1\r\n${H}${fields}\r\n`);
  assert.equal(head.path, target);
  assert.equal(head.headers.size, LIMITS.maxHeaderCount);
});

Deno.test("parseHead() reads pipelined heads from one buffer in turn", () => {
  const raw = `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`;
  const buf = latin1Bytes(raw);
  const first = findHeadEnd(buf, 0, buf.length);
  assert.equal(parseHead(buf, 0, first, LIMITS).path, "/1");
  const second = findHeadEnd(buf, first, buf.length);
  assert.equal(second, buf.length);
  assert.equal(parseHead(buf, first, second, LIMITS).path, "/2");
});

Deno.test("parseHead() given the end of the data stops at the first blank line", () => {
  // What the connection does when a read ends with a blank line.
  const raw = `GET /1 HTTP/1.1\r\n${H}\r\nPOST /2 HTTP/1.1\r\n${H}` +
    `Content-Length: 4\r\n\r\n\r\n\r\nGET /3 HTTP/1.1\r\n${H}\r\n`;
  const buf = latin1Bytes(raw);
  const first = parseHead(buf, 0, buf.length, LIMITS);
  assert.equal(first.path, "/1");
  assert.equal(first.end, findHeadEnd(buf, 0, buf.length));
  const second = parseHead(buf, first.end, buf.length, LIMITS);
  assert.equal(second.path, "/2");
  assert.equal(second.contentLength, 4);
  // The body is "\r\n\r\n": the third head starts after it.
  const third = parseHead(buf, second.end + 4, buf.length, LIMITS);
  assert.equal(third.path, "/3");
  assert.equal(third.end, buf.length);
  // A bad line before the blank line is refused as it would be anyway.
  const bad = latin1Bytes(`GET / HTTP/1.1\r\n${H}X: a\nb\r\n\r\n`);
  assert.throws(
    () => parseHead(bad, 0, bad.length, LIMITS),
    (e) => e instanceof HttpError && e.status === 400,
  );
});

Deno.test("parseHead() reads the same head however it is cut", async () => {
  const raw = latin1Bytes(
    `\r\nPOST http://a.test/x?y HTTP/1.1\r\nHost: b\r\nX-A:  1 \r\n` +
      `Content-Length: 3\r\nConnection: close\r\n\r\n`,
  );
  const whole = await new FakeSocket([raw]).readHead(LIMITS);
  assert.ok(whole !== null);
  for (let a = 1; a < raw.length; a++) {
    for (const b of [a + 1, a + 7, raw.length - 1]) {
      const head = await new FakeSocket(cutAt(raw, [a, b])).readHead(LIMITS);
      // `end` is an index into the socket's buffer, which differs by cut.
      assert.deepEqual(
        { ...head, end: 0, headers: [...head!.headers] },
        { ...whole, end: 0, headers: [...whole.headers] },
        `cut at ${a}, ${b}`,
      );
    }
  }
});

// parseHead(): what it refuses. Each error closes the connection.

const rejected: [name: string, raw: string, status: number][] = [
  // Request line
  ["an unknown method", `BREW / HTTP/1.1\r\n${H}\r\n`, 501],
  ["a lower-case method", `get / HTTP/1.1\r\n${H}\r\n`, 501],
  ["CONNECT to an authority", `CONNECT a.test:443 HTTP/1.1\r\n${H}\r\n`, 501],
  ["CONNECT to a path", `CONNECT / HTTP/1.1\r\n${H}\r\n`, 501],
  ["HTTP/2.0", `GET / HTTP/2.0\r\n${H}\r\n`, 505],
  ["HTTP/0.9 with a version", `GET / HTTP/0.9\r\n${H}\r\n`, 505],
  ["HTTP/3.1", `GET / HTTP/3.1\r\n${H}\r\n`, 505],
  ["a missing version", `GET /\r\n${H}\r\n`, 400],
  ["HTTP/1.10", `GET / HTTP/1.10\r\n${H}\r\n`, 400],
  ["HTTP/1", `GET / HTTP/1\r\n${H}\r\n`, 400],
  ["HTTP/11", `GET / HTTP/11\r\n${H}\r\n`, 400],
  ["lower-case http/1.1", `GET / http/1.1\r\n${H}\r\n`, 400],
  ["two spaces after the method", `GET  / HTTP/1.1\r\n${H}\r\n`, 400],
  ["two spaces before the version", `GET /  HTTP/1.1\r\n${H}\r\n`, 400],
  ["a space after the version", `GET / HTTP/1.1 \r\n${H}\r\n`, 400],
  ["a space before the method", ` GET / HTTP/1.1\r\n${H}\r\n`, 400],
  ["a tab as separator", `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400],
  ["a missing target", `GET HTTP/1.1\r\n${H}\r\n`, 400],
  ["a method alone", `GET\r\n${H}\r\n`, 400],
  ["NUL in the target", `GET /a\0b HTTP/1.1\r\n${H}\r\n`, 400],
  ["a control byte in the target", `GET /a\x01b HTTP/1.1\r\n${H}\r\n`, 400],
  ["DEL in the target", `GET /a\x7fb HTTP/1.1\r\n${H}\r\n`, 400],
  ["a tab in the target", `GET /a\tb HTTP/1.1\r\n${H}\r\n`, 400],
  ["a fragment in the target", `GET /a#b HTTP/1.1\r\n${H}\r\n`, 400],
  [
    "a raw non-ASCII byte in the target",
    `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`,
    400,
  ],
  ["a bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400],
  ["bare LFs throughout", "GET / HTTP/1.1\nHost: a\n\n", 400],
  ["a bare CR after the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400],
  ["asterisk-form for GET", `GET * HTTP/1.1\r\n${H}\r\n`, 400],
  ["a relative target", `GET a/b HTTP/1.1\r\n${H}\r\n`, 400],
  [
    "an absolute-form ftp target",
    `GET ftp://a.test/ HTTP/1.1\r\n${H}\r\n`,
    400,
  ],
  [
    "an absolute-form target without host",
    `GET http:///p HTTP/1.1\r\n${H}\r\n`,
    400,
  ],
  [
    "userinfo in an absolute-form target",
    `GET http://u@a.test/ HTTP/1.1\r\n${H}\r\n`,
    400,
  ],
  [
    "a target over maxTargetBytes",
    `GET /${"t".repeat(64)} HTTP/1.1\r\n${H}\r\n`,
    414,
  ],
  // Field lines
  ["space before colon", `GET / HTTP/1.1\r\n${H}X : y\r\n\r\n`, 400],
  ["a tab before colon", `GET / HTTP/1.1\r\n${H}X\t: y\r\n\r\n`, 400],
  ["obs-fold with a space", `GET / HTTP/1.1\r\n${H}X: y\r\n z\r\n\r\n`, 400],
  ["obs-fold with a tab", `GET / HTTP/1.1\r\n${H}X: y\r\n\tz\r\n\r\n`, 400],
  ["a field line that starts with a space", `GET / HTTP/1.1\r\n ${H}\r\n`, 400],
  ["an empty field name", `GET / HTTP/1.1\r\n${H}: y\r\n\r\n`, 400],
  ["a field line without a colon", `GET / HTTP/1.1\r\n${H}X\r\n\r\n`, 400],
  ["a separator in a field name", `GET / HTTP/1.1\r\n${H}X(y): z\r\n\r\n`, 400],
  ["a non-ASCII field name", `GET / HTTP/1.1\r\n${H}X\xe9: z\r\n\r\n`, 400],
  ["a bare LF in the header section", `GET / HTTP/1.1\r\nX: y\n${H}\r\n`, 400],
  ["a bare LF ending the head", `GET / HTTP/1.1\r\n${H}\n`, 400],
  ["a bare CR in a value", `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 400],
  ["a bare CR ending a value", `GET / HTTP/1.1\r\n${H}X: a\r\r\n\r\n`, 400],
  ["a bare CR before the blank line", `GET / HTTP/1.1\r\n${H}\r\r\n\r\n`, 400],
  ["NUL in a value", `GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`, 400],
  ["ESC in a value", `GET / HTTP/1.1\r\n${H}X: a\x1bb\r\n\r\n`, 400],
  ["DEL in a value", `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, 400],
  ["a vertical tab in a value", `GET / HTTP/1.1\r\n${H}X: a\x0bb\r\n\r\n`, 400],
  [
    "more than maxHeaderCount fields",
    `GET / HTTP/1.1\r\n${H}${"X: y\r\n".repeat(8)}\r\n`,
    431,
  ],
  // Host
  ["HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400],
  ["two Host fields", `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400],
  ["two Host fields in HTTP/1.0", `GET / HTTP/1.0\r\n${H}${H}\r\n`, 400],
  ["a Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400],
  ["a Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400],
  ["a Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400],
  ["a Host with obs-text", "GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n", 400],
  [
    "an invalid Host beside an absolute-form target",
    "GET http://a.test/ HTTP/1.1\r\nHost: a b\r\n\r\n",
    400,
  ],
  [
    "two Host fields beside an absolute-form target",
    `GET http://a.test/ HTTP/1.1\r\n${H}${H}\r\n`,
    400,
  ],
  // Content-Length
  [
    "Content-Length +5",
    `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`,
    400,
  ],
  [
    "Content-Length -1",
    `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`,
    400,
  ],
  [
    "Content-Length 5 5",
    `POST / HTTP/1.1\r\n${H}Content-Length: 5 5\r\n\r\n`,
    400,
  ],
  [
    "Content-Length 0x5",
    `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\n`,
    400,
  ],
  [
    "Content-Length 1.0",
    `POST / HTTP/1.1\r\n${H}Content-Length: 1.0\r\n\r\n`,
    400,
  ],
  [
    "Content-Length 1e2",
    `POST / HTTP/1.1\r\n${H}Content-Length: 1e2\r\n\r\n`,
    400,
  ],
  [
    "Content-Length 5,5",
    `POST / HTTP/1.1\r\n${H}Content-Length: 5,5\r\n\r\n`,
    400,
  ],
  [
    "an empty Content-Length",
    `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`,
    400,
  ],
  [
    "a blank Content-Length",
    `POST / HTTP/1.1\r\n${H}Content-Length:  \r\n\r\n`,
    400,
  ],
  [
    "two different Content-Lengths",
    `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`,
    400,
  ],
  [
    "three Content-Lengths, the last different",
    `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 05\r\nContent-Length: 6\r\n\r\n`,
    400,
  ],
  [
    "Content-Length over maxBodyBytes",
    `POST / HTTP/1.1\r\n${H}Content-Length: 101\r\n\r\n`,
    413,
  ],
  [
    "a Content-Length of 30 digits",
    `POST / HTTP/1.1\r\n${H}Content-Length: ${"9".repeat(30)}\r\n\r\n`,
    413,
  ],
  [
    "a Content-Length of 400 digits",
    `POST / HTTP/1.1\r\n${H}Content-Length: ${"9".repeat(400)}\r\n\r\n`,
    413,
  ],
  // Transfer-Encoding
  [
    "Transfer-Encoding gzip",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`,
    501,
  ],
  [
    "Transfer-Encoding gzip, chunked",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`,
    501,
  ],
  [
    "Transfer-Encoding chunked, gzip",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding chunked, chunked",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`,
    400,
  ],
  [
    "chunked in two Transfer-Encoding fields",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
  ],
  [
    "an empty Transfer-Encoding",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding with an empty element",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding chunked with a parameter",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding chunked and NBSP",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\xa0\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding NBSP and chunked",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \xa0chunked\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding xchunked",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`,
    501,
  ],
  [
    "Content-Length and Transfer-Encoding",
    `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding and Content-Length",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding in HTTP/1.0",
    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    400,
  ],
  // Expect
  [
    "an unknown expectation",
    `PUT / HTTP/1.1\r\n${H}Expect: 200-ok\r\n\r\n`,
    417,
  ],
];

for (const [name, raw, status] of rejected) {
  Deno.test(`parseHead() answers ${status} for ${name}`, () => {
    assert.throws(
      () => parse(raw),
      (err) => {
        assert.ok(err instanceof HttpError, `not an HttpError: ${err}`);
        assert.equal(err.status, status, err.message);
        assert.equal(err.close, true, "a head error must close");
        return true;
      },
    );
  });
}

// checkHeadSoFar(): a head refused as soon as its bytes prove it bad (issue #9)

/** Heads with no blank line yet, and the status their bytes so far earn. */
const early: [name: string, partial: string, status: number][] = [
  ["HTTP/5.6", "GET / HTTP/5.6\r\n", 505],
  ["an unknown method", "BREW / HTTP/1.1\r\n", 501],
  [
    "a Content-Length past any number",
    `POST / HTTP/1.1\r\nContent-Length: ${"9".repeat(30)}\r\n`,
    413,
  ],
  [
    "a Content-Length over maxBodyBytes",
    "PUT / HTTP/1.1\r\nContent-Length: 101\r\n",
    413,
  ],
  [
    "a second, different Content-Length",
    "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
    400,
  ],
  [
    "Content-Length with Transfer-Encoding",
    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n",
    400,
  ],
  ["a bare CR in a field value", `GET / HTTP/1.1\r\n${H}X: a\rb`, 400],
  ["a bare CR after the request line", "GET / HTTP/1.1\rH", 400],
  ["a bare CR before the blank line", `GET / HTTP/1.1\r\n${H}\rX`, 400],
  ["a bare LF after the request line", "GET / HTTP/1.1\nHost: a\n", 400],
  [
    "obs-fold: a field line starting with a space",
    `GET / HTTP/1.1\r\n${H} x`,
    400,
  ],
  ["a tab before the first field", "GET / HTTP/1.1\r\n\tHost: a", 400],
  ["a space before a colon", "GET / HTTP/1.1\r\nHost : a\r\n", 400],
  ["a control byte in a field value", "GET / HTTP/1.1\r\nX: a\x01\r\n", 400],
  ["two Host fields", `GET / HTTP/1.1\r\n${H}${H}`, 400],
  [
    "one field past maxHeaderCount",
    `GET / HTTP/1.1\r\n${"X: y\r\n".repeat(9)}`,
    431,
  ],
];

/**
 * Feeds `raw` to `checkHeadSoFar()` as reads ending at each of `ends`, the
 * way the connection resumes; returns the error, or undefined.
 */
function feed(raw: Uint8Array, ends: readonly number[]): unknown {
  let from = 0;
  for (const end of ends) {
    try {
      checkHeadSoFar(raw, 0, from, end, LIMITS);
    } catch (err) {
      return err;
    }
    from = Math.max(0, end - 3);
  }
  return undefined;
}

for (const [name, partial, status] of early) {
  Deno.test(`checkHeadSoFar() answers ${status} before the blank line for ${name}`, () => {
    const raw = latin1Bytes(partial);
    assert.equal(findHeadEnd(raw, 0, raw.length), -1, "no end of head yet");
    // All at once, then one byte per read, then cut in two anywhere.
    const feeds = [[raw.length], Array.from(raw, (_, k) => k + 1)];
    for (let cut = 1; cut < raw.length; cut++) feeds.push([cut, raw.length]);
    for (const ends of feeds) {
      const err = feed(raw, ends);
      assert.ok(err instanceof HttpError, `${ends.length} reads: ${err}`);
      assert.equal(err.status, status, err.message);
      assert.equal(err.close, true);
    }
  });
}

/** Heads that are fine: none may be refused early, however they arrive. */
const fine = [
  // Host comes last: a missing Host is only known at the blank line.
  "POST /a?b HTTP/1.1\r\nContent-Length: 5\r\nX-A:  1 \r\nHost: a.test\r\n\r\n",
  "GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
  "PUT / HTTP/1.0\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
  `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n`,
  "OPTIONS * HTTP/1.1\r\nHost: a\r\nX: caf\xe9\tend\r\n\r\n",
];

Deno.test("checkHeadSoFar() refuses no good head early, however it is cut", () => {
  for (const text of fine) {
    const raw = latin1Bytes(text);
    const end = findHeadEnd(raw, 0, raw.length);
    const feeds = [Array.from({ length: end - 1 }, (_, k) => k + 1)];
    for (let a = 1; a < end - 1; a++) feeds.push([a, end - 1], [a, a + 1]);
    for (const ends of feeds) {
      const err = feed(raw, ends);
      assert.equal(err, undefined, `${JSON.stringify(text)} ${ends}: ${err}`);
    }
  }
});

Deno.test("checkHeadSoFar() refuses every refused head early, with parseHead()'s status", () => {
  const late: string[] = [];
  for (const [name, raw, status] of rejected) {
    const bytes = latin1Bytes(raw);
    const end = findHeadEnd(bytes, 0, bytes.length);
    assert.notEqual(end, -1, name);
    const err = feed(bytes, Array.from({ length: end - 1 }, (_, k) => k + 1));
    if (err === undefined) {
      late.push(name);
      continue;
    }
    assert.ok(err instanceof HttpError, `${name}: ${err}`);
    assert.equal(err.status, status, `${name}: ${err.message}`);
  }
  // Only what the blank line itself decides waits for it.
  assert.deepEqual(late, [
    "a bare LF ending the head",
    "HTTP/1.1 without Host",
  ]);
});

// Over a socket: the engine answers, closes, and reads heads in pieces.

/** Echoes what the engine parsed: method, path, query, host, body. */
const echo: Handler = async (req) => ({
  status: 200,
  headers: { "content-type": "text/plain" },
  body: `${req.method} ${req.path} ?${req.query} host=${req.host} ` +
    `${req.version} [${await req.body.text()}]`,
});

function startEcho(limits: Partial<Limits> = LIMITS) {
  return serve({ port: 0, accessLog: false, limits }, echo);
}

Deno.test("serve() answers each refused head with its status and Connection: close, then closes", async () => {
  await using server = startEcho();
  for (const [name, raw, status] of rejected) {
    // halfClose false: the server must close on its own, not on our EOF.
    const replies = await exchangeReplies(server.port, [raw], {
      halfClose: false,
    });
    assert.equal(replies.length, 1, `${name}: one reply`);
    const [reply] = replies;
    assert.equal(reply.status, status, name);
    assert.equal(reply.headers.get("connection"), "close", name);
    assert.ok(reply.text.length > 0 && reply.text.length < 200, name);
    assert.doesNotMatch(reply.text, /\n./, `${name}: one short line`);
  }
});

Deno.test("serve() closes after a refused head without waiting for the client", async () => {
  await using server = startEcho();
  // halfClose false: the server must end the exchange on its own.
  const bytes = await exchangeBytes(
    server.port,
    [`GET / HTTP/1.1\r\n${H}X : y\r\n\r\n`],
    { halfClose: false },
  );
  assert.equal((await parseReplies(bytes))[0].status, 400);
});

Deno.test("serve() answers a head that is already bad without waiting for its end", async () => {
  // A long head timeout: an answer can only come from the bytes so far.
  await using server = startEcho({ ...LIMITS, headTimeoutMs: 60_000 });
  for (const [name, partial, status] of early) {
    for (
      const pieces of [[partial], [partial.slice(0, -1), partial.slice(-1)]]
    ) {
      const bytes = await exchangeBytes(server.port, pieces, {
        halfClose: false,
        pauseMs: 5,
        timeoutMs: 5000,
      });
      const replies = await parseReplies(bytes);
      assert.equal(replies.length, 1, name);
      assert.equal(replies[0].status, status, name);
      assert.equal(replies[0].headers.get("connection"), "close", name);
    }
  }
});

Deno.test("serve() does not answer bytes that follow a refused head", async () => {
  await using server = startEcho();
  const replies = await exchangeReplies(server.port, [
    `GET / HTTP/1.1\r\n${H}X : y\r\n\r\nGET /2 HTTP/1.1\r\n${H}\r\n`,
  ]);
  assert.deepEqual(replies.map((r) => r.status), [400]);
});

Deno.test("serve() answers OPTIONS * itself with 204 and Allow", async () => {
  await using server = startEcho();
  const [reply] = await exchangeReplies(server.port, [
    `OPTIONS * HTTP/1.1\r\n${H}\r\n`,
  ]);
  assert.equal(reply.status, 204);
  assert.match(reply.headers.get("allow") ?? "", /\bGET\b.*\bOPTIONS\b/);
  assert.equal(reply.body.length, 0);
});

Deno.test("serve() hands the handler the absolute-form authority as host", async () => {
  await using server = startEcho();
  const [reply] = await exchangeReplies(server.port, [
    `GET http://b.test/p?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`,
  ]);
  assert.equal(reply.text, "GET /p ?q=1 host=b.test HTTP/1.1 []");
});

Deno.test("serve() treats HTTP/1.2 as HTTP/1.1", async () => {
  await using server = startEcho();
  const [reply] = await exchangeReplies(server.port, [
    `GET / HTTP/1.2\r\n${H}\r\n`,
  ]);
  assert.equal(reply.status, 200);
  assert.match(reply.text, / HTTP\/1\.1 /);
  assert.equal(reply.headers.get("connection"), undefined, "kept alive");
});

Deno.test("serve() skips empty lines before a request line", async () => {
  await using server = startEcho();
  const replies = await exchangeReplies(server.port, [
    `\r\n\r\nGET /1 HTTP/1.1\r\n${H}\r\n\r\nGET /2 HTTP/1.1\r\n${H}\r\n`,
  ]);
  assert.deepEqual(replies.map((r) => r.text.split(" ")[1]), ["/1", "/2"]);
});

Deno.test("serve() answers pipelined requests in order", async () => {
  await using server = startEcho();
  const raw = [1, 2, 3].map((n) => `GET /${n} HTTP/1.1\r\n${H}\r\n`).join("");
  const replies = await exchangeReplies(server.port, [raw]);
  assert.deepEqual(replies.map((r) => r.text.split(" ")[1]), [
    "/1",
    "/2",
    "/3",
  ]);
});

const PAIR =
  `GET /a?x HTTP/1.1\r\nHost: h.test\r\nX-Long: ${"v".repeat(40)}\r\n\r\n` +
  `POST /b HTTP/1.1\r\nHost: h.test\r\nContent-Length: 2\r\n\r\nhi`;

Deno.test("serve() gives the same replies to a request cut at any byte", async () => {
  await using server = startEcho();
  const bytes = latin1Bytes(PAIR);
  const want = (await exchangeReplies(server.port, [bytes])).map((r) => r.text);
  assert.equal(want.length, 2);
  for (let cut = 1; cut < bytes.length; cut++) {
    const got = await exchangeReplies(server.port, cutAt(bytes, [cut]), {
      pauseMs: 2,
    });
    assert.deepEqual(got.map((r) => r.text), want, `cut at ${cut}`);
  }
});

Deno.test("serve() reads a request sent one byte at a time", async () => {
  await using server = startEcho();
  const bytes = latin1Bytes(PAIR);
  const pieces = Array.from(bytes, (_, k) => bytes.subarray(k, k + 1));
  const replies = await exchangeReplies(server.port, pieces, { pauseMs: 1 });
  assert.deepEqual(replies.map((r) => r.text), [
    "GET /a ?x host=h.test HTTP/1.1 []",
    "POST /b ? host=h.test HTTP/1.1 [hi]",
  ]);
});

Deno.test("serve() answers 414 for a request line longer than maxHeadBytes", async () => {
  await using server = startEcho();
  const line = `GET /${"t".repeat(600)}`; // no end of line yet
  const [reply] = await exchangeReplies(server.port, [line], {
    halfClose: false,
  });
  assert.equal(reply.status, 414);
  assert.equal(reply.headers.get("connection"), "close");
});

Deno.test("serve() answers 431 for a head over maxHeadBytes", async () => {
  await using server = startEcho();
  for (const end of ["\r\n\r\n", "\r\n"]) {
    const raw = `GET / HTTP/1.1\r\n${H}X: ${"v".repeat(600)}${end}`;
    const [reply] = await exchangeReplies(server.port, [raw], {
      halfClose: false,
    });
    assert.equal(reply.status, 431, JSON.stringify(end));
    assert.equal(reply.headers.get("connection"), "close");
  }
});

Deno.test("serve() accepts a head of exactly maxHeadBytes", async () => {
  await using server = startEcho();
  const start = `GET / HTTP/1.1\r\n${H}X: `;
  const raw = start + "v".repeat(LIMITS.maxHeadBytes - start.length - 4) +
    "\r\n\r\n";
  assert.equal(raw.length, LIMITS.maxHeadBytes);
  const [reply] = await exchangeReplies(server.port, [raw]);
  assert.equal(reply.status, 200);
});

Deno.test("serve() answers 413 from Content-Length before the body is sent", async () => {
  await using server = startEcho();
  const [reply] = await exchangeReplies(
    server.port,
    [`POST / HTTP/1.1\r\n${H}Content-Length: 1000000\r\n\r\n`],
    { halfClose: false },
  );
  assert.equal(reply.status, 413);
  assert.equal(reply.headers.get("connection"), "close");
});

Deno.test("serve() ends an HTTP/1.0 exchange with Connection: close", async () => {
  await using server = startEcho();
  const [reply] = await exchangeReplies(server.port, [
    "GET /old HTTP/1.0\r\n\r\n",
  ], {
    halfClose: false,
  });
  assert.equal(reply.status, 200);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(reply.text, "GET /old ? host= HTTP/1.0 []");
});

Deno.test({
  name:
    "serve() closes a connection that sends only empty lines past headTimeoutMs",
  // Skipped empty lines start the head's clock (RFC 9112 §2.2 asks to skip
  // some, not any number): "\r\n" now and then cannot hold a slot forever.
  fn: async () => {
    await using server = startEcho({
      ...LIMITS,
      headTimeoutMs: 300,
      keepAliveTimeoutMs: 300,
    });
    const started = performance.now();
    // 10 s of empty lines, one every 100 ms: a clock they re-armed would
    // close only after them.
    await exchangeBytes(server.port, Array(100).fill("\r\n"), {
      pauseMs: 100,
      halfClose: false,
      timeoutMs: 9000,
    });
    const ms = performance.now() - started;
    assert.ok(ms < 5000, `closed after ${Math.round(ms)} ms`);
  },
});

Deno.test("parseHead() lists every field, name folded, in the order sent", () => {
  // One list of names and values: each value must stay with its name.
  const head = parse(
    "GET / HTTP/1.1\r\nHOST: a.test\r\nUser-Agent: x\r\nX-Forwarded-Fox: 1\r\n" +
      "x-forwarded-for: 2\r\nAccept-Encodinx: 3\r\nreferer: 4\r\nrefereR: 5\r\n" +
      "TE: 6\r\nta: 7\r\n\r\n",
    DEFAULT_LIMITS,
  );
  assert.deepEqual([...head.headers], [
    ["host", "a.test"],
    ["user-agent", "x"],
    ["x-forwarded-fox", "1"],
    ["x-forwarded-for", "2"],
    ["accept-encodinx", "3"],
    ["referer", "4"],
    ["referer", "5"],
    ["te", "6"],
    ["ta", "7"],
  ]);
  assert.equal(head.headers.size, 9);
  assert.equal(head.headers.getJoined("Referer"), "4, 5");
  assert.equal(head.host, "a.test");
});
