/**
 * The servers the bench runs, each as a spec that turns a port and a log
 * file into a command line: Spindle's default app exactly as `deno task
 * serve` starts it, Spindle's engine alone, the bare `Deno.listen` floor,
 * `Deno.serve`, `deno serve --parallel` and nginx as shipped.
 */
import { join } from "node:path";
import type { Bench, ServerSpec } from "./measure.ts";
import { nginxConfig } from "./procs.ts";

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
        join(REPO_DIR, "main.ts"),
        ...userArgs(bench, port),
      ],
      cwd: REPO_DIR,
      port,
      logFile,
    }),
  };
}

const DENO_PERMISSIONS = [
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
): ServerSpec {
  const argv = (port: number, extra: readonly string[]) => [
    Deno.execPath(),
    "run",
    ...extra,
    ...permissions,
    join(SERVERS, script),
    `${port}`,
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

/** `Deno.serve` answering "hello" (no access log: Deno.serve has none). */
export function denoServeHello(): ServerSpec {
  return denoScript("Deno.serve", "deno_serve_hello.ts", ["--allow-net"]);
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

/** nginx as shipped: see {@link nginxConfig}. */
export function nginx(): ServerSpec {
  return {
    name: "nginx",
    // It logs, but through a 64 KiB buffer: a short run may show no growth.
    logsAccess: false,
    launch: (bench: Bench, port, logFile) => {
      const dir = join(bench.tempDir, `nginx_${port}`);
      Deno.mkdirSync(dir, { recursive: true });
      const conf = join(dir, "nginx.conf");
      Deno.writeTextFileSync(
        conf,
        nginxConfig(dir, bench.root, port, Deno.uid() === 0),
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
