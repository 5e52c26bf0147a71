/**
 * Who may open another connection: addresses counted per client (IPv6 per
 * /64) against maxConnsPerIp, and sockets in all against the descriptor
 * budget; over real sockets, the 429 and 503 a client gets for crossing
 * them, and the silent connections closed to make room.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../lib/config.ts";
import {
  AddressCounts,
  addressKey,
  DescriptorBudget,
  isLoopback,
} from "../lib/http/admission.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve, type ServeOptions } from "../lib/http/server.ts";
import { gate } from "./helpers/gate.ts";
import {
  connect,
  get,
  lacks,
  ReplyReader,
  run,
  send,
  sleep,
  WAIT_MS,
  waitFor,
} from "./helpers/socket.ts";

const keys: [hostname: string, key: string][] = [
  ["203.0.113.7", "203.0.113.7"],
  ["::ffff:203.0.113.7", "203.0.113.7"],
  ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
  ["2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"],
  ["2001:DB8:0001:0002::", "2001:db8:1:2::/64"],
  ["2001:db8::1", "2001:db8:0:0::/64"],
  ["fe80::1%eth0", "fe80:0:0:0::/64"],
  ["64:ff9b::192.0.2.1", "64:ff9b:0:0::/64"],
];
for (const [hostname, key] of keys) {
  Deno.test(`addressKey() counts ${hostname} as ${key}`, () => {
    assert.equal(addressKey(hostname), key);
  });
}

Deno.test("isLoopback() knows 127.0.0.0/8 and ::1 in their forms, and nothing else", () => {
  for (const a of ["127.0.0.1", "127.9.8.7", "::1", "0:0:0:0:0:0:0:1"]) {
    assert.equal(isLoopback(a), true, a);
  }
  assert.equal(isLoopback("::ffff:127.0.0.1"), true);
  for (const a of ["10.0.0.1", "::2", "::", "fe80::1", "128.0.0.1"]) {
    assert.equal(isLoopback(a), false, a);
  }
});

Deno.test("AddressCounts counts per address, not the exempt, and not at all with a cap of 0", () => {
  const counts = new AddressCounts(2, (h) => h === "10.0.0.9");
  const a = counts.add("10.0.0.1");
  counts.add("10.0.0.1");
  assert.equal(counts.over(a), false);
  const third = counts.add("::ffff:10.0.0.1");
  assert.equal(third, a);
  assert.equal(counts.over(a), true);
  counts.remove(third);
  assert.equal(counts.over(a), false);
  assert.equal(counts.add("10.0.0.9"), undefined, "exempt");
  assert.equal(counts.over(undefined), false);
  counts.remove(a);
  counts.remove(a);
  assert.equal(counts.size, 0);
  assert.equal(new AddressCounts(0, () => false).add("10.0.0.1"), undefined);
});

function budget(
  limits: Partial<Limits>,
  limit = 0,
  share = 1,
): DescriptorBudget {
  return new DescriptorBudget(
    { ...DEFAULT_LIMITS, ...limits },
    share,
    () => limit,
  );
}

Deno.test("DescriptorBudget keeps the reserve below the limit, and at least 3/4 for sockets", () => {
  assert.equal(budget({ maxOpenFiles: 4096, fdReserve: 128 }).cap, 3968);
  assert.equal(budget({ maxOpenFiles: 256, fdReserve: 128 }).cap, 192);
  assert.equal(budget({ fdReserve: 128 }, 1000).cap, 872, "read limit");
  assert.equal(budget({}).cap, Infinity, "unknown limit");
  assert.equal(budget({ fdReserve: 100 }, 4000, 1 / 4).cap, 900, "a quarter");
  const b = budget({ maxOpenFiles: 100, fdReserve: 20, busyPercent: 50 });
  b.open = 39;
  assert.equal(b.busy, false);
  b.open = 40;
  assert.equal(b.busy, true);
  b.open = 80;
  assert.equal(b.full, false);
  b.open = 81;
  assert.equal(b.full, true);
});

Deno.test("DescriptorBudget learns the limit from the first EMFILE", () => {
  const b = budget({ fdReserve: 32 });
  b.open = 1000;
  assert.equal(b.learn(), 968);
  assert.equal(b.full, true);
  b.open = 968;
  assert.equal(b.full, false);
  b.open = 2000;
  assert.equal(b.learn(), 968, "a later EMFILE never moves the cap");
  b.open = 500;
  assert.equal(b.learn(), 968, "nor lowers it");
  const known = budget({ maxOpenFiles: 4096, fdReserve: 128 });
  known.open = 3000;
  assert.equal(known.learn(), 3968, "a known limit stays");
});

Deno.test({
  name:
    "readOpenFileLimit() reads the soft limit with every permission, and is 0 without",
  ignore: await lacks("prlimit"),
}, async () => {
  const script = new URL("./fixtures/fd_limit.ts", import.meta.url).pathname;
  const limited = (flag: string) =>
    run("prlimit", [
      "--nofile=300:300",
      Deno.execPath(),
      "run",
      flag,
      script,
    ], 20_000);
  const all = await limited("-A");
  assert.equal(all.stdout.trim(), "300", all.stderr);
  // Deno asks for every permission to read /proc/self: --allow-read is not enough.
  const narrow = await limited("--allow-read");
  assert.equal(narrow.stdout.trim(), "0", narrow.stderr);
});

function start(
  handler: Handler,
  limits: Partial<Limits>,
  extra: Partial<ServeOptions> = {},
) {
  return serve({
    port: 0,
    accessLog: false,
    // Silent sockets are closed by the server's choice, never by a head
    // timeout that a slow test run might reach.
    limits: { shutdownTimeoutMs: 1000, headTimeoutMs: 60_000, ...limits },
    ...extra,
  }, handler);
}

/** Reads one refusal: its status, Retry-After and Connection: close, then the close. */
async function assertRefused(conn: Deno.Conn, status: number): Promise<void> {
  const reader = new ReplyReader(conn);
  const reply = await reader.readReply();
  assert.equal(reply.status, status);
  assert.match(reply.headers.get("retry-after") ?? "", /^\d+$/);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(await reader.closed(), true);
}

Deno.test("serve() answers 429 with Retry-After to an address past maxConnsPerIp, and serves it again once one closes", async () => {
  const { handler, open } = gate();
  await using server = start(handler, { maxConnsPerIp: 2 }, {
    exemptPeer: () => false, // loopback is exempt by default
  });
  using _opened = { [Symbol.dispose]: open };
  using a = await connect(server.port);
  const b = await connect(server.port);
  await send(a, get("/hold"));
  await send(b, get("/b"));
  assert.equal((await new ReplyReader(b).readReply()).text, "/b");
  const c = await connect(server.port);
  await send(c, get("/c"));
  await assertRefused(c, 429);
  assert.equal(server.stats.rejected, 1);
  c.close();
  b.close();
  await waitFor(() => server.stats.active === 1, "b closed");
  // Once the server has seen c go too, the address has room again.
  let reply;
  for (const until = Date.now() + WAIT_MS; Date.now() < until;) {
    using d = await connect(server.port);
    await send(d, get("/d"));
    reply = await new ReplyReader(d).readReply();
    if (reply.status !== 429) break;
    await sleep(20);
  }
  assert.equal(reply?.text, "/d");
});

Deno.test("serve() does not cap loopback peers by default (a local reverse proxy)", async () => {
  const { handler, open } = gate();
  await using server = start(handler, { maxConnsPerIp: 1 });
  using _opened = { [Symbol.dispose]: open };
  using a = await connect(server.port);
  await send(a, get("/hold"));
  using b = await connect(server.port);
  await send(b, get("/b"));
  assert.equal((await new ReplyReader(b).readReply()).text, "/b");
  assert.equal(server.stats.rejected, 0);
});

Deno.test("serve() answers 503 at once past the descriptor budget, before the kernel says EMFILE", async () => {
  const { handler, open } = gate();
  // 12 descriptors, 3 kept free: 9 sockets at most.
  await using server = start(handler, {
    maxOpenFiles: 12,
    fdReserve: 3,
    maxConns: 100,
  });
  using _opened = { [Symbol.dispose]: open };
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 9; i++) {
      const conn = await connect(server.port);
      held.push(conn);
      await send(conn, get("/hold"));
    }
    await waitFor(() => server.stats.active === 9, "nine held");
    using over = await connect(server.port);
    const reader = new ReplyReader(over);
    // Silent, it would otherwise wait for its head for a minute.
    const reply = await reader.readReply();
    assert.equal(reply.status, 503);
    assert.equal(reply.headers.get("connection"), "close");
    assert.equal(await reader.closed(), true);
    assert.equal(server.stats.active, 9);
  } finally {
    open();
    for (const conn of held) conn.close();
  }
});

Deno.test("serve() past the descriptor budget closes the oldest silent connection to serve a newcomer", async () => {
  await using server = start(() => ({ status: 200, body: "ok" }), {
    maxOpenFiles: 8,
    fdReserve: 2,
    maxConns: 100,
  });
  const silent: Deno.Conn[] = [];
  const served: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 6; i++) silent.push(await connect(server.port));
    await waitFor(() => server.stats.active === 6, "six silent sockets");
    // Each newcomer (kept open) takes the place of one silent socket.
    for (let i = 0; i < 3; i++) {
      const conn = await connect(server.port);
      served.push(conn);
      await send(conn, get());
      assert.equal((await new ReplyReader(conn).readReply()).status, 200);
    }
    // The three oldest silent ones made the room, oldest first.
    for (const [i, conn] of silent.entries()) {
      const closed = await new ReplyReader(conn).closed(i < 3 ? WAIT_MS : 100)
        .catch(() => false);
      assert.equal(closed, i < 3, `silent socket ${i}`);
    }
    assert.equal(server.stats.rejected, 0);
  } finally {
    for (const conn of [...silent, ...served]) conn.close();
  }
});
