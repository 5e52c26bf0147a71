/**
 * Many connections at once: a burst larger than the kernel's default
 * listen queue (511 in Deno) waits in the queue while the server is busy,
 * instead of being dropped to retry a second later.
 */
import assert from "node:assert/strict";
import {
  connect,
  get,
  ReplyReader,
  send,
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
    await waitFor(() => messages.length > 0, "the worker's port");
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
