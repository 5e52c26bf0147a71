import fc from "fast-check";
import assert from "node:assert/strict";
import {
  clientAddress,
  clientKey,
  forwardedBeyondLoopback,
  isDottedQuad,
  isLoopback,
  trustProxy,
} from "../lib/app/client_addr.ts";
import { AppRequest } from "../lib/app/app_request.ts";
import {
  isJsonType,
  mediaType,
  mediaTypeMatches,
} from "../lib/app/media_types.ts";
import type { HttpError } from "../lib/http/errors.ts";
import { fake } from "./fixtures/app_request.ts";

function appRequest(...args: Parameters<typeof fake>): AppRequest {
  const { req } = fake(...args);
  return new AppRequest(req, req.path);
}

Deno.test("AppRequest.query parses on first use and keeps repeated keys", () => {
  const req = appRequest("GET", "/x?a=1&a=2&b=%20c&d");
  assert.deepEqual(req.query.getAll("a"), ["1", "2"]);
  assert.equal(req.query.get("b"), " c");
  assert.equal(req.query.get("d"), "");
  assert.equal(req.query, req.query); // parsed once
  assert.equal(appRequest("GET", "/x").query.size, 0);
});

Deno.test("AppRequest.header() is case-insensitive", () => {
  const req = appRequest("GET", "/", { headers: { "User-Agent": "ua/1" } });
  assert.equal(req.header("user-agent"), "ua/1");
  assert.equal(req.header("USER-AGENT"), "ua/1");
  assert.equal(req.headers.get("User-Agent"), "ua/1");
  assert.equal(req.header("x-none"), undefined);
});

Deno.test("AppRequest.json() parses a JSON body, chunked or not", async () => {
  for (const chunked of [false, true]) {
    const req = appRequest("POST", "/", {
      headers: { "content-type": "application/json" },
      body: '{"a":[1,2]}',
      chunked,
    });
    assert.deepEqual(await req.json(), { a: [1, 2] });
  }
});

const jsonFailures: [
  name: string,
  type: string | undefined,
  body: string,
  status: number,
][] = [
  ["text/plain", "text/plain", "{}", 415],
  ["no Content-Type", undefined, "{}", 415],
  ["malformed JSON", "application/json", '{"a":', 400],
  ["an empty body", "application/json", "", 400],
];
for (const [name, type, body, status] of jsonFailures) {
  Deno.test(`AppRequest.json() answers ${status} for ${name}`, async () => {
    const headers: Record<string, string> = type
      ? { "content-type": type }
      : {};
    const f = fake("POST", "/", { headers, body });
    const req = new AppRequest(f.req, "/");
    await assert.rejects(req.json(), (err: HttpError) => {
      assert.equal(err.status, status);
      assert.ok(err.expose, "the client is told why");
      return true;
    });
    // A wrong media type is refused before a byte is read.
    if (status === 415) assert.equal(f.body.started, false);
  });
}

Deno.test("AppRequest.text() answers 400 for bytes that are not UTF-8", async () => {
  const req = appRequest("POST", "/", { body: Uint8Array.of(0xc3, 0x28) });
  await assert.rejects(req.text(), { status: 400 });
});

Deno.test("AppRequest body reads answer 413 past the route's maxBodyBytes", async () => {
  const f = fake("POST", "/", {
    headers: { "content-type": "application/json" },
    body: "[1,2,3]",
    chunked: true,
  });
  const req = new AppRequest(f.req, "/");
  req.contract = { maxBodyBytes: 4 };
  await assert.rejects(req.json(), { status: 413 });
});

Deno.test("AppRequest.stream() and chunks() hand over the body", async () => {
  const chunks = appRequest("POST", "/", { body: "hello" });
  let got = "";
  for await (const piece of chunks.chunks()) {
    got += new TextDecoder().decode(piece);
  }
  assert.equal(got, "hello");
  const stream = appRequest("POST", "/", { body: "world", chunked: true });
  assert.equal(await new Response(stream.stream()).text(), "world");
});

Deno.test("AppRequest.client is the peer unless the peer is a trusted proxy", () => {
  const headers = { "x-forwarded-for": "198.51.100.7" };
  const direct = fake("GET", "/", { headers, peer: "203.0.113.9" }).req;
  assert.equal(new AppRequest(direct, "/").client, "203.0.113.9");
  const proxied = fake("GET", "/", { headers, peer: "10.0.0.2" }).req;
  assert.equal(
    new AppRequest(proxied, "/", trustProxy(["10.0.0.0/8"])).client,
    "198.51.100.7",
  );
});

const forwarded: [
  name: string,
  peer: string,
  xff: string | undefined,
  trusted: string[],
  client: string,
][] = [
  ["no header", "10.0.0.1", undefined, ["10.0.0.1"], "10.0.0.1"],
  ["untrusted peer", "203.0.113.1", "1.2.3.4", ["10.0.0.1"], "203.0.113.1"],
  ["one hop", "10.0.0.1", "1.2.3.4", ["10.0.0.1"], "1.2.3.4"],
  [
    "forged left entries",
    "10.0.0.1",
    "6.6.6.6, 1.2.3.4",
    ["10.0.0.1"],
    "1.2.3.4",
  ],
  ["two proxies", "10.0.0.1", "1.2.3.4, 10.0.0.2", ["10.0.0.0/24"], "1.2.3.4"],
  [
    "all trusted",
    "10.0.0.1",
    "10.0.0.3, 10.0.0.2",
    ["10.0.0.0/24"],
    "10.0.0.3",
  ],
  ["garbage hop", "10.0.0.1", "1.2.3.4, not-an-ip", ["10.0.0.1"], "10.0.0.1"],
  ["legacy IPv4 form", "10.0.0.1", "0x7f.1", ["10.0.0.1"], "10.0.0.1"],
  ["IPv6 client", "::1", "2001:db8::5", ["loopback"], "2001:db8::5"],
  ["IPv4-mapped peer", "::ffff:10.0.0.1", "1.2.3.4", ["10.0.0.1"], "1.2.3.4"],
];
for (const [name, peer, xff, trusted, client] of forwarded) {
  Deno.test(`clientAddress() gives ${client} for ${name}`, () => {
    assert.equal(clientAddress(peer, xff, trustProxy(trusted)), client);
  });
}

Deno.test("trustProxy() refuses entries that are not addresses or ranges", () => {
  for (
    const bad of [
      "nope",
      "10.0.0.0/33",
      "::/129",
      "1.2",
      "10.0.0.0/x",
      "10.0.0.0/8/9",
    ]
  ) {
    assert.throws(() => trustProxy([bad]), TypeError, bad);
  }
});

// The regular expression isDottedQuad() replaced, kept as its reference.
const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const DOTTED_QUAD = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

Deno.test("isDottedQuad() agrees with the dotted-quad regular expression", () => {
  const octet = fc.oneof(
    fc.integer({ min: 0, max: 999 }).map(String),
    fc.integer({ min: 0, max: 255 }).map((n) => `0${n}`),
    fc.constantFrom("", "00", "0000", "1234", "25", "256", "255", "٣", "1e2"),
  );
  const quadLike = fc.tuple(
    fc.array(octet, { minLength: 1, maxLength: 6 }),
    fc.constantFrom(".", ".", ".", ":", ".."),
    fc.constantFrom("", " ", "\n", ".", "a", "0"),
    fc.constantFrom("", " ", "\n", ".", "a", "0"),
  ).map(([parts, dot, before, after]) => before + parts.join(dot) + after);
  const near = fc.string({
    unit: fc.constantFrom(..."0123456789.".split("")),
    maxLength: 18,
  });
  fc.assert(
    fc.property(fc.oneof(quadLike, near, fc.string()), (text) => {
      assert.equal(isDottedQuad(text), DOTTED_QUAD.test(text), text);
    }),
    { numRuns: 20_000 },
  );
  for (const text of ["0.0.0.0", "255.255.255.255", "192.0.2.1", "10.0.0.10"]) {
    assert.ok(isDottedQuad(text), text);
  }
  for (
    const text of ["256.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.", "1.2.3.4\n"]
  ) {
    assert.ok(!isDottedQuad(text), text);
  }
});

Deno.test("clientKey() groups IPv6 clients by /64 and keeps IPv4 whole", () => {
  assert.equal(
    clientKey("2001:db8:1:2:aaaa::1"),
    clientKey("2001:db8:1:2:bbbb::2"),
  );
  assert.notEqual(clientKey("2001:db8:1:2::1"), clientKey("2001:db8:1:3::1"));
  assert.equal(clientKey("192.0.2.1"), "192.0.2.1");
  assert.equal(clientKey("::ffff:192.0.2.1"), "192.0.2.1");
});

Deno.test("isLoopback() knows 127/8 and ::1 only", () => {
  assert.ok(
    isLoopback("127.0.0.1") && isLoopback("127.9.9.9") && isLoopback("::1"),
  );
  assert.ok(isLoopback("::ffff:127.0.0.1"));
  assert.ok(
    !isLoopback("10.0.0.1") && !isLoopback("::2") && !isLoopback("localhost"),
  );
});

const forwardedCases: [
  name: string,
  forwardedFor: string | undefined,
  forwarded: string | undefined,
  beyond: string | undefined,
][] = [
  ["no header", undefined, undefined, undefined],
  ["X-Forwarded-For on loopback", "127.0.0.1", undefined, undefined],
  [
    "X-Forwarded-For of two loopback hops",
    "::1, 127.0.0.2",
    undefined,
    undefined,
  ],
  ["X-Forwarded-For from afar", "203.0.113.7", undefined, "203.0.113.7"],
  [
    "a far hop behind a loopback one",
    "127.0.0.1, 10.0.0.9",
    undefined,
    "10.0.0.9",
  ],
  ["a far hop with a port", "198.51.100.1:5678", undefined, "198.51.100.1"],
  ["X-Forwarded-For garbage", "unknown", undefined, "unknown"],
  ["an empty X-Forwarded-For", "", undefined, "(empty)"],
  ["Forwarded from loopback", undefined, "for=127.0.0.1;proto=http", undefined],
  [
    "Forwarded IPv6 loopback, quoted, with port",
    undefined,
    'for="[::1]:4711"',
    undefined,
  ],
  [
    "Forwarded from afar",
    undefined,
    "for=192.0.2.60;proto=http;by=127.0.0.1",
    "192.0.2.60",
  ],
  [
    "Forwarded, second element from afar",
    undefined,
    'for=127.0.0.1, For="[2001:db8:cafe::17]:4711"',
    "2001:db8:cafe::17",
  ],
  ["Forwarded obfuscated", undefined, "for=_hidden", "_hidden"],
  ["Forwarded unknown", undefined, "for=unknown", "unknown"],
  [
    "Forwarded without for",
    undefined,
    "proto=https;host=example.com",
    undefined,
  ],
  ["both, only Forwarded far", "127.0.0.1", "for=192.0.2.1", "192.0.2.1"],
];
for (const [name, xff, fwd, beyond] of forwardedCases) {
  Deno.test(`forwardedBeyondLoopback() gives ${beyond} for ${name}`, () => {
    assert.equal(forwardedBeyondLoopback(xff, fwd), beyond);
  });
}

Deno.test("mediaType() and mediaTypeMatches() read Content-Type values", () => {
  assert.equal(
    mediaType(" Application/JSON ; charset=utf-8"),
    "application/json",
  );
  assert.equal(mediaType(undefined), "");
  assert.ok(mediaTypeMatches("text/html", "text/*"));
  assert.ok(mediaTypeMatches("application/vnd.api+json", "application/*+json"));
  assert.ok(!mediaTypeMatches("application/+json", "application/*+json"));
  assert.ok(!mediaTypeMatches("text", "text/*"));
  assert.ok(
    isJsonType("application/json") && isJsonType("application/problem+json"),
  );
  assert.ok(!isJsonType("text/json+") && !isJsonType("+json"));
});
