/**
 * `deno task fleet`: HAProxy (deploy/haproxy.cfg, as it is) in front of
 * Spindle instances on loopback that share one rate limit in Redis. Under
 * steady wrk load it restarts the instances one by one (SIGTERM: /health
 * turns 503, HAProxy takes the instance out, it drains and exits, a new one
 * takes its port and comes back) and reports the failed requests, whether
 * the shared limit held for one client across instances, and the client
 * addresses each instance logged, which the PROXY header carried.
 *
 *   deno task fleet [--seconds 10] [--connections 64] [--threads 2]
 *
 * Clients: wrk connects from 127.0.0.1 and names a fresh client per
 * request in X-Forwarded-For (198.18.0.0/15, the benchmarking range), which
 * Spindle believes because 127.0.0.1 is a --trust-proxy peer: wrk plays a
 * CDN in front of HAProxy, its load spread over 131,072 clients that each
 * stay far under the limit. The rate-limit probes are curl from other
 * loopback addresses (127.0.0.10 and up), straight to HAProxy: one client
 * each, whose address only the PROXY header can tell the instances.
 */
import { join } from "node:path";
import {
  freePort,
  hasCommand,
  Proc,
  RedisServer,
  REPO,
  spindleArgs,
  startSpindle,
  until,
} from "./procs.ts";

export interface FleetOptions {
  readonly instances: number;
  /** Seconds of steady load before the rolling restart (the req/s figure). */
  readonly steadySeconds: number;
  readonly connections: number;
  readonly threads: number;
  /** The rate limit every instance shares. */
  readonly limit: number;
  readonly windowSeconds: number;
  /** Requests each probe sends from its one address. */
  readonly probeRequests: number;
  readonly drainDelayMs: number;
  /** `--rate-limit-store-timeout`: past it a check counts as failed. */
  readonly storeTimeoutMs: number;
  /** HAProxy's health check interval; one failed check takes an instance out. */
  readonly checkInterMs: number;
  /** Progress lines. */
  readonly log: (line: string) => void;
}

export const FLEET_DEFAULTS: FleetOptions = {
  instances: 3,
  steadySeconds: 10,
  connections: 64,
  threads: 2,
  limit: 100,
  windowSeconds: 600, // a probe (about a second) rarely straddles a window edge
  probeRequests: 150,
  // Above the check interval by far: the instance is out long before its
  // listener closes, even when a check waits on a busy machine.
  drainDelayMs: 1500,
  storeTimeoutMs: 200, // Spindle's default
  checkInterMs: 100,
  log: (line) => console.log(line),
};

/** What wrk counted. */
export interface LoadFigures {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  /** Replies by status. */
  readonly statuses: Record<string, number>;
  /** Socket errors: connect, read, write, timeout. */
  readonly socketErrors: number;
  /** Socket errors plus replies other than 200. */
  readonly failed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** One rate-limit probe: one client, many requests, round-robin over the instances. */
export interface Probe {
  readonly when: string;
  readonly address: string;
  readonly sent: number;
  readonly allowed: number;
  readonly refused: number;
  /** Other statuses (none expected). */
  readonly other: number;
  /** How many instances logged this client. */
  readonly instancesSeen: number;
}

export interface Restart {
  readonly server: string;
  /** From SIGTERM until HAProxy marked it DOWN. */
  readonly outMs: number;
  /** From SIGTERM until the old process exited. */
  readonly exitMs: number;
  /** From the exit until HAProxy marked the new one UP. */
  readonly backMs: number;
  readonly exitCode: number;
}

export interface FleetResult {
  readonly steady: LoadFigures;
  readonly rolling: LoadFigures;
  readonly restarts: Restart[];
  readonly probes: Probe[];
  /** Client addresses in each server's access lines (old and new process). */
  readonly clients: Record<string, string[]>;
  /** Access lines whose client is neither wrk, a health check, nor a probe. */
  readonly strangers: string[];
  /** HAProxy's own retries and redispatches (each one a request it saved). */
  readonly haproxyRetries: number;
  readonly haproxyRedispatches: number;
  /** "Rate limit store unreachable" lines: checks that fell back to local counts. */
  readonly storeOutages: string[];
  readonly versions: string;
}

/** Tools the fleet needs, missing ones named; empty when all are there. */
export async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (
    const [cmd, arg] of [
      ["haproxy", "-v"],
      ["redis-server", "--version"],
      ["wrk", "-v"],
      ["curl", "--version"],
    ]
  ) {
    if (!(await hasCommand(cmd, arg))) missing.push(cmd);
  }
  return missing;
}

const WRK_SCRIPT = `
local threads = {}
local count = 0
function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
  math.randomseed(id * 7919)
end
function request()
  local a = math.random(0, 131071)
  return wrk.format(nil, nil, {
    ["Host"] = wrk.headers["Host"],
    ["X-Forwarded-For"] = (198 .. "." .. (18 + math.floor(a / 65536)) .. "." ..
      (math.floor(a / 256) % 256) .. "." .. (a % 256)),
  })
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do all[k] = (all[k] or 0) + v end
  end
  io.write("FLEET-STATUSES")
  for k, v in pairs(all) do io.write(" ", k, "=", v) end
  io.write("\\n")
  local e = summary.errors
  io.write(string.format(
    "FLEET-SUMMARY requests=%d us=%d connect=%d read=%d write=%d timeout=%d p50=%d p99=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

/** Reads the summary lines the script above prints. */
export function parseWrk(text: string): LoadFigures {
  const statusLine = /^FLEET-STATUSES(.*)$/m.exec(text);
  const summary = /^FLEET-SUMMARY (.*)$/m.exec(text);
  if (statusLine === null || summary === null) {
    throw new Error(`wrk printed no summary:\n${text}`);
  }
  const statuses: Record<string, number> = {};
  for (const pair of statusLine[1].trim().split(" ").filter(Boolean)) {
    const [k, v] = pair.split("=");
    statuses[k] = Number(v);
  }
  const f: Record<string, number> = {};
  for (const pair of summary[1].split(" ")) {
    const [k, v] = pair.split("=");
    f[k] = Number(v);
  }
  const socketErrors = f.connect + f.read + f.write + f.timeout;
  const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
  const seconds = f.us / 1e6;
  return {
    requests: f.requests,
    seconds,
    rps: Math.round(f.requests / seconds),
    statuses,
    socketErrors,
    failed: socketErrors + (answered - (statuses["200"] ?? 0)),
    p50Ms: f.p50 / 1000,
    p99Ms: f.p99 / 1000,
  };
}

/** HAProxy's stats as CSV rows, keyed `proxy/server` (`www/FRONTEND`, `spindle/s1`). */
async function haproxyStats(
  statsPort: number,
): Promise<Map<string, Record<string, string>>> {
  const res = await fetch(`http://127.0.0.1:${statsPort}/;csv;norefresh`);
  const text = await res.text();
  const [head, ...rows] = text.trim().split("\n");
  const names = head.replace(/^# /, "").split(",");
  const out = new Map<string, Record<string, string>>();
  for (const row of rows) {
    const cells = row.split(",");
    const rec: Record<string, string> = {};
    names.forEach((n, i) => rec[n] = cells[i]);
    out.set(`${rec.pxname}/${rec.svname}`, rec);
  }
  return out;
}

async function serverStatus(statsPort: number, name: string): Promise<string> {
  try {
    return (await haproxyStats(statsPort)).get(`spindle/${name}`)?.status ??
      "?";
  } catch {
    return "?"; // HAProxy not answering yet
  }
}

/** `curl` from `address`: `count` requests on one connection; their statuses. */
async function probe(
  address: string,
  url: string,
  count: number,
): Promise<number[]> {
  const args = ["-s", "--interface", address, "-w", "%{http_code}\\n"];
  for (let i = 0; i < count; i++) args.push("-o", "/dev/null", url);
  const out = await new Deno.Command("curl", { args, stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").map(Number);
}

/** Runs the fleet; everything it started is stopped before it returns. */
export async function runFleet(
  options: Partial<FleetOptions> = {},
): Promise<FleetResult> {
  const o: FleetOptions = { ...FLEET_DEFAULTS, ...options };
  const work = await Deno.makeTempDir({ prefix: "spindle-fleet-" });
  const uploads = join(work, "uploads");
  await Deno.mkdir(uploads);
  const root = join(REPO, "resources");
  const script = join(work, "fleet.lua");
  await Deno.writeTextFile(script, WRK_SCRIPT);
  const procs: Proc[] = [];
  let redis: RedisServer | undefined;
  let haproxy: Proc | undefined;
  try {
    redis = await RedisServer.start();
    const ports = Array.from({ length: o.instances }, () => freePort());
    const names = ports.map((_, i) => `s${i + 1}`);
    const frontPort = freePort();
    const statsPort = freePort();
    const flags = (port: number) => [
      ...spindleArgs(root, uploads),
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--allowed-hosts",
      "127.0.0.1,localhost",
      "--trust-proxy",
      "loopback",
      "--proxy-protocol",
      "--rate-limit",
      `${o.limit}/${o.windowSeconds}s`,
      "--rate-limit-store",
      redis!.url,
      "--rate-limit-store-timeout",
      `${o.storeTimeoutMs}ms`,
      "--drain-delay",
      `${o.drainDelayMs}ms`,
      "--log-format",
      "json",
    ];
    const current = await Promise.all(
      ports.map((port, i) => startSpindle(names[i], flags(port))),
    );
    procs.push(...current);
    const env: Record<string, string> = {
      SPINDLE_BIND: `127.0.0.1:${frontPort}`,
      SPINDLE_STATS: `127.0.0.1:${statsPort}`,
      SPINDLE_CHECK_INTER: `${o.checkInterMs}ms`,
      SPINDLE_CHECK_FALL: "1",
    };
    ports.forEach((port, i) => env[`SPINDLE_${i + 1}`] = `127.0.0.1:${port}`);
    haproxy = new Proc("haproxy", "haproxy", [
      "-db",
      "-f",
      join(REPO, "deploy", "haproxy.cfg"),
    ], { env });
    const allUp = async () => {
      for (const n of names) {
        if (await serverStatus(statsPort, n) !== "UP") return false;
      }
      return true;
    };
    await until(allUp, "HAProxy to see every instance UP");
    o.log(`fleet: ${o.instances} instances UP behind HAProxy :${frontPort}`);

    const url = `http://127.0.0.1:${frontPort}/hello.txt`;
    const probes: Probe[] = [];
    let nextAddress = 10;
    const runProbe = async (when: string) => {
      const address = `127.0.0.${nextAddress++}`;
      const statuses = await probe(address, url, o.probeRequests);
      const p = {
        when,
        address,
        sent: statuses.length,
        allowed: statuses.filter((s) => s === 200).length,
        refused: statuses.filter((s) => s === 429).length,
        other: statuses.filter((s) => s !== 200 && s !== 429).length,
        instancesSeen: 0,
      };
      probes.push(p);
      o.log(
        `fleet: probe ${address} (${when}): ${p.allowed} allowed of ${p.sent}`,
      );
    };
    const wrk = (seconds: number) =>
      new Proc("wrk", "wrk", [
        "-t",
        String(o.threads),
        "-c",
        String(o.connections),
        "-d",
        `${seconds}s`,
        "--latency",
        "-s",
        script,
        url,
      ]);

    await runProbe("all up, no load");
    o.log(`fleet: steady load for ${o.steadySeconds} s`);
    const steadyProc = wrk(o.steadySeconds);
    await steadyProc.exited((o.steadySeconds + 60) * 1000);
    const steady = parseWrk(steadyProc.lines.join("\n"));
    o.log(`fleet: steady ${steady.rps} req/s, ${steady.failed} failed`);

    // The rolling restart, under load until the last instance is back.
    const rollingProc = wrk(3600);
    // wrk's output is buffered in a pipe: watch its requests reach HAProxy.
    const requestsSoFar = async () =>
      Number((await haproxyStats(statsPort)).get("www/FRONTEND")?.req_tot);
    const before = await requestsSoFar();
    await until(
      async () => await requestsSoFar() > before + o.connections,
      "wrk's requests to arrive",
    );
    const restarts: Restart[] = [];
    for (let i = 0; i < o.instances; i++) {
      const name = names[i];
      const old = current[i];
      const t0 = performance.now();
      old.signal("SIGTERM");
      await until(
        async () => (await serverStatus(statsPort, name)).startsWith("DOWN"),
        `HAProxy to take ${name} out`,
      );
      const outMs = performance.now() - t0;
      const exitCode = await old.exited();
      const exitMs = performance.now() - t0;
      current[i] = await startSpindle(name, flags(ports[i]));
      procs.push(current[i]);
      try {
        await until(
          async () => (await serverStatus(statsPort, name)) === "UP",
          `HAProxy to bring ${name} back`,
        );
      } catch (err) {
        throw new Error(
          `${(err as Error).message} (${await serverStatus(
            statsPort,
            name,
          )}):\n${haproxy.tail()}\n${current[i].tail(5)}`,
        );
      }
      const backMs = performance.now() - t0 - exitMs;
      restarts.push({ server: name, outMs, exitMs, backMs, exitCode });
      o.log(
        `fleet: ${name} out after ${outMs.toFixed(0)} ms, exited ${
          exitMs.toFixed(0)
        } ms (code ${exitCode}), back ${backMs.toFixed(0)} ms later`,
      );
      await runProbe(`after restarting ${name}, under load`);
    }
    rollingProc.signal("SIGINT"); // wrk prints its summary on SIGINT
    await rollingProc.exited();
    const rolling = parseWrk(rollingProc.lines.join("\n"));
    o.log(
      `fleet: rolling restart ${rolling.requests} requests, ${rolling.failed} failed`,
    );

    const stats = await haproxyStats(statsPort);
    let retries = 0;
    let redispatches = 0;
    for (const [key, rec] of stats) {
      if (!key.startsWith("spindle/s")) continue;
      retries += Number(rec.wretr) || 0;
      redispatches += Number(rec.wredis) || 0;
    }

    // Who each server's access lines name, across its old and new process.
    const probeAddresses = new Set(probes.map((p) => p.address));
    const clients: Record<string, Set<string>> = {};
    const strangers: string[] = [];
    const storeOutages: string[] = [];
    for (const proc of procs) {
      const seen = clients[proc.name] ??= new Set();
      for (const line of proc.lines) {
        if (line.includes("Rate limit store")) {
          storeOutages.push(`${proc.name}: ${JSON.parse(line).message}`);
        }
        if (!line.includes('"spindle.access"')) continue;
        const client = JSON.parse(line).properties.client as string;
        seen.add(client);
        if (client !== "127.0.0.1" && !probeAddresses.has(client)) {
          strangers.push(`${proc.name}: ${line}`);
        }
      }
    }
    const seenBy = (address: string) =>
      Object.values(clients).filter((s) => s.has(address)).length;
    const versions = [
      (await haproxyVersion()) ?? "haproxy ?",
      (await redis.cli("INFO", "server")).match(/redis_version:(\S+)/)?.[0] ??
        "redis ?",
      `deno ${Deno.version.deno}`,
    ].join(", ");
    return {
      steady,
      rolling,
      restarts,
      probes: probes.map((p) => ({
        ...p,
        instancesSeen: seenBy(p.address),
      })),
      clients: Object.fromEntries(
        Object.entries(clients).map(([k, v]) => [k, [...v].sort()]),
      ),
      strangers,
      haproxyRetries: retries,
      haproxyRedispatches: redispatches,
      storeOutages,
      versions,
    };
  } finally {
    await haproxy?.stop("SIGTERM");
    await Promise.all(procs.map((p) => p.stop("SIGTERM")));
    await redis?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

async function haproxyVersion(): Promise<string | undefined> {
  const out = await new Deno.Command("haproxy", {
    args: ["-v"],
    stdout: "piped",
  })
    .output();
  return /HAProxy version (\S+)/.exec(new TextDecoder().decode(out.stdout))
    ?.[0];
}

/** The problems with a fleet run; empty when it showed what it should. */
export function judge(r: FleetResult, o: Partial<FleetOptions> = {}): string[] {
  const { limit, instances } = { ...FLEET_DEFAULTS, ...o };
  const problems: string[] = [];
  if (r.steady.failed > 0) {
    problems.push(`${r.steady.failed} failed in steady load`);
  }
  if (r.rolling.failed > 0) {
    problems.push(`${r.rolling.failed} failed during the rolling restart`);
  }
  if (r.restarts.length !== instances) {
    problems.push("not every instance restarted");
  }
  for (const x of r.restarts) {
    if (x.exitCode !== 0) {
      problems.push(`${x.server} exited with ${x.exitCode}`);
    }
    if (x.outMs > x.exitMs) {
      problems.push(`${x.server} exited before it was out`);
    }
  }
  for (const p of r.probes) {
    // One window edge inside a probe lets through at most a request or two more.
    if (p.allowed < limit || p.allowed > limit + 2 || p.other > 0) {
      problems.push(
        `probe ${p.address}: ${p.allowed} allowed, ${p.other} other of ${p.sent} (limit ${limit})`,
      );
    }
    if (p.instancesSeen < 2) {
      problems.push(
        `probe ${p.address} reached ${p.instancesSeen} instance(s)`,
      );
    }
  }
  if (r.strangers.length > 0) {
    problems.push(`${r.strangers.length} access lines name another client`);
  }
  for (const line of r.storeOutages) problems.push(`store: ${line}`);
  return problems;
}

/** The run as Markdown, for the README and the terminal. */
export function report(r: FleetResult): string {
  const lines = [
    `Fleet: ${r.restarts.length} Spindle instances behind HAProxy, one rate limit in Redis (${r.versions})`,
    "",
    "| Phase | Requests | req/s | p50 | p99 | Failed |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (
    const [name, f] of [["Steady", r.steady], [
      "Rolling restart",
      r.rolling,
    ]] as const
  ) {
    lines.push(
      `| ${name} | ${f.requests} | ${f.rps} | ${f.p50Ms.toFixed(1)} ms | ${
        f.p99Ms.toFixed(1)
      } ms | ${f.failed} |`,
    );
  }
  lines.push(
    "",
    "| Restart | Out of HAProxy | Exited | Back UP after exit |",
    "| --- | ---: | ---: | ---: |",
  );
  for (const x of r.restarts) {
    lines.push(
      `| ${x.server} | ${x.outMs.toFixed(0)} ms | ${x.exitMs.toFixed(0)} ms | ${
        x.backMs.toFixed(0)
      } ms |`,
    );
  }
  lines.push(
    "",
    "| Probe (one client) | When | Allowed | Refused (429) | Instances that logged it |",
    "| --- | --- | ---: | ---: | ---: |",
  );
  for (const p of r.probes) {
    lines.push(
      `| ${p.address} | ${p.when} | ${p.allowed} of ${p.sent} | ${p.refused} | ${p.instancesSeen} |`,
    );
  }
  lines.push(
    "",
    `HAProxy retries ${r.haproxyRetries}, redispatches ${r.haproxyRedispatches}.`,
    `Clients in the access logs: ${
      Object.entries(r.clients).map(([k, v]) => `${k}: ${v.join(" ")}`).join(
        "; ",
      )
    }; lines naming any other client: ${r.strangers.length}.`,
  );
  return lines.join("\n");
}

if (import.meta.main) {
  const args = Deno.args;
  const num = (flag: string, d: number) => {
    const i = args.indexOf(flag);
    return i === -1 ? d : Number(args[i + 1]);
  };
  const missing = await missingTools();
  if (missing.length > 0) {
    console.error(`fleet: cannot run without ${missing.join(", ")}`);
    Deno.exit(2);
  }
  const options = {
    steadySeconds: num("--seconds", FLEET_DEFAULTS.steadySeconds),
    connections: num("--connections", FLEET_DEFAULTS.connections),
    threads: num("--threads", FLEET_DEFAULTS.threads),
  };
  const result = await runFleet(options);
  console.log("\n" + report(result));
  const problems = judge(result, options);
  for (const p of problems) console.error(`fleet: FAIL: ${p}`);
  if (result.strangers.length > 0) {
    console.error(result.strangers.slice(0, 5).join("\n"));
  }
  Deno.exit(problems.length === 0 ? 0 : 1);
}
