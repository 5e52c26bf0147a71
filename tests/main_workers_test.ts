/**
 * `--workers` as users run it, a real main.ts process: limits shared by
 * every worker, a worker that dies replaced, SIGHUP reloading files with no
 * failed request, and a second Spindle taking the port over (an upgrade).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hashPassword } from "../lib/app/credentials.ts";
import { makeSelfSigned } from "../lib/self_signed.ts";
import { certificate } from "./helpers/cert.ts";
import {
  connect,
  hasTool,
  ReplyReader,
  send,
  sleep,
  waitFor,
} from "./helpers/socket.ts";
import {
  findEngine,
  launcherCommand,
  type Running,
  spawnServer,
} from "./fixtures/serve_process.ts";
import { freePort } from "../deploy/procs.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const HOOKS = new URL("./fixtures/engine_hooks.ts", import.meta.url).pathname;
const PERMS = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
];
const HAS_WRK = await hasTool("wrk", "-v");

/** main.ts with `args`, quiet, its output collected. */
function start(args: string[], env?: Record<string, string>): Promise<Running> {
  return spawnServer(
    [Deno.execPath(), "run", ...PERMS, MAIN, "--quiet", ...args],
    { env },
  );
}

async function stop(r: Running): Promise<number> {
  r.child.kill("SIGTERM");
  return (await r.done).code;
}

/** Waits for the `n`th output line matching `re`. */
function waitForLine(r: Running, re: RegExp, n = 1): Promise<void> {
  return waitFor(
    () => r.lines.filter((l) => re.test(l)).length >= n,
    `line ${re} in\n${r.lines.join("\n")}`,
    30_000,
  );
}

/** A request on a connection of its own; status and body. */
async function ask(
  port: number,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    ...init,
    headers: { connection: "close", ...init.headers },
  });
  return { status: res.status, text: await res.text() };
}

interface WrkResult {
  readonly requests: number;
  readonly socketErrors: number;
  readonly non2xx: number;
  readonly output: string;
}

/** wrk against `port` for `seconds`, running `during` meanwhile. */
async function wrk(
  port: number,
  seconds: number,
  during: () => Promise<void>,
): Promise<WrkResult> {
  const child = new Deno.Command("wrk", {
    args: [
      "-t2",
      "-c32",
      `-d${seconds}s`,
      "--timeout",
      "10s",
      `http://127.0.0.1:${port}/echo/hello`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await sleep(500); // connections open and busy
  await during();
  const out = await child.output();
  const output = new TextDecoder().decode(out.stdout);
  const errors =
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
      .exec(output);
  return {
    requests: Number(/(\d+) requests in/.exec(output)?.[1] ?? 0),
    socketErrors: errors
      ? errors.slice(1).reduce((n, x) => n + Number(x), 0)
      : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
    output,
  };
}

Deno.test("main --workers 2 --rate-limit gives a client one budget, whichever worker answers", async () => {
  const r = await start([
    "--port",
    "0",
    "--workers",
    "2",
    "--rate-limit",
    "2/60s",
  ]);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      statuses.push((await ask(r.port, "/echo/hi")).status);
    }
    assert.deepEqual(statuses, [200, 200, ...Array(10).fill(429)]);
  } finally {
    assert.equal(await stop(r), 0);
  }
});

Deno.test("main --workers 2 /metrics counts every worker's requests, in all and per worker", async () => {
  const r = await start(["--port", "0", "--workers", "2"]);
  try {
    for (let i = 0; i < 10; i++) await ask(r.port, "/echo/hi");
    const metrics = (await ask(r.port, "/metrics")).text.split("\n");
    assert.ok(
      metrics.includes("spindle_requests_total 10"),
      metrics.join("\n"),
    );
    assert.ok(
      metrics.includes(
        'spindle_http_requests_total{route="/echo/{text}",status="2xx"} 10',
      ),
    );
    const perWorker = metrics.filter((l) =>
      l.startsWith("spindle_worker_requests_total{")
    );
    assert.deepEqual(
      perWorker.map((l) => /worker="(\d)"/.exec(l)![1]),
      ["1", "2"],
    );
    const sum = perWorker.reduce((n, l) => n + Number(l.split(" ")[1]), 0);
    assert.equal(sum, 10);
  } finally {
    assert.equal(await stop(r), 0);
  }
});

Deno.test("main --workers 2 --max-conns 2 refuses a third connection, whichever worker holds the two", async () => {
  const r = await start([
    "--port",
    "0",
    "--workers",
    "2",
    "--max-conns",
    "2",
    "--max-queue",
    "0",
  ]);
  const held: Deno.TcpConn[] = [];
  try {
    // Two requests halfway through their bodies: busy, never reclaimable.
    for (let i = 0; i < 2; i++) {
      const conn = await connect(r.port);
      held.push(conn);
      await send(
        conn,
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01234",
      );
    }
    await sleep(200); // both accepted and counted
    for (let i = 0; i < 4; i++) {
      using conn = await connect(r.port);
      await send(conn, "GET /echo/hi HTTP/1.1\r\nHost: localhost\r\n\r\n");
      const reply = await new ReplyReader(conn).readReply();
      assert.equal(reply.status, 503, `connection ${i + 3}`);
    }
  } finally {
    for (const conn of held) conn.close();
    assert.equal(await stop(r), 0);
  }
});

Deno.test("main --workers 2 holds the uploads folder to one --upload-quota", async () => {
  const dir = await Deno.makeTempDir();
  const r = await start([
    "--port",
    "0",
    "--workers",
    "2",
    "--uploads",
    dir,
    "--upload-quota",
    "150",
  ]);
  try {
    const upload = () =>
      ask(r.port, "/upload", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ note: "x".repeat(50) }),
      });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await upload()).status);
    assert.deepEqual(statuses, [201, 201, 507, 507]);
  } finally {
    assert.equal(await stop(r), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main --workers 2 counts a client's failed passwords on every worker against one limit", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "users");
  await Deno.writeTextFile(
    file,
    `ann:${await hashPassword("a-pass", 100_000)}\n`,
  );
  const r = await start(["--port", "0", "--workers", "2", "--auth-file", file]);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const res = await ask(r.port, "/echo/hi", {
        headers: { authorization: `Basic ${btoa(`ann:guess${i}`)}` },
      });
      statuses.push(res.status);
    }
    // 10 failures in 5 minutes per client (maxAuthFailures), not 10 per worker.
    assert.deepEqual(statuses, [...Array(10).fill(401), 429]);
  } finally {
    assert.equal(await stop(r), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

for (const workers of ["1", "2"]) {
  Deno.test(`main --workers ${workers} reads --auth-file again on SIGHUP, without a restart`, async () => {
    const dir = await Deno.makeTempDir();
    const file = join(dir, "users");
    await Deno.writeTextFile(
      file,
      `ann:${await hashPassword("a-pass", 100_000)}\n`,
    );
    const r = await start([
      "--port",
      "0",
      "--workers",
      workers,
      "--auth-file",
      file,
    ]);
    try {
      const as = (user: string, password: string) =>
        ask(r.port, "/echo/hi", {
          headers: { authorization: `Basic ${btoa(`${user}:${password}`)}` },
        });
      assert.equal((await as("ann", "a-pass")).status, 200);
      assert.equal((await as("bob", "b-pass")).status, 401);
      await Deno.writeTextFile(
        file,
        `bob:${await hashPassword("b-pass", 100_000)}\n`,
      );
      r.child.kill("SIGHUP");
      await waitForLine(r, /Reloaded/);
      assert.equal((await as("bob", "b-pass")).status, 200);
      assert.equal((await as("ann", "a-pass")).status, 401);
    } finally {
      assert.equal(await stop(r), 0);
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("main --workers 2 serves a new certificate after SIGHUP", async () => {
  const first = await certificate();
  const dir = await Deno.makeTempDir();
  const next = await makeSelfSigned({ dns: ["localhost"], ips: ["127.0.0.1"] });
  const certFile = join(dir, "live-cert.pem");
  const keyFile = join(dir, "live-key.pem");
  await Deno.copyFile(first.certFile, certFile);
  await Deno.copyFile(first.keyFile, keyFile);
  const r = await start([
    "--port",
    "0",
    "--workers",
    "2",
    "--cert",
    certFile,
    "--key",
    keyFile,
  ]);
  /** True when a TLS client that trusts only `ca` completes a handshake. */
  const trusts = async (ca: string) => {
    try {
      using conn = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: r.port,
        caCerts: [ca],
      });
      await conn.handshake();
      return true;
    } catch {
      return false;
    }
  };
  try {
    assert.equal(await trusts(first.cert), true);
    await Deno.writeTextFile(certFile, next.cert);
    await Deno.writeTextFile(keyFile, next.key);
    r.child.kill("SIGHUP");
    await waitForLine(r, /Reloaded/);
    for (let i = 0; i < 10; i++) {
      assert.equal(await trusts(next.cert), true, `connection ${i}`);
    }
    assert.equal(await trusts(first.cert), false);
  } finally {
    assert.equal(await stop(r), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

for (const workers of ["1", "2"]) {
  Deno.test({
    name:
      `main --workers ${workers} reloads under load three times: no socket error, no non-2xx`,
    ignore: !HAS_WRK,
    async fn() {
      const r = await start(["--port", "0", "--workers", workers]);
      try {
        const result = await wrk(r.port, 4, async () => {
          for (let i = 1; i <= 3; i++) {
            r.child.kill("SIGHUP");
            await waitForLine(r, /Reloaded/, i);
          }
        });
        assert.ok(result.requests > 0, result.output);
        assert.equal(result.socketErrors, 0, result.output);
        assert.equal(result.non2xx, 0, result.output);
      } finally {
        assert.equal(await stop(r), 0);
      }
    },
  });
}

Deno.test({
  name:
    "main --workers 2, stdout redirected to a file: both workers' batches (one write each) leave every line whole, none lost",
  ignore: !HAS_WRK,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "spindle_workers_log_" });
    const log = join(dir, "out.log");
    const port = freePort();
    // As a user runs it: `> out.log`, so stdout is a regular file.
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `exec "$@" > "${log}"`,
        "sh",
        Deno.execPath(),
        "run",
        ...PERMS,
        MAIN,
        "--port",
        String(port),
        "--workers",
        "2",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const errors = new Response(child.stderr).text();
    try {
      await waitFor(
        () => {
          try {
            return /Listening on/.test(Deno.readTextFileSync(log));
          } catch {
            return false; // not made yet
          }
        },
        "the Listening line in the file",
        30_000,
      );
      const result = await wrk(port, 2, () => Promise.resolve());
      assert.ok(result.requests > 1000, result.output);
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, await errors);
      const lines = (await Deno.readTextFile(log)).split("\n");
      assert.equal(lines.pop(), "", "the file ends with a whole line");
      const access =
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+00 \[INF\] spindle\.access: 127\.0\.0\.1 "GET \/echo\/hello HTTP\/1\.1" 200 \d+ \d+ms$/;
      const other =
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+00 \[(INF|WRN)\] spindle\.(?!access)/;
      // The start banner (plain text) comes first; then every line is a
      // whole log line, and each request is one access line of its own.
      let served = 0;
      for (const line of lines) {
        if (access.test(line)) served++;
        else if (served > 0 || /^\d{4}-|spindle\.access|GET \//.test(line)) {
          assert.match(line, other, `a line cut or mixed: ${line}`);
        }
      }
      // wrk counts the replies it read; a last few may have been cut off.
      assert.ok(served >= result.requests, `${served} lines, ${result.output}`);
    } finally {
      try {
        child.kill("SIGTERM");
      } catch {
        // already ended
      }
      await child.status;
      await errors;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("main --workers 2 replaces a worker that crashes; new connections are served meanwhile", async () => {
  const r = await start(["--port", "0", "--workers", "2"], {
    SPINDLE_TEST_HOOKS: HOOKS,
  });
  try {
    assert.equal((await ask(r.port, "/__test/crash")).text, "crashing");
    await waitForLine(r, /Worker \d died: .*crashes on cue; replacing it/);
    for (let i = 0; i < 30; i++) {
      assert.equal((await ask(r.port, "/echo/hi")).status, 200, `request ${i}`);
    }
    await waitForLine(r, /Worker \d replaced/);
    const metrics = (await ask(r.port, "/metrics")).text;
    assert.match(metrics, /spindle_worker_restarts_total\{worker="\d"\} 1/);
  } finally {
    assert.equal(await stop(r), 0);
  }
});

Deno.test("main --workers 2 swaps out a worker whose heap passes --worker-heap", async () => {
  const r = await start(
    ["--port", "0", "--workers", "2", "--worker-heap", "64m"],
    { SPINDLE_TEST_HOOKS: HOOKS },
  );
  try {
    // Whichever worker takes this starts to leak.
    assert.equal((await ask(r.port, "/__test/leak")).text, "leaking");
    // Kept-alive requests throughout: none fails while it is swapped out.
    // (New connections could: one the kernel queued on the closing
    // listener is reset, unless net.ipv4.tcp_migrate_req is 1.)
    using client = Deno.createHttpClient({});
    let served = 0;
    let swapped = false;
    const done = waitForLine(r, /Stopped/).then(() => swapped = true);
    while (!swapped) {
      const res = await fetch(`http://127.0.0.1:${r.port}/echo/hi`, { client });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      served++;
    }
    await done;
    assert.ok(served > 0);
    assert.ok(
      r.lines.some((l) =>
        /Worker \d holds \d+ MiB of heap, past its budget; replacing it/.test(l)
      ),
      r.lines.join("\n"),
    );
  } finally {
    assert.equal(await stop(r), 0);
  }
});

Deno.test("main without --takeover refuses a port another Spindle holds", async () => {
  const first = await start(["--port", "0"]);
  try {
    const second = await start(["--port", String(first.port)]);
    const { code, stdout } = await second.done;
    assert.equal(code, 1);
    assert.match(stdout, /Cannot start: port \d+ is already in use/);
  } finally {
    assert.equal(await stop(first), 0);
  }
});

Deno.test({
  name:
    "main --takeover: a second Spindle shares the port, the first drains on SIGTERM, no request fails",
  ignore: !HAS_WRK,
  async fn() {
    const old = await start(["--port", "0", "--workers", "2"]);
    let fresh: Running | undefined;
    try {
      const result = await wrk(old.port, 4, async () => {
        fresh = await start([
          "--port",
          String(old.port),
          "--workers",
          "2",
          "--takeover",
        ]);
        assert.equal(fresh.port, old.port);
        assert.equal(await stop(old), 0);
      });
      assert.ok(result.requests > 0, result.output);
      assert.equal(result.socketErrors, 0, result.output);
      assert.equal(result.non2xx, 0, result.output);
      assert.equal((await ask(old.port, "/health")).status, 200);
    } finally {
      if (fresh) assert.equal(await stop(fresh), 0);
      else await stop(old);
    }
  },
});

Deno.test({
  name:
    "the launcher upgrades on SIGUSR2: a fresh engine takes the port, the old one drains, no request fails",
  ignore: !HAS_WRK,
  async fn() {
    const port = freePort();
    const r = await spawnServer([
      ...launcherCommand(),
      "--port",
      String(port),
      "--workers",
      "2",
      "--quiet",
    ]);
    try {
      const before = await findEngine(r.child.pid);
      const result = await wrk(port, 4, async () => {
        r.child.kill("SIGUSR2");
        await waitForLine(r, /Listening on/, 2);
        // The old engine's two workers drain and stop.
        await waitForLine(r, /Stopped/, 2);
      });
      assert.ok(result.requests > 0, result.output);
      assert.equal(result.socketErrors, 0, result.output);
      assert.equal(result.non2xx, 0, result.output);
      const after = await findEngine(r.child.pid);
      assert.notEqual(after, before, "a new engine process serves");
      assert.equal((await ask(port, "/health")).status, 200);
    } finally {
      assert.equal(await stop(r), 0);
    }
  },
});

const HAS_SYSTEMD = await hasTool("systemd-analyze", "--version");

/** A unit's ExecStart, continuation lines joined, split into words. */
function execStart(unit: string): string[] {
  const line = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)![1];
  return line.replaceAll("\\\n", " ").trim().split(/\s+/);
}

Deno.test({
  name:
    "deploy/spindle.service passes systemd-analyze verify, and its ExecStart serves and reloads on SIGHUP",
  ignore: !HAS_SYSTEMD,
  async fn() {
    const pem = await certificate();
    const unitFile = new URL("../deploy/spindle.service", import.meta.url)
      .pathname;
    const dir = await Deno.makeTempDir();
    try {
      await Deno.copyFile(unitFile, join(dir, "spindle.service"));
      const verify = await new Deno.Command("systemd-analyze", {
        args: ["verify", join(dir, "spindle.service")],
        stderr: "piped",
      }).output();
      const errors = new TextDecoder().decode(verify.stderr).trim();
      assert.equal(verify.code, 0, errors);
      assert.equal(errors, "", "no line of it was ignored");
      const port = freePort();
      const root = new URL("..", import.meta.url).pathname;
      const argv = execStart(await Deno.readTextFile(unitFile)).map((arg) =>
        arg.replace("0.0.0.0", "127.0.0.1")
          .replace("8443", String(port))
          .replace("/var/lib/spindle", dir)
          .replace("/etc/spindle/cert.pem", pem.certFile)
          .replace("/etc/spindle/key.pem", pem.keyFile)
          .replace("/opt/spindle/", root)
      );
      assert.deepEqual(argv.slice(0, 3), ["deno", "task", "serve"]);
      const r = await spawnServer([Deno.execPath(), ...argv.slice(1)]);
      try {
        assert.equal(r.port, port, r.lines.join("\n"));
        // ExecReload: SIGHUP to the main process, deno task.
        r.child.kill("SIGHUP");
        await waitForLine(r, /"event":"reloaded"/);
        using conn = await Deno.connectTls({
          hostname: "127.0.0.1",
          port,
          caCerts: [pem.cert],
        });
        await conn.handshake();
      } finally {
        assert.equal(await stop(r), 0);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("main --workers auto starts one worker per CPU", async () => {
  const r = await start([
    "--port",
    "0",
    "--workers",
    "auto",
    "--log-format",
    "json",
  ]);
  try {
    const listening = r.lines.map((l) => JSON.parse(l)).find((e) =>
      e.properties?.event === "listening"
    );
    assert.equal(listening.properties.workers, navigator.hardwareConcurrency);
  } finally {
    assert.equal(await stop(r), 0);
  }
});
