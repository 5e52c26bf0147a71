/**
 * The files in deploy/, used rather than shown: HAProxy and nginx check and
 * run their configurations, systemd verifies the unit and its ExecStart
 * line runs, and the container's command runs (the image cannot be built
 * without a Docker daemon). Each part is skipped, saying why, without its
 * tool. deploy/haproxy.cfg also runs in tests/fleet_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MALLOC_TUNABLES } from "../launch.ts";
import {
  freePort,
  hasCommand,
  Proc,
  RedisServer,
  REPO,
  spindleArgs,
  startSpindle,
} from "../deploy/procs.ts";

const DEPLOY = join(REPO, "deploy");
const has = {
  haproxy: await hasCommand("haproxy", "-v"),
  nginx: await hasCommand("nginx", "-v"),
  curl: await hasCommand("curl", "--version"),
  systemd: await hasCommand("systemd-analyze", "--version"),
  redis: await hasCommand("redis-server", "--version"),
};
for (const [tool, there] of Object.entries(has)) {
  if (!there) console.log(`skipped: deploy tests that need ${tool}`);
}

async function output(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
) {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** curl from `address`; statuses of `urls`, in order. */
async function curl(
  args: string[],
  urls: string[],
  address = "127.0.0.1",
): Promise<number[]> {
  const all = ["-s", "--interface", address, "-w", "%{http_code}\\n", ...args];
  for (const url of urls) all.push("-o", "/dev/null", url);
  const out = await output("curl", all);
  return out.stdout.trim().split("\n").map(Number);
}

Deno.test({
  name: "deploy/haproxy.cfg passes haproxy -c",
  ignore: !has.haproxy,
}, async () => {
  const out = await output("haproxy", [
    "-c",
    "-f",
    join(DEPLOY, "haproxy.cfg"),
  ]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout + out.stderr, /Configuration file is valid/);
});

Deno.test({
  name:
    "deploy/nginx.conf passes nginx -t, keeps upstream connections, and the rate limiter sees each client",
  ignore: !has.nginx || !has.curl,
}, async () => {
  const conf = await Deno.readTextFile(join(DEPLOY, "nginx.conf"));
  const check = await output("nginx", ["-t", "-c", join(DEPLOY, "nginx.conf")]);
  assert.equal(check.code, 0, check.stderr);

  const dir = await Deno.makeTempDir();
  const uploads = join(dir, "uploads");
  await Deno.mkdir(uploads);
  const ports = [freePort(), freePort(), freePort()];
  const front = freePort();
  const instances: Proc[] = [];
  let nginx: Proc | undefined;
  try {
    for (const [i, port] of ports.entries()) {
      instances.push(
        await startSpindle(`s${i + 1}`, [
          ...spindleArgs(join(REPO, "resources"), uploads),
          "--port",
          String(port),
          "--trust-proxy",
          "loopback",
          "--rate-limit",
          "2/10m",
          "--quiet",
        ]),
      );
    }
    // The file as it is, but for its ports, its pid file and one worker.
    const local = conf
      .replace(/^pid .*;$/m, `pid ${dir}/nginx.pid;`)
      .replace(/^worker_processes .*;$/m, "worker_processes 1;")
      .replace("listen 80;", `listen 127.0.0.1:${front};`)
      .replace("127.0.0.1:8081", `127.0.0.1:${ports[0]}`)
      .replace("127.0.0.1:8082", `127.0.0.1:${ports[1]}`)
      .replace("127.0.0.1:8083", `127.0.0.1:${ports[2]}`);
    assert.notEqual(local, conf);
    await Deno.writeTextFile(join(dir, "nginx.conf"), local);
    nginx = new Proc("nginx", "nginx", [
      "-p",
      `${dir}/`,
      "-c",
      join(dir, "nginx.conf"),
      "-g",
      "daemon off;",
    ]);
    await nginx.waitForLine(/start worker process/);
    const url = `http://127.0.0.1:${front}/hello.txt`;
    const seven = Array(7).fill(url);
    const forged = ["-H", "X-Forwarded-For: 203.0.113.66"];
    // Round robin over three instances, each counting alone (no shared
    // store here): 2 each, and the seventh is refused. The key is the
    // client's own address: nginx set X-Forwarded-For, it did not append.
    const statuses = await curl(forged, seven, "127.0.0.2");
    assert.deepEqual(
      statuses.filter((s) => s === 200).length,
      6,
      `${statuses}`,
    );
    assert.deepEqual(
      statuses.filter((s) => s === 429).length,
      1,
      `${statuses}`,
    );
    assert.deepEqual(
      await curl(forged, [url], "127.0.0.3"),
      [200],
      "another client, same forged header: counted apart",
    );
    // Kept-alive upstream connections: 20 requests, a few connections.
    const accepted = async () => {
      let n = 0;
      for (const port of ports) {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        n += Number(
          /^spindle_connections_accepted_total (\d+)/m.exec(await res.text())
            ?.[1],
        );
      }
      return n;
    };
    const before = await accepted();
    await curl([], Array(20).fill(url), "127.0.0.4");
    const opened = await accepted() - before;
    assert.ok(opened <= 8, `${opened} connections for 20 requests`);
  } finally {
    await nginx?.stop("SIGQUIT");
    await Promise.all(instances.map((p) => p.stop()));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy/spindle@.service runs main.ts without the launcher, so it sets the launcher's malloc tunables itself", async () => {
  const unit = await Deno.readTextFile(join(DEPLOY, "spindle@.service"));
  assert.ok(execStart(unit).some((arg) => arg.endsWith("/main.ts")));
  const set = [...unit.matchAll(/^Environment=GLIBC_TUNABLES=(\S+)$/gm)];
  assert.deepEqual(set.map((m) => m[1]), [MALLOC_TUNABLES]);
});

/** The unit's ExecStart as argv, continuation lines joined. */
function execStart(unit: string): string[] {
  const joined = unit.replace(/\\\n\s*/g, "");
  const line = /^ExecStart=(.*)$/m.exec(joined)![1];
  return line.trim().split(/\s+/);
}

Deno.test({
  name:
    "deploy/spindle@.service passes systemd-analyze verify and scores OK on security",
  ignore: !has.systemd,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Verified as an instance of the template, the way systemd would load it.
    const file = join(dir, "spindle@8081.service");
    await Deno.copyFile(join(DEPLOY, "spindle@.service"), file);
    const verify = await output("systemd-analyze", ["verify", file]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), "", "no line of it was ignored");
    const security = await output("systemd-analyze", [
      "security",
      "--offline=true",
      file,
    ]);
    const score = /Overall exposure level for .*: (\d+\.\d+)/.exec(
      security.stdout,
    );
    assert.ok(score, security.stdout + security.stderr);
    assert.ok(Number(score[1]) <= 2, `exposure ${score[1]}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "deploy/spindle@.service's ExecStart runs: narrow permissions suffice for the site, uploads and a PROXY client",
  ignore: !has.redis || !has.curl,
}, async () => {
  const unit = await Deno.readTextFile(join(DEPLOY, "spindle@.service"));
  const dir = await Deno.makeTempDir();
  const redis = await RedisServer.start();
  const port = freePort();
  let proc: Proc | undefined;
  try {
    await Deno.mkdir(join(dir, "uploads"));
    const argv = execStart(unit).map((arg) =>
      arg.replaceAll("/opt/spindle/", REPO)
        .replaceAll("/var/lib/spindle/%i", dir)
        .replaceAll("%i", String(port))
        .replace("redis://127.0.0.1:6379", redis.url)
    );
    assert.equal(argv[0], "deno");
    // Not --cached-only here: the test's cache is the user's, not /opt's.
    proc = await startSpindle(
      "unit",
      argv.slice(1).filter((a) => a !== "--cached-only"),
    );
    const base = `http://127.0.0.1:${port}`;
    assert.deepEqual(
      await curl(["--haproxy-protocol"], [`${base}/health`, `${base}/`]),
      [200, 200],
    );
    const upload = await output("curl", [
      "-s",
      "--haproxy-protocol",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"from":"the unit"}',
      `${base}/upload`,
    ]);
    assert.equal(upload.stdout, "201", "the state folder is writable");
  } finally {
    await proc?.stop();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy/Containerfile copies files that exist, and its command serves the site and uploads", async () => {
  const file = await Deno.readTextFile(join(DEPLOY, "Containerfile"));
  for (const m of file.matchAll(/^COPY (.+) \S+$/gm)) {
    for (const source of m[1].split(/\s+/)) {
      await Deno.stat(join(REPO, source)); // throws when missing
    }
  }
  const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(file)![1]) as string[];
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(file)![1]) as string[];
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "uploads"));
  const port = freePort();
  const argv = [...entry, ...cmd].map((arg) =>
    arg.replaceAll("/opt/spindle/", REPO)
      .replaceAll("/var/lib/spindle", dir)
      .replace("0.0.0.0", "127.0.0.1")
      .replace("8080", String(port))
  );
  assert.equal(argv[0], "deno");
  const proc = await startSpindle(
    "container",
    argv.slice(1).filter((a) => a !== "--cached-only"),
  );
  try {
    const base = `http://127.0.0.1:${port}`;
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const up = await fetch(`${base}/upload`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"from":"the container"}',
    });
    assert.equal(up.status, 201);
    await up.body?.cancel();
  } finally {
    await proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
