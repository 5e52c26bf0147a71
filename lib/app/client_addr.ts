/**
 * Who the client is: the socket peer, or the address a trusted reverse proxy
 * put in X-Forwarded-For. Rate limiting and metrics key on this address.
 */
import ipaddr from "../npm/ipaddr.ts";

/**
 * Decides whether a peer address is one of our reverse proxies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ProxyTrust, Router, serve, text } from "@spindle/server";
 *
 * const fromLoopback: ProxyTrust = (addr) => addr === "127.0.0.1" || addr === "::1";
 * const app = new Router().get("/who", (req) => text(req.client));
 * await using server = serve(
 *   { port: 0, accessLog: false },
 *   app.handler({ trustProxy: fromLoopback }),
 * );
 * const res = await fetch(`http://127.0.0.1:${server.port}/who`, {
 *   headers: { "x-forwarded-for": "198.51.100.4" },
 * });
 * assert.equal(await res.text(), "198.51.100.4");
 * ```
 */
export type ProxyTrust = (addr: string) => boolean;

/** Trusts nobody: X-Forwarded-For is ignored. */
export const TRUST_NONE: ProxyTrust = () => false;

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * True for an IPv4 address exactly as ipaddr.js prints it: four decimal
 * octets of 0 to 255 without leading zeros, dot-separated, nothing else.
 * Read by hand: the same test as a regular expression costs more.
 */
export function isDottedQuad(text: string): boolean {
  let at = octetEnd(text, 0);
  for (let dots = 0; dots < 3; dots++) {
    if (at === -1 || text.charCodeAt(at) !== 0x2e) return false;
    at = octetEnd(text, at + 1);
  }
  return at === text.length;
}

/**
 * Where the octet at `at` ends (its value 0 to 255, no leading zero), or -1
 * for none there. A digit after it is left for the caller to refuse.
 */
function octetEnd(text: string, at: number): number {
  // Past the end charCodeAt() is NaN: no comparison holds.
  const a = text.charCodeAt(at) - 0x30;
  if (!(a >= 0 && a <= 9)) return -1;
  if (a === 0) return at + 1;
  const b = text.charCodeAt(at + 1) - 0x30;
  if (!(b >= 0 && b <= 9)) return at + 1;
  const c = text.charCodeAt(at + 2) - 0x30;
  if (!(c >= 0 && c <= 9)) return at + 2;
  return a * 100 + b * 10 + c > 255 ? -1 : at + 3;
}

/** Parses an address strictly: dotted-quad IPv4 or IPv6, else undefined. */
function parseAddr(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  // ipaddr.isValid() also takes "1.2" and "0x7f.1"; forwarded addresses and
  // config entries in those forms are mistakes, not addresses.
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  const zone = text.indexOf("%"); // fe80::1%eth0: the zone is not the address
  const bare = zone === -1 ? text : text.slice(0, zone);
  if (!ipaddr.IPv6.isValid(bare)) return undefined;
  // "::ffff:10.0.0.1" from a dual-stack socket is the IPv4 peer 10.0.0.1.
  return ipaddr.process(bare);
}

/**
 * Builds the trust test for `--trust-proxy`: each entry is an address
 * (`10.0.0.1`, `::1`), a CIDR range (`10.0.0.0/8`, `fd00::/8`) or `loopback`.
 *
 * @throws {TypeError} for an entry that is none of these (a config mistake).
 */
export function trustProxy(entries: readonly string[]): ProxyTrust {
  if (entries.length === 0) return TRUST_NONE;
  const ranges: Range[] = [];
  let loopback = false;
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === "loopback") {
      loopback = true;
    } else if (entry.includes("/")) {
      const [addr, bits, extra] = entry.split("/");
      const parsed = parseAddr(addr);
      const n = Number(bits);
      const max = parsed?.kind() === "ipv4" ? 32 : 128;
      if (
        !parsed || extra !== undefined || !/^\d{1,3}$/.test(bits) || n > max
      ) {
        throw new TypeError(`Cannot read trusted proxy range: ${entry}`);
      }
      ranges.push([parsed, n]);
    } else {
      const parsed = parseAddr(entry);
      if (!parsed) throw new TypeError(`Cannot read trusted proxy: ${entry}`);
      ranges.push([parsed, parsed.kind() === "ipv4" ? 32 : 128]);
    }
  }
  return (text) => {
    const addr = parseAddr(text);
    if (!addr) return false;
    if (loopback && addr.range() === "loopback") return true;
    for (const [base, bits] of ranges) {
      if (base.kind() === addr.kind() && addr.match(base, bits)) return true;
    }
    return false;
  };
}

/**
 * The client's address. With a trusted peer, walks X-Forwarded-For from the
 * right (the entry our proxy appended) past further trusted proxies; the
 * first untrusted entry is the client. Entries left of it were written by the
 * client and are never believed. A malformed entry stops the walk at the last
 * good hop, so a forged header cannot pick an arbitrary key.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trusted: ProxyTrust,
): string {
  if (forwardedFor === undefined || !trusted(peer)) return peer;
  let client = peer;
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i].trim();
    const addr = parseAddr(hop);
    if (!addr) break;
    client = addr.toString();
    if (!trusted(client)) break;
  }
  return client;
}

/**
 * The key a client is counted under: IPv4 as is, IPv6 by its /64 prefix,
 * because one host commonly holds a whole /64 and could rotate through it.
 */
export function clientKey(addr: string): string {
  // Most keys are a peer's dotted quad, already canonical: no parse needed.
  if (isDottedQuad(addr)) return addr;
  const parsed = parseAddr(addr);
  if (!parsed) return addr;
  if (parsed.kind() === "ipv4") return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts;
  return `${parts[0].toString(16)}:${parts[1].toString(16)}:${
    parts[2].toString(16)
  }:${parts[3].toString(16)}::/64`;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(addr: string): boolean {
  return parseAddr(addr)?.range() === "loopback";
}

/** One proxy-written address: unquoted, without `[...]` or a port. */
function hostOfNode(node: string): string {
  let text = node.trim();
  if (text.startsWith('"') && text.endsWith('"') && text.length >= 2) {
    text = text.slice(1, -1);
  }
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    return close === -1 ? text : text.slice(1, close); // "[::1]:8080"
  }
  const colon = text.indexOf(":");
  // One colon is "1.2.3.4:5678"; more are a bare IPv6 address.
  return colon !== -1 && colon === text.lastIndexOf(":")
    ? text.slice(0, colon)
    : text;
}

/**
 * The first client named by X-Forwarded-For or Forwarded (RFC 7239 `for=`)
 * that is not loopback; an entry that is not an address (`unknown`,
 * `_hidden`, garbage) counts as not loopback. Undefined when every named
 * client is loopback or neither header is there.
 *
 * Whether or not the proxy is trusted: a proxy on loopback makes its
 * clients' peer address loopback, and these headers are all that tells them
 * apart. A client that talks to us directly could forge them only to be
 * refused.
 */
export function forwardedBeyondLoopback(
  forwardedFor: string | undefined,
  forwarded: string | undefined,
): string | undefined {
  const named: string[] = [];
  if (forwardedFor !== undefined) named.push(...forwardedFor.split(","));
  if (forwarded !== undefined) {
    for (const element of forwarded.split(",")) {
      for (const pair of element.split(";")) {
        const eq = pair.indexOf("=");
        if (eq !== -1 && pair.slice(0, eq).trim().toLowerCase() === "for") {
          named.push(pair.slice(eq + 1));
        }
      }
    }
  }
  for (const node of named) {
    const host = hostOfNode(node);
    if (!isLoopback(host)) return host === "" ? "(empty)" : host;
  }
  return undefined;
}
