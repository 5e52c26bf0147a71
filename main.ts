/**
 * Spindle's command line: flags -> config -> serve(). Nothing else.
 * Exit codes: 0 after a clean shutdown, 1 when the server cannot start,
 * 2 for a bad command line. `spindle hash-password [USER]` hashes a
 * password for `--auth-file` instead.
 */
import { getLogger } from "@logtape/logtape";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { bracketHost, checkAccess, planAccess } from "./lib/access.ts";
import {
  type AppConfig,
  type CliOptions,
  helpText,
  parseFlags,
  UsageError,
} from "./lib/config.ts";
import { CredentialsError, loadCredentials } from "./lib/app/credentials.ts";
import type { Https } from "./lib/https.ts";
import { isLoopback, trustProxy } from "./lib/app/client_addr.ts";
import { createApp, engineLimits } from "./lib/app/routes.ts";
import type { RateLimitStore } from "./lib/app/rate_limit_store.ts";
import { serve, type Server } from "./lib/http/server.ts";
import { EngineStats } from "./lib/http/stats.ts";
import {
  inWorker,
  runAsWorker,
  startWorkers,
  type WorkerPool,
  type WorkerTls,
} from "./lib/http/workers.ts";
import { setupLogging, stopLogging } from "./lib/log.ts";
import { printStart } from "./lib/startup.ts";

const log = getLogger(["spindle", "server"]);

/** The folder holding main.ts and lib/, which --workers threads load. */
const PROGRAM_DIR = dirname(fileURLToPath(import.meta.url));

/** A `deno compile` binary runs its code from a virtual deno-compile-* folder. */
const COMPILED = PROGRAM_DIR.includes("deno-compile-") ||
  !/^deno(\.exe)?$/i.test(basename(Deno.execPath()));

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
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  // The listeners stay until the process exits: Ctrl-C reaches the engine
  // from the terminal and again through deno task and the launcher, and a
  // late copy must not kill it with 130 while it flushes the log.
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    return await run(opts, args, stop);
  } finally {
    await stopLogging();
  }
}

/**
 * Serves until `stop` resolves, then shuts down gracefully. In the main
 * thread it also starts `--workers` - 1 engine workers on the same port,
 * and rereads the certificate on SIGHUP; a worker (`listening` set) takes
 * its certificate from the main thread (`tls`).
 */
async function run(
  opts: CliOptions,
  args: readonly string[],
  stop: Promise<void>,
  listening?: (port: number) => void,
  tls?: WorkerTls,
): Promise<number> {
  let server: Server;
  let https: Https | undefined;
  /** lib/https.ts, loaded only for HTTPS: a plain start never pays for it. */
  let httpsCode: typeof import("./lib/https.ts") | undefined;
  let rateLimitStore: RateLimitStore | undefined;
  let proxyProtocolFrom: ((hostname: string) => boolean) | undefined;
  try {
    if (opts.tls !== undefined || tls !== undefined) {
      httpsCode = await import("./lib/https.ts");
    }
    if (tls === undefined) https = await httpsCode?.loadHttps(opts);
    else {
      const h = https = new httpsCode!.Https(tls.certificate);
      tls.onCertificate((pair) => h.certificate.replace(pair.cert, pair.key));
    }
    const stats = new EngineStats();
    let port = opts.server.port;
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
        console.error(`spindle: ${err.message}`);
        return 2;
      }
    }
    const rate = opts.app.rateLimit;
    if (rate?.store !== undefined) {
      // Loaded only now: a server without a shared store never pays for the client.
      const { connectRateLimitStore } = await import(
        "./lib/app/redis_rate_limit.ts"
      );
      rateLimitStore = await connectRateLimitStore(rate, rate.store, {
        mode: rate.fail ?? "open",
        timeoutMs: opts.server.limits.rateStoreTimeoutMs,
      });
    }
    let handler;
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
        limits: opts.server.limits,
        rateLimitStore,
      });
    } catch (err) {
      // A setting only the app can judge, such as a malformed --trust-proxy entry.
      console.error(`spindle: ${err instanceof Error ? err.message : err}`);
      await rateLimitStore?.close?.();
      return 2;
    }
    if (opts.proxyProtocol) proxyProtocolFrom = trusted;
    server = serve({
      ...opts.server,
      limits: engineLimits(app, opts.server.limits), // form uploads may be larger
      cert: undefined,
      key: undefined,
      certificate: https?.certificate,
      stats,
      reusePort: opts.workers > 1,
      descriptorShare: 1 / opts.workers, // the engines share one process
      exemptPeer,
      proxyProtocolFrom,
    }, handler);
    await server.ready;
    port = server.port;
  } catch (err) {
    const why = err instanceof Deno.errors.AddrInUse
      ? `port ${opts.server.port} is already in use`
      : err instanceof Error
      ? err.message
      : String(err);
    log.fatal("Cannot start: {why}", { why });
    await rateLimitStore?.close?.();
    return 1;
  }

  let pool: WorkerPool | undefined;
  let redirect: Server | undefined;
  // SIGHUP rereads --cert and --key, and so does a change to either file;
  // the main thread does it for every engine.
  const reload = () => {
    https?.reload().then((pair) => {
      if (pair !== undefined) pool?.setCertificate(pair);
    });
  };
  const reloads = https !== undefined && listening === undefined;
  if (reloads) {
    Deno.addSignalListener("SIGHUP", reload);
    https!.watch((pair) => pool?.setCertificate(pair));
  }
  try {
    if (listening !== undefined) {
      listening(server.port);
    } else {
      const scheme = https === undefined ? "http" : "https";
      const url = `${scheme}://${
        bracketHost(server.addr.hostname)
      }:${server.port}/`;
      const start = await printStart(
        opts,
        server.addr.hostname,
        server.port,
        planAccess(opts, PROGRAM_DIR),
      );
      log.info("Listening on {url}", {
        event: "listening",
        url,
        port: server.port,
        workers: opts.workers,
        ...start,
      });
      if (opts.workers > 1) {
        try {
          const given = https?.pair;
          pool = await startWorkers(
            new URL(import.meta.url),
            opts.workers - 1,
            [...args, "--port", String(server.port)],
            given,
          );
          // A reload while they started found no pool to tell.
          if (https !== undefined && https.pair !== given) {
            pool.setCertificate(https.pair);
          }
        } catch (err) {
          log.fatal("Cannot start workers: {error}", { error: err });
          await server.shutdown();
          return 1;
        }
      }
      try {
        redirect = httpsCode?.startRedirect(
          opts,
          server.port,
          proxyProtocolFrom,
        );
      } catch (err) {
        log.fatal("Cannot start the --redirect-http listener: {why}", {
          why: err instanceof Deno.errors.AddrInUse
            ? `port ${opts.tls?.redirectPort} is already in use`
            : err instanceof Error
            ? err.message
            : String(err),
        });
        await Promise.all([server.shutdown(), pool?.shutdown()]);
        return 1;
      }
    }

    await Promise.race([stop, server.finished]);
    await Promise.all([
      server.shutdown(),
      redirect?.shutdown(),
      pool?.shutdown(),
    ]);
    return 0;
  } finally {
    if (reloads) Deno.removeSignalListener("SIGHUP", reload);
    https?.close();
    await rateLimitStore?.close?.();
  }
}

if (import.meta.main) {
  if (inWorker()) {
    runAsWorker(async (args, stop, listening, tls) => {
      const opts = parseFlags(args);
      await setupLogging({ format: opts.logFormat, quiet: opts.quiet });
      try {
        return await run(opts, args, stop, listening, tls);
      } finally {
        await stopLogging();
      }
    });
  } else {
    Deno.exit(await main(Deno.args));
  }
}
