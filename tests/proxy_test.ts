/**
 * nginx with a pool of kept-alive upstream connections in front of an
 * engine at its connection cap (issue #9, point 4): a slot must change
 * hands by a reply that says Connection: close, never by closing a
 * connection the proxy is about to reuse, which nginx reports as 502
 * "upstream prematurely closed connection".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serve } from "../lib/http/server.ts";
import { hasTool, run, sleep } from "./helpers/socket.ts";
import { freePort } from "../deploy/procs.ts";

const tools = await hasTool("nginx", "-v") && await hasTool("wrk", "-v");
if (!tools) console.log("skipped: nginx or wrk is not installed");

function nginxConf(port: number, upstream: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log error;
events { worker_connections 1024; }
http {
  log_format status '$status $upstream_status';
  access_log access.log status;
  client_body_temp_path tmp;
  proxy_temp_path tmp;
  upstream engine {
    server 127.0.0.1:${upstream};
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://engine;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

const POST_LUA = `wrk.method = "POST"
wrk.body = '{"name":"x","value":"0123456789012345678901234567890123456789"}'
wrk.headers["Content-Type"] = "application/json"
`;

Deno.test({
  name:
    "serve() at its cap behind nginx (keepalive 32, 64 clients, 8 slots) gives no 502",
  ignore: !tools,
  fn: async () => {
    await using server = serve({
      port: 0,
      accessLog: false,
      limits: { maxConns: 8 },
    }, async (req) => ({
      status: 200,
      headers: { "content-type": "application/json" },
      body: `{"got":${(await req.body.bytes()).length}}`,
    }));
    const dir = await Deno.makeTempDir();
    const port = freePort();
    await Deno.mkdir(join(dir, "tmp"));
    await Deno.writeTextFile(
      join(dir, "nginx.conf"),
      nginxConf(port, server.port),
    );
    await Deno.writeTextFile(join(dir, "post.lua"), POST_LUA);
    const nginx = new Deno.Command("nginx", {
      args: ["-p", `${dir}/`, "-c", "nginx.conf"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      for (const until = Date.now() + 15_000;;) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          break;
        } catch (err) {
          if (Date.now() > until) throw err;
          await sleep(20);
        }
      }
      // Watch the queue while the load runs: the cap must really be reached.
      let maxQueued = 0;
      let loading = true;
      const watching = (async () => {
        while (loading) {
          maxQueued = Math.max(maxQueued, server.stats.queued);
          await sleep(5);
        }
      })();
      const wrk = await run("wrk", [
        "-t1",
        "-c64",
        "-d3s",
        "-s",
        join(dir, "post.lua"),
        `http://127.0.0.1:${port}/`,
      ], 30_000);
      loading = false;
      await watching;
      assert.equal(wrk.code, 0, wrk.stderr);
      const requests = Number(/(\d+) requests in/.exec(wrk.stdout)?.[1]);
      assert.ok(requests > 500, `too little load to judge: ${wrk.stdout}`);
      assert.ok(maxQueued > 0, "the engine never reached its cap");
      // Statuses as nginx saw them. 499 is wrk hanging up at the end.
      const log = await Deno.readTextFile(join(dir, "access.log"));
      const statuses = new Map<string, number>();
      for (const line of log.split("\n").filter((l) => l !== "")) {
        const status = line.split(" ")[0];
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      const summary = JSON.stringify(Object.fromEntries(statuses));
      assert.equal(statuses.get("502") ?? 0, 0, summary);
      assert.ok((statuses.get("200") ?? 0) >= requests - 64, summary);
      assert.doesNotMatch(wrk.stdout, /Non-2xx/, wrk.stdout);
    } finally {
      try {
        nginx.kill("SIGKILL");
      } catch { /* exited */ }
      await nginx.status;
      await nginx.stderr.cancel();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
