/**
 * HTTPS from the command line (issue #14): the certificate from `--cert`
 * and `--key` or made by `--tls self-signed`, its reload (SIGHUP, or the
 * files changing) without dropping a connection, and the plain listener of
 * `--redirect-http`. main.ts calls these; the engine knows none of them.
 */
import { getLogger } from "./npm/logtape.ts";
import type { CliOptions } from "./cli.ts";
import { httpsRedirect } from "./app/https_redirect.ts";
import { serve, type Server } from "./http/server.ts";
import {
  CertificateError,
  type CertificateInfo,
  TlsCertificate,
} from "./http/tls.ts";

const log = getLogger(["spindle", "tls"]);

/** File changes settle this long before a reload: certbot writes the chain, then the key. */
const SETTLE_MS = 500;

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A PEM certificate chain and its PEM key. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/** A `--tls-save` folder's pair: read back, or made anew when stale. */
export interface SavedPair {
  readonly dir: string;
  read(): Promise<PemPair>;
}

/** The certificate the server presents, and where it came from. */
export class Https {
  readonly certificate: TlsCertificate;
  #pair: PemPair;
  readonly #files: { readonly cert: string; readonly key: string } | undefined;
  readonly #saved: SavedPair | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(
    pair: PemPair,
    files?: { readonly cert: string; readonly key: string },
    saved?: SavedPair,
  ) {
    this.certificate = new TlsCertificate(pair.cert, pair.key);
    this.#pair = pair;
    this.#files = files;
    this.#saved = saved;
  }

  /** The pair presented now, for worker engines. */
  get pair(): PemPair {
    return this.#pair;
  }

  /**
   * Reads `--cert` and `--key` again, or the `--tls-save` folder (renewing
   * a pair about to expire): handshakes from now on present them,
   * connections already open keep theirs. A pair that cannot be read or
   * served is logged and the current one kept. Resolves with the new pair,
   * or undefined when nothing changed (or there is nothing to read: a
   * self-signed pair not saved stays the one browsers were told to trust).
   */
  async reload(): Promise<PemPair | undefined> {
    const files = this.#files;
    const saved = this.#saved;
    if (files === undefined && saved === undefined) return undefined;
    const from = files?.cert ?? saved!.dir;
    const before = this.certificate.info.fingerprint;
    let pair: PemPair;
    let info: CertificateInfo;
    try {
      pair = files === undefined ? await saved!.read() : {
        cert: await Deno.readTextFile(files.cert),
        key: await Deno.readTextFile(files.key),
      };
      info = this.certificate.replace(pair.cert, pair.key);
    } catch (err) {
      log.error("Kept the current certificate: cannot use {from}: {why}", {
        from: files === undefined ? from : `${files.cert} and ${files.key}`,
        why: reason(err),
      });
      return undefined;
    }
    this.#pair = pair;
    if (info.fingerprint === before) {
      log.info("Certificate reread, unchanged: SHA-256 {fingerprint}", {
        fingerprint: info.fingerprint,
      });
      return undefined;
    }
    log.info(
      "New certificate from {cert}: SHA-256 {fingerprint}, valid until {validTo}",
      {
        event: "certificate",
        cert: from,
        fingerprint: info.fingerprint,
        validTo: info.validTo.toISOString(),
      },
    );
    return pair;
  }

  /**
   * Reloads whenever `--cert` or `--key` changes on disk, a moment after
   * the last change, until {@link close}; `onReload` gets each new pair.
   */
  watch(onReload: (pair: PemPair) => void): void {
    const files = this.#files;
    if (files === undefined) return;
    (async () => {
      while (!this.#closed) {
        try {
          // Watched anew each time: an editor or certbot may have put a
          // new file (a new inode) in place of the one watched before.
          this.#watcher = Deno.watchFs([files.cert, files.key], {
            recursive: false,
          });
        } catch (err) {
          log.warn(
            "Not watching {cert} and {key} for changes ({why}); SIGHUP reloads them",
            {
              cert: files.cert,
              key: files.key,
              why: reason(err),
            },
          );
          return;
        }
        let changed = false;
        for await (const event of this.#watcher) {
          if (event.kind !== "access" && event.kind !== "other") {
            changed = true;
            break;
          }
        }
        this.#closeWatcher();
        if (!changed || this.#closed) return;
        await new Promise<void>((r) => this.#timer = setTimeout(r, SETTLE_MS));
        this.#timer = undefined;
        if (this.#closed) return;
        const pair = await this.reload();
        if (pair !== undefined) onReload(pair);
      }
    })();
  }

  #closeWatcher(): void {
    try {
      this.#watcher?.close();
    } catch { /* closed */ }
    this.#watcher = undefined;
  }

  /** Stops watching the files. */
  close(): void {
    this.#closed = true;
    this.#closeWatcher();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}

/**
 * The certificate the flags ask for, or undefined for plain HTTP. Logs
 * where it came from and its SHA-256 fingerprint. Throws what reading the
 * files throws, {@link CertificateError} for a pair that cannot be served,
 * and SelfSignedError for a `--tls-save` folder we will not write over.
 */
export async function loadHttps(opts: CliOptions): Promise<Https | undefined> {
  const { cert, key } = opts.server;
  if (cert !== undefined && key !== undefined) {
    const pair = {
      cert: await Deno.readTextFile(cert),
      key: await Deno.readTextFile(key),
    };
    let https: Https;
    try {
      https = new Https(pair, { cert, key });
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err;
      throw new CertificateError(
        `--cert ${cert} and --key ${key}: ${err.message}`,
      );
    }
    const info = https.certificate.info;
    log.info(
      "Certificate from {cert}: SHA-256 {fingerprint}, valid until {validTo}",
      {
        event: "certificate",
        cert,
        fingerprint: info.fingerprint,
        validTo: info.validTo.toISOString(),
      },
    );
    if (info.validTo.getTime() < Date.now()) {
      log.warn(
        "The certificate in {cert} expired on {validTo}: browsers will refuse it",
        {
          cert,
          validTo: info.validTo.toISOString(),
        },
      );
    }
    return https;
  }
  if (opts.tls?.selfSigned !== true) return undefined;
  // Loaded only here: the X.509 packages cost ~80 ms of start-up.
  const { localNames, selfSigned } = await import("./self_signed.ts");
  const { names, note } = localNames(opts.server.hostname);
  const saveDir = opts.tls.saveDir;
  const made = await selfSigned(names, saveDir);
  const https = new Https(
    made,
    undefined,
    saveDir === undefined
      ? undefined
      : { dir: saveDir, read: () => selfSigned(names, saveDir) },
  );
  if (note !== undefined) log.info("Note: {note}", { note });
  if (made.replaced !== undefined) {
    log.info("Made a new certificate: the one saved in {dir} {why}", {
      dir: opts.tls.saveDir,
      why: made.replaced,
    });
  }
  log.info(
    "Self-signed certificate for {names}: SHA-256 {fingerprint}{where}",
    {
      event: "certificate",
      names: [...names.dns, ...names.ips].join(", "),
      fingerprint: https.certificate.info.fingerprint,
      where: made.origin === "made"
        ? " (made now; --tls-save DIR keeps it across restarts)"
        : made.origin === "saved"
        ? ` (saved in ${opts.tls.saveDir})`
        : ` (from ${opts.tls.saveDir})`,
    },
  );
  return https;
}

/** Where an engine's `--redirect-http` listener binds, beside its HTTPS one. */
export interface RedirectListen {
  /** The port; default: the flag's (0 picks one). */
  readonly port?: number;
  /** Share the port with the other engines (workers, a reload, an upgrade). */
  readonly reusePort?: boolean;
  /** The engine's part of the process's descriptors. */
  readonly descriptorShare?: number;
}

/**
 * `--redirect-http PORT`: a plain listener on the same address whose every
 * answer is 308 to the HTTPS URL. `httpsPort` is the HTTPS server's bound
 * port; `proxyProtocolFrom` the peers that start with a PROXY header
 * (`--proxy-protocol`), as on the HTTPS port. Every engine runs its own,
 * as it runs its HTTPS listener: a reload or an upgrade hands both over
 * the same way.
 */
export function startRedirect(
  opts: CliOptions,
  httpsPort: number,
  proxyProtocolFrom?: (hostname: string) => boolean,
  listen: RedirectListen = {},
): Server | undefined {
  const port = listen.port ?? opts.tls?.redirectPort;
  if (port === undefined) return undefined;
  let bound = port;
  const server = serve(
    {
      hostname: opts.server.hostname,
      port,
      reusePort: listen.reusePort,
      descriptorShare: listen.descriptorShare,
      limits: opts.server.limits,
      accessLog: opts.server.accessLog,
      proxyProtocolFrom,
    },
    httpsRedirect({
      httpsPort: () => httpsPort,
      port: () => bound,
      hostname: opts.server.hostname,
      allowedHosts: opts.app.allowedHosts,
    }),
  );
  bound = server.port;
  return server;
}

/** Logs where `--redirect-http` listens, once for all the engines. */
export function logRedirect(
  hostname: string,
  port: number,
  httpsPort: number,
): void {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  log.info("Redirecting http://{host}:{port}/ to HTTPS on port {httpsPort}", {
    event: "redirecting",
    host,
    port,
    httpsPort,
  });
}
