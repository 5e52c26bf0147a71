/**
 * The bench's arithmetic, with no I/O: the order servers take in each
 * round, paired per-round ratios and their median, CPU per unit of work,
 * and targets that judge a figure. Unit-tested in tests/bench_load_test.ts.
 */

/** Middle value; the mean of the two middle ones for an even count; NaN if empty. */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Indexes of `sides` servers in the order round `round` measures them: a
 * rotation by one each round, so with two sides the order alternates and
 * each side goes first as often as the other (machine drift cancels out).
 */
export function roundOrder(sides: number, round: number): number[] {
  return Array.from({ length: sides }, (_, i) => (i + round) % sides);
}

/** Ratio of round i of `a` to round i of `b`: one per round measured by both. */
export function pairedRatios(
  a: readonly number[],
  b: readonly number[],
): number[] {
  if (a.length !== b.length) {
    throw new RangeError(
      `Cannot pair ${a.length} rounds with ${b.length} rounds`,
    );
  }
  return a.map((x, i) => x / b[i]);
}

/** A set of per-round ratios summed up as the bench reports it. */
export interface RatioSummary {
  readonly median: number;
  readonly low: number;
  readonly high: number;
  readonly ratios: readonly number[];
}

/** Median of the paired ratios `a[i] / b[i]`, with their range. */
export function summarizePaired(
  a: readonly number[],
  b: readonly number[],
): RatioSummary {
  const ratios = pairedRatios(a, b);
  const finite = ratios.filter(Number.isFinite);
  return {
    median: median(finite),
    low: finite.length ? Math.min(...finite) : Number.NaN,
    high: finite.length ? Math.max(...finite) : Number.NaN,
    ratios,
  };
}

/** Microseconds of CPU per unit of work (a request, a MiB); NaN for no work. */
export function cpuMicrosPerUnit(cpuSeconds: number, units: number): number {
  return units > 0 ? cpuSeconds * 1e6 / units : Number.NaN;
}

/**
 * CPU time, in clock ticks, of the processes whose `/proc/<pid>/stat` lines
 * are given: utime + stime (fields 14 and 15), which count every thread of
 * the process. The command name may hold spaces and parentheses, so the
 * fields are counted from its last `)`. Lines that are not stat lines
 * (empty, a process that exited) count zero.
 */
export function statTicks(statLines: readonly string[]): number {
  let ticks = 0;
  for (const line of statLines) {
    const close = line.lastIndexOf(")");
    if (close < 0) continue;
    // After "pid (comm) ": state is field 3, so utime (14) is index 11.
    const rest = line.slice(close + 2).split(" ");
    if (rest.length <= 12) continue;
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (Number.isFinite(utime) && Number.isFinite(stime)) {
      ticks += utime + stime;
    }
  }
  return ticks;
}

/**
 * Socket inodes listening on `port`, from the text of /proc/net/tcp and
 * /proc/net/tcp6 (state 0A is LISTEN; the local port is hex after the colon).
 */
export function listeningInodes(procNetTcp: string, port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes: string[] = [];
  for (const line of procNetTcp.split("\n")) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (f.length < 10 || f[3] !== "0A") continue;
    if (f[1].slice(f[1].lastIndexOf(":") + 1) === hexPort) inodes.push(f[9]);
  }
  return inodes;
}

/** What a case's figure is held to, and how far it got. */
export interface Target {
  /** As the table shows it, e.g. ">= 0.9x" or "<= 8.0 KiB". */
  readonly text: string;
  /** True when `value` meets the target. */
  holds(value: number): boolean;
  /**
   * Share of the target reached: 1 when just met, above 1 past it, 0.5 at
   * half of it (a figure that should be small scores target / value). The
   * chart draws this, so every bar reads "longer is better".
   */
  score(value: number): number;
}

/** A figure that must be at least `min` (a throughput ratio). */
export function atLeast(min: number, text = `>= ${min.toFixed(1)}x`): Target {
  return {
    text,
    holds: (value) => value >= min,
    score: (value) => value / min,
  };
}

/** A figure that must be at most `max` (a latency ratio, bytes, ms). */
export function atMost(max: number, text = `<= ${max.toFixed(2)}x`): Target {
  return {
    text,
    holds: (value) => value <= max,
    score: (value) => value > 0 ? max / value : Number.POSITIVE_INFINITY,
  };
}
