/**
 * Property tests for the engine's reading side, with fast-check:
 * (1) valid requests parse to what was sent, however they are cut;
 * (2) any bytes sent to a real server get well-formed replies or a clean
 *     close: never a 500, an unhandled error or a hang;
 * (3) parseHead() and BodyReader throw nothing but HttpError;
 * (4) the fields the parser acts on are known by their names alone, in
 *     any case, and names one byte away are other fields.
 */
import { configure, type LogRecord, reset } from "@logtape/logtape";
import fc from "fast-check";
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import { BodyReader } from "../lib/http/body.ts";
import { badRequest, HttpError } from "../lib/http/errors.ts";
import type { Handler, Reply } from "../lib/http/handler.ts";
import {
  checkHost,
  findHeadEnd,
  mergeContentLength,
  parseHead,
  type RequestHead,
} from "../lib/http/parser.ts";
import { serve } from "../lib/http/server.ts";
import { cutAt, FakeSocket, readAll } from "./fixtures/byte_source.ts";
import {
  exchangeBytes,
  latin1Bytes,
  latin1Text,
  parseReplies,
  waitFor,
} from "./helpers/socket.ts";

const LIMITS: Limits = Object.freeze({
  ...DEFAULT_LIMITS,
  maxTargetBytes: 256,
  maxHeadBytes: 2048,
  maxHeaderCount: 20,
  maxBodyBytes: 2048,
  maxChunkLineBytes: 64,
  maxTrailerBytes: 256,
});

// Generators of valid requests, each with what the parser should make of it.

const METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "PATCH",
  "TRACE",
] as const;
/** Fields whose meaning the generator controls itself. */
const RESERVED = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "expect",
]);

function chars(set: string, minLength: number, maxLength: number) {
  return fc.string({
    unit: fc.constantFrom(...set.split("")),
    minLength,
    maxLength,
  });
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const PCHAR = ALNUM + "-._~!$&'()*+,;=:@%";
const TOKEN = ALNUM + "!#$%&'*+-.^_`|~";

/** A field value: visible bytes, obs-text, inner SP and HTAB. */
const fieldValue = fc.array(
  fc.oneof(
    fc.integer({ min: 0x21, max: 0x7e }),
    fc.integer({ min: 0x80, max: 0xff }),
    fc.constantFrom(0x20, 0x09),
  ),
  { maxLength: 24 },
).map((codes) => String.fromCharCode(...codes));

const field = fc.record({
  name: chars(TOKEN, 1, 12).filter((n) => !RESERVED.has(n.toLowerCase())),
  value: fieldValue,
  pad: fc.constantFrom("", " ", "  ", "\t", " \t"),
});

const chunk = fc.record({
  // "max": all lengths alike, so sizes of two and three hex digits come up.
  data: fc.uint8Array({ minLength: 1, maxLength: 300, size: "max" }),
  zeros: fc.nat(3),
  upper: fc.boolean(),
  ext: fc.constantFrom("", ";a", ";a=b", ' ;q="x; y"', ";x=1;y"),
});

const body = fc.oneof(
  fc.constant({ kind: "none" as const }),
  fc.record({
    kind: fc.constant("length" as const),
    data: fc.uint8Array({ maxLength: 600, size: "max" }),
  }),
  fc.record({
    kind: fc.constant("chunked" as const),
    chunks: fc.array(chunk, { maxLength: 6 }),
    trailers: fc.array(
      fc.record({ name: chars(TOKEN, 1, 8), value: chars(PCHAR, 0, 10) }),
      { maxLength: 2 },
    ),
  }),
);

const validRequest = fc.record({
  method: fc.constantFrom(...METHODS),
  segments: fc.array(chars(PCHAR, 0, 10), { minLength: 1, maxLength: 4 }),
  query: fc.option(chars(PCHAR + "/?", 0, 16), { nil: undefined }),
  http10: fc.boolean(),
  host: chars("abcdefghijklmnopqrstuvwxyz0123456789.-", 0, 12),
  port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
  fields: fc.array(field, { maxLength: 6 }),
  body,
  leadingCrlf: fc.boolean(),
});
type ValidRequest = typeof validRequest extends fc.Arbitrary<infer T> ? T
  : never;

/** What the parser and body reader should hand a handler. */
interface Parsed {
  method: string;
  target: string;
  path: string;
  query: string;
  minor: number;
  host: string;
  headers: [string, string][];
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
  body: string;
}

function trimOws(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, "");
}

/** The wire text (Latin-1) of `r`, and what it should parse to. */
function render(r: ValidRequest): { wire: string; want: Parsed } {
  const path = "/" + r.segments.join("/");
  const target = r.query === undefined ? path : `${path}?${r.query}`;
  // Chunked framing needs HTTP/1.1.
  const minor = r.http10 && r.body.kind !== "chunked" ? 0 : 1;
  const host = r.port === undefined ? r.host : `${r.host}:${r.port}`;
  const headers: [string, string][] = [];
  let wire = `${
    r.leadingCrlf ? "\r\n" : ""
  }${r.method} ${target} HTTP/1.${minor}\r\n`;
  const add = (name: string, value: string, pad = "") => {
    wire += `${name}:${pad}${value}${pad}\r\n`;
    headers.push([name.toLowerCase(), trimOws(value)]);
  };
  if (minor === 1 || r.host !== "") add("Host", host, " ");
  for (const f of r.fields) add(f.name, f.value, f.pad);
  let bodyText = "";
  let contentLength = -1;
  let trailer = "";
  if (r.body.kind === "length") {
    bodyText = latin1Text(r.body.data);
    contentLength = r.body.data.length;
    add("Content-Length", String(contentLength), " ");
  } else if (r.body.kind === "chunked") {
    add("Transfer-Encoding", "chunked", " ");
    for (const c of r.body.chunks) {
      let size = "0".repeat(c.zeros) + c.data.length.toString(16);
      if (c.upper) size = size.toUpperCase();
      trailer += `${size}${c.ext}\r\n${latin1Text(c.data)}\r\n`;
      bodyText += latin1Text(c.data);
    }
    trailer += "0\r\n";
    for (const t of r.body.trailers) trailer += `${t.name}: ${t.value}\r\n`;
    trailer += "\r\n";
  }
  wire += "\r\n" + (r.body.kind === "chunked" ? trailer : bodyText);
  return {
    wire,
    want: {
      method: r.method,
      target,
      path,
      query: r.query ?? "",
      minor,
      host: minor === 1 || r.host !== "" ? host : "",
      headers,
      contentLength,
      chunked: r.body.kind === "chunked",
      keepAlive: minor === 1,
      body: bodyText,
    },
  };
}

async function parseAll(pieces: Uint8Array[]): Promise<Parsed[]> {
  return (await readAll(pieces, LIMITS)).map(({ head, body }) => ({
    method: head.method,
    target: head.target,
    path: head.path,
    query: head.query,
    minor: head.minor,
    host: head.host,
    headers: [...head.headers],
    contentLength: head.contentLength,
    chunked: head.chunked,
    keepAlive: head.keepAlive,
    body: latin1Text(body),
  }));
}

// (1) Cut anywhere, parse the same.

Deno.test("parseHead() and BodyReader read pipelined valid requests cut at random points as sent", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(validRequest, { minLength: 1, maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      async (requests, rawCuts) => {
        const rendered = requests.map(render);
        const bytes = latin1Bytes(rendered.map((r) => r.wire).join(""));
        const want = rendered.map((r) => r.want);
        const cuts = rawCuts.map((c) => c % (bytes.length + 1));
        assert.deepEqual(await parseAll([bytes]), want);
        assert.deepEqual(await parseAll(cutAt(bytes, cuts)), want);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("parseHead() and BodyReader read a valid request fed one byte at a time", async () => {
  await fc.assert(
    fc.asyncProperty(validRequest, async (r) => {
      const { wire, want } = render(r);
      const bytes = latin1Bytes(wire);
      const pieces = Array.from(bytes, (_, k) => bytes.subarray(k, k + 1));
      assert.deepEqual(await parseAll(pieces), [want]);
    }),
    { numRuns: 100 },
  );
});

Deno.test("serve() gives the same replies to valid requests however they are cut", async () => {
  // Echoes the body itself, so a byte lost or doubled shows.
  const mirror: Handler = async (req): Promise<Reply> => {
    // Read even for HEAD: an unread chunked body makes the engine close.
    const body = await req.body.bytes();
    return {
      status: 200,
      headers: { "x-method": req.method, "x-host": req.host },
      body: req.method === "HEAD" ? null : body,
    };
  };
  await using server = serve(
    { port: 0, accessLog: false, limits: LIMITS },
    mirror,
  );
  const show = async (raw: Uint8Array) =>
    (await parseReplies(raw, (h) => h.get("x-method") === "HEAD")).map((r) =>
      `${r.status} ${r.headers.get("x-method")} ${r.headers.get("x-host")} ${
        latin1Text(r.body)
      }`
    );
  await fc.assert(
    fc.asyncProperty(
      fc.array(validRequest, { minLength: 1, maxLength: 3 }),
      fc.nat(),
      async (requests, rawCut) => {
        const rendered = requests.map(render);
        const bytes = latin1Bytes(rendered.map((r) => r.wire).join(""));
        // An HTTP/1.0 request without keep-alive is the last one answered.
        const last = rendered.findIndex((r) => !r.want.keepAlive);
        const answered = last === -1 ? rendered : rendered.slice(0, last + 1);
        const want = answered.map((r) =>
          r.want.path === "*"
            ? "204"
            : `200 ${r.want.method} ${r.want.host} ${
              r.want.method === "HEAD" ? "" : r.want.body
            }`
        );
        const whole = await show(await exchangeBytes(server.port, [bytes]));
        assert.deepEqual(whole, want);
        const cut = rawCut % (bytes.length + 1);
        const split = await show(
          await exchangeBytes(server.port, cutAt(bytes, [cut]), { pauseMs: 1 }),
        );
        assert.deepEqual(split, want, `cut at ${cut}`);
      },
    ),
    { numRuns: 150 },
  );
});

// Mutations of valid requests, for (2) and (3).

/** Bytes a mutation likes to insert: the ones parsers trip on. */
const NASTY = [
  0x0d,
  0x0a,
  0x20,
  0x09,
  0x3a,
  0x00,
  0x7f,
  0xa0,
  0x2c,
  0x3b,
  0x22,
  0x30,
  0x35,
  0x66,
  0x2d,
  0x2b,
];

const mutation = fc.record({
  kind: fc.constantFrom("flip", "insert", "delete", "duplicate"),
  at: fc.nat(),
  byte: fc.oneof(fc.constantFrom(...NASTY), fc.integer({ min: 0, max: 255 })),
  span: fc.integer({ min: 1, max: 12 }),
});
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(bytes: Uint8Array, ops: readonly Mutation[]): Uint8Array {
  let b = Array.from(bytes);
  for (const op of ops) {
    const at = b.length === 0 ? 0 : op.at % b.length;
    if (op.kind === "flip") b[at] = op.byte;
    else if (op.kind === "insert") b.splice(at, 0, op.byte);
    else if (op.kind === "delete") b.splice(at, op.span);
    else b.splice(at, 0, ...b.slice(at, at + op.span));
  }
  b = b.slice(0, 4096);
  return Uint8Array.from(b);
}

const validBytes = fc.array(validRequest, { minLength: 1, maxLength: 2 }).map(
  (rs) => latin1Bytes(rs.map((r) => render(r).wire).join("")),
);

/** Valid, mutated, half-valid and random byte strings. */
const anyBytes = fc.oneof(
  { arbitrary: validBytes, weight: 1 },
  {
    arbitrary: fc.tuple(
      validBytes,
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
    )
      .map(([b, ops]) => mutate(b, ops)),
    weight: 5,
  },
  {
    arbitrary: fc.tuple(
      fc.constantFrom(
        "GET / HTTP/1.1\r\nHost: a\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n",
        "GET ",
      ),
      fc.uint8Array({ maxLength: 64 }),
    ).map(([prefix, tail]) => {
      const p = latin1Bytes(prefix);
      const out = new Uint8Array(p.length + tail.length);
      out.set(p);
      out.set(tail, p.length);
      return out;
    }),
    weight: 2,
  },
  { arbitrary: fc.uint8Array({ maxLength: 200 }), weight: 1 },
);

// (3) Only HttpError, whatever the bytes.

Deno.test("parseHead() throws nothing but HttpError on arbitrary bytes", () => {
  fc.assert(
    fc.property(anyBytes, fc.nat(), (bytes, rawStart) => {
      // Make sure a head ends somewhere, as findHeadEnd() demands.
      const buf = new Uint8Array(bytes.length + 4);
      buf.set(bytes);
      buf.set([0x0d, 0x0a, 0x0d, 0x0a], bytes.length);
      const start = rawStart % (bytes.length + 1);
      const end = findHeadEnd(buf, start, buf.length);
      assert.notEqual(end, -1);
      try {
        const head = parseHead(buf, start, end, LIMITS);
        assert.equal(typeof head.method, "string");
        assert.ok(head.contentLength >= -1);
        assert.ok(!(head.chunked && head.contentLength !== -1));
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        assert.ok(err.status >= 400 && err.status <= 505, `${err.status}`);
        assert.notEqual(err.status, 500);
        assert.equal(err.close, true);
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("BodyReader throws nothing but HttpError on arbitrary chunked bytes", async () => {
  const chunkedish = fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    fc.tuple(
      fc.array(chunk, { maxLength: 3 }).map((cs) =>
        cs.map((c) =>
          `${c.data.length.toString(16)}${c.ext}\r\n${latin1Text(c.data)}\r\n`
        )
          .join("") + "0\r\nT: 1\r\n\r\n"
      ),
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
    ).map(([text, ops]) => mutate(latin1Bytes(text), ops)),
  );
  await fc.assert(
    fc.asyncProperty(
      chunkedish,
      fc.array(fc.nat(), { maxLength: 4 }),
      async (bytes, rawCuts) => {
        const cuts = rawCuts.map((c) => c % (bytes.length + 1));
        const body = new BodyReader(
          new FakeSocket(cutAt(bytes, cuts)),
          -1,
          true,
          LIMITS,
        );
        try {
          const out = await body.bytes();
          assert.ok(out.length <= LIMITS.maxBodyBytes);
        } catch (err) {
          if (!(err instanceof HttpError)) throw err;
          assert.ok([400, 413, 431].includes(err.status), `${err.status}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

// (2) Any bytes over a real socket.

/** Reads the body (except for HEAD) and says what it got. */
const echo: Handler = async (req): Promise<Reply> => {
  if (req.method === "HEAD") {
    return { status: 200, headers: { "x-method": "HEAD" }, body: "head" };
  }
  const bytes = await req.body.bytes();
  return {
    status: 200,
    headers: { "content-type": "text/plain", "x-method": req.method },
    body: `${req.method} ${req.path} ${bytes.length}`,
  };
};

/** Statuses an answer may carry; 500 never. */
function allowedStatus(status: number): boolean {
  return status === 100 || (status >= 200 && status <= 505 && status !== 500);
}

Deno.test("serve() answers any bytes with well-formed replies or a clean close", async () => {
  const errors: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (record: LogRecord) => errors.push(record) },
    loggers: [
      { category: ["spindle"], lowestLevel: "error", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await using server = serve(
      { port: 0, accessLog: false, limits: LIMITS },
      echo,
    );
    await fc.assert(
      fc.asyncProperty(anyBytes, fc.nat(), async (bytes, rawCut) => {
        // Sometimes in two writes, to cross the read boundary too.
        const cut = rawCut % 3 === 0 ? rawCut % (bytes.length + 1) : 0;
        // The default wait (5 s): the server closes at our FIN at once,
        // its own head timeout is 10 s.
        const raw = await exchangeBytes(server.port, cutAt(bytes, [cut]), {
          pauseMs: cut === 0 ? 0 : 1,
        });
        const replies = await parseReplies(
          raw,
          (h) => h.get("x-method") === "HEAD",
        );
        replies.forEach((reply, k) => {
          const last = k === replies.length - 1;
          assert.ok(allowedStatus(reply.status), `status ${reply.status}`);
          if (reply.status === 100) assert.ok(!last, "100 then a final reply");
          if (reply.status >= 400) {
            assert.ok(last, "nothing after an error reply");
            assert.equal(reply.headers.get("connection"), "close");
          }
        });
        // Only the logged 5xx replies (501, 505) may be errors in the log.
        const bad = errors.filter((r) =>
          r.properties.status !== 501 && r.properties.status !== 505
        );
        assert.deepEqual(
          bad.map((r) => r.message.join("")),
          [],
          "errors were logged",
        );
      }),
      { numRuns: 300 },
    );
    // Every connection ends: none is left hanging on the server side.
    await waitFor(() => server.stats.active === 0, "every connection closed");
  } finally {
    await reset();
  }
});

// (4) The fields the parser acts on, and names near them.

/** Names the parser acts on, and common ones a handler reads. */
const KNOWN_NAMES = [
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "expect",
  "accept",
  "accept-encoding",
  "cookie",
  "te",
  "upgrade",
  "user-agent",
];

/**
 * A field name near a known one: as is, in mixed case, or one byte away
 * (one changed, one more, one fewer), or any token.
 */
const nearName = fc.oneof(
  fc.constantFrom(...KNOWN_NAMES),
  fc.tuple(fc.constantFrom(...KNOWN_NAMES), fc.array(fc.boolean()))
    .map(([name, ups]) =>
      [...name].map((c, k) => ups[k] ? c.toUpperCase() : c).join("")
    ),
  fc.tuple(
    fc.constantFrom(...KNOWN_NAMES),
    fc.nat(),
    fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-"),
  ).map(([name, at, c]) => {
    const k = at % name.length;
    return name.slice(0, k) + c + name.slice(k + 1);
  }),
  fc.tuple(fc.constantFrom(...KNOWN_NAMES), fc.constantFrom("s", "-", "x"))
    .map(([name, c]) => name + c),
  fc.constantFrom(...KNOWN_NAMES).map((name) => name.slice(0, -1)),
  chars(TOKEN, 1, 12),
);

/** Values that steer the fields the parser acts on: valid and not. */
const STEERING = new Map<string, readonly string[]>([
  ["host", ["example.com", "a.test:8080", "[::1]:80", "", "bad host", "h\xe9"]],
  ["content-length", ["0", "12", "007", "12", "", "1x", "99999"]],
  ["transfer-encoding", ["chunked", "Chunked ", "gzip, chunked", "chunked, x"]],
  ["connection", ["close", "keep-alive", "Upgrade, close", "x"]],
  ["expect", ["100-continue", "100-Continue", "nope", "no pe"]],
]);

/** What any other name gets: the same values, so a name taken for one acted on shows. */
const anyValue = fc.oneof(
  fieldValue,
  fc.constantFrom(...[...STEERING.values()].flat()),
);

const namedField = nearName.chain((name) => {
  const steering = STEERING.get(name.toLowerCase());
  return fc.record({
    name: fc.constant(name),
    value: steering === undefined ? anyValue : fc.constantFrom(...steering),
    pad: fc.constantFrom("", " ", "\t"),
  });
});

type Outcome =
  | { status: number; message: string }
  | {
    headers: [string, string][];
    host: string;
    contentLength: number;
    chunked: boolean;
    keepAlive: boolean;
    expectContinue: boolean;
  };

function failure(err: unknown): Outcome {
  if (!(err instanceof HttpError)) throw err;
  return { status: err.status, message: err.message };
}

function hasOption(list: string, option: string): boolean {
  return list.toLowerCase().split(",").some((part) => trimOws(part) === option);
}

/**
 * What a parser that decodes every name and compares strings makes of a
 * head with these fields (names as sent, values trimmed): its checks in
 * its order, each keyed on the lower-case name.
 */
function expectedOutcome(minor: number, fields: [string, string][]): Outcome {
  const headers = fields.map((
    [n, v],
  ): [string, string] => [n.toLowerCase(), v]);
  let host: string | undefined;
  let hosts = 0;
  let contentLength = -1;
  const joined: Record<string, string> = {};
  let expect: string | undefined;
  try {
    for (const [name, value] of headers) {
      if (name === "host") [host, hosts] = [value, hosts + 1];
      else if (name === "content-length") {
        contentLength = mergeContentLength(contentLength, value, LIMITS);
      } else if (name === "transfer-encoding" || name === "connection") {
        joined[name] = name in joined ? `${joined[name]}, ${value}` : value;
      } else if (name === "expect") expect = value;
    }
    if (hosts > 1) throw badRequest("more than one Host header");
    if (hosts === 0 && minor === 1) {
      throw badRequest("missing Host header");
    }
    if (host !== undefined) checkHost(host);
    const te = joined["transfer-encoding"];
    if (te !== undefined) {
      if (contentLength !== -1) {
        throw badRequest("both Content-Length and Transfer-Encoding");
      }
      if (minor === 0) {
        throw badRequest("Transfer-Encoding in an HTTP/1.0 request");
      }
      const codings = te.toLowerCase().split(",").map(trimOws);
      codings.forEach((coding, k) => {
        if (coding === "chunked") {
          if (k < codings.length - 1) {
            throw badRequest("chunked is not the final transfer coding");
          }
        } else {
          throw new HttpError(
            501,
            `Transfer coding ${coding} is not implemented`,
          );
        }
      });
    }
    const options = joined.connection ?? "";
    const keepAlive = !hasOption(options, "close") &&
      (minor === 1 || hasOption(options, "keep-alive"));
    if (expect !== undefined && expect.toLowerCase() !== "100-continue") {
      throw new HttpError(417, `Unsupported expectation: ${expect}`);
    }
    return {
      headers,
      host: host ?? "",
      contentLength,
      chunked: te !== undefined,
      keepAlive,
      expectContinue: expect !== undefined && minor === 1,
    };
  } catch (err) {
    return failure(err);
  }
}

Deno.test("parseHead() acts on a field by its name in any case, never on a name one byte away", () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(namedField, { maxLength: 8 }),
      (http10, fields) => {
        const minor = http10 ? 0 : 1;
        let wire = `${http10 ? "POST" : "GET"} /x HTTP/1.${minor}\r\n`;
        for (const f of fields) {
          wire += `${f.name}:${f.pad}${f.value}${f.pad}\r\n`;
        }
        const buf = latin1Bytes(wire + "\r\n");
        let got: Outcome;
        let head: RequestHead | undefined;
        try {
          head = parseHead(buf, 0, buf.length, LIMITS);
          // The next request's bytes take the buffer: fields are read after.
          buf.fill(0x78);
          got = {
            headers: [...head.headers],
            host: head.host,
            contentLength: head.contentLength,
            chunked: head.chunked,
            keepAlive: head.keepAlive,
            expectContinue: head.expectContinue,
          };
        } catch (err) {
          got = failure(err);
        }
        const want = expectedOutcome(
          minor,
          fields.map((f) => [f.name, trimOws(f.value)]),
        );
        assert.deepEqual(got, want, wire);
        if (head === undefined || !("headers" in want)) return;
        // Each name, asked in the case sent, finds what the list holds.
        for (const f of fields) {
          const values: string[] = want.headers.filter(([n]) =>
            n === f.name.toLowerCase()
          ).map(([, v]) => v);
          assert.equal(head.headers.get(f.name), values[0], wire);
          assert.equal(head.headers.getJoined(f.name), values.join(", "), wire);
        }
      },
    ),
    { numRuns: 3000 },
  );
});
