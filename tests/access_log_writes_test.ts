/**
 * The access line of a reply says what the write that carried it did: the
 * bytes the socket took, and `aborted` when not all. Replies to pipelined
 * requests are gathered into one write; their lines wait for it. Over real
 * sockets, with a client that resets the connection before the write.
 */
import assert from "node:assert/strict";
import { NO_REPLY_STATUS } from "../lib/http/access_log.ts";
import { FileBody, type Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { type AccessFields, captureLogs } from "./fixtures/engine_log.ts";
import {
  connect,
  get,
  parseReplies,
  readUntilClose,
  send,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

/** A body small enough to be gathered with the replies around it. */
const SMALL = "a".repeat(16 * 1024);
const BIG = 256 * 1024;

/**
 * `/hold` waits for `open()` (`held` resolves once it does), then answers
 * SMALL; `/small` answers SMALL; `/stream` and `/file` answer BIG bytes;
 * `/slow` keeps the thread for `SLOW_MS` before it answers, `/late`
 * answers after a timer of `SLOW_MS`.
 */
function handler(file: string) {
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  let started!: () => void;
  const held = new Promise<void>((r) => started = r);
  // Synchronous but for /hold and /file: a reply at once, as most are.
  const handle: Handler = (req) => {
    switch (req.path) {
      case "/hold":
        started();
        return opened.then(() => ({ status: 200, body: SMALL }));
      case "/stream":
        return {
          status: 200,
          body: (async function* () {
            for (let i = 0; i < 4; i++) yield new Uint8Array(BIG / 4);
          })(),
        };
      case "/file":
        return Deno.open(file).then((f) => ({
          status: 200,
          body: new FileBody(f, 0, BIG),
        }));
      case "/slow": {
        const until = Date.now() + SLOW_MS;
        while (Date.now() < until) { /* a synchronous handler's work */ }
        return { status: 200, body: "slow" };
      }
      case "/late":
        return new Promise((resolve) =>
          setTimeout(() => resolve({ status: 200, body: "late" }), SLOW_MS)
        );
      default:
        return { status: 200, body: SMALL };
    }
  };
  return { handle, open, held };
}

const SLOW_MS = 150;

async function bigFile(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "spindle_log_writes_" });
  await Deno.writeFile(path, new Uint8Array(BIG));
  return path;
}

/**
 * Sends `/first` and leaves its reply unread, then `/hold` and `paths`
 * pipelined; once `/hold` runs, closes: with bytes unread the kernel
 * resets the connection, so every write of the replies fails. Returns the
 * lines after `/first`'s once the connection is done.
 */
async function resetBeforeReplies(
  paths: readonly string[],
): Promise<AccessFields[]> {
  await using logs = await captureLogs();
  const file = await bigFile();
  try {
    const { handle, open, held } = handler(file);
    await using server = serve({ port: 0 }, handle);
    const conn = await connect(server.port);
    await send(conn, get("/first"));
    // Logged once written: the reply is in the client's receive queue, unread.
    await waitFor(() => logs.access().length === 1, "the first line");
    await send(conn, ["/hold", ...paths].map((p) => get(p)).join(""));
    await withTimeout(held, 10_000, "/hold to run");
    conn.close(); // a reset: the first reply was never read
    open();
    // The line of the reply being written when the write failed ends it.
    await waitFor(
      () => logs.access().some((l) => l.aborted),
      "an aborted line",
    );
    await server.shutdown();
    const [first, ...rest] = logs.access();
    assert.equal(first.target, "/first");
    assert.equal(first.aborted, false);
    return rest;
  } finally {
    await Deno.remove(file);
  }
}

/** Each line: its target, status 200, nothing sent, aborted. */
function assertAllCut(lines: AccessFields[], targets: readonly string[]) {
  assert.deepEqual(
    lines.map((l) => [l.target, l.status, l.bytes, l.aborted]),
    targets.map((t) => [t, 200, 0, true]),
    JSON.stringify(lines),
  );
}

Deno.test("a reset before a single reply: its line says 200, 0 bytes, aborted", async () => {
  assertAllCut(await resetBeforeReplies([]), ["/hold"]);
});

Deno.test("a reset before a gathered write of pipelined replies: every line in it says 0 bytes, aborted", async () => {
  // /hold and 3 /small make 64 KiB: gathered into one write, which fails.
  // The later requests are never read (no line).
  const lines = await resetBeforeReplies(Array(16).fill("/small"));
  assertAllCut(lines, ["/hold", "/small", "/small", "/small"]);
});

for (const big of ["/stream", "/file"]) {
  Deno.test(`a reset before a ${big.slice(1)} body behind a gathered reply: both lines say 0 bytes, aborted`, async () => {
    // The gathered reply goes out with the big body's head, in the write that fails.
    assertAllCut(await resetBeforeReplies([big]), ["/hold", big]);
  });
}

Deno.test("a shutdown that closes a connection with a gathered reply unsent: its line says 0 bytes, aborted", async () => {
  await using logs = await captureLogs();
  const { handle, open, held } = handler("/nonexistent");
  const server = serve({ port: 0, limits: { shutdownTimeoutMs: 10 } }, handle);
  using conn = await connect(server.port);
  // /small's reply waits in the output buffer for /hold's, gathered.
  await send(conn, get("/small") + get("/hold"));
  await withTimeout(held, 10_000, "/hold to run");
  await server.shutdown(); // the shutdown timeout closes the busy connection
  open();
  await waitFor(() => logs.access().length === 2, "two lines");
  assert.deepEqual(
    logs.access().map((l) => [l.target, l.status, l.bytes, l.aborted]),
    [["/small", 200, 0, true], ["/hold", NO_REPLY_STATUS, 0, true]],
  );
});

Deno.test("Deno.exit() with a gathered reply unsent: its line is written, 0 bytes, aborted", async () => {
  const url = (path: string) => new URL(path, import.meta.url).href;
  // /small's reply waits for /hold's, gathered; /hold exits the process.
  const script = `
    import { AccessLog, setAccessLog } from "${
    url("../lib/http/access_log.ts")
  }";
    import { serve } from "${url("../lib/http/server.ts")}";
    setAccessLog(new AccessLog({ format: "text", flushMs: 60_000 }));
    const server = serve({ port: 0 }, (req) => {
      if (req.path === "/hold") Deno.exit(0);
      return { status: 200, body: "a".repeat(16384) };
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const get = (p) => \`GET \${p} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n\`;
    await conn.write(new TextEncoder().encode(get("/small") + get("/hold")));
    await new Promise(() => {});
  `;
  const out = await withTimeout(
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      stdout: "piped",
      stderr: "piped",
    }).output(),
    30_000,
    "the script to exit",
  );
  const decoder = new TextDecoder();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  assert.match(
    decoder.decode(out.stdout),
    /^\S+ \S+ \+00 \[INF\] spindle\.access: 127\.0\.0\.1 "GET \/small HTTP\/1\.1" 200 0 \d+ms aborted\n$/,
  );
});

Deno.test("pipelined replies written whole: each line its own bytes, not aborted; a slow synchronous handler shows in the durations", async () => {
  await using logs = await captureLogs();
  const { handle } = handler("/nonexistent");
  await using server = serve({ port: 0 }, handle);
  using conn = await connect(server.port);
  const paths = ["/slow", ...Array(14).fill("/small"), "/stream"];
  await send(
    conn,
    paths.map((p) => get(p)).join("") + get("/last", "Connection: close\r\n"),
  );
  const bytes = await readUntilClose(conn);
  const replies = await parseReplies(bytes);
  assert.equal(replies.length, paths.length + 1);
  await waitFor(() => logs.access().length === replies.length, "the lines");
  const lines = logs.access();
  assert.deepEqual(lines.map((l) => l.target), [...paths, "/last"]);
  assert.ok(lines.every((l) => l.status === 200 && !l.aborted));
  // Every byte the client got is in exactly one line.
  assert.equal(lines.reduce((sum, l) => sum + l.bytes, 0), bytes.length);
  assert.ok(
    lines[1].bytes > SMALL.length && lines[1].bytes < SMALL.length + 512,
  );
  // The requests came in one read: each waited for /slow's handler.
  for (const l of lines.slice(0, 2)) {
    assert.ok(l.ms >= SLOW_MS, `${l.target} logged ${l.ms} ms`);
  }
});

Deno.test("one request at a time: a slow synchronous handler and a reply that waited on a timer show in their lines' durations, and a quick one's does not", async () => {
  await using logs = await captureLogs();
  const { handle } = handler("/nonexistent");
  await using server = serve({ port: 0 }, handle);
  using conn = await connect(server.port);
  using other = await connect(server.port);
  const paths = ["/slow", "/late", "/small"];
  for (const path of paths) {
    await send(conn, get(path));
    // Another connection's request in the same turns, as under load.
    await send(other, get("/other"));
    await waitFor(
      () => logs.access().filter((l) => l.target === path).length === 1,
      `the line of ${path}`,
    );
  }
  const ms = (target: string) =>
    logs.access().find((l) => l.target === target)!.ms;
  assert.ok(ms("/slow") >= SLOW_MS, `/slow logged ${ms("/slow")} ms`);
  assert.ok(ms("/late") >= SLOW_MS - 1, `/late logged ${ms("/late")} ms`);
  assert.ok(ms("/small") < SLOW_MS, `/small logged ${ms("/small")} ms`);
});

Deno.test("a reset in the middle of gathered writes: whole replies logged whole, the one cut with the bytes the socket took, the rest 0", async () => {
  await using logs = await captureLogs();
  const { handle } = handler("/nonexistent");
  await using server = serve({ port: 0 }, handle);
  const conn = await connect(server.port);
  // ~32 MiB of replies: more than the socket buffers hold, so the server
  // waits on the client mid-write.
  const count = 2000;
  const sending = send(conn, get("/small").repeat(count));
  const buf = new Uint8Array(64 * 1024);
  let got = 0;
  while (got < 1024 * 1024) {
    const n = await conn.read(buf);
    assert.ok(n !== null, "the server closed early");
    got += n;
  }
  await sending;
  conn.close(); // bytes unread: a reset
  await waitFor(
    () => logs.access().some((l) => l.aborted),
    "an aborted line",
  );
  await server.shutdown();
  const lines = logs.access();
  const whole = lines[0].bytes;
  assert.ok(whole > SMALL.length);
  const cut = lines.findIndex((l) => l.aborted);
  assert.ok(cut > 0 && cut < count, `the first aborted line is ${cut}`);
  for (const [i, l] of lines.entries()) {
    assert.equal(l.status, 200);
    if (i < cut) assert.equal(l.bytes, whole, `line ${i}`);
    else {
      assert.ok(l.aborted, `line ${i} after an aborted one`);
      if (i > cut) assert.equal(l.bytes, 0, `line ${i}`);
      else assert.ok(l.bytes < whole, `line ${i}`);
    }
  }
  // The client read what the socket took, and no more.
  const logged = lines.reduce((sum, l) => sum + l.bytes, 0);
  assert.ok(logged >= got, `logged ${logged}, the client read ${got}`);
});
