/**
 * The access log: each format as a parser of that format reads it, hostile
 * text escaped and bounded, batched writes that lose no line at exit, the
 * bytes a client really received, and which rejections are warnings.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import {
  AccessLog,
  type AccessLogOptions,
  NO_REPLY_STATUS,
} from "../lib/http/access_log.ts";
import { parseHead, type RequestHead } from "../lib/http/parser.ts";
import { serve } from "../lib/http/server.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import { startApp } from "./fixtures/app_server.ts";
import {
  connect,
  decoder,
  exchange,
  get,
  ReplyReader,
  send,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";
import { countTimers } from "./helpers/timers.ts";
import { runWithNatives } from "./helpers/natives.ts";

/** An AccessLog writing into memory; `text()` flushes and returns all of it. */
function memoryLog(opts: Omit<AccessLogOptions, "output">) {
  const writes: Uint8Array[] = [];
  const log = new AccessLog({
    ...opts,
    output: {
      writeSync(bytes) {
        writes.push(bytes.slice());
        return bytes.length;
      },
    },
  });
  return {
    log,
    writes,
    text(): string {
      log.flush();
      return writes.map((w) => decoder.decode(w)).join("");
    },
    [Symbol.dispose]: () => log.close(),
  };
}

/** Parses `raw`, one byte per character (Latin-1), as bytes off the wire. */
function head(raw: string): RequestHead {
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  return parseHead(bytes, 0, bytes.length, DEFAULT_LIMITS);
}

/** Appends a plain `GET target` line: 200, 1 byte. */
function appendGet(log: AccessLog, target = "/"): void {
  log.append(
    "1.2.3.4",
    head(get(target)),
    200,
    1,
    Date.now(),
    false,
    undefined,
  );
}

const GET_A = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\n" +
  "User-Agent: curl/8.0\r\nReferer: http://r.test/p\r\n\r\n";

// The Common Log Format as Apache documents it; Combined adds referer and agent.
// A quoted field holds no bare `"`: escapes are `\xHH`.
const QUOTED = String.raw`"((?:[^"\\]|\\x[0-9a-f]{2}|\\u[0-9a-f]{4})*)"`;
const CLF = new RegExp(
  String
    .raw`^(\S+) (\S+) (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] ` +
    QUOTED + String.raw` (\d{3}) (\d+|-)$`,
);
const COMBINED = new RegExp(
  CLF.source.slice(0, -1) + " " + QUOTED + " " + QUOTED + "$",
);
const TEXT =
  /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) \+00 \[INF\] spindle\.access: (\S+) "(.*)" (\d{3}) (\d+) (\d+)ms( aborted)?( \(.*\))?$/;

Deno.test("AccessLog text line: LogTape's timestamp and level, request with its HTTP version", () => {
  using m = memoryLog({ format: "text" });
  const t0 = Date.now();
  m.log.append("127.0.0.1", head(GET_A), 200, 3303, t0, false, undefined);
  const lines = m.text().split("\n");
  assert.equal(lines.length, 2);
  assert.equal(lines[1], "");
  const f = TEXT.exec(lines[0]);
  assert.ok(f, lines[0]);
  assert.deepEqual(f.slice(2, 6), [
    "127.0.0.1",
    "GET /a?b=1 HTTP/1.1",
    "200",
    "3303",
  ]);
  assert.ok(Math.abs(Date.parse(f[1].replace(" ", "T") + "Z") - t0) < 60_000);
});

Deno.test("AccessLog writes the milliseconds of the second and integers past 2^31 exactly", () => {
  using m = memoryLog({ format: "text" });
  const realNow = Date.now;
  // 2023-11-14 22:13:20.007 UTC: the milliseconds need their leading zeros.
  const now = 1_700_000_000_007;
  Date.now = () => now;
  try {
    for (
      const bytes of [
        0,
        9,
        10,
        99,
        100,
        109,
        999,
        1000,
        2 ** 31 - 1,
        2 ** 31,
        123_456_789_012_345,
      ]
    ) {
      m.log.append(
        "1.2.3.4",
        head(GET_A),
        200,
        bytes,
        now - bytes,
        false,
        undefined,
      );
    }
    // A clock read that is not past the start logs 0 ms.
    m.log.append("1.2.3.4", head(GET_A), 206, 1, now + 5, false, undefined);
  } finally {
    Date.now = realNow;
  }
  const rows = m.text().trimEnd().split("\n").map((line) => {
    const f = TEXT.exec(line);
    assert.ok(f, line);
    return [f[1], f[4], f[5], f[6]];
  });
  const stamp = "2023-11-14 22:13:20.007";
  assert.deepEqual(rows, [
    [stamp, "200", "0", "0"],
    [stamp, "200", "9", "9"],
    [stamp, "200", "10", "10"],
    [stamp, "200", "99", "99"],
    [stamp, "200", "100", "100"],
    [stamp, "200", "109", "109"],
    [stamp, "200", "999", "999"],
    [stamp, "200", "1000", "1000"],
    [stamp, "200", "2147483647", "2147483647"],
    [stamp, "200", "2147483648", "2147483648"],
    [stamp, "200", "123456789012345", "123456789012345"],
    [stamp, "206", "1", "0"],
  ]);
});

Deno.test("AccessLog json and text lines: each line's own milliseconds, across a change of second", () => {
  const realNow = Date.now;
  // The stamp of one second is made once: each line writes its milliseconds over it.
  const times = [1_700_000_000_007, 1_700_000_000_990, 1_700_000_001_050];
  for (const format of ["json", "text"] as const) {
    using m = memoryLog({ format });
    try {
      for (const now of times) {
        Date.now = () => now;
        m.log.append("1.2.3.4", head(GET_A), 200, 1, now, false, undefined);
      }
    } finally {
      Date.now = realNow;
    }
    const stamps = m.text().trimEnd().split("\n").map((line) =>
      format === "json"
        ? JSON.parse(line)["@timestamp"]
        : `${TEXT.exec(line)![1].replace(" ", "T")}Z`
    );
    assert.deepEqual(stamps, [
      "2023-11-14T22:13:20.007Z",
      "2023-11-14T22:13:20.990Z",
      "2023-11-14T22:13:21.050Z",
    ]);
  }
});

Deno.test("AccessLog json line: a JSON parser reads every field as a field", () => {
  using m = memoryLog({ format: "json" });
  const t0 = Date.now();
  m.log.append("::1", head(GET_A), 404, 187, t0, true, "No file for /a");
  const line = JSON.parse(m.text());
  assert.equal(line.level, "INFO");
  assert.equal(line.logger, "spindle.access");
  assert.equal(line.message, "GET /a?b=1 404");
  assert.ok(Math.abs(Date.parse(line["@timestamp"]) - t0) < 60_000);
  const { ms, ...rest } = line.properties;
  assert.ok(Number.isInteger(ms) && ms >= 0);
  assert.deepEqual(rest, {
    client: "::1",
    user: null,
    method: "GET",
    target: "/a?b=1",
    version: "HTTP/1.1",
    status: 404,
    bytes: 187,
    aborted: true,
    userAgent: "curl/8.0",
    referer: "http://r.test/p",
    error: "No file for /a",
  });
});

Deno.test("AccessLog common and combined lines match the standard's regex", () => {
  for (
    const [format, re] of [["common", CLF], ["combined", COMBINED]] as const
  ) {
    using m = memoryLog({ format });
    m.log.append("10.0.0.1", head(GET_A), 200, 0, Date.now(), false, "x");
    const line = m.text().slice(0, -1);
    const f = re.exec(line);
    assert.ok(f, `${format}: ${line}`);
    assert.deepEqual(f.slice(1, 4), ["10.0.0.1", "-", "-"]);
    assert.equal(f[5], "GET /a?b=1 HTTP/1.1");
    assert.equal(f[6], "200");
    assert.equal(f[7], "0");
    // The time is now, in UTC.
    const [, d, mon, y, hms] = /^(\d+)\/(\w+)\/(\d+):(\S+) \+0000$/.exec(f[4])!;
    const when = Date.parse(`${d} ${mon} ${y} ${hms} GMT`);
    assert.ok(Math.abs(when - Date.now()) < 60_000, f[4]);
    if (format === "combined") {
      assert.equal(f[8], "http://r.test/p");
      assert.equal(f[9], "curl/8.0");
    }
  }
});

Deno.test("AccessLog shows an HTTP/2 stream's request as HTTP/2.0 in every format", () => {
  const h2 = { ...head(GET_A), major: 2, minor: 0 };
  for (const format of ["text", "common", "combined"] as const) {
    using m = memoryLog({ format });
    m.log.append("10.0.0.1", h2, 200, 5, Date.now(), false, undefined);
    assert.match(m.text(), /"GET \/a\?b=1 HTTP\/2\.0"/, format);
  }
  using m = memoryLog({ format: "json" });
  m.log.append("10.0.0.1", h2, 200, 5, Date.now(), false, undefined);
  assert.equal(JSON.parse(m.text()).properties.version, "HTTP/2.0");
});

Deno.test("AccessLog combined line writes - for a missing referer and agent", () => {
  using m = memoryLog({ format: "combined" });
  m.log.append("1.2.3.4", head(get()), 304, 120, Date.now(), false, undefined);
  assert.match(m.text(), / 304 120 "-" "-"\n$/);
});

/** Text a client chose: quotes, backslashes, control bytes, obs-text, a line break. */
const HOSTILE_LINE = 'GET /"x\\y\x01\x1b[31m\u00e9 HTTP/1.1';
const HOSTILE_HEAD = 'GET /q"\\ HTTP/1.1\r\nHost: x\r\n' +
  'User-Agent: a"b\\c\td\xff" 200 1 "-" "fake\r\nReferer: \x80x\r\n\r\n';

for (const format of ["text", "json", "common", "combined"] as const) {
  Deno.test(`AccessLog ${format}: client text is escaped, one line per request, and parses back`, () => {
    using m = memoryLog({ format });
    const h = head(HOSTILE_HEAD);
    m.log.append("1.2.3.4", h, 200, 5, Date.now(), false, 'bad "thing"\n');
    m.log.append("1.2.3.4", HOSTILE_LINE, 400, 9, Date.now(), false, "no");
    const lines = m.text().split("\n");
    assert.equal(lines.length, 3, "two lines, nothing split them");
    for (const line of lines.slice(0, 2)) {
      // Printable ASCII only: no terminal escape, no byte a reader could mistake.
      assert.match(line, /^[\x20-\x7e]*$/, line);
      if (format === "json") continue;
      assert.ok(
        (format === "text" ? TEXT : format === "common" ? CLF : COMBINED).test(
          line,
        ),
        line,
      );
    }
    if (format === "json") {
      const [a, b] = lines.slice(0, 2).map((l) => JSON.parse(l).properties);
      assert.equal(a.target, '/q"\\');
      assert.equal(a.userAgent, 'a"b\\c\td\u00ff" 200 1 "-" "fake');
      assert.equal(a.referer, "\u0080x");
      assert.equal(a.error, 'bad "thing"\n');
      assert.equal(b.method, null);
      assert.equal(b.request, HOSTILE_LINE);
    } else {
      assert.ok(lines[0].includes('/q\\x22\\x5c HTTP/1.1"'), lines[0]);
      assert.ok(
        lines[1].includes('"GET /\\x22x\\x5cy\\x01\\x1b[31m\\xe9 HTTP/1.1"'),
        lines[1],
      );
      if (format === "combined") {
        assert.ok(
          lines[0].endsWith(
            '"\\x80x" "a\\x22b\\x5cc\\x09d\\xff\\x22 200 1 \\x22-\\x22 \\x22fake"',
          ),
          lines[0],
        );
      }
    }
  });
}

Deno.test("AccessLog cuts a 501's long method and any long field, with ...", () => {
  using m = memoryLog({ format: "json" });
  const method = "X".repeat(5000);
  m.log.append(
    "1.2.3.4",
    `${method} / HTTP/1.1`.slice(0, 2049),
    501,
    1,
    Date.now(),
    false,
    `Method ${method} is not implemented`,
  );
  appendGet(m.log, `/${"t".repeat(6000)}`);
  const [a, b] = m.text().trim().split("\n").map((l) =>
    JSON.parse(l).properties
  );
  assert.equal(a.request, "X".repeat(2048) + "...");
  assert.equal(a.error, `Method ${"X".repeat(249)}...`);
  assert.equal(b.target, `/${"t".repeat(2047)}...`);
});

Deno.test("AccessLog writes nothing until its buffer fills, then whole lines of at most 4096 bytes a write", () => {
  using m = memoryLog({
    format: "common",
    flushMs: 60_000,
    bufferBytes: 16 * 1024,
  });
  const h = head(GET_A);
  let lines = 0;
  while (m.writes.length === 0) {
    m.log.append("1.2.3.4", h, 200, lines++, Date.now(), false, undefined);
    assert.ok(lines < 1000, "the buffer never flushed");
  }
  assert.ok(
    lines > 100,
    `flushed after ${lines} lines, not one write per line`,
  );
  for (const w of m.writes) {
    assert.ok(w.length <= 4096, `a write of ${w.length} bytes`);
    assert.equal(w[w.length - 1], 0x0a, "a write ends with a whole line");
  }
  const text = m.text();
  assert.equal(text.split("\n").length - 1, lines, "no line lost or split");
  for (const line of text.trimEnd().split("\n")) assert.match(line, CLF);
});

Deno.test("AccessLog with writeBytes: Infinity writes a whole batch in one write", () => {
  using m = memoryLog({
    format: "common",
    flushMs: 60_000,
    bufferBytes: 16 * 1024,
    writeBytes: Infinity,
  });
  const h = head(GET_A);
  let lines = 0;
  while (m.writes.length === 0) {
    m.log.append("1.2.3.4", h, 200, lines++, Date.now(), false, undefined);
    assert.ok(lines < 1000, "the buffer never flushed");
  }
  assert.equal(m.writes.length, 1, "one write for the batch");
  assert.ok(m.writes[0].length >= 16 * 1024, `${m.writes[0].length} bytes`);
  const text = m.text();
  assert.equal(text.split("\n").length - 1, lines, "no line lost or split");
});

Deno.test("AccessLog on stdout: a batch a write to a regular file, PIPE_BUF pieces to a pipe", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spindle_access_" });
  try {
    const script = `
      import { AccessLog } from "${ACCESS_LOG_URL}";
      console.error(new AccessLog({ format: "text" }).writeBytes);
    `;
    const run = async (redirect: string) => {
      const out = await withTimeout(
        new Deno.Command("sh", {
          args: [
            "-c",
            `exec "$0" eval --ext=ts "$1" ${redirect}`,
            Deno.execPath(),
            script,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output(),
        30_000,
        "the script to exit",
      );
      assert.equal(out.code, 0, decoder.decode(out.stderr));
      return decoder.decode(out.stderr).trim();
    };
    assert.equal(await run(`> "${dir}/out.log"`), "Infinity");
    assert.equal(await run(""), "4096"); // stdout piped to us
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AccessLog writes a line longer than 4096 bytes whole", () => {
  using m = memoryLog({ format: "common", flushMs: 60_000 });
  appendGet(m.log, "/s");
  appendGet(m.log, `/${"a".repeat(6000)}`);
  appendGet(m.log, "/e");
  const text = m.text();
  for (const w of m.writes) assert.equal(w[w.length - 1], 0x0a);
  assert.equal(text.split("\n").length, 4);
});

Deno.test("AccessLog flushes on its own within flushMs", async () => {
  using m = memoryLog({ format: "common", flushMs: 10 });
  appendGet(m.log);
  assert.equal(m.writes.length, 0, "buffered, not written per line");
  await waitFor(() => m.writes.length === 1, "the timed flush");
});

Deno.test("AccessLog keeps one clock while lines keep coming, and stops it once they stop", async () => {
  using timers = countTimers();
  let writes = 0;
  const log = new AccessLog({
    format: "common",
    flushMs: 5,
    output: {
      writeSync(bytes) {
        // The next batch's line comes at once (before any timer can run),
        // so every tick finds one, however late the ticks come.
        if (++writes < 5) queueMicrotask(() => appendGet(log));
        return bytes.length;
      },
    },
  });
  using _closed = { [Symbol.dispose]: () => log.close() };
  appendGet(log);
  await waitFor(() => writes === 5, "five batches");
  // A timeout armed per batch would have been five (and no interval).
  assert.equal(timers.count.intervals, 1);
  await waitFor(() => timers.count.cleared === 1, "the idle clock to stop");
  assert.equal(writes, 5, "one write per batch");
  assert.equal(timers.count.intervals, 1);
});

Deno.test("AccessLog close() writes what is buffered and drops later lines; a failing output never throws", () => {
  using m = memoryLog({ format: "common", flushMs: 60_000 });
  appendGet(m.log);
  m.log.close();
  assert.equal(m.writes.length, 1);
  appendGet(m.log);
  m.log.flush();
  assert.equal(m.writes.length, 1);

  const broken = new AccessLog({
    format: "text",
    output: {
      writeSync() {
        throw new Deno.errors.BrokenPipe("stdout closed");
      },
    },
  });
  appendGet(broken);
  broken.close();
});

const ACCESS_LOG_URL =
  new URL("../lib/http/access_log.ts", import.meta.url).href;
const PARSER_URL = new URL("../lib/http/parser.ts", import.meta.url).href;
const CONFIG_URL = new URL("../lib/config.ts", import.meta.url).href;

/** Runs `code` after lines that log one access line with a flush timer of a minute. */
async function runScript(
  code: string,
): Promise<{ stdout: string; ms: number }> {
  const script = `
    import { AccessLog, setAccessLog, accessLog } from "${ACCESS_LOG_URL}";
    import { parseHead } from "${PARSER_URL}";
    import { DEFAULT_LIMITS } from "${CONFIG_URL}";
    const raw = new TextEncoder().encode("GET /exit HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n");
    setAccessLog(new AccessLog({ format: "common", flushMs: 60_000 }));
    accessLog().append("1.2.3.4", parseHead(raw, 0, raw.length, DEFAULT_LIMITS), 200, 1, Date.now(), false, undefined);
    ${code}
  `;
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = await withTimeout(child.output(), 30_000, "the script to exit");
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  return { stdout: decoder.decode(out.stdout), ms: performance.now() - t0 };
}

Deno.test("AccessLog loses no line at Deno.exit() nor at a natural end, and its timer keeps no process alive", async () => {
  for (const code of ["Deno.exit(0);", ""]) {
    const { stdout, ms } = await runScript(code);
    assert.match(
      stdout,
      /^1\.2\.3\.4 - - \[.*\] "GET \/exit HTTP\/1\.1" 200 1\n$/,
      code,
    );
    // The flush timer is a minute long: only an unref'd timer lets the process end first.
    assert.ok(ms < 30_000, `exited after ${ms} ms`);
  }
});

// Over real sockets.

/** A body of `size` bytes in 64 KiB pieces, made lazily. */
async function* bigBody(size: number): AsyncGenerator<Uint8Array> {
  const piece = new Uint8Array(64 * 1024).fill(0x61);
  for (let sent = 0; sent < size; sent += piece.length) yield piece;
}

const BIG = 32 * 1024 * 1024;
const bigBodies = [
  ["a stream", () => bigBody(BIG)],
  ["one Uint8Array", () => new Uint8Array(BIG)],
] as const;

for (const [name, body] of bigBodies) {
  Deno.test(`serve() logs an aborted download of ${name} with the bytes written, marked aborted`, async () => {
    await using logs = await captureLogs();
    await using server = serve({ port: 0 }, () => ({
      status: 200,
      headers: { "content-length": String(BIG) },
      body: body(),
    }));
    const conn = await connect(server.port);
    await send(conn, get("/big"));
    // Read 512 KiB, then leave with bytes unread: the kernel answers with a reset.
    const buf = new Uint8Array(64 * 1024);
    let got = 0;
    while (got < 512 * 1024) {
      const n = await conn.read(buf);
      assert.ok(n !== null, "the server closed early");
      got += n;
    }
    conn.close();
    await waitFor(() => logs.access().length === 1, "the access line");
    const [line] = logs.access();
    assert.equal(line.status, 200);
    assert.equal(line.aborted, true);
    assert.ok(
      line.bytes >= got,
      `logged ${line.bytes}, the client read ${got}`,
    );
    assert.ok(line.bytes < BIG, `logged ${line.bytes}: the full size`);
  });
}

Deno.test("serve() logs a request whose connection closed before any reply as 499, aborted, 0 bytes", async () => {
  await using logs = await captureLogs();
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let started!: () => void;
  const running = new Promise<void>((r) => started = r);
  const server = serve(
    { port: 0, limits: { shutdownTimeoutMs: 10 } },
    async () => {
      started();
      await released;
      return { status: 200, body: "late" };
    },
  );
  using conn = await connect(server.port);
  await send(conn, get("/slow"));
  await running;
  await server.shutdown(); // the shutdown timeout closes the busy connection
  release();
  await waitFor(() => logs.access().length === 1, "the access line");
  const [line] = logs.access();
  assert.equal(line.status, NO_REPLY_STATUS);
  assert.equal(line.target, "/slow");
  assert.equal(line.aborted, true);
  assert.equal(line.bytes, 0);
});

Deno.test("serve() logs a request it could not parse by its line as sent, bounded, and a 501 is not an error", async () => {
  await using logs = await captureLogs();
  await using server = serve({ port: 0 }, () => ({ status: 200 }));
  const method = "X".repeat(5000);
  const reply = await exchange(
    server.port,
    `${method} / HTTP/1.1\r\nHost: x\r\n\r\n`,
  );
  assert.equal(reply.status, 501);
  await waitFor(() => logs.access().length === 1, "the access line");
  const [line] = logs.access();
  assert.equal(line.status, 501);
  assert.equal(line.request, "X".repeat(2048) + "...");
  assert.ok((line.error ?? "").length < 300, "the reason is bounded too");
  assert.deepEqual(
    logs.records.map((r) => r.level),
    [],
    "no record but the access line",
  );
});

Deno.test("serve() warns once for a limit crossed, and the access line says why", async () => {
  await using logs = await captureLogs();
  await using server = serve(
    { port: 0, limits: { maxHeadBytes: 512 } },
    () => ({ status: 200 }),
  );
  const reply = await exchange(
    server.port,
    get("/", `X-Big: ${"a".repeat(600)}\r\n`),
  );
  assert.equal(reply.status, 431);
  await waitFor(() => logs.access().length === 1, "the access line");
  assert.equal(logs.access()[0].error, "Request head too large");
  const warnings = logs.records.filter((r) => r.level !== "info");
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].level, "warning");
  assert.equal(warnings[0].properties.status, 431);
  assert.equal(warnings[0].properties.client, "127.0.0.1");
});

Deno.test("serve() logs a 503 for a full server as one warning, not an error", async () => {
  await using logs = await captureLogs();
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  await using server = serve(
    { port: 0, limits: { maxConns: 1, maxQueue: 0, shutdownTimeoutMs: 1000 } },
    async () => {
      await opened;
      return { status: 200 };
    },
  );
  using busy = await connect(server.port);
  await send(busy, get("/hold"));
  await waitFor(() => server.stats.active === 1, "the first connection");
  const refused = await exchange(server.port, get());
  assert.equal(refused.status, 503);
  open();
  await new ReplyReader(busy).readReply();
  const loud = logs.records.filter((r) => r.level !== "info");
  assert.deepEqual(loud.map((r) => [r.level, r.properties.client]), [[
    "warning",
    "127.0.0.1",
  ]]);
  assert.match(String(loud[0].message.join("")), /503/);
});

Deno.test("the default app: a 404 is only its access line; a JSON route's 413 is one warning too", async () => {
  await using logs = await captureLogs();
  await using app = await startApp({
    app: { uploadMaxBytes: 10 },
    serve: { accessLog: true },
  });
  const missing = await exchange(app.port, get("/nope"));
  assert.equal(missing.status, 404);
  const big = await exchange(
    app.port,
    "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
      "Content-Length: 100\r\n\r\n",
  );
  assert.equal(big.status, 413);
  assert.equal(big.headers.get("content-type"), "application/json");
  await waitFor(() => logs.access().length === 2, "two access lines");
  assert.deepEqual(logs.access().map((l) => l.status), [404, 413]);
  const loud = logs.records.filter((r) => r.level !== "info");
  assert.deepEqual(loud.map((r) => [r.level, r.properties.status]), [[
    "warning",
    413,
  ]]);
});

Deno.test("main --log-format combined: stdout holds access lines alone, the rest goes to stderr", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      new URL("../main.ts", import.meta.url).pathname,
      "--port",
      "0",
      "--log-format",
      "combined",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream());
  const stdoutText = (async () => {
    let all = "";
    for await (const t of stdout) all += t;
    return all;
  })();
  let stderr = "";
  const stderrLines = child.stderr.pipeThrough(new TextDecoderStream())[
    Symbol.asyncIterator
  ]();
  try {
    let port = 0;
    while (port === 0) {
      const next = await withTimeout(
        stderrLines.next(),
        30_000,
        "the start line",
      );
      assert.ok(!next.done, stderr);
      stderr += next.value;
      const m = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr);
      if (m) port = Number(m[1]);
    }
    const res = await fetch(`http://127.0.0.1:${port}/nope`, {
      headers: { "user-agent": 'ua "1"', referer: "http://r.test/" },
    });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } finally {
    child.kill("SIGTERM");
  }
  for (
    let n = await stderrLines.next();
    !n.done;
    n = await stderrLines.next()
  ) {
    stderr += n.value;
  }
  assert.equal((await child.status).code, 0);
  const lines = (await stdoutText).trimEnd().split("\n");
  assert.equal(lines.length, 1, lines.join("\n"));
  const f = COMBINED.exec(lines[0]);
  assert.ok(f, lines[0]);
  assert.equal(f[5], "GET /nope HTTP/1.1");
  assert.equal(f[6], "404");
  assert.equal(f[8], "http://r.test/");
  assert.equal(f[9], "ua \\x221\\x22");
  assert.match(stderr, /spindle\.server: Stopped/);
});

Deno.test("the default app: a refused Host is one warning with the Host cut to 256 characters", async () => {
  await using logs = await captureLogs();
  await using app = await startApp();
  const host = "a".repeat(5000) + ".example";
  const reply = await exchange(
    app.port,
    `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
  );
  assert.equal(reply.status, 421);
  const loud = logs.records.filter((r) => r.level !== "info");
  assert.equal(loud.length, 1);
  assert.equal(loud[0].properties.host, "a".repeat(256) + "...");
});

Deno.test("AccessLog: a line that starts the flush clock again keeps an optimized append() optimized", async () => {
  // Both rare paths (a full buffer, a stopped clock) behind one call that
  // full buffers feed: V8 otherwise deoptimizes append() the first time its
  // optimized code restarts the clock, as it did over sockets between
  // bursts of traffic.
  const { before, after } = await runWithNatives<number[]>(
    new URL("./fixtures/access_log_deopt.ts", import.meta.url),
  );
  assert.equal(before[0] & 64, 0, "optimized before (64: interpreted)");
  assert.deepEqual(after, before);
});
