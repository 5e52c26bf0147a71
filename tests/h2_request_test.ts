import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import type { HeaderList } from "../lib/http/h2/hpack.ts";
import { checkRequest, checkTrailers } from "../lib/http/h2/request.ts";

type Fields = [string, string][];

function list(fields: Fields, overflow = false): HeaderList {
  return {
    names: fields.map(([n]) => n),
    values: fields.map(([, v]) => v),
    bytes: fields.reduce((n, [a, b]) => n + a.length + b.length + 32, 0),
    overflow,
  };
}

const BASE: Fields = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/a/b?c=d"],
  [":authority", "example.com:8443"],
];

Deno.test("checkRequest() reads the pseudo-header fields and keeps the others in order", () => {
  const head = checkRequest(
    list([...BASE, ["accept", "*/*"], ["x-a", "1"], ["x-a", "2"], [
      "te",
      "trailers",
    ]]),
    DEFAULT_LIMITS,
  );
  assert.equal(head.method, "GET");
  assert.equal(head.scheme, "https");
  assert.equal(head.target, "/a/b?c=d");
  assert.equal(head.path, "/a/b");
  assert.equal(head.query, "c=d");
  assert.equal(head.host, "example.com:8443");
  assert.equal(head.contentLength, -1);
  assert.deepEqual([...head.headers], [["accept", "*/*"], ["x-a", "1"], [
    "x-a",
    "2",
  ], ["te", "trailers"]]);
  assert.equal(head.headers.getJoined("x-a"), "1, 2");
});

Deno.test("checkRequest() joins cookie crumbs with '; ' (RFC 9113 §8.2.3)", () => {
  const head = checkRequest(
    list([...BASE, ["cookie", "a=1"], ["x", "y"], ["cookie", "b=2"], [
      "cookie",
      "c=3",
    ]]),
    DEFAULT_LIMITS,
  );
  assert.deepEqual([...head.headers], [["cookie", "a=1; b=2; c=3"], [
    "x",
    "y",
  ]]);
});

Deno.test("checkRequest() takes Host when :authority is absent, and the same Host beside it", () => {
  const noAuthority = BASE.filter(([n]) => n !== ":authority");
  assert.equal(
    checkRequest(list([...noAuthority, ["host", "h.example"]]), DEFAULT_LIMITS)
      .host,
    "h.example",
  );
  assert.equal(
    checkRequest(list([...BASE, ["host", "EXAMPLE.com:8443"]]), DEFAULT_LIMITS)
      .host,
    "example.com:8443",
  );
});

Deno.test("checkRequest() reads Content-Length and OPTIONS *", () => {
  const post = BASE.map(([n, v]): [string, string] =>
    n === ":method" ? [n, "POST"] : [n, v]
  );
  assert.equal(
    checkRequest(list([...post, ["content-length", "42"]]), DEFAULT_LIMITS)
      .contentLength,
    42,
  );
  const options = BASE.map(([n, v]): [string, string] =>
    n === ":method" ? [n, "OPTIONS"] : n === ":path" ? [n, "*"] : [n, v]
  );
  assert.equal(checkRequest(list(options), DEFAULT_LIMITS).path, "*");
});

const with_ = (name: string, value: string | undefined): Fields => {
  const out: Fields = BASE.filter(([n]) => n !== name);
  if (value !== undefined) {
    const i = BASE.findIndex(([n]) => n === name);
    out.splice(i === -1 ? out.length : i, 0, [name, value]);
  }
  return out;
};

const REFUSED: [
  what: string,
  fields: Fields,
  status: number,
  limits?: Partial<Limits>,
][] = [
  ["no :method", with_(":method", undefined), 400],
  ["no :scheme", with_(":scheme", undefined), 400],
  ["no :path", with_(":path", undefined), 400],
  ["no :authority and no Host", with_(":authority", undefined), 400],
  ["an empty :path", with_(":path", ""), 400],
  ["an absolute :path", with_(":path", "https://example.com/"), 400],
  ["* for GET", with_(":path", "*"), 400],
  ["a space in :path", with_(":path", "/a b"), 400],
  ["a fragment in :path", with_(":path", "/a#b"), 400],
  ["a :path past maxTargetBytes", with_(":path", "/" + "a".repeat(9000)), 414],
  ["an empty :authority", with_(":authority", ""), 400],
  ["userinfo in :authority", with_(":authority", "user@example.com"), 400],
  ["a :scheme of ftp", with_(":scheme", "ftp"), 400],
  ["a malformed method", with_(":method", "G T"), 400],
  ["an unknown method", with_(":method", "BREW"), 501],
  ["CONNECT", [[":method", "CONNECT"], [":authority", "example.com:443"]], 501],
  ["CONNECT with a :path", [[":method", "CONNECT"], [":authority", "a:1"], [
    ":path",
    "/",
  ]], 400],
  ["CONNECT without :authority", [[":method", "CONNECT"]], 400],
  ["two :method fields", [...BASE, [":method", "GET"]], 400],
  ["a pseudo-header field after a field", [
    [":method", "GET"],
    ["accept", "*/*"],
    [":scheme", "https"],
    [":path", "/"],
  ], 400],
  [
    "an unknown pseudo-header field",
    [...BASE, [":protocol", "websocket"]],
    400,
  ],
  ["a response pseudo-header field", [...BASE, [":status", "200"]], 400],
  ["an upper-case name", [...BASE, ["Accept", "*/*"]], 400],
  ["an empty name", [...BASE, ["", "x"]], 400],
  ["a name with a space", [...BASE, ["x y", "1"]], 400],
  ["a colon in a name", [...BASE, ["x:y", "1"]], 400],
  ["a NUL in a value", [...BASE, ["x", "a\0b"]], 400],
  ["a CR in a value", [...BASE, ["x", "a\rb"]], 400],
  ["a LF in a value", [...BASE, ["x", "a\nb"]], 400],
  ["a control byte in a value", [...BASE, ["x", "a\x01b"]], 400],
  ["a leading space in a value", [...BASE, ["x", " a"]], 400],
  ["a trailing tab in a value", [...BASE, ["x", "a\t"]], 400],
  ["Connection", [...BASE, ["connection", "keep-alive"]], 400],
  ["Keep-Alive", [...BASE, ["keep-alive", "timeout=5"]], 400],
  ["Proxy-Connection", [...BASE, ["proxy-connection", "keep-alive"]], 400],
  ["Transfer-Encoding", [...BASE, ["transfer-encoding", "chunked"]], 400],
  ["Upgrade", [...BASE, ["upgrade", "h2c"]], 400],
  ["TE: gzip", [...BASE, ["te", "gzip"]], 400],
  ["Host differing from :authority", [...BASE, ["host", "evil.example"]], 400],
  ["two Host fields", [...with_(":authority", undefined), ["host", "a"], [
    "host",
    "a",
  ]], 400],
  ["a bad Host", [...with_(":authority", undefined), ["host", "a b"]], 400],
  ["a malformed Content-Length", [...BASE, ["content-length", "1e3"]], 400],
  ["two Content-Lengths", [...BASE, ["content-length", "1"], [
    "content-length",
    "2",
  ]], 400],
  ["a Content-Length past maxBodyBytes", [...BASE, [
    "content-length",
    "1048577",
  ]], 413],
  [
    "more fields than maxHeaderCount",
    [...BASE, ["a", "1"], ["b", "2"], ["c", "3"]],
    431,
    { maxHeaderCount: 2 },
  ],
];
for (const [what, fields, status, over] of REFUSED) {
  Deno.test(`checkRequest() answers ${status} for ${what}`, () => {
    assert.throws(
      () => checkRequest(list(fields), { ...DEFAULT_LIMITS, ...over }),
      (err) => {
        assert.equal((err as { name: string }).name, "HttpError");
        assert.equal(
          (err as { status: number }).status,
          status,
          (err as Error).message,
        );
        return true;
      },
    );
  });
}

Deno.test("checkRequest() answers 431 for a list the decoder cut off", () => {
  assert.throws(() => checkRequest(list(BASE, true), DEFAULT_LIMITS), {
    status: 431,
  });
});

Deno.test("checkTrailers() keeps fields and refuses pseudo-header, connection and oversized ones", () => {
  assert.deepEqual([...checkTrailers(list([["x-sum", "1"]]), DEFAULT_LIMITS)], [
    ["x-sum", "1"],
  ]);
  assert.throws(() => checkTrailers(list([[":path", "/"]]), DEFAULT_LIMITS), {
    status: 400,
  });
  assert.throws(
    () => checkTrailers(list([["connection", "close"]]), DEFAULT_LIMITS),
    { status: 400 },
  );
  assert.throws(() => checkTrailers(list([["X", "1"]]), DEFAULT_LIMITS), {
    status: 400,
  });
  assert.throws(
    () =>
      checkTrailers(list([["x", "a".repeat(100)]]), {
        ...DEFAULT_LIMITS,
        maxTrailerBytes: 64,
      }),
    { status: 431 },
  );
});
