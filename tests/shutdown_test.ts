/**
 * Graceful shutdown over real sockets and through a real process: stop
 * accepting, close connections once idle for reclaimIdleMs, let requests in flight finish
 * with Connection: close, force-close at shutdownTimeoutMs, exit 0 on SIGTERM.
 */
import assert from "node:assert/strict";
import type { Limits } from "../lib/config.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import {
  connect,
  get,
  ReplyReader,
  send,
  sleep,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * Far longer than any wait here: a shutdown that waited for it instead of
 * finishing at once cannot pass a test's (generous) bound by luck.
 */
const LONG_MS = 60_000;

function start(handler: Handler, limits: Partial<Limits> = {}) {
  return serve({
    port: 0,
    accessLog: false,
    limits: { shutdownTimeoutMs: LONG_MS, ...limits },
  }, handler);
}

/** Answers the path; "/slow" waits until `slowOpen()` lets it go. */
let slowStarted = false;
let slowOpen = () => {};
const sleepy: Handler = async (req) => {
  if (req.path === "/slow") {
    slowStarted = true;
    await new Promise<void>((r) => slowOpen = r);
  }
  return { status: 200, body: req.path };
};

Deno.test("shutdown() refuses new connections", async () => {
  await using server = start(sleepy);
  const port = server.port;
  await server.shutdown();
  await assert.rejects(connect(port), Deno.errors.ConnectionRefused);
  assert.equal(server.stats.draining, true);
});

Deno.test("shutdown() serves connections the kernel queued before it closes the listener, never a 503", async () => {
  await using server = start(sleepy, { reclaimIdleMs: 100 });
  // Handshakes the kernel completed, not yet taken from its queue: closing
  // the listener under them would reset them.
  const conns = await Promise.all(
    Array.from({ length: 50 }, () => connect(server.port)),
  );
  const stopped = server.shutdown();
  const statuses = await Promise.all(conns.map(async (conn) => {
    try {
      await send(conn, get("/late"));
      return (await new ReplyReader(conn).readReply()).status;
    } catch {
      return 0; // reset
    } finally {
      conn.close();
    }
  }));
  await stopped;
  assert.deepEqual(new Set(statuses), new Set([200]), `${statuses}`);
});

Deno.test("stopAccepting() refuses new connections and keeps serving the open ones", async () => {
  await using server = start(sleepy);
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, get("/"));
  await reader.readReply();
  await server.stopAccepting();
  await assert.rejects(connect(server.port), Deno.errors.ConnectionRefused);
  await send(conn, get("/again"));
  const reply = await reader.readReply();
  assert.equal(reply.text, "/again");
  assert.notEqual(reply.headers.get("connection"), "close", "still kept alive");
  assert.equal(server.stats.draining, false);
});

Deno.test("shutdown() closes a kept-alive connection idle for reclaimIdleMs at once", async () => {
  await using server = start(sleepy, { reclaimIdleMs: 50 });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, get("/"));
  await reader.readReply();
  await sleep(100);
  // Far under shutdownTimeoutMs (60 s): it did not wait for the connection.
  await withTimeout(server.shutdown(), 5000, "no wait for an idle connection");
  assert.equal(await reader.closed(), true);
  assert.equal(server.stats.active, 0);
});

Deno.test("shutdown() answers a request sent just after the last reply, with Connection: close", async () => {
  // Closing a connection the moment its reply is out races with the
  // client's next request on it: the client would see a reset.
  await using server = start(sleepy, { reclaimIdleMs: 5_000 });
  const conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, get("/"));
  await reader.readReply();
  const stopped = server.shutdown();
  // The listener is closed and the drain has begun.
  await waitFor(() => server.stats.draining, "the drain");
  await send(conn, get("/next"));
  const reply = await reader.readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "/next");
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(await reader.closed(500), true);
  conn.close();
  await stopped;
});

Deno.test("shutdown() closes a just-idle kept-alive connection once idle for reclaimIdleMs", async () => {
  await using server = start(sleepy, { reclaimIdleMs: 300 });
  using conn = await connect(server.port);
  const reader = new ReplyReader(conn);
  await send(conn, get("/"));
  await reader.readReply();
  const t0 = performance.now();
  await server.shutdown();
  const took = performance.now() - t0;
  assert.ok(took >= 250, `closed after ${took} ms, before reclaimIdleMs`);
  assert.equal(await reader.closed(500), true);
});

Deno.test("shutdown() closes a connection lingering after Connection: close at once", async () => {
  await using server = start(sleepy);
  using conn = await connect(server.port);
  await send(conn, get("/", "Connection: close\r\n"));
  const reader = new ReplyReader(conn);
  await reader.readReply();
  assert.equal(await reader.closed(), true); // the server's half is closed
  // We keep our half open; the server must not wait on it.
  await withTimeout(
    server.shutdown(),
    5000,
    "no wait on a finished connection",
  );
});

Deno.test("shutdown() lets a request in flight finish with Connection: close", async () => {
  await using server = start(sleepy);
  using _open = { [Symbol.dispose]: () => slowOpen() };
  // A kept-alive connection gone idle: shutdown closes it as it drains the
  // others, so its close says the drain has reached every connection.
  using idle = await connect(server.port);
  const idleReader = new ReplyReader(idle);
  await send(idle, get("/"));
  await idleReader.readReply();
  using conn = await connect(server.port);
  await send(conn, get("/slow"));
  await waitFor(
    () => server.stats.requests === 1 && slowStarted,
    "the handler to start",
  );
  const order: string[] = [];
  server.finished.then(() => order.push("finished"));
  const stopping = server.shutdown();
  stopping.then(() => order.push("stopped"));
  assert.equal(await idleReader.closed(), true, "the idle connection closed");
  // A shutdown that did not wait for the handler would be done by now.
  order.push("handler let go");
  slowOpen();
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "/slow");
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(await reader.closed(), true);
  conn.close();
  await stopping;
  await server.finished;
  assert.deepEqual(order, ["handler let go", "finished", "stopped"]);
  assert.equal(server.stats.active, 0);
});

Deno.test("shutdown() closes a request still running at shutdownTimeoutMs", async () => {
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  let started = false;
  let done = false;
  await using server = start(async () => {
    started = true;
    await opened;
    done = true;
    return { status: 200, body: "too late" };
  }, { shutdownTimeoutMs: 200 });
  using _opened = { [Symbol.dispose]: open };
  using conn = await connect(server.port);
  await send(conn, get("/"));
  await waitFor(() => started, "the handler to start");
  const t0 = performance.now();
  // The handler never returns by itself: only the timeout ends this.
  await withTimeout(server.shutdown(), 10_000, "shutdown at its timeout");
  const took = performance.now() - t0;
  assert.ok(took >= 180, `shutdown took ${took} ms, before its timeout`);
  assert.equal(await new ReplyReader(conn).closed(), true, "no reply");
  assert.equal(server.stats.active, 0);
  open();
  await waitFor(() => done, "the handler to return");
});

Deno.test("shutdown() returns the same promise twice and resolves finished", async () => {
  await using server = start(sleepy);
  const a = server.shutdown();
  const b = server.shutdown();
  assert.equal(a, b);
  await withTimeout(server.finished, 5000, "finished");
});

Deno.test("shutdown() refuses a queued connection with 503 and finishes with it closed", async () => {
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  let started = false;
  await using server = start(async () => {
    started = true;
    await opened;
    return { status: 200, body: "held" };
  }, { maxConns: 1, maxQueue: 1 });
  using _opened = { [Symbol.dispose]: open };
  using held = await connect(server.port);
  await send(held, get("/"));
  await waitFor(() => started, "the handler to start");
  using waiter = await connect(server.port);
  await send(waiter, get("/"));
  await waitFor(() => server.stats.queued === 1, "the waiter queued");
  const stopping = server.shutdown();
  const reader = new ReplyReader(waiter);
  const refused = await reader.readReply();
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("connection"), "close");
  open();
  const reply = await new ReplyReader(held).readReply();
  assert.equal(reply.headers.get("connection"), "close");
  held.close();
  // Our half of the refused socket stays open: finished must not wait on it,
  // nor leave it open (the resource sanitizer checks).
  await withTimeout(stopping, 5000, "shutdown");
  assert.equal(server.stats.queued, 0);
  assert.equal(await reader.closed(), true);
  // The server's socket is gone, not still reading: what we send is reset,
  // so a write after the reset has come back fails.
  const failed = await withTimeout(
    (async () => {
      for (;;) {
        try {
          await send(waiter, "more");
        } catch (err) {
          return err;
        }
        await sleep(10);
      }
    })(),
    5000,
    "a write to fail",
  );
  assert.ok(
    failed instanceof Deno.errors.BrokenPipe ||
      failed instanceof Deno.errors.ConnectionReset,
    String(failed),
  );
});

/** Lines of a child's stdout, as they come. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #rest = "";
  readonly all: string[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line matching `re`; fails at the end of output or after `ms`. */
  async find(re: RegExp, ms = 10_000): Promise<string> {
    const until = Date.now() + ms;
    for (;;) {
      const nl = this.#rest.indexOf("\n");
      if (nl !== -1) {
        const line = this.#rest.slice(0, nl);
        this.#rest = this.#rest.slice(nl + 1);
        this.all.push(line);
        if (re.test(line)) return line;
        continue;
      }
      const { value, done } = await withTimeout(
        this.#reader.read(),
        Math.max(until - Date.now(), 1),
        `output matching ${re}`,
      );
      if (done) throw new Error(`Output ended without ${re}`);
      this.#rest += value;
    }
  }

  /** Reads the rest of the output. */
  async drain(): Promise<void> {
    for (;;) {
      const { value, done } = await this.#reader.read();
      if (done) break;
      this.#rest += value;
    }
    this.all.push(...this.#rest.split("\n").filter((l) => l !== ""));
  }
}

/** Spawns a Deno script with the repo's config; kill()s it when disposed. */
function spawnDeno(script: string, args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${ROOT}deno.json`,
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      script,
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return Object.assign(child, {
    [Symbol.asyncDispose]: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await child.stderr.cancel().catch(() => {});
    },
  });
}

Deno.test("a server process on SIGTERM finishes the request in flight and exits 0", async () => {
  await using child = spawnDeno(`${ROOT}tests/fixtures/engine_server.ts`, [
    "--port",
    "0",
    "--log-format",
    "json",
    "--shutdown-timeout",
    String(LONG_MS),
  ]);
  const lines = new Lines(child.stdout);
  const listening = JSON.parse(await lines.find(/"listening"/));
  const port = listening.properties?.port ?? listening.port;
  assert.ok(Number.isInteger(port) && port > 0, JSON.stringify(listening));

  // A kept-alive connection that goes idle: shutdown closes it when it
  // drains the others, so its close says the drain has begun.
  using idle = await connect(port);
  const idleReader = new ReplyReader(idle);
  await send(idle, get("/"));
  assert.equal((await idleReader.readReply()).status, 200);
  // A request in flight: its handler waits for the second half of the body.
  using conn = await connect(port);
  await send(
    conn,
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234",
  );
  await lines.find(/"echoing"/);
  child.kill("SIGTERM");
  assert.equal(await idleReader.closed(), true, "the idle connection closed");
  await send(conn, "56789");
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 200);
  assert.equal(reply.text, "0123456789");
  assert.equal(reply.headers.get("connection"), "close");
  conn.close();
  // Exits once the work is done: its shutdown timeout is a minute.
  const status = await withTimeout(child.status, 20_000, "the process to exit");
  assert.equal(status.code, 0);
  await lines.drain();
  // Every line is JSON; the access line and the stop are there.
  const records = lines.all.map((l) => JSON.parse(l));
  assert.ok(records.some((r) => /\/echo\b/.test(JSON.stringify(r))));
  assert.ok(records.some((r) => JSON.stringify(r).includes('"stopped"')));
  await assert.rejects(connect(port), Deno.errors.ConnectionRefused);
});

Deno.test("main.ts on SIGTERM finishes an upload in flight and exits 0", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using child = spawnDeno(`${ROOT}main.ts`, [
      "--port",
      "0",
      "--log-format",
      "json",
      "--root",
      dir,
      "--directory",
      dir,
      "--uploads",
      dir,
      "--shutdown-timeout",
      String(LONG_MS),
    ]);
    const lines = new Lines(child.stdout);
    const listening = JSON.parse(await lines.find(/"listening"/));
    const port = listening.properties?.port ?? listening.port;
    assert.ok(Number.isInteger(port) && port > 0, JSON.stringify(listening));
    // Closed by the drain that shutdown starts (see the test above).
    using idle = await connect(port);
    const idleReader = new ReplyReader(idle);
    await send(idle, get("/health"));
    assert.equal((await idleReader.readReply()).status, 200);
    using conn = await connect(port);
    // Half the body now, SIGTERM, then the rest: the request is in flight.
    await send(
      conn,
      "POST /files/a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        "Content-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n01234",
    );
    // In flight: its temp file is there (atomic_write.ts's ".tmp-" prefix).
    await waitFor(
      () => [...Deno.readDirSync(dir)].some((e) => e.name.startsWith(".tmp-")),
      "the upload's temp file",
    );
    child.kill("SIGTERM");
    assert.equal(await idleReader.closed(), true, "the drain began");
    await send(conn, "56789");
    const reply = await new ReplyReader(conn).readReply();
    assert.ok(
      reply.status >= 200 && reply.status < 300,
      reply.head + reply.text,
    );
    assert.equal(reply.headers.get("connection"), "close");
    conn.close();
    const status = await withTimeout(child.status, 20_000, "main.ts to exit");
    await lines.drain();
    assert.equal(status.code, 0, lines.all.join("\n"));
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "0123456789");
    for (const line of lines.all) JSON.parse(line); // JSON lines only
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
