/**
 * Host header allow-list. A server bound to loopback answers only to loopback
 * names, which defeats DNS rebinding: a page on evil.example whose name
 * re-resolves to 127.0.0.1 still sends `Host: evil.example`, and gets 421.
 */
import { getLogger } from "../../npm/logtape.ts";
import { clipForLog } from "../../http/access_log.ts";
import { HttpError, STATUS } from "../../http/errors.ts";
import { isLoopback } from "../client_addr.ts";
import type { Middleware } from "../chain.ts";

const log = getLogger(["spindle", "app", "host"]);

/** Names a loopback-bound server answers to by default. */
const LOOPBACK_HOSTS: readonly string[] = [
  "localhost",
  "127.0.0.1",
  "[::1]",
];

export interface HostGuardOptions {
  /** Accepted Host values; unset: loopback names when bound to loopback, else any. */
  readonly allowedHosts?: readonly string[];
  /** The address the server is bound to. */
  readonly hostname: string;
  /** The port the server listens on (known only once bound, so a function). */
  readonly port: () => number;
  /** Called once per refused request (metrics). */
  readonly onRefused?: () => void;
}

/** One allow-list entry: a name (or `*.suffix`) and a port, or any port. */
interface HostRule {
  readonly name: string;
  readonly wildcard: boolean;
  /** A port to require; undefined: any port (or none). */
  readonly port: string | undefined;
}

/** Splits a Host value into a lower-case name and its port ("" when absent). */
export function splitHost(host: string): { name: string; port: string } {
  let colon = host.lastIndexOf(":");
  // "[::1]" has colons of its own: a port comes after the closing bracket.
  if (colon !== -1 && host.lastIndexOf("]") > colon) colon = -1;
  if (colon === -1) return { name: host.toLowerCase(), port: "" };
  return {
    name: host.slice(0, colon).toLowerCase(),
    port: host.slice(colon + 1),
  };
}

function parseRule(entry: string): HostRule {
  const { name, port } = splitHost(entry.trim());
  if (name.startsWith("*.")) {
    return { name: name.slice(1), wildcard: true, port: port || undefined };
  }
  return { name, wildcard: false, port: port || undefined };
}

/** True when `bindName` only takes loopback traffic (`127.0.0.1`, `::1`, `localhost`). */
export function isLoopbackBind(bindName: string): boolean {
  return bindName === "localhost" ||
    isLoopback(bindName.replace(/^\[|\]$/g, ""));
}

/**
 * Decides one Host value. `rules` from `allowedHosts` match a name (any port
 * unless the entry names one), `*.example.com` any subdomain, `*` anything.
 * The loopback default (`rules` undefined) takes its names without a port or
 * with the server's own port. An empty Host (HTTP/1.0 without one) passes:
 * browsers always send Host, so it cannot come from a rebinding page.
 */
export function hostAllowed(
  host: string,
  rules: readonly string[] | undefined,
  serverPort: number,
): boolean {
  return matchHost(host, rules?.map(parseRule), serverPort);
}

function matchHost(
  host: string,
  rules: readonly HostRule[] | undefined,
  serverPort: number,
): boolean {
  if (host === "") return true;
  const { name, port } = splitHost(host);
  if (port !== "" && !/^\d{1,5}$/.test(port)) return false;
  if (rules === undefined) {
    return LOOPBACK_HOSTS.includes(name) &&
      (port === "" || Number(port) === serverPort);
  }
  for (const rule of rules) {
    if (rule.name === "*") return true;
    if (rule.port !== undefined && rule.port !== port) continue;
    if (
      rule.wildcard
        ? name.endsWith(rule.name) && name.length > rule.name.length
        : name === rule.name
    ) return true;
  }
  return false;
}

/**
 * Answers 421 Misdirected Request (logged) to a Host outside the allowed set;
 * null when every Host is allowed (bound beyond loopback, no list given).
 */
export function hostGuard(options: HostGuardOptions): Middleware | null {
  const list = options.allowedHosts;
  if (list === undefined && !isLoopbackBind(options.hostname)) return null;
  if (list !== undefined && list.includes("*")) return null;
  const rules = list?.map(parseRule);
  const { port } = options;
  // A client sends the same Host again and again: remember the last good one.
  let goodHost: string | undefined;
  let goodPort = 0;
  return {
    before: (req) => {
      const serverPort = port();
      if (req.host === goodHost && serverPort === goodPort) return undefined;
      if (!matchHost(req.host, rules, serverPort)) {
        options.onRefused?.();
        log.warn("Refused Host {host} from {client}", {
          host: clipForLog(req.host), // a client's text: bounded in the log
          client: req.client,
        });
        throw new HttpError(
          STATUS.MisdirectedRequest,
          `Host not served here: ${req.host}`,
          {
            expose: "This server does not answer to that Host",
          },
        );
      }
      goodHost = req.host;
      goodPort = serverPort;
      return undefined;
    },
  };
}
