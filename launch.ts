/**
 * `deno task serve`: starts the engine (main.ts) in its own Deno process with
 * exactly the permissions its flags need: read the folders and files they
 * name, write the uploads and --directory folders, listen on the one
 * address. Deno cannot narrow a broad grant from inside (revoking a path
 * under a bare --allow-read changes nothing), so the narrowing happens here,
 * before the engine starts. Signals go on to the engine; its exit code is ours.
 * SIGUSR2 upgrades without a refused connection: a fresh engine, the code
 * on disk now, shares the port (--takeover), then the old one drains.
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
} from "./lib/cli.ts";
import { COLLECTOR_GLOBAL } from "./lib/http/ws/collect.ts";

/** The folder holding launch.ts, main.ts and deno.json. No node:path: see lib/access.ts. */
const HERE = decodeURIComponent(new URL(".", import.meta.url).pathname)
  .replace(/\/$/, "");

/** Signals the engine must see too: Ctrl-C, a service manager, a reload (SIGHUP). */
const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
/** An upgrade: a fresh engine, the program as it is on disk now, takes the port over. */
const UPGRADE: Deno.Signal = "SIGUSR2";

/** How often the launcher checks that its parent still runs (one getppid call). */
const PARENT_CHECK_MS = 500;

function realPath(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined; // missing: the engine says so, with exit 2
  }
}

/**
 * The engine's V8 flags: V8's gc under a name of ours, for minor
 * collections as big WebSocket messages come in (lib/http/ws/collect.ts).
 * deno.json's serve task gives the launcher the same: V8 takes cached code
 * only from a process with the same flags, and the launcher loads some of
 * the engine's modules (lib/cli.ts), so with different flags each start
 * threw away and rewrote the other's cached code (start to first answer
 * ~150 -> ~250 ms, bench case 11).
 */
export const ENGINE_V8_FLAGS = `--v8-flags=--expose-gc-as=${COLLECTOR_GLOBAL}`;

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
    ENGINE_V8_FLAGS,
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

/**
 * glibc's malloc settings for the engine (`GLIBC_TUNABLES`). An
 * ArrayBuffer's memory comes from malloc, and V8 frees the dead ones only
 * when it collects, about every 64 MiB of them (its external-memory
 * limit). By default glibc then gives that memory back to the kernel
 * (its trim threshold follows the biggest chunk freed: ~512 KiB after a
 * 256 KiB one) and takes fresh pages for the next buffers, so each of
 * them is page-faulted in and cleared by the kernel again: a WebSocket
 * echo of 256 KiB messages spent ~30 µs a message on it. Kept instead, up
 * to 128 MiB (twice what V8 lets die between two collections), the next
 * buffers reuse it. Not 64 MiB: a collection frees that much or a little
 * more at once, and about half the processes (by where their heap's live
 * chunks lie) then trim at every collection, ~20 faults per 256 KiB
 * message, as if nothing were set. Buffers up to 32 MiB (glibc's own
 * highest dynamic mmap threshold) come from the heap from the start, not
 * from mmap() and munmap() each time.
 */
export const MALLOC_TUNABLES =
  "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728";

/** glibc's older names for malloc settings: any of them set, we leave malloc alone. */
export const MALLOC_ENV_NAMES = [
  "MALLOC_MMAP_THRESHOLD_",
  "MALLOC_TRIM_THRESHOLD_",
  "MALLOC_TOP_PAD_",
] as const;

/**
 * The engine's `GLIBC_TUNABLES`: ours first, then the user's (glibc takes
 * the last value of a tunable, so theirs win); undefined (their own
 * environment as it is) when they set malloc through the older variables.
 * `get` reads a variable (undefined when unset or not readable).
 */
export function engineTunables(
  get: (name: string) => string | undefined,
): string | undefined {
  if (MALLOC_ENV_NAMES.some((name) => get(name) !== undefined)) {
    return undefined;
  }
  const theirs = get("GLIBC_TUNABLES");
  return theirs ? `${MALLOC_TUNABLES}:${theirs}` : MALLOC_TUNABLES;
}

/** An environment variable, or undefined when unset or not ours to read. */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env for it: as if unset
  }
}

/** How the engine's output reaches the launcher's: inherited, or piped through it. */
type Output = "inherit" | "piped";

function spawnEngine(args: string[], output: Output): Deno.ChildProcess {
  const tunables = engineTunables(envVar);
  return new Deno.Command(Deno.execPath(), {
    args,
    env: tunables === undefined ? undefined : { GLIBC_TUNABLES: tunables },
    stdin: "null",
    stdout: output,
    stderr: output,
  }).spawn();
}

/** The start event, in text and JSON lines alike. */
const LISTENING = /Listening on \S+|"event":"listening"/;

/**
 * Copies a piped engine stream to ours as it comes; resolves true once a
 * line says the engine listens, false if the stream ends first. Keeps
 * copying after that.
 */
function relay(
  from: ReadableStream<Uint8Array>,
  to: { write(p: Uint8Array): Promise<number> },
): Promise<boolean> {
  let told!: (listening: boolean) => void;
  const listening = new Promise<boolean>((r) => told = r);
  (async () => {
    const decoder = new TextDecoder();
    let line = "";
    let seen = false;
    try {
      for await (const chunk of from) {
        for (let off = 0; off < chunk.length;) {
          off += await to.write(chunk.subarray(off));
        }
        if (seen) continue;
        line = (line + decoder.decode(chunk, { stream: true })).slice(-4096);
        if (LISTENING.test(line)) {
          seen = true;
          told(true);
        }
      }
    } catch {
      // Our own stdout closed: nothing left to copy to.
    }
    told(false);
  })();
  return listening;
}

/**
 * Runs the engine until it exits; returns its exit code. SIGUSR2 upgrades:
 * a fresh engine (the code on disk now) starts with --takeover on the same
 * port; once it listens, the old one gets SIGTERM and drains. If the fresh
 * one fails, the old one keeps serving.
 */
export async function launch(args: readonly string[]): Promise<number> {
  let opts: CliOptions;
  let flags: string[];
  let first: string[];
  try {
    opts = parseFlags(args);
    if (opts.help) {
      console.log(helpText());
      return 0;
    }
    // Known up front, the descriptor budget holds from the first socket,
    // and HTTPS may use node's faster listener (lib/http/tls.ts). An
    // upgrade's engine gets the same: it inherits our limit too.
    flags = withFileLimit(args, await openFileLimit());
    first = engineArgs(opts, flags);
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof UngrantablePath)) {
      throw err;
    }
    console.error(`spindle: ${err.message}`);
    return 2;
  }
  let engine = spawnEngine(first, "inherit");
  /** An engine starting for an upgrade, until it listens or fails. */
  let fresh: Deno.ChildProcess | undefined;
  const forward = (signal: Deno.Signal) => () => {
    for (const child of [engine, fresh]) {
      try {
        child?.kill(signal);
      } catch {
        // Already gone: its status is on the way.
      }
    }
  };
  async function upgrade(): Promise<void> {
    if (fresh !== undefined) return; // one at a time
    if (opts.server.port === 0 || opts.tls?.redirectPort === 0) {
      console.error(
        "spindle: cannot upgrade: port 0 picked a port the launcher does not know; start with a fixed --port (and --redirect-http)",
      );
      return;
    }
    const next = fresh = spawnEngine(
      engineArgs(opts, [...flags, "--takeover"]),
      "piped",
    );
    // Text and JSON logs say it listens on stdout; common and combined on stderr.
    const said = [
      relay(next.stdout, Deno.stdout),
      relay(next.stderr, Deno.stderr),
    ];
    const listening = Promise.all(said).then(() => false);
    const outcome = await Promise.race([
      ...said.map((p) => p.then((yes) => yes || listening)),
      next.status.then(() => false),
    ]);
    fresh = undefined;
    if (!outcome) {
      const { code } = await next.status;
      console.error(
        `spindle: upgrade failed: the new engine exited with code ${code}; the old one keeps serving`,
      );
      return;
    }
    const old = engine;
    engine = next;
    try {
      old.kill("SIGTERM"); // it drains while the new one serves
    } catch {
      // Gone already.
    }
  }
  // Kept until exit: deno task forwards a Ctrl-C the launcher also got from
  // the terminal, and a copy arriving after the engine ended must not kill
  // the launcher with 130.
  for (const s of FORWARDED) Deno.addSignalListener(s, forward(s));
  Deno.addSignalListener(UPGRADE, () => void upgrade());
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
    // The engine serving now: after an upgrade, the old one's exit is not ours.
    for (;;) {
      const serving = engine;
      const { code } = await serving.status;
      if (engine === serving) return code;
    }
  } finally {
    clearInterval(orphaned);
  }
}

if (import.meta.main) Deno.exit(await launch(Deno.args));
