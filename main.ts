/**
 * Spindle's command line: flags -> config -> serve(). Nothing else.
 * Exit codes: 0 after a clean shutdown, 1 when the server cannot start,
 * 2 for a bad command line. `spindle hash-password [USER]` hashes a
 * password for `--auth-file` instead.
 *
 * SIGINT and SIGTERM drain and stop. SIGHUP reloads: the main thread
 * reads the certificate and key (or the --tls-save folder) again, and
 * fresh engines, which read --auth-file again, take the port over from the
 * old ones, which then drain. A change to --cert or --key on disk replaces
 * just the pair, in every engine. With `--workers N` (N > 1) every engine
 * is a Worker and the main thread supervises them.
 */
import { getLogger } from "@logtape/logtape";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { bracketHost, checkAccess, planAccess } from "./lib/access.ts";
import type { AppConfig } from "./lib/app/settings.ts";
import {
  type CliOptions,
  helpText,
  parseFlags,
  UsageError,
} from "./lib/cli.ts";
import { CredentialsError, loadCredentials } from "./lib/app/credentials.ts";
import { AppMetrics } from "./lib/app/metrics.ts";
import type { Https } from "./lib/https.ts";
import { isLoopback, trustProxy } from "./lib/app/client_addr.ts";
import { createApp, engineLimits } from "./lib/app/routes.ts";
import type { RateLimitStore } from "./lib/app/rate_limit_store.ts";
import type { Handler } from "./lib/http/handler.ts";
import { serve, type Server } from "./lib/http/server.ts";
import { EngineStats } from "./lib/http/stats.ts";
import { TlsCertificate } from "./lib/http/tls.ts";
import { inWorker, runAsWorker, WorkerPool } from "./lib/http/workers.ts";
import { setupLogging, stopLogging } from "./lib/log.ts";
import { CounterTable } from "./lib/shared/counters.ts";
import { QuotaLedger } from "./lib/shared/quota.ts";
import { SharedRateLimiter } from "./lib/shared/rate_table.ts";
import { SharedSlots } from "./lib/shared/slots.ts";
import {
  claimCell,
  createSharedMemory,
  type EngineShare,
  releaseCell,
  type SharedMemory,
} from "./lib/shared/state.ts";
import { printStart } from "./lib/startup.ts";

const log = getLogger(["spindle", "server"]);

/** The folder holding main.ts and lib/, which --workers threads load. */
const PROGRAM_DIR = dirname(fileURLToPath(import.meta.url));

/** A `deno compile` binary runs its code from a virtual deno-compile-* folder. */
const COMPILED = PROGRAM_DIR.includes("deno-compile-") ||
  !/^deno(\.exe)?$/i.test(basename(Deno.execPath()));

/** How often a worker compares its heap with `workerHeapBytes`. */
const HEAP_CHECK_MS = 1000;

/** Why an engine could not start, and the exit code that says so. */
class StartFailure extends Error {
  override name = "StartFailure";
  constructor(message: string, readonly code: 1 | 2) {
    super(message);
  }
}

/** Runs the server until SIGINT or SIGTERM; returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  if (args[0] === "hash-password") {
    const { hashPasswordCommand } = await import("./lib/hash_password.ts");
    return await hashPasswordCommand(args.slice(1));
  }
  let opts: CliOptions;
  try {
    opts = parseFlags(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`spindle: ${err.message}`);
    return 2;
  }
  if (opts.help) {
    console.log(helpText());
    return 0;
  }
  // Every folder, file and permission the flags need, checked before the
  // first request: a gap is one line and exit 2, never a 404 or 500 later.
  let problem: string | undefined;
  try {
    problem = checkAccess(planAccess(opts, PROGRAM_DIR), {
      args,
      compiled: COMPILED,
    });
  } catch (err) {
    problem = `cannot check the folders: ${
      err instanceof Error ? err.message : err
    }`;
  }
  if (problem !== undefined) {
    console.error(`spindle: ${problem}`);
    return 2;
  }
  await setupLogging({ format: opts.logFormat, quiet: opts.quiet });
  let onSignal!: () => void;
  const stop = new Promise<void>((r) => onSignal = r);
  // The listeners stay until the process exits: Ctrl-C reaches the engine
  // from the terminal and again through deno task and the launcher, and a
  // late copy must not kill it with 130 while it flushes the log.
  for (const s of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(s, onSignal);
  }
  const reloads = new Reloads();
  Deno.addSignalListener("SIGHUP", () => reloads.request());
  try {
    return opts.workers > 1
      ? await superviseWorkers(opts, args, stop, reloads)
      : await serveHere(opts, stop, reloads);
  } finally {
    await stopLogging();
  }
}

/** SIGHUPs, for whoever can reload; one at a time, extra ones merged. */
class Reloads {
  #reload: (() => Promise<void>) | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  /** From now on, a SIGHUP runs `reload`. */
  handle(reload: () => Promise<void>): void {
    this.#reload = reload;
  }

  request(): void {
    if (this.#reload === undefined) return; // still starting: nothing to reload yet
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#reload!();
      } while (this.#again);
    })().finally(() => this.#running = undefined);
  }

  /** Resolves once no reload runs. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }
}

/**
 * True with --unstable-net, which reusePort needs: without it, Deno ends
 * the process (exit code 70) rather than throw. Its other APIs tell.
 */
function canReusePort(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

/** The ports every engine listens on. */
interface Ports {
  readonly https: number;
  /** `--redirect-http`'s, if asked. */
  readonly redirect?: number;
}

/**
 * The ports the engines share: the flags', or the ones the kernel picks
 * for 0, checked free first unless taking over from another Spindle
 * (engines bind them with reusePort, which would otherwise share them with
 * anyone). Both are held while the other is picked: never the same one.
 *
 * @throws {Deno.errors.AddrInUse} when something already listens on the port.
 * @throws {StartFailure} when something listens on the --redirect-http one.
 */
function claimPorts(opts: CliOptions): Ports {
  const redirect = opts.tls?.redirectPort;
  if (opts.takeover) return { https: opts.server.port, redirect };
  const hostname = opts.server.hostname;
  using probe = Deno.listen({ hostname, port: opts.server.port });
  if (redirect === undefined) return { https: probe.addr.port };
  let other: Deno.TcpListener;
  try {
    other = Deno.listen({ hostname, port: redirect });
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    throw new StartFailure(
      `the --redirect-http listener: port ${redirect} is already in use`,
      1,
    );
  }
  using _ = other;
  return { https: probe.addr.port, redirect: other.addr.port };
}

/** Says why the server cannot start (on `port`); the exit code to use. */
function cannotStart(err: unknown, port: number): number {
  if (err instanceof Deno.errors.AddrInUse) err = portInUse(port);
  if (err instanceof StartFailure) {
    if (err.code === 2) console.error(`spindle: ${err.message}`);
    else log.fatal("Cannot start: {why}", { why: err.message });
    return err.code;
  }
  log.fatal("Cannot start: {why}", {
    why: err instanceof Error ? err.message : String(err),
  });
  return 1;
}

function portInUse(port: number): StartFailure {
  return new StartFailure(`port ${port} is already in use`, 1);
}

/**
 * Cells for `slots` engines: a reload runs a fresh engine beside each old
 * one, and a few more let replacements start while old ones drain.
 */
function cellsFor(slots: number): number {
  return 2 * slots + 2;
}

/** Shared memory sized for `opts`, with `slots` worker numbers. */
function sharedFor(opts: CliOptions, slots: number): SharedMemory {
  return createSharedMemory({
    slots,
    cells: cellsFor(slots),
    // As many clients as the engine's own tables hold.
    rateClients: opts.app.rateLimit === undefined ? undefined : 10_000,
    authClients: opts.auth === undefined ? undefined : 10_000,
  });
}

/** A running engine: its servers, and what else it holds until it stops. */
interface Engine {
  readonly server: Server;
  /** The `--redirect-http` listener, if asked. */
  readonly redirect?: Server;
  /** Closes its listeners and nothing else, as stop() does first. */
  stopAccepting(): Promise<void>;
  /** Drains and stops its servers, then lets go of a rate limit store's connection. */
  stop(): Promise<void>;
}

/** What an engine is started with besides the flags. */
interface EngineSetup {
  readonly ports: Ports;
  /** Its part of the shared memory. */
  readonly share: EngineShare;
  /** Bind with reusePort, to share the ports. */
  readonly reusePort: boolean;
  /** True once the whole server shuts down, not just this engine. */
  readonly stopping: () => boolean;
  /** The HTTPS pair the main thread holds; unset: plain HTTP. */
  readonly certificate?: TlsCertificate;
}

/**
 * One engine, with the --auth-file read now, the app built on `share`'s
 * memory, listening on the ports (with reusePort when asked, to share
 * them); the certificate is the main thread's to read.
 *
 * @throws {StartFailure}
 */
async function startEngine(
  opts: CliOptions,
  setup: EngineSetup,
): Promise<Engine> {
  let rateLimitStore: RateLimitStore | undefined;
  try {
    const { server, redirect } = await startServers(
      opts,
      setup,
      (store) => rateLimitStore = store,
    );
    return {
      server,
      redirect,
      async stopAccepting() {
        await Promise.all([server.stopAccepting(), redirect?.stopAccepting()]);
      },
      async stop() {
        await Promise.all([server.shutdown(), redirect?.shutdown()]);
        await rateLimitStore?.close?.();
      },
    };
  } catch (err) {
    await rateLimitStore?.close?.();
    throw err;
  }
}

/** {@link startEngine}'s servers; `storeOpened` hears of a store to close. */
async function startServers(
  opts: CliOptions,
  setup: EngineSetup,
  storeOpened: (store: RateLimitStore) => void,
): Promise<{ server: Server; redirect?: Server }> {
  const { ports, reusePort, stopping } = setup;
  const port = ports.https;
  const { memory, cell } = setup.share;
  const table = new CounterTable(memory.counters);
  const stats = new EngineStats(table.row(cell));
  let app: AppConfig = opts.app;
  if (opts.auth !== undefined) {
    // Reads the file (unreadable: cannot start, as a bad cert) and hashes
    // each --auth password, ~140 ms a pair.
    try {
      const credentials = await loadCredentials({
        ...opts.auth,
        servedRoot: opts.app.static.root,
      });
      app = { ...app, auth: { credentials, rules: opts.auth.rules } };
    } catch (err) {
      if (!(err instanceof CredentialsError)) throw err;
      throw new StartFailure(err.message, 2);
    }
  }
  const rate = opts.app.rateLimit;
  let rateLimitStore: RateLimitStore | undefined;
  if (rate?.store !== undefined) {
    // Shared by instances. Loaded only now: a server without one never pays for the client.
    const { connectRateLimitStore } = await import(
      "./lib/app/redis_rate_limit.ts"
    );
    rateLimitStore = await connectRateLimitStore(rate, rate.store, {
      mode: rate.fail ?? "open",
      timeoutMs: opts.server.limits.rateStoreTimeoutMs,
    });
    storeOpened(rateLimitStore);
  } else if (rate !== undefined && memory.rate !== undefined) {
    rateLimitStore = new SharedRateLimiter(rate, memory.rate); // by the workers
  }
  const limits0 = opts.server.limits;
  let handler: Handler;
  let exemptPeer: (hostname: string) => boolean;
  let trusted: (hostname: string) => boolean;
  try {
    // Trusted proxies carry many clients on few connections: no per-address
    // cap. (With --proxy-protocol each connection is one client's, and
    // the cap counts that client.)
    trusted = trustProxy(opts.app.trustProxy);
    exemptPeer = (hostname) => isLoopback(hostname) || trusted(hostname);
    handler = createApp(app, {
      stats,
      hostname: opts.server.hostname,
      port: () => port,
      limits: limits0,
      stopping,
      rateLimitStore,
    }, {
      metrics: new AppMetrics({ table, cell }),
      authFailures: memory.authFailures && new SharedRateLimiter(
        {
          limit: limits0.maxAuthFailures,
          windowMs: limits0.authFailureWindowMs,
        },
        memory.authFailures,
      ),
      quota: new QuotaLedger(memory.quota, cell),
      formQuota: new QuotaLedger(memory.formQuota, cell),
    });
  } catch (err) {
    // A setting only the app can judge, such as a malformed --trust-proxy entry.
    throw new StartFailure(err instanceof Error ? err.message : String(err), 2);
  }
  handler = await withTestHooks(handler);
  const limits = engineLimits(app, opts.server.limits); // form uploads may be larger
  const proxyProtocolFrom = opts.proxyProtocol ? trusted : undefined;
  // The engines share one process's descriptors.
  const descriptorShare = 1 / opts.workers;
  let server: Server;
  try {
    server = serve({
      ...opts.server,
      port,
      limits,
      cert: undefined,
      key: undefined,
      certificate: setup.certificate,
      stats,
      reusePort,
      descriptorShare,
      slots: new SharedSlots(
        memory.slots,
        cell,
        limits.maxConns,
        limits.maxQueue,
      ),
      exemptPeer,
      proxyProtocolFrom,
    }, handler);
    await server.ready; // node's TLS listener binds a turn later
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) throw portInUse(port);
    throw new StartFailure(err instanceof Error ? err.message : String(err), 1);
  }
  if (ports.redirect === undefined) return { server };
  try {
    const { startRedirect } = await httpsCode();
    const redirect = startRedirect(opts, server.port, proxyProtocolFrom, {
      port: ports.redirect,
      reusePort,
      descriptorShare,
    });
    await redirect?.ready;
    return { server, redirect };
  } catch (err) {
    await server.shutdown();
    throw new StartFailure(
      `the --redirect-http listener: ${
        err instanceof Deno.errors.AddrInUse
          ? `port ${ports.redirect} is already in use`
          : err instanceof Error
          ? err.message
          : String(err)
      }`,
      1,
    );
  }
}

/**
 * A test's handler wrapper (SPINDLE_TEST_HOOKS names its module), to make
 * a worker crash on cue. Only with --allow-env for that variable, which
 * the launcher never grants.
 */
async function withTestHooks(handler: Handler): Promise<Handler> {
  const name = "SPINDLE_TEST_HOOKS";
  const env = Deno.permissions.querySync({ name: "env", variable: name });
  const module = env.state === "granted" ? Deno.env.get(name) : undefined;
  if (module === undefined) return handler;
  return (await import(module)).wrap(handler);
}

/** Prints the start lines and logs the listening event (and the redirect's). */
async function announce(
  opts: CliOptions,
  hostname: string,
  ports: Ports,
): Promise<void> {
  const port = ports.https;
  const scheme = opts.tls === undefined ? "http" : "https";
  const url = `${scheme}://${bracketHost(hostname)}:${port}/`;
  const start = await printStart(
    opts,
    hostname,
    port,
    planAccess(opts, PROGRAM_DIR),
  );
  log.info("Listening on {url}", {
    event: "listening",
    url,
    port,
    workers: opts.workers,
    ...start,
  });
  if (ports.redirect !== undefined) {
    (await httpsCode()).logRedirect(hostname, ports.redirect, port);
  }
}

/** lib/https.ts, loaded only for HTTPS: a plain start never pays for it. */
function httpsCode(): Promise<typeof import("./lib/https.ts")> {
  return import("./lib/https.ts");
}

/**
 * The certificate for every engine: read or made once, here, so that all
 * present the same pair (a self-signed one made per worker would differ)
 * and a replacement worker gets the one current then. Undefined for plain
 * HTTP. `onChange` hears of each new pair read because --cert or --key
 * changed on disk, until `https.close()`.
 *
 * A change on disk replaces only the pair, in place, rather than starting
 * fresh engines as SIGHUP does: it says nothing else changed, and fresh
 * engines would drain every kept-alive connection for it, and fail over
 * an --auth-file mid-edit; the same pair reaches workers by message.
 */
async function loadCertificate(
  opts: CliOptions,
  onChange: (pair: { cert: string; key: string }) => void,
): Promise<Https | undefined> {
  if (opts.tls === undefined) return undefined;
  const https = await (await httpsCode()).loadHttps(opts);
  https?.watch(onChange);
  return https;
}

/**
 * `--workers 1`: the engine runs in the main thread. A reload starts a
 * fresh engine here on the same port, then drains the old one; both
 * present the one certificate the main thread holds.
 */
async function serveHere(
  opts: CliOptions,
  stop: Promise<void>,
  reloads: Reloads,
): Promise<number> {
  const memory = sharedFor(opts, 1);
  let stopping = false;
  let cell = 0;
  let ports: Ports;
  let engine: Engine;
  let https: Https | undefined;
  // reusePort lets a reload (and an upgrade) bind beside this engine; it
  // needs --unstable-net, without which the engine runs and cannot reload.
  const reusePort = canReusePort();
  const setup = (ports: Ports, cell: number): EngineSetup => ({
    ports,
    share: claimCell(memory, cell, 1),
    reusePort,
    stopping: () => stopping,
    certificate: https?.certificate,
  });
  try {
    // The engines share its TlsCertificate: replaced in place, it is new for both.
    https = await loadCertificate(opts, () => {});
    ports = claimPorts(opts);
    engine = await startEngine(opts, setup(ports, cell));
  } catch (err) {
    https?.close();
    return cannotStart(err, opts.server.port);
  }
  await announce(opts, engine.server.addr.hostname, ports);
  reloads.handle(async () => {
    await https?.reload(); // a bad pair is logged; the current one stays
    if (!reusePort) {
      log.error(
        https === undefined
          ? "Cannot reload: start Spindle with --unstable-net to reload"
          : "Reloaded the certificate alone: start Spindle with --unstable-net to reload the rest",
      );
      return;
    }
    const next = 1 - cell;
    let fresh: Engine;
    try {
      fresh = await startEngine(opts, setup(ports, next));
    } catch (err) {
      releaseCell(memory, next, 1, false);
      log.error("Reload failed, still serving as before: {why}", {
        why: err instanceof Error ? err.message : String(err),
      });
      return;
    }
    if (stopping) {
      // SIGTERM came while it started: the old one is stopping already.
      await fresh.stop();
      releaseCell(memory, next, 1, false);
      return;
    }
    const old = engine;
    const oldCell = cell;
    engine = fresh;
    cell = next;
    log.info("Reloaded: a fresh engine serves, the old one drains", {
      event: "reloaded",
    });
    await old.stop();
    releaseCell(memory, oldCell, 1, false);
  });
  await stop;
  stopping = true;
  https?.close();
  // An engine a reload is replacing drains meanwhile, not after.
  await Promise.all([engine.stop(), reloads.idle()]);
  return 0;
}

/**
 * `--workers N`: N engine workers on one port, supervised from here: one
 * that dies is replaced; SIGHUP rereads the certificate, hands it to every
 * worker, then replaces each in turn with a fresh one.
 */
async function superviseWorkers(
  opts: CliOptions,
  args: readonly string[],
  stop: Promise<void>,
  reloads: Reloads,
): Promise<number> {
  if (!canReusePort()) {
    console.error(
      "spindle: --workers needs Deno's --unstable-net (deno task serve passes it)",
    );
    return 2;
  }
  let ports: Ports;
  let https: Https | undefined;
  let pool: WorkerPool | undefined;
  try {
    https = await loadCertificate(opts, (pair) => pool?.setCertificate(pair));
    ports = claimPorts(opts);
  } catch (err) {
    https?.close();
    return cannotStart(err, opts.server.port);
  }
  const memory = sharedFor(opts, opts.workers);
  // The ports are known now, also when 0 was asked.
  const portArgs = ["--port", String(ports.https)];
  if (ports.redirect !== undefined) {
    portArgs.push("--redirect-http", String(ports.redirect));
  }
  try {
    pool = await WorkerPool.start({
      entry: new URL(import.meta.url),
      size: opts.workers,
      args: [...args, ...portArgs],
      cells: cellsFor(opts.workers),
      share: (cell, slot) => claimCell(memory, cell, slot),
      release: (cell, slot, died) => releaseCell(memory, cell, slot, died),
      stopTimeoutMs: opts.server.limits.shutdownTimeoutMs,
      certificate: () => https?.pair,
    });
  } catch (err) {
    https?.close();
    const failed = err as Error & { code?: number };
    if (failed.code === 2) {
      console.error(`spindle: ${failed.message}`);
      return 2;
    }
    log.fatal("Cannot start workers: {error}", { error: failed.message });
    return 1;
  }
  const workers = pool;
  await announce(opts, opts.server.hostname, ports);
  reloads.handle(async () => {
    // Every worker gets it now: a slot whose fresh worker fails to start
    // keeps its old one, which should not keep the old pair too.
    const pair = await https?.reload();
    if (pair !== undefined) workers.setCertificate(pair);
    const { reloaded, failures } = await workers.reload();
    if (failures.length === 0) {
      log.info("Reloaded: {count} fresh workers serve, the old ones drain", {
        count: reloaded,
        event: "reloaded",
      });
    } else {
      log.error(
        "Reload failed for {failed} of {count} workers, which keep their old settings: {why}",
        {
          failed: failures.length,
          count: opts.workers,
          why: failures.join("; "),
        },
      );
    }
  });
  await stop;
  https?.close();
  await workers.shutdown();
  return 0;
}

/** A worker's engine: starts on "start", drains on "shutdown" or "retire". */
function serveInWorker(): void {
  runAsWorker(async (start) => {
    const { args, stop, onClose, listening, exhausted } = start;
    const opts = parseFlags(args);
    await setupLogging({ format: opts.logFormat, quiet: opts.quiet });
    let stopping = false;
    try {
      // The main thread read or made the pair, and checked it.
      const pair = start.certificate;
      const certificate = pair && new TlsCertificate(pair.cert, pair.key);
      start.onCertificate((next) => {
        try {
          certificate?.replace(next.cert, next.key);
        } catch (err) {
          log.error("Kept the current certificate: {why}", {
            why: err instanceof Error ? err.message : String(err),
          });
        }
      });
      let engine: Engine;
      try {
        engine = await startEngine(opts, {
          ports: { https: opts.server.port, redirect: opts.tls?.redirectPort },
          share: start.share as EngineShare,
          reusePort: true,
          stopping: () => stopping,
          certificate,
        });
      } catch (err) {
        if (err instanceof StartFailure) {
          throw Object.assign(new Error(err.message), { code: err.code });
        }
        throw err;
      }
      const server = engine.server;
      listening(server.port);
      // With --drain-delay the listeners stay open through the delay (a
      // balancer still sends connections), and each worker closes its own.
      onClose(() =>
        server.limits.drainDelayMs > 0
          ? Promise.resolve()
          : engine.stopAccepting()
      );
      const budget = opts.server.limits.workerHeapBytes;
      const watchdog = budget > 0
        ? setInterval(() => {
          const heap = Deno.memoryUsage().heapUsed;
          if (heap > budget) exhausted(heap);
        }, HEAP_CHECK_MS)
        : undefined;
      const { retire } = await stop;
      clearInterval(watchdog);
      stopping = !retire;
      await engine.stop();
      return 0;
    } finally {
      await stopLogging();
    }
  });
}

if (import.meta.main) {
  if (inWorker()) serveInWorker();
  else Deno.exit(await main(Deno.args));
}
