/**
 * bench/load.ts is the fallback load generator: if it miscounts, the bench
 * reports nonsense. These tests hold its counting to what a tiny server
 * really wrote.
 */
import assert from "node:assert/strict";
import {
  ResponseScanner,
  runLoad,
  UncountableResponseError,
} from "../bench/load.ts";

const encoder = new TextEncoder();

function response(status: number, body: string, extra = ""): string {
  return `HTTP/1.1 ${status} X\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`;
}

/** Feeds `bytes` in pieces cut at `cuts` as a connection would, keeping unfinished heads. */
function scanInPieces(bytes: Uint8Array, cuts: number[]): ResponseScanner {
  const scanner = new ResponseScanner();
  const buf = new Uint8Array(bytes.length);
  let end = 0;
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    buf.set(bytes.subarray(from, cut), end);
    end += cut - from;
    from = cut;
    const used = scanner.scan(buf, 0, end);
    buf.copyWithin(0, used, end);
    end -= used;
  }
  return scanner;
}

const streams: [name: string, raw: string, responses: number, bad: number][] = [
  ["one small response", response(200, "hello"), 1, 0],
  ["empty body", response(200, ""), 1, 0],
  [
    "header names in any case",
    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nCONTENT-LENGTH:2\r\n\r\nxy",
    2,
    0,
  ],
  [
    "body holding CRLF CRLF",
    response(200, "\r\n\r\nHTTP/1.1 200 X\r\n\r\n") + response(200, "z"),
    2,
    0,
  ],
  [
    "304 and 204 with no body",
    "HTTP/1.1 304 N\r\nContent-Length: 99\r\n\r\nHTTP/1.1 204 N\r\n\r\n",
    2,
    0,
  ],
  [
    "error statuses counted apart",
    response(404, "nope") + response(500, "") + response(301, ""),
    3,
    2,
  ],
  [
    "several headers",
    response(
      200,
      "ok",
      "Date: x\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n",
    ).repeat(3),
    3,
    0,
  ],
];

for (const [name, raw, responses, bad] of streams) {
  Deno.test(`ResponseScanner.scan() counts ${responses} for ${name}, cut anywhere`, () => {
    const bytes = encoder.encode(raw);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const scanner = scanInPieces(bytes, [cut]);
      assert.equal(scanner.responses, responses, `cut at ${cut}`);
      assert.equal(scanner.errorStatuses, bad, `cut at ${cut}`);
    }
    const byteByByte = scanInPieces(
      bytes,
      Array.from({ length: bytes.length }, (_, i) => i),
    );
    assert.equal(byteByByte.responses, responses, "one byte at a time");
  });
}

Deno.test("ResponseScanner.scan() does not count a response still missing body bytes", () => {
  const bytes = encoder.encode(response(200, "hello"));
  const scanner = scanInPieces(bytes.subarray(0, bytes.length - 1), []);
  assert.equal(scanner.responses, 0);
});

Deno.test("ResponseScanner.scan() notes Connection: close once that response is complete", () => {
  const bytes = encoder.encode(response(200, "bye", "Connection: Close\r\n"));
  assert.equal(
    scanInPieces(bytes.subarray(0, bytes.length - 1), []).closeSeen,
    false,
  );
  assert.equal(scanInPieces(bytes, []).closeSeen, true);
});

const uncountable: [name: string, raw: string][] = [
  [
    "chunked body",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  ],
  [
    "no Content-Length",
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
  ],
];
for (const [name, raw] of uncountable) {
  Deno.test(`ResponseScanner.scan() throws rather than guess, for ${name}`, () => {
    assert.throws(
      () => scanInPieces(encoder.encode(raw), []),
      UncountableResponseError,
    );
  });
}

/** A raw TCP server answering each request; it counts what it wrote. */
interface TinyServer extends AsyncDisposable {
  readonly port: number;
  readonly responses: number;
  readonly bytes: number;
}

/**
 * Answers every request (a GET, so ended by CRLF CRLF) with `reply(n)`,
 * written in two pieces to split heads across reads. After `closeAfter`
 * responses on one connection it closes that connection.
 */
function startTinyServer(
  reply: (n: number, last: boolean) => string,
  closeAfter = Infinity,
): TinyServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const handlers: Promise<void>[] = [];
  let responses = 0;
  let bytes = 0;

  async function handle(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    let served = 0;
    try {
      for (let n; (n = await conn.read(buf)) !== null;) {
        pending += new TextDecoder().decode(buf.subarray(0, n));
        const parts = pending.split("\r\n\r\n");
        pending = parts.pop()!;
        for (let i = 0; i < parts.length; i++) {
          served++;
          const last = served >= closeAfter;
          const out = encoder.encode(reply(responses, last));
          const half = Math.floor(out.length / 2);
          await conn.write(out.subarray(0, half));
          await conn.write(out.subarray(half));
          responses++;
          bytes += out.length;
          if (last) return;
        }
      }
    } catch {
      // the client closed at its deadline
    } finally {
      if (conns.delete(conn)) conn.close();
    }
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conn.setNoDelay(true); // the two pieces must not wait on delayed ACKs
        conns.add(conn);
        handlers.push(handle(conn));
      }
    } catch {
      // listener closed
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get responses() {
      return responses;
    },
    get bytes() {
      return bytes;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        conns.delete(conn);
        conn.close();
      }
      await Promise.all(handlers);
    },
  };
}

const loads: [connections: number, pipeline: number][] = [[1, 1], [3, 1], [
  2,
  4,
]];
for (const [connections, pipeline] of loads) {
  Deno.test(`runLoad() counts what the server wrote, ${connections} conns x ${pipeline} pipelined`, async () => {
    await using server = startTinyServer((n) =>
      response(200, "x".repeat(n % 50))
    );
    const result = await runLoad({
      hostname: "127.0.0.1",
      port: server.port,
      path: "/",
      connections,
      durationMs: 300,
      pipeline,
    });
    assert.ok(result.requests > 50, `only ${result.requests} responses`);
    // Responses in flight at the deadline were written but not counted.
    assert.ok(
      result.requests <= server.responses,
      `${result.requests} > ${server.responses}`,
    );
    assert.ok(
      result.requests >= server.responses - connections * pipeline,
      `${result.requests} counted, ${server.responses} written`,
    );
    assert.ok(result.bytes <= server.bytes);
    assert.equal(result.errorStatuses, 0);
    assert.equal(result.socketErrors, 0);
    assert.equal(result.connects, connections);
    assert.ok(
      Math.abs(
        result.requestsPerSec - result.requests / (result.durationMs / 1000),
      ) < 1e-6,
    );
  });
}

Deno.test("runLoad() counts error statuses apart, when the server answers 503", async () => {
  await using server = startTinyServer(() => response(503, "busy"));
  const result = await runLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/",
    connections: 2,
    durationMs: 200,
    pipeline: 1,
  });
  assert.ok(result.requests > 0);
  assert.equal(result.errorStatuses, result.requests);
});

Deno.test("runLoad() reconnects without an error, when the server closes after Connection: close", async () => {
  await using server = startTinyServer(
    (_, last) => response(200, "ok", last ? "Connection: close\r\n" : ""),
    3,
  );
  const result = await runLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/",
    connections: 2,
    durationMs: 300,
    pipeline: 1,
  });
  assert.equal(result.socketErrors, 0, result.firstError);
  assert.ok(result.connects > 2 * 5, `only ${result.connects} connects`);
  assert.ok(result.requests >= (result.connects - 2) * 3);
});

Deno.test("runLoad() reports a socket error, when the server closes mid-response", async () => {
  await using server = startTinyServer(
    () => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    1,
  );
  const result = await runLoad({
    hostname: "127.0.0.1",
    port: server.port,
    path: "/",
    connections: 1,
    durationMs: 200,
    pipeline: 1,
  });
  assert.equal(result.requests, 0);
  assert.ok(result.socketErrors > 0);
  assert.match(result.firstError ?? "", /closed/);
});
