/**
 * HTTPS from the command line (issue #14): the certificate from `--cert`
 * and `--key` or made by `--tls self-signed`, its reload (SIGHUP, or the
 * files changing) without dropping a connection, and the plain listener of
 * `--redirect-http`. main.ts calls these; the engine knows none of them.
 */
import { getLogger } from "./npm/logtape.ts";
import type { CliOptions } from "./config.ts";
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

/** The certificate the server presents, and where it came from. */
export class Https {
  readonly certificate: TlsCertificate;
  #pair: PemPair;
  readonly #files: { readonly cert: string; readonly key: string } | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(
    pair: PemPair,
    files?: { readonly cert: string; readonly key: string },
  ) {
    this.certificate = new TlsCertificate(pair.cert, pair.key);
    this.#pair = pair;
    this.#files = files;
  }

  /** The pair presented now, for worker engines. */
  get pair(): PemPair {
    return this.#pair;
  }

  /**
   * Reads `--cert` and `--key` again: handshakes from now on present them,
   * connections already open keep theirs. A pair that cannot be read or
   * served is logged and the current one kept. Resolves with the new pair,
   * or undefined when nothing changed (or there are no files: self-signed).
   */
  async reload(): Promise<PemPair | undefined> {
    const files = this.#files;
    if (files === undefined) return undefined;
    const before = this.certificate.info.fingerprint;
    let pair: PemPair;
    let info: CertificateInfo;
    try {
      pair = {
        cert: await Deno.readTextFile(files.cert),
        key: await Deno.readTextFile(files.key),
      };
      info = this.certificate.replace(pair.cert, pair.key);
    } catch (err) {
      log.error(
        "Kept the current certificate: cannot use {cert} and {key}: {why}",
        {
          cert: files.cert,
          key: files.key,
          why: reason(err),
        },
      );
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
        cert: files.cert,
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
  const made = await selfSigned(names, opts.tls.saveDir);
  const https = new Https(made);
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

/**
 * `--redirect-http PORT`: a plain listener on the same address whose every
 * answer is 308 to the HTTPS URL. `httpsPort` is the HTTPS server's bound
 * port; `proxyProtocolFrom` the peers that start with a PROXY header
 * (`--proxy-protocol`), as on the HTTPS port.
 */
export function startRedirect(
  opts: CliOptions,
  httpsPort: number,
  proxyProtocolFrom?: (hostname: string) => boolean,
): Server | undefined {
  const port = opts.tls?.redirectPort;
  if (port === undefined) return undefined;
  let bound = port;
  const server = serve(
    {
      hostname: opts.server.hostname,
      port,
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
  const host = server.addr.hostname.includes(":")
    ? `[${server.addr.hostname}]`
    : server.addr.hostname;
  log.info("Redirecting http://{host}:{port}/ to HTTPS on port {httpsPort}", {
    event: "redirecting",
    host,
    port: server.port,
    httpsPort,
  });
  return server;
}
