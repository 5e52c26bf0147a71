/** The command line as a user runs it: a real `deno run main.ts` process. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Finished,
  type Running,
  runToEnd,
  spawnServer,
} from "./fixtures/serve_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PERMS = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
];

/** Starts main.ts and waits for its listening line. */
function start(args: string[], cwd?: string): Promise<Running> {
  return spawnServer([Deno.execPath(), "run", ...PERMS, MAIN, ...args], {
    cwd,
  });
}

async function stop(r: Running): Promise<number> {
  r.child.kill("SIGTERM");
  return (await r.done).code;
}

Deno.test("main prints one listening line with the real port, serves, and exits 0 on SIGTERM", async () => {
  const root = await Deno.makeTempDir();
  await Deno.writeTextFile(join(root, "index.html"), "<h1>main</h1>");
  const r = await start(["--port", "0", "--root", root]);
  try {
    assert.ok(r.port > 0, r.lines.join("\n"));
    assert.equal(r.lines.filter((l) => l.includes("Listening on")).length, 1);
    // Started by hand with a bare --allow-read, it says so.
    assert.ok(
      r.lines.includes(
        "May read any file (Deno's --allow-read names no paths)",
      ),
      r.lines.join("\n"),
    );
    const res = await fetch(`http://127.0.0.1:${r.port}/`);
    assert.equal(await res.text(), "<h1>main</h1>");
  } finally {
    assert.equal(await stop(r), 0);
    await Deno.remove(root, { recursive: true });
  }
  assert.ok(
    r.lines.some((l) =>
      /spindle\.access: 127\.0\.0\.1 "GET \/ HTTP\/1\.1" 200 /.test(l)
    ),
    r.lines.join("\n"),
  );
});

Deno.test("main --log-format json prints JSON event lines", async () => {
  const r = await start(["--port", "0", "--log-format", "json", "--quiet"]);
  const code = await stop(r);
  assert.equal(code, 0);
  const events = r.lines.map((l) => JSON.parse(l));
  const listening = events.find((e) => e.properties?.event === "listening");
  assert.ok(listening, r.lines.join("\n"));
  assert.equal(listening.properties.port, r.port);
  assert.equal(listening.properties.url, `http://127.0.0.1:${r.port}/`);
});

Deno.test("main takes the seeds' positional [port] [host] [max-conns]", async () => {
  const r = await start(["0", "127.0.0.1", "8", "--quiet"]);
  try {
    const res = await fetch(`http://127.0.0.1:${r.port}/health`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    assert.equal(await stop(r), 0);
  }
});

function run(args: string[]): Promise<Finished> {
  return runToEnd([Deno.execPath(), "run", ...PERMS, MAIN, ...args]);
}

Deno.test("main --help prints every flag and exits 0", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /--max-conns N/);
  assert.match(stdout, /--shutdown-timeout TIME/);
});

Deno.test("main exits 2 with a clear message for a bad flag", async () => {
  const { code, stderr } = await run(["--port", "eighty"]);
  assert.equal(code, 2);
  assert.match(stderr, /^spindle: --port: "eighty" is not a whole number/);
  const unknown = await run(["--frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option --frobnicate/);
});

Deno.test("main exits 1 and says why when the port is taken", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stdout } = await run(["--port", String(taken.addr.port)]);
  assert.equal(code, 1);
  assert.match(stdout, /Cannot start: port \d+ is already in use/);
});

Deno.test("main --workers 2 serves from two engines on one port and stops both on SIGTERM", async () => {
  const r = await start([
    "--port",
    "0",
    "--workers",
    "2",
    "--log-format",
    "json",
  ]);
  try {
    // Fresh connections spread over the engines; each answers on its own.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${r.port}/health`, {
        headers: { connection: "close" },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
  } finally {
    assert.equal(await stop(r), 0);
  }
  // The main engine and the worker each log their own shutdown.
  const stopped = r.lines.filter((l) => l.includes('"message":"Stopped"'));
  assert.equal(stopped.length, 2, r.lines.join("\n"));
});

/** Sends `size` bytes to `url`'s echo: the echo's length, or the close's code and reason. */
async function echoOf(url: string, size: number): Promise<string> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const closed = new Promise<string>((resolve) =>
    ws.onclose = (e) => resolve(`closed ${e.code} ${e.reason}`)
  );
  await new Promise((resolve) => ws.onopen = resolve);
  const echoed = new Promise<string>((resolve) =>
    ws.onmessage = (e) => resolve(`echoed ${e.data.byteLength}`)
  );
  ws.send(new Uint8Array(size));
  const seen = await Promise.race([echoed, closed]);
  ws.close();
  await closed;
  return seen;
}

Deno.test("main --ws-max-message lets WebSocket /echo take a 4 MiB message, which the default 1m closes with 1009", async () => {
  for (
    const [args, seen] of [
      [[], "closed 1009 Frame of 4194304 bytes is over the 1048576-byte limit"],
      [["--ws-max-message", "8m"], "echoed 4194304"],
    ]
  ) {
    const r = await start(["--port", "0", ...args]);
    try {
      assert.equal(
        await echoOf(`ws://127.0.0.1:${r.port}/echo`, 4 << 20),
        seen,
      );
    } finally {
      assert.equal(await stop(r), 0);
    }
  }
});

Deno.test("main exits 2 for a --trust-proxy entry that is not an address", async () => {
  const { code, stderr } = await run([
    "--port",
    "0",
    "--trust-proxy",
    "not-an-ip",
  ]);
  assert.equal(code, 2);
  assert.match(stderr, /^spindle: .*not-an-ip/);
});
