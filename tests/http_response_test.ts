/**
 * The reply-head encoder (lib/http/response.ts) and the batch clock
 * (lib/http/clock.ts), byte for byte. Over sockets, server_test.ts checks
 * the same rules end to end.
 */
import assert from "node:assert/strict";
import { batchNow } from "../lib/http/clock.ts";
import type { ReplyHeaders } from "../lib/http/handler.ts";
import {
  BODY_ABSENT,
  BODY_STREAMED,
  encodeClosingReply,
  FixedFields,
  frameReply,
  isAscii,
  OutBuffer,
  writeFields,
  writeFraming,
  writeSwitchingHead,
} from "../lib/http/response.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const NOW = Date.UTC(2024, 0, 2, 3, 4, 5);
const DATE = "Date: Tue, 02 Jan 2024 03:04:05 GMT\r\n";
const NOSNIFF = "X-Content-Type-Options: nosniff\r\n";

function head(
  status: number,
  headers: ReplyHeaders | undefined,
  framing: [number, boolean, boolean, boolean] = [5, false, false, false],
): { text: string; contentLength: number; close: boolean } {
  const out = new OutBuffer();
  const scan = writeFields(out, status, headers, NOW);
  writeFraming(out, ...framing);
  return { text: decoder.decode(out.take()), ...scan };
}

Deno.test("writeFields() and writeFraming() spell a whole head", () => {
  assert.equal(
    head(200, { "content-type": "text/plain", "X-Id": "7" }).text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}content-type: text/plain\r\nX-Id: 7\r\n` +
      "Content-Length: 5\r\n\r\n",
  );
  assert.equal(
    head(404, [["set-cookie", "a=1"], ["set-cookie", "b=2"]], [
      1234567,
      false,
      true,
      false,
    ]).text,
    `HTTP/1.1 404 Not Found\r\n${DATE}${NOSNIFF}set-cookie: a=1\r\nset-cookie: b=2\r\n` +
      "Content-Length: 1234567\r\nConnection: close\r\n\r\n",
  );
  assert.equal(
    head(200, undefined, [-1, true, false, true]).text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}Transfer-Encoding: chunked\r\n` +
      "Connection: keep-alive\r\n\r\n",
  );
});

Deno.test("writeFraming() spells every Content-Length in decimal", () => {
  for (
    const n of [0, 1, 9, 10, 99, 100, 1023, 65536, 1e9, 2 ** 40, 2 ** 53 - 1]
  ) {
    const out = new OutBuffer();
    writeFraming(out, n, false, false, false);
    assert.equal(decoder.decode(out.take()), `Content-Length: ${n}\r\n\r\n`);
  }
});

Deno.test("writeFraming() adds Keep-Alive: timeout=N to a kept connection only", () => {
  const frame = (close: boolean, keepAlive: boolean, idleMs: number) => {
    const out = new OutBuffer();
    writeFraming(out, 2, false, close, keepAlive, idleMs);
    return decoder.decode(out.take());
  };
  assert.equal(
    frame(false, false, 5000),
    "Content-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\n",
  );
  assert.equal(
    frame(false, true, 75_999),
    "Content-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=75\r\n\r\n",
  );
  assert.equal(
    frame(true, false, 5000),
    "Content-Length: 2\r\nConnection: close\r\n\r\n",
  );
  assert.equal(frame(false, false, 999), "Content-Length: 2\r\n\r\n");
  assert.equal(frame(false, false, 0), "Content-Length: 2\r\n\r\n");
});

Deno.test("writeFields() drops the fields the engine owns and reports them", () => {
  const r = head(200, {
    "Content-Length": "12",
    "transfer-encoding": "gzip",
    "Connection": "keep-alive, Close",
    "date": "yesterday",
    "keep-alive": "timeout=5",
    "x-content-type-options": "none", // the engine always sends nosniff
    "x-kept": "yes",
  });
  assert.equal(
    r.text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-kept: yes\r\nContent-Length: 5\r\n\r\n`,
  );
  assert.equal(r.contentLength, 12);
  assert.equal(r.close, true);
  assert.throws(() => head(200, { "content-length": "-1" }), /content-length/);
  assert.throws(() => head(200, { "content-length": "1e3" }), /content-length/);
});

Deno.test("writeFields() passes on the upgrade option of a handler's Connection (a 426), once, beside the engine's own", () => {
  const r = head(426, { upgrade: "websocket", connection: "Upgrade" }, [
    0,
    false,
    true,
    false,
  ]);
  assert.equal(
    r.text,
    `HTTP/1.1 426 Upgrade Required\r\n${DATE}${NOSNIFF}upgrade: websocket\r\n` +
      "Connection: Upgrade\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  );
  const both = head(426, [["Connection", "close, upgrade"], [
    "connection",
    "Upgrade",
  ]]);
  assert.equal(both.close, true);
  assert.equal(both.text.match(/Connection: Upgrade\r\n/g)?.length, 1);
  // 101's head names it once, whether the handler's fields do or not.
  const fieldSets: (ReplyHeaders | undefined)[] = [
    undefined,
    { upgrade: "websocket" },
    { upgrade: "websocket", connection: "upgrade" },
  ];
  for (const fields of fieldSets) {
    const out = new OutBuffer();
    writeSwitchingHead(out, fields);
    const text = decoder.decode(out.take());
    assert.equal(text.match(/Connection: Upgrade\r\n/g)?.length, 1, text);
  }
});

Deno.test("writeFields() refuses what would split or corrupt the head", () => {
  for (const value of ["a\r\nx: y", "a\nb", "a\rb", "a\0b", "é\r\nx: y"]) {
    assert.throws(() => head(200, { "x-a": value }), /header value/);
  }
  for (const name of ["", "x a", "x:a", "x\r\n", "é"]) {
    assert.throws(() => head(200, { [name]: "1" }), /header name/);
  }
  for (const status of [99, 600, 200.5, NaN]) {
    assert.throws(() => head(status, undefined), /status/);
  }
});

Deno.test("writeFields() sends a value beyond ASCII as UTF-8", () => {
  const out = new OutBuffer();
  writeFields(out, 200, { "x-name": "Zoë ✓" }, NOW);
  const bytes = out.take();
  const line = encoder.encode("x-name: Zoë ✓\r\n");
  const at = bytes.length - line.length;
  assert.deepEqual([...bytes.subarray(at)], [...line]);
});

Deno.test("writeFields() reuses a frozen record's bytes and nothing else", () => {
  const frozen = Object.freeze({ "x-a": "1" });
  assert.match(head(200, frozen).text, /x-a: 1\r\n/);
  assert.match(head(200, frozen).text, /x-a: 1\r\n/); // from the cache
  // A frozen list's pairs can still change: never cached.
  const pair: [string, string] = ["x-b", "1"];
  const list = Object.freeze([pair]);
  assert.match(head(200, list).text, /x-b: 1\r\n/);
  pair[1] = "2";
  assert.match(head(200, list).text, /x-b: 2\r\n/);
  // A mutable record is read afresh each time.
  const record: Record<string, string> = { "x-c": "1" };
  assert.match(head(200, record).text, /x-c: 1\r\n/);
  record["x-c"] = "2";
  assert.match(head(200, record).text, /x-c: 2\r\n/);
  // A frozen record holding a non-string renders it afresh each time.
  let n = 0;
  const counter = Object.freeze({
    "x-d": { toString: () => `${++n}` } as unknown as string,
  });
  assert.match(head(200, counter).text, /x-d: 1\r\n/);
  assert.match(head(200, counter).text, /x-d: 2\r\n/);
  // A bad frozen record is refused every time, not cached.
  const bad = Object.freeze({ "x-e": "a\nb" });
  assert.throws(() => head(200, bad));
  assert.throws(() => head(200, bad));
});

Deno.test("writeFields() writes a frozen record after the status and Date of each reply", () => {
  const frozen = Object.freeze({ "x-a": "1" });
  const write = (status: number, now: number) => {
    const out = new OutBuffer();
    writeFields(out, status, frozen, now);
    return decoder.decode(out.take());
  };
  for (let i = 0; i < 2; i++) { // the second time from the joined bytes
    assert.equal(
      write(200, NOW),
      `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-a: 1\r\n`,
    );
    assert.equal(
      write(404, NOW),
      `HTTP/1.1 404 Not Found\r\n${DATE}${NOSNIFF}x-a: 1\r\n`,
    );
    assert.equal(
      write(200, NOW + 1000),
      `HTTP/1.1 200 OK\r\nDate: Tue, 02 Jan 2024 03:04:06 GMT\r\n${NOSNIFF}x-a: 1\r\n`,
    );
  }
});

Deno.test("writeFields() keeps each frozen record's bytes apart when they alternate", () => {
  const a = Object.freeze({ "x-a": "1", "content-length": "3" });
  const b = Object.freeze({ "x-b": "2", connection: "close" });
  for (let i = 0; i < 3; i++) {
    const first = head(200, a);
    assert.match(first.text, /x-a: 1\r\n/);
    assert.doesNotMatch(first.text, /x-b/);
    assert.equal(first.contentLength, 3);
    assert.equal(first.close, false);
    const second = head(200, b);
    assert.match(second.text, /x-b: 2\r\n/);
    assert.doesNotMatch(second.text, /x-a/);
    assert.equal(second.contentLength, -1);
    assert.equal(second.close, true);
  }
});

Deno.test("FixedFields.listWith() sends the fixed fields as encoded, then the rest checked", () => {
  const own: Record<string, string> = { "x-a": "1", "content-length": "3" };
  const fixed = new FixedFields(own, [["x-b", "2"]]);
  own["x-a"] = "changed"; // taken as they were when made
  for (const n of ["1", "2"]) { // the second time from the encoded bytes
    const list = fixed.listWith([["x-n", n]]);
    // Readers see a plain list of pairs, with no mark on it.
    assert.deepEqual(list, [
      ["x-a", "1"],
      ["content-length", "3"],
      ["x-b", "2"],
      ["x-n", n],
    ]);
    const r = head(200, list);
    assert.equal(
      r.text,
      `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-a: 1\r\nx-b: 2\r\nx-n: ${n}\r\n` +
        "Content-Length: 5\r\n\r\n",
    );
    assert.equal(r.contentLength, 3);
    assert.equal(r.close, false);
  }
  // Copied with the status and Date lines in one piece: a new status or
  // second gets its own lines ahead of the same fields.
  for (
    const [status, now, line] of [
      [404, NOW, "404 Not Found\r\nDate: Tue, 02 Jan 2024 03:04:05"],
      [404, NOW + 1000, "404 Not Found\r\nDate: Tue, 02 Jan 2024 03:04:06"],
      [200, NOW + 1000, "200 OK\r\nDate: Tue, 02 Jan 2024 03:04:06"],
    ] as const
  ) {
    const out = new OutBuffer();
    writeFields(out, status, fixed.listWith([["x-n", "3"]]), now);
    assert.equal(
      decoder.decode(out.take()),
      `HTTP/1.1 ${line} GMT\r\n${NOSNIFF}x-a: 1\r\nx-b: 2\r\nx-n: 3\r\n`,
    );
  }
  // The fields after the fixed ones are checked and acted on as ever.
  const closing = head(200, fixed.listWith([["Connection", "close"]]));
  assert.equal(closing.close, true);
  assert.equal(closing.contentLength, 3);
  assert.doesNotMatch(closing.text, /close\r\nContent/);
  assert.throws(
    () => head(200, fixed.listWith([["x-c", "a\r\nx-d: 1"]])),
    /header value/,
  );
  assert.throws(() => head(200, fixed.listWith([["x c", "1"]])), /header name/);
  // Bad fixed fields are refused every time, never kept as encoded.
  const bad = new FixedFields({ "x-e": "a\nb" });
  assert.throws(() => head(200, bad.listWith([])), /header value/);
  assert.throws(() => head(200, bad.listWith([])), /header value/);
  const badName = new FixedFields([["x:e", "1"]]);
  assert.throws(() => head(200, badName.listWith([])), /header name/);
  // The fixed pairs cannot change in place; a list changed where they were
  // is written as it now is.
  assert.throws(() => {
    (fixed.pairs[0] as [string, string])[1] = "9";
  });
  const changed = fixed.listWith([]) as [string, string][];
  changed[0] = ["x-a", "9"];
  assert.match(head(200, changed).text, /\r\nx-a: 9\r\nx-b: 2\r\n/);
  // A frozen pair of one's own ahead is just a pair.
  assert.match(
    head(200, [Object.freeze(["x-g", "1"] as const)]).text,
    /x-g: 1/,
  );
  const shorter = fixed.listWith([]) as [string, string][];
  shorter.splice(0, 3, ["x-f", "1"]);
  assert.equal(
    head(200, shorter).text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-f: 1\r\nContent-Length: 5\r\n\r\n`,
  );
});

Deno.test("FixedFields.followedBy() copies the next field's name with the fixed bytes, its value checked each time", () => {
  const fixed = FixedFields.followedBy("x-left", { "x-a": "1" });
  for (
    const [status, now, n] of [[200, NOW, "9"], [200, NOW, "8"], [
      429,
      NOW + 1000,
      "0",
    ]] as const
  ) {
    const out = new OutBuffer();
    writeFields(out, status, fixed.listWith([["x-left", n]]), now);
    writeFraming(out, 5, false, false, false);
    assert.equal(
      decoder.decode(out.take()),
      `HTTP/1.1 ${status === 200 ? "200 OK" : "429 Too Many Requests"}\r\n` +
        `Date: Tue, 02 Jan 2024 03:04:0${
          now === NOW ? 5 : 6
        } GMT\r\n${NOSNIFF}` +
        `x-a: 1\r\nx-left: ${n}\r\nContent-Length: 5\r\n\r\n`,
    );
  }
  // The value is still checked; another field, or more, are written as usual.
  assert.throws(
    () => head(200, fixed.listWith([["x-left", "1\r\nx: y"]])),
    /header value/,
  );
  assert.equal(
    head(200, fixed.listWith([["x-right", "2"]])).text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-a: 1\r\nx-right: 2\r\nContent-Length: 5\r\n\r\n`,
  );
  assert.equal(
    head(200, fixed.listWith([["x-left", "3"], ["x-b", "é"]])).text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-a: 1\r\nx-left: 3\r\nx-b: é\r\nContent-Length: 5\r\n\r\n`,
  );
  assert.equal(
    head(200, fixed.listWith([])).text,
    `HTTP/1.1 200 OK\r\n${DATE}${NOSNIFF}x-a: 1\r\nContent-Length: 5\r\n\r\n`,
  );
  // A name the engine writes itself cannot follow.
  assert.throws(() => FixedFields.followedBy("Content-Length"), TypeError);
});

Deno.test("OutBuffer keeps its view over a release while the pool holds the buffer", () => {
  const out = new OutBuffer();
  out.text("abc");
  const first = out.take();
  out.release(); // a connection waiting for its client
  out.text("xyz");
  const again = out.take();
  assert.equal(decoder.decode(again), "xyz");
  if (out.buf.buffer === first.buffer) {
    assert.equal(again, first, "the same view");
  } else assert.notEqual(again, first, "another buffer: another view");
});

Deno.test("OutBuffer grows, and take() empties it", () => {
  const out = new OutBuffer();
  out.text("abc");
  const first = out.take();
  assert.equal(decoder.decode(first), "abc");
  assert.equal(out.len, 0);
  out.text("xyz");
  assert.equal(out.take(), first, "same size: the same view object");
  assert.equal(decoder.decode(first), "xyz");
  const big = "é".repeat(5000);
  out.text(big);
  assert.equal(decoder.decode(out.take()), big);
  out.bytes(new Uint8Array(100).fill(0x61));
  out.bytes(Uint8Array.of(0x62));
  assert.equal(decoder.decode(out.take()), "a".repeat(100) + "b");
});

Deno.test("OutBuffer.text() spells short and long text as UTF-8, after what is queued", () => {
  const out = new OutBuffer();
  for (
    const s of [
      "",
      "hello",
      "x".repeat(48),
      "x".repeat(49),
      `{"items":[${"1,".repeat(300)}2]}`,
      "ascii then é",
      "é".repeat(30) + "x".repeat(30),
      "x".repeat(60) + "\u{1f600}",
    ]
  ) {
    out.bytes(Uint8Array.of(0x3e));
    out.text(s);
    assert.equal(decoder.decode(out.take()), `>${s}`);
  }
});

Deno.test("isAscii() tells short and long strings apart", () => {
  assert.equal(isAscii(""), true);
  assert.equal(isAscii("hello"), true);
  assert.equal(isAscii("hé"), false);
  assert.equal(isAscii("a".repeat(100)), true);
  assert.equal(isAscii("a".repeat(100) + "\u{1f600}"), false);
  assert.equal(isAscii("\x7f"), true);
  assert.equal(isAscii("\x80"), false);
});

Deno.test("encodeClosingReply() makes a whole reply that closes", () => {
  const text = decoder.decode(
    encodeClosingReply(503, { "retry-after": "1" }, "Busy ✓\n", NOW),
  );
  assert.equal(
    text,
    `HTTP/1.1 503 Service Unavailable\r\n${DATE}${NOSNIFF}retry-after: 1\r\n` +
      "Content-Length: 9\r\nConnection: close\r\n\r\nBusy ✓\n",
  );
});

Deno.test("batchNow() is one reading per batch of work", async () => {
  const a = batchNow();
  const spin = Date.now() + 5;
  while (Date.now() < spin) { /* let the real clock move on */ }
  assert.equal(batchNow(), a, "same batch: same reading");
  await new Promise((r) => setTimeout(r, 0));
  const b = batchNow();
  assert.ok(b >= a + 5, `a later batch reads the clock again: ${a} -> ${b}`);
});

const S = BODY_STREAMED;
const A = BODY_ABSENT;
const framings: [
  name: string,
  args: Parameters<typeof frameReply>, // status, isHead, minor, bodyLength, fieldLength, keep
  want: [contentLength: number, chunked: boolean, keep: boolean, body: boolean],
][] = [
  ["a known body", [200, false, 1, 5, -1, true], [5, false, true, true]],
  ["a known body the handler sized", [200, false, 1, 5, 9, true], [
    5,
    false,
    true,
    true,
  ]],
  ["no body", [200, false, 1, A, -1, true], [0, false, true, true]],
  ["no body to HEAD", [200, true, 1, A, -1, true], [-1, false, true, false]],
  ["no body to HEAD, sized", [200, true, 1, A, 42, true], [
    42,
    false,
    true,
    false,
  ]],
  ["a known body to HEAD", [200, true, 1, 5, -1, true], [
    5,
    false,
    true,
    false,
  ]],
  ["a stream over HTTP/1.1", [200, false, 1, S, -1, true], [
    -1,
    true,
    true,
    true,
  ]],
  ["a sized stream", [200, false, 1, S, 7, true], [7, false, true, true]],
  ["a stream over HTTP/1.0", [200, false, 0, S, -1, true], [
    -1,
    false,
    false,
    true,
  ]],
  ["a sized stream over HTTP/1.0", [200, false, 0, S, 7, true], [
    7,
    false,
    true,
    true,
  ]],
  ["204 with a body", [204, false, 1, 5, -1, true], [-1, false, true, false]],
  ["304 with a stream", [304, false, 1, S, -1, true], [
    -1,
    false,
    true,
    false,
  ]],
  ["a close asked for", [200, false, 1, 5, -1, false], [5, false, false, true]],
  ["a stream with a close asked for", [200, false, 1, S, -1, false], [
    -1,
    true,
    false,
    true,
  ]],
];
for (const [name, args, [contentLength, chunked, keep, sendBody]] of framings) {
  Deno.test(`frameReply() frames ${name}`, () => {
    assert.deepEqual(frameReply(...args), {
      contentLength,
      chunked,
      keep,
      sendBody,
    });
  });
}
