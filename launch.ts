/**
 * `deno task serve`: starts the engine (main.ts) in its own Deno process with
 * exactly the permissions its flags need: read the folders and files they
 * name, write the uploads and --directory folders, listen on the one
 * address. Deno cannot narrow a broad grant from inside (revoking a path
 * under a bare --allow-read changes nothing), so the narrowing happens here,
 * before the engine starts. Signals go on to the engine; its exit code is ours.
 *
 * The launcher runs with --allow-run (it starts Deno itself) and --allow-read
 * (it resolves links in the folders' paths); no net, no write, and it never
 * reads a request. It imports no npm package, to start in milliseconds.
 */
import { permissionFlags, planAccess, UngrantablePath } from "./lib/access.ts";
import {
  type CliOptions,
  helpText,
  parseFlags,
  UsageError,
} from "./lib/config.ts";

/** The folder holding launch.ts, main.ts and deno.json. No node:path: see lib/access.ts. */
const HERE = decodeURIComponent(new URL(".", import.meta.url).pathname)
  .replace(/\/$/, "");

/** Signals the engine must see too: Ctrl-C, a service manager, a closed terminal. */
const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** How often the launcher checks that its parent still runs (one getppid call). */
const PARENT_CHECK_MS = 500;

function realPath(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined; // missing: the engine says so, with exit 2
  }
}

/** The `deno run` arguments that start the engine for `opts`. */
export function engineArgs(
  opts: CliOptions,
  args: readonly string[],
): string[] {
  return [
    "run",
    "--no-prompt", // a missing permission throws; it never waits for a "y"
    "--unstable-net", // reusePort for --workers
    `--config=${HERE}/deno.json`,
    // The serve path's own lockfile: pinned, and without test-only packages.
    `--lock=${HERE}/deno.lock`,
    "--frozen",
    ...permissionFlags(planAccess(opts, HERE), realPath),
    `${HERE}/main.ts`,
    ...args,
  ];
}

/**
 * The soft limit on open files the engine inherits, from the shell: Deno
 * lets nothing short of -A read /proc/self/limits, so the engine cannot
 * learn it itself before it runs out. Undefined when unknown or unlimited.
 */
export async function openFileLimit(): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", "ulimit -n"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `args` with `--max-fds=limit` in front, after a leading `--`: a
 * `--max-fds` the user gave comes later and wins.
 */
export function withFileLimit(
  args: readonly string[],
  limit: number | undefined,
): string[] {
  if (limit === undefined) return [...args];
  const lead = args[0] === "--" ? 1 : 0;
  return [...args.slice(0, lead), `--max-fds=${limit}`, ...args.slice(lead)];
}

/** Runs the engine until it exits; returns its exit code. */
export async function launch(args: readonly string[]): Promise<number> {
  let engine: string[];
  try {
    const opts = parseFlags(args);
    if (opts.help) {
      console.log(helpText());
      return 0;
    }
    // Known up front, the descriptor budget holds from the first socket,
    // and HTTPS may use node's faster listener (lib/http/tls.ts).
    engine = engineArgs(opts, withFileLimit(args, await openFileLimit()));
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof UngrantablePath)) {
      throw err;
    }
    console.error(`spindle: ${err.message}`);
    return 2;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: engine,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forward = (signal: Deno.Signal) => () => {
    try {
      child.kill(signal);
    } catch {
      // Already gone: its status is on the way.
    }
  };
  // Kept until exit: deno task forwards a Ctrl-C the launcher also got from
  // the terminal, and a copy arriving after the engine ended must not kill
  // the launcher with 130.
  for (const s of FORWARDED) Deno.addSignalListener(s, forward(s));
  // `deno task` killed on its own (SIGKILL, or a SIGTERM sent to it alone by
  // `docker stop` or kill) would leave the engine holding the port: when our
  // parent is gone, stop the engine as SIGTERM would.
  const parent = Deno.ppid;
  const orphaned = setInterval(() => {
    if (Deno.ppid === parent) return;
    clearInterval(orphaned);
    forward("SIGTERM")();
  }, PARENT_CHECK_MS);
  try {
    return (await child.status).code;
  } finally {
    clearInterval(orphaned);
  }
}

if (import.meta.main) Deno.exit(await launch(Deno.args));
