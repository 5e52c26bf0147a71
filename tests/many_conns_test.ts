/**
 * Many connections at once: a burst larger than the kernel's default
 * listen queue (511 in Deno) waits in the queue while the server is busy,
 * instead of being dropped to retry a second later; and thousands of idle
 * kept-alive connections cost little memory each.
 */
import assert from "node:assert/strict";
import {
  connect,
  get,
  ReplyReader,
  send,
  sleep,
  waitFor,
  withTimeout,
} from "./helpers/socket.ts";

/** Clients in the burst: past Deno's default backlog of 511. */
const BURST = 700;
/**
 * This process's descriptor limit, as a child shell inherits it, and the
 * kernel's cap on a listen queue (Deno needs --allow-all to read /proc).
 */
async function system(): Promise<{ fds: number; somaxconn: number }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", "ulimit -n; cat /proc/sys/net/core/somaxconn || echo 0"],
    stderr: "null",
  }).output();
  const [fds, max] = new TextDecoder().decode(out.stdout).trim().split("\n");
  return {
    fds: fds === "unlimited" ? Infinity : Number(fds) || 0,
    somaxconn: Number(max) || 0,
  };
}
const { fds, somaxconn } = await system();
/**
 * Both ends of every socket live in this process, plus some to spare; and
 * the kernel must allow a queue that long.
 */
const canRun = fds >= 2 * BURST + 200 && somaxconn > BURST;

Deno.test({
  name:
    "serve() holds a burst of 700 connections in its listen queue while its loop is busy, and answers each",
  ignore: !canRun, // needs ulimit -n 1600 and net.core.somaxconn above 700
}, async () => {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    new URL("./fixtures/blocking_server_worker.ts", import.meta.url),
    { type: "module" },
  );
  const messages: Record<string, unknown>[] = [];
  worker.onmessage = (e) => messages.push(e.data);
  const conns: Deno.TcpConn[] = [];
  try {
    worker.postMessage({ flag });
    await waitFor(() => messages.length > 0, "the worker's port", 30_000);
    const port = messages[0].port as number;
    const blocker = await connect(port);
    conns.push(blocker);
    await send(blocker, get("/block"));
    await waitFor(() => Atomics.load(flag, 0) === 1, "the server to block");
    // The server accepts nothing now: every handshake must complete in the
    // kernel's queue. Past a full queue, a SYN is dropped and retried after
    // a second, then three, while the server stays blocked: never in time.
    const burst = await withTimeout(
      Promise.all(Array.from({ length: BURST }, () => connect(port))),
      5000,
      "connections to complete in the listen queue",
    );
    conns.push(...burst);
    await Promise.all(burst.map((c) => send(c, get("/"))));
    Atomics.store(flag, 0, 0);
    Atomics.notify(flag, 0);
    const replies = await Promise.all(
      conns.map((c) => new ReplyReader(c).readReply()),
    );
    assert.equal(replies.filter((r) => r.status === 200).length, BURST + 1);
  } finally {
    Atomics.store(flag, 0, 0);
    Atomics.notify(flag, 0);
    for (const c of conns) c.close();
    worker.postMessage("stop");
    await waitFor(() => messages.some((m) => m.stopped), "shutdown", 10_000)
      .catch(() => {});
    worker.terminate();
  }
});

/** Idle connections held for the memory test. */
const IDLE = 2000;

/** Resident memory of process `pid` in KiB, as ps reports it. */
async function rssKiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "rss=", "-p", String(pid)],
  }).output();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

/** Opens `count` connections, each answered once and then left idle. */
async function openIdle(port: number, count: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let done = 0; done < count; done += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - done) }, async () => {
        const conn = await connect(port);
        conns.push(conn);
        await send(conn, get("/"));
        const reply = await new ReplyReader(conn).readReply();
        assert.equal(reply.status, 200);
        return conn;
      }),
    );
    assert.equal(batch.length, Math.min(100, count - done));
  }
  return conns;
}

Deno.test({
  name:
    "serve() holds 2000 idle kept-alive connections at under 12 KiB each (a 4 KiB read buffer and a 2 KiB output buffer each made it 15 to 18)",
  ignore: fds < 2 * IDLE + 200, // needs ulimit -n 4200
}, async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      "--allow-net=127.0.0.1",
      new URL("./fixtures/limits_server.ts", import.meta.url).pathname,
      "--limits",
      JSON.stringify({ keepAliveTimeoutMs: 120_000, maxConns: 2 * IDLE }),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const conns: Deno.Conn[] = [];
  try {
    const first = await withTimeout(lines.read(), 20_000, "the port");
    const port = JSON.parse(first.value ?? "{}").port as number;
    // Warm up (code compiled, pools filled), then settle.
    for (const conn of await openIdle(port, 200)) conn.close();
    await sleep(500);
    const before = await rssKiB(child.pid);
    conns.push(...await openIdle(port, IDLE));
    await sleep(500);
    const perConn = (await rssKiB(child.pid) - before) / IDLE;
    assert.ok(perConn < 12, `${perConn.toFixed(1)} KiB per idle connection`);
  } finally {
    for (const conn of conns) conn.close();
    child.kill("SIGKILL");
    await child.status;
    await lines.cancel();
  }
});
