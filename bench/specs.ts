/**
 * The servers the bench runs, each as a spec that turns a port and a log
 * file into a command line: Spindle's default app exactly as `deno task
 * serve` starts it, Spindle's engine alone, the bare `Deno.listen` floor,
 * `Deno.serve` (plain, and echoing WebSockets), `deno serve --parallel` and
 * nginx as shipped.
 */
import { join } from "node:path";
import type { Bench, ServerSpec } from "./measure.ts";
import { nginxConfig } from "./procs.ts";
import { ENGINE_V8_FLAGS } from "../launch.ts";

const REPO_DIR = new URL("..", import.meta.url).pathname;
const SERVERS = new URL("./servers/", import.meta.url).pathname;

/** How the default app is started: which flags, and which static root. */
export interface AppOptions {
  /** Command-line flags a user would add, e.g. `--quiet`. */
  readonly flags?: readonly string[];
  /** Serve the bench's files folder (`--root`) rather than resources/. */
  readonly benchRoot?: boolean;
  /** Name in the table, "Spindle" by default. */
  readonly name?: string;
  /** HTTPS with the bench's certificate (`--cert`, `--key`): HTTP/2 by ALPN. */
  readonly tls?: boolean;
}

/** The bench's self-signed certificate for 127.0.0.1, made once per run. */
export function benchCert(bench: Bench): { cert: string; key: string } {
  const cert = join(bench.tempDir, "tls_cert.pem");
  const key = join(bench.tempDir, "tls_key.pem");
  try {
    Deno.statSync(cert);
  } catch {
    const out = new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (!out.success) {
      throw new Error(
        `openssl could not make the bench certificate: ${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
  }
  return { cert, key };
}

/**
 * Spindle's default app started by `deno task serve` (whatever deno.json's
 * serve task is at run time: a launcher included), with its access log on
 * stdout, appended to a file, unless `--quiet` is among the flags.
 */
export function defaultApp(opts: AppOptions = {}): ServerSpec {
  const name = opts.name ?? "Spindle";
  const flags = opts.flags ?? [];
  // What a user types after `deno task serve`.
  const userArgs = (bench: Bench, port: number) => [
    "--port",
    `${port}`,
    ...(opts.benchRoot ? ["--root", bench.root] : []),
    ...(opts.tls ? tlsFlags(bench) : []),
    ...flags,
  ];
  return {
    name,
    logsAccess: !flags.includes("--quiet"),
    launch: (bench, port, logFile) => ({
      name,
      argv: [Deno.execPath(), "task", "serve", ...userArgs(bench, port)],
      cwd: REPO_DIR,
      port,
      logFile,
    }),
    profiled: (bench, port, logFile, dir) => ({
      name,
      // The engine alone, broad permissions: the launcher cannot pass --cpu-prof.
      argv: [
        Deno.execPath(),
        "run",
        "--cpu-prof",
        `--cpu-prof-dir=${dir}`,
        ...DENO_PERMISSIONS,
        ENGINE_V8_FLAGS, // as the launcher starts it
        join(REPO_DIR, "main.ts"),
        ...userArgs(bench, port),
      ],
      cwd: REPO_DIR,
      port,
      logFile,
    }),
  };
}

/**
 * Spindle's engine started the way the launcher starts it (its lockfile,
 * `--frozen`), but directly and with broad permissions: `deno task serve`
 * without the task and the launcher.
 */
export function engineDirect(opts: AppOptions = {}): ServerSpec {
  const name = opts.name ?? "Spindle main.ts";
  const flags = opts.flags ?? [];
  return {
    name,
    logsAccess: !flags.includes("--quiet"),
    launch: (_bench, port, logFile) => ({
      name,
      argv: [
        Deno.execPath(),
        "run",
        "--no-prompt",
        `--config=${join(REPO_DIR, "deno.json")}`,
        `--lock=${join(REPO_DIR, "deno.lock")}`,
        "--frozen",
        ...DENO_PERMISSIONS,
        ENGINE_V8_FLAGS, // as the launcher starts it
        join(REPO_DIR, "main.ts"),
        "--port",
        `${port}`,
        ...flags,
      ],
      cwd: REPO_DIR,
      port,
      logFile,
    }),
  };
}

function tlsFlags(bench: Bench): string[] {
  const { cert, key } = benchCert(bench);
  return ["--cert", cert, "--key", key];
}

export const DENO_PERMISSIONS = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];

function denoScript(
  name: string,
  script: string,
  permissions: readonly string[],
  profilable = false,
  args: readonly string[] = [],
): ServerSpec {
  const argv = (port: number, extra: readonly string[]) => [
    Deno.execPath(),
    "run",
    ...extra,
    ...permissions,
    join(SERVERS, script),
    `${port}`,
    ...args,
  ];
  return {
    name,
    logsAccess: false,
    launch: (_bench, port, logFile) => ({
      name,
      argv: argv(port, []),
      port,
      logFile,
    }),
    profiled: profilable
      ? (_bench, port, logFile, dir) => ({
        name,
        argv: argv(port, ["--cpu-prof", `--cpu-prof-dir=${dir}`]),
        port,
        logFile,
      })
      : undefined,
  };
}

/** Spindle's engine with a fixed "hello" reply: no router, no access log. */
export function engineHello(): ServerSpec {
  return denoScript(
    "Spindle engine",
    "spindle_hello.ts",
    DENO_PERMISSIONS,
    true,
  );
}

/** The floor: a bare `Deno.listen` read/write loop, no HTTP. */
export function bareLoop(): ServerSpec {
  return denoScript("bare loop", "bare_loop.ts", ["--allow-net"]);
}

/**
 * The bare loop plus the engine's own `parseHead()` and reply writer, and
 * nothing else: the least any strict HTTP/1.1 server in JavaScript costs.
 */
export function parseReplyLoop(): ServerSpec {
  return denoScript("parse+reply loop", "parse_reply_loop.ts", ["--allow-net"]);
}

/**
 * The floor for `--workers`: the bare loop in `workers` Worker threads on
 * one port, shared with reusePort (bench/servers/bare_loop_workers.ts).
 */
export function bareLoopWorkers(workers: number): ServerSpec {
  return denoScript(
    `bare loop (${workers} workers)`,
    "bare_loop_workers.ts",
    // A Worker's module is read as a file.
    ["--unstable-net", "--allow-net", `--allow-read=${SERVERS}`],
    false,
    [`${workers}`],
  );
}

/** `Deno.serve` answering "hello" (no access log: Deno.serve has none). */
export function denoServeHello(): ServerSpec {
  return denoScript("Deno.serve", "deno_serve_hello.ts", ["--allow-net"]);
}

/**
 * A launcher's floor: a bare Deno process starting the Deno.serve hello in
 * a second one, as launch.ts starts main.ts.
 */
export function relayHello(): ServerSpec {
  return denoScript("2 x deno run", "relay_hello.ts", [
    "--allow-run",
    "--allow-net",
    "--allow-read",
  ]);
}

/** `Deno.serve` with `Deno.upgradeWebSocket`, echoing every message on any path. */
export function denoServeWs(): ServerSpec {
  return denoScript("Deno.serve", "deno_serve_ws.ts", ["--allow-net"]);
}

/**
 * The WebSocket floor: a bare Deno.listen loop echoing each frame with no
 * checks (bench/servers/ws_floor.ts): a small one with one read and one
 * write, a big one read into a fresh buffer, unmasked by the engine's
 * `unmask()`, copied behind its header into a kept buffer and written.
 */
export function wsFloor(): ServerSpec {
  return denoScript("ws floor", "ws_floor.ts", ["--allow-net"]);
}

/**
 * The web API's WebSocket floor: the floor's loop plus the string, the
 * `MessageEvent`, the handler and `send()`'s encoding a web-API socket
 * must give each message (bench/servers/ws_floor_web.ts).
 */
export function wsFloorWeb(): ServerSpec {
  return denoScript("ws web floor", "ws_floor_web.ts", ["--allow-net"]);
}

/**
 * Spindle's engine and router echoing through the web API (`onmessage`, a
 * `MessageEvent` a message; bench/servers/spindle_ws_web.ts), with the V8
 * flags the launcher gives the engine.
 */
export function spindleWsWeb(): ServerSpec {
  return denoScript("Spindle web API", "spindle_ws_web.ts", [
    ENGINE_V8_FLAGS,
    ...DENO_PERMISSIONS,
  ]);
}

/** `Deno.serve` over TLS answering "hello": HTTP/2 by ALPN (hyper's h2). */
export function denoServeTls(): ServerSpec {
  const name = "Deno.serve (TLS)";
  return {
    name,
    logsAccess: false,
    launch: (bench, port, logFile) => {
      const { cert, key } = benchCert(bench);
      return {
        name,
        argv: [
          Deno.execPath(),
          "run",
          "--allow-net",
          `--allow-read=${bench.tempDir}`,
          join(SERVERS, "deno_serve_tls.ts"),
          `${port}`,
          cert,
          key,
        ],
        port,
        logFile,
      };
    },
  };
}

/** `deno serve --parallel` with `workers` copies of a "hello" app. */
export function denoServeParallel(workers: number): ServerSpec {
  const name = `deno serve --parallel (${workers})`;
  return {
    name,
    logsAccess: false,
    launch: (_bench, port, logFile) => ({
      name,
      argv: [
        Deno.execPath(),
        "serve",
        "--parallel",
        "--allow-net",
        "--host",
        "127.0.0.1",
        "--port",
        `${port}`,
        join(SERVERS, "deno_serve_parallel.ts"),
      ],
      env: { DENO_JOBS: `${workers}` },
      port,
      logFile,
    }),
  };
}

/** nginx as shipped: see {@link nginxConfig}; `tls`: HTTPS with HTTP/2. */
export function nginx(tls = false): ServerSpec {
  return {
    name: tls ? "nginx (h2)" : "nginx",
    // It logs, but through a 64 KiB buffer: a short run may show no growth.
    logsAccess: false,
    launch: (bench: Bench, port, logFile) => {
      const dir = join(bench.tempDir, `nginx_${port}`);
      Deno.mkdirSync(dir, { recursive: true });
      const conf = join(dir, "nginx.conf");
      Deno.writeTextFileSync(
        conf,
        nginxConfig(
          dir,
          bench.root,
          port,
          Deno.uid() === 0,
          tls
            ? { ...benchCert(bench), version: nginxVersionSync() }
            : undefined,
        ),
      );
      return {
        name: "nginx",
        argv: [
          "nginx",
          "-p",
          dir,
          "-e",
          join(dir, "error.log"),
          "-c",
          conf,
          "-g",
          "daemon off;",
        ],
        port,
        logFile,
        accessLog: join(dir, "access.log"),
      };
    },
  };
}

/** `nginx -v`, as "nginx/1.22.1". */
function nginxVersionSync(): string {
  const out = new Deno.Command("nginx", { args: ["-v"], stdout: "null" })
    .outputSync();
  return new TextDecoder().decode(out.stderr).trim().replace(
    /^nginx version: /,
    "",
  );
}
