/**
 * Who may open another connection: open sockets counted per client address
 * against `maxConnsPerIp`, and in all against the process's descriptor
 * budget, so the server refuses with a reply before the kernel refuses
 * with EMFILE.
 */
import type { Limits } from "../config.ts";

const IPV4_MAPPED = "::ffff:";

/** An IPv6 address's eight groups as numbers; an embedded IPv4 tail is two. */
function ipv6Groups(addr: string): number[] {
  const parse = (part: string): number[] =>
    part === "" ? [] : part.split(":").flatMap((g) => {
      if (!g.includes(".")) return [parseInt(g, 16) || 0];
      const [a, b, c, d] = g.split(".").map((n) => Number(n) || 0);
      return [(a << 8) | b, (c << 8) | d];
    });
  const gap = addr.indexOf("::");
  if (gap === -1) return parse(addr);
  const head = parse(addr.slice(0, gap));
  const tail = parse(addr.slice(gap + 2));
  const zeros = Math.max(0, 8 - head.length - tail.length);
  return [...head, ...new Array<number>(zeros).fill(0), ...tail];
}

/** Lower case, without a zone (fe80::1%eth0), IPv4-mapped as plain IPv4. */
function canonical(hostname: string): string {
  if (!hostname.includes(":")) return hostname;
  const lower = hostname.toLowerCase();
  const zone = lower.indexOf("%");
  const addr = zone === -1 ? lower : lower.slice(0, zone);
  if (addr.startsWith(IPV4_MAPPED) && addr.includes(".")) {
    return addr.slice(IPV4_MAPPED.length);
  }
  return addr;
}

/**
 * The key a client's connections are counted under: IPv4 as is (also when
 * IPv4-mapped), IPv6 by its /64 prefix, since one host commonly holds a
 * whole /64. The same rule as the rate limiter's `clientKey()`, written
 * again here because the engine does not import the application.
 */
export function addressKey(hostname: string): string {
  const addr = canonical(hostname);
  if (!addr.includes(":")) return addr;
  const prefix = ipv6Groups(addr).slice(0, 4).map((g) => g.toString(16));
  return `${prefix.join(":")}::/64`;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(hostname: string): boolean {
  const addr = canonical(hostname);
  if (!addr.includes(":")) return addr.startsWith("127.");
  const groups = ipv6Groups(addr);
  return groups.length === 8 && groups[7] === 1 &&
    groups.slice(0, 7).every((g) => g === 0);
}

/** Open sockets per client address, against `maxConnsPerIp`. */
export class AddressCounts {
  readonly #max: number;
  readonly #exempt: (hostname: string) => boolean;
  readonly #open = new Map<string, number>();

  constructor(maxPerAddress: number, exempt: (hostname: string) => boolean) {
    this.#max = maxPerAddress;
    this.#exempt = exempt;
  }

  /**
   * Counts a socket from `hostname`. Returns the key to pass to `remove()`,
   * or undefined when the address is not counted (no cap, or exempt).
   */
  add(hostname: string): string | undefined {
    if (this.#max === 0 || this.#exempt(hostname)) return undefined;
    const key = addressKey(hostname);
    this.#open.set(key, (this.#open.get(key) ?? 0) + 1);
    return key;
  }

  /** True when the address under `key` holds more sockets than allowed. */
  over(key: string | undefined): boolean {
    return key !== undefined && (this.#open.get(key) ?? 0) > this.#max;
  }

  remove(key: string | undefined): void {
    if (key === undefined) return;
    const n = (this.#open.get(key) ?? 1) - 1;
    if (n === 0) this.#open.delete(key);
    else this.#open.set(key, n);
  }

  /** Addresses with at least one socket open. */
  get size(): number {
    return this.#open.size;
  }
}

/**
 * The soft limit on open files from /proc/self/limits, or 0 when it cannot
 * be read. Deno asks for all permissions to read /proc/self, so under the
 * server's narrow --allow-read this is 0 and the budget is learnt instead.
 */
export function readOpenFileLimit(): number {
  const path = "/proc/self/limits";
  try {
    // Query first: a read without the permission would prompt on a terminal.
    if (
      Deno.permissions.querySync({ name: "read", path }).state !== "granted"
    ) {
      return 0;
    }
    const text = Deno.readTextFileSync(path);
    const m = /^Max open files\s+(\d+)/m.exec(text);
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/**
 * Sockets the engine holds, against what the process may open less a
 * reserve for files, logs and refusals.
 */
export class DescriptorBudget {
  /** Sockets open now: handled, queued, refused and not yet closed. */
  open = 0;
  #cap: number;
  #busyAt: number;
  readonly #reserve: number;
  readonly #busyPercent: number;

  /**
   * `share`: the part of the process's descriptors this engine may use,
   * 1/N when N engines (worker threads) run in one process. `burst`:
   * descriptors a listener may take before the engine sees them (node's
   * accepts its whole queue at once), kept free besides the reserve.
   */
  constructor(
    limits: Limits,
    share = 1,
    readLimit: () => number = readOpenFileLimit,
    burst = 0,
  ) {
    const whole = limits.maxOpenFiles > 0 ? limits.maxOpenFiles : readLimit();
    const limit = Math.floor(whole * share);
    // A small limit must not be all reserve: keep at least 3/4 for sockets.
    this.#reserve = limit > 0
      ? Math.min(limits.fdReserve, Math.floor(limit / 4))
      : limits.fdReserve;
    this.#busyPercent = limits.busyPercent;
    this.#cap = limit > 0 ? limit - this.#reserve - burst : Infinity;
    this.#busyAt = this.#cap * this.#busyPercent / 100;
  }

  /** Sockets allowed at once; Infinity while the limit is unknown. */
  get cap(): number {
    return this.#cap;
  }

  /** True when one more socket would spend the reserve. */
  get full(): boolean {
    return this.open > this.#cap;
  }

  /** True past `busyPercent` of the budget. */
  get busy(): boolean {
    return this.open >= this.#busyAt;
  }

  /**
   * The kernel said EMFILE with `open` sockets held. With the limit unknown,
   * everything else the process holds is what is left: keep the reserve
   * below this count from now on. A known limit is never lowered: EMFILE
   * then means sockets closed a moment ago still hold their descriptor,
   * which the reserve covers once they are gone. Returns the cap.
   */
  learn(): number {
    if (this.#cap === Infinity) {
      this.#cap = Math.max(1, this.open - this.#reserve);
      this.#busyAt = this.#cap * this.#busyPercent / 100;
    }
    return this.#cap;
  }
}

/**
 * Sets up Deno's signal handling now. Deno does it lazily, about half a
 * second after start, and needs two descriptors for it; if a flood has
 * taken every descriptor by then, Deno 2.9.6 panics (ext/signals unwraps
 * the EMFILE). Registering a listener makes it happen at once.
 */
export function primeSignalHandling(): void {
  if (Deno.build.os === "windows") return;
  const noop = () => {};
  try {
    Deno.addSignalListener("SIGWINCH", noop);
    Deno.removeSignalListener("SIGWINCH", noop);
  } catch { /* not allowed here (a worker): then not ours to prepare */ }
}
