/**
 * The lines a person reads at start: where to open the server, what it
 * serves, what it may read and write, how to stop it; and with --qr, a QR
 * code of the network URL for a phone.
 */
import { resolve } from "node:path";
import {
  type AccessPlan,
  bracketHost,
  describeAccess,
  isWildcard,
} from "./access.ts";
import type { CliOptions } from "./cli.ts";

/** An interface address, as Deno.networkInterfaces() lists it. */
export interface Address {
  readonly family: "IPv4" | "IPv6";
  readonly address: string;
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

/**
 * The URLs a server bound to `hostname` answers on. Bound to every
 * interface: loopback first, then each address of `interfaces` (IPv6 ones
 * only for `::`; link-local ones need a zone and are left out).
 */
export function serverUrls(
  scheme: "http" | "https",
  hostname: string,
  port: number,
  interfaces: readonly Address[] | undefined,
): string[] {
  const url = (host: string) => `${scheme}://${bracketHost(host)}:${port}/`;
  if (!isWildcard(hostname)) return [url(hostname)];
  const v6 = hostname !== "0.0.0.0";
  const urls = [url(v6 ? "::1" : "127.0.0.1")];
  for (const { family, address } of interfaces ?? []) {
    if (isLoopback(address) || address.startsWith("fe80:")) continue;
    if (family === "IPv4" || v6) urls.push(url(address));
  }
  return urls;
}

/** The first URL another machine on the network can open, or undefined. */
export function networkUrl(urls: readonly string[]): string | undefined {
  return urls.find((u) => {
    const host = new URL(u).hostname.replace(/^\[|\]$/g, "");
    return !isLoopback(host) && host !== "localhost";
  });
}

/** Interface addresses, or undefined without --allow-sys=networkInterfaces. */
export function listInterfaces(): Address[] | undefined {
  const state = Deno.permissions.querySync({
    name: "sys",
    kind: "networkInterfaces",
  }).state;
  if (state !== "granted") return undefined;
  return Deno.networkInterfaces().map(({ family, address }) => ({
    family,
    address,
  }));
}

/** What the start lines say. */
export interface StartInfo {
  readonly root: string;
  readonly urls: readonly string[];
  /** Bound to every interface, but their addresses could not be listed. */
  readonly unlisted?: boolean;
  readonly reads: string;
  readonly writes: string;
}

/** The start lines, for a terminal. */
export function startLines(info: StartInfo): string[] {
  return [
    `Serving ${info.root} on`,
    ...info.urls.map((u) => `  ${u}`),
    ...(info.unlisted
      ? [
        "  and every other address of this machine (--allow-sys=networkInterfaces lists them)",
      ]
      : []),
    `May read ${info.reads}`,
    `May write ${info.writes}`,
    "Ctrl-C to stop",
  ];
}

/** A QR code of `url` drawn with Unicode half blocks, or why there is none. */
export async function qrLines(url: string | undefined): Promise<string[]> {
  if (url === undefined) {
    return [
      "--qr: no network address to show: bound to loopback only; add --host 0.0.0.0 to open it from a phone",
    ];
  }
  let render: (text: string, options: { border: number }) => string;
  try {
    // Loaded only for --qr, so a plain start does not pay for it.
    render = (await import("./npm/uqr.ts")).renderUnicodeCompact;
  } catch (err) {
    return [`--qr: cannot load the QR code package: ${err}`];
  }
  return [`Scan to open ${url}`, ...render(url, { border: 1 }).split("\n")];
}

/** What the listening event carries besides the URL. */
export interface StartEvent {
  readonly urls: readonly string[];
  readonly root: string;
  readonly reads: string;
  readonly writes: string;
}

/**
 * Prints the start lines for a person, and the QR code with --qr. With JSON
 * logs stdout stays JSON: no start lines, the QR code on stderr. With
 * `common` or `combined` stdout holds access lines alone, so the start lines
 * go to stderr with the other records. Call it
 * before the first log line: LogTape writes asynchronously, and these lines
 * must not land in the middle of the log.
 */
export async function printStart(
  opts: CliOptions,
  hostname: string,
  port: number,
  plan: AccessPlan,
): Promise<StartEvent> {
  const scheme = opts.tls === undefined ? "http" : "https";
  const interfaces = listInterfaces();
  const urls = serverUrls(scheme, hostname, port, interfaces);
  const root = resolve(opts.app.static.root);
  const { reads, writes } = describeAccess(plan);
  const json = opts.logFormat === "json";
  const accessOnly = opts.logFormat === "common" ||
    opts.logFormat === "combined";
  const say = json || accessOnly ? console.error : console.log;
  if (!json) {
    const unlisted = isWildcard(hostname) && interfaces === undefined;
    for (const line of startLines({ root, urls, unlisted, reads, writes })) {
      say(line);
    }
  }
  if (opts.qr) {
    for (const line of await qrLines(networkUrl(urls))) say(line);
  }
  return { urls, root, reads, writes };
}
