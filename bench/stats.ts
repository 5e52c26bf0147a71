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

/** One process in a CPU reading: its pid, start (clock ticks after boot) and CPU ticks. */
export interface ProcCpu {
  readonly pid: number;
  readonly start: number;
  readonly ticks: number;
}

/** A process's pid, start time (field 22) and utime + stime from its stat line; null if it is none. */
export function parseStat(line: string): ProcCpu | null {
  const close = line.lastIndexOf(")");
  if (close < 0) return null;
  const rest = line.slice(close + 2).split(" ");
  // rest[0] is field 3 (state): utime 14, stime 15, starttime 22.
  const pid = Number(line.slice(0, line.indexOf(" ")));
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const start = Number(rest[19]);
  if (
    rest.length <= 19 || !(pid > 0) || !Number.isFinite(utime + stime + start)
  ) {
    return null;
  }
  return { pid, start, ticks: utime + stime };
}

/** A process tree's CPU at one moment, from /proc. */
export interface CpuReading {
  /** The root the tree was read from (the engine). */
  readonly root: number;
  /** Clock ticks after boot when the reading began (/proc/uptime). */
  readonly atTicks: number;
  readonly ticksPerSec: number;
  /** The processes whose stat could be read. */
  readonly procs: readonly ProcCpu[];
}

/** CPU of a tree between two readings, and why it may be short or wrong. */
export interface CpuSpent {
  readonly seconds: number;
  /** What made the figure untrustworthy; none when it is sound. */
  readonly problems: readonly string[];
}

/**
 * CPU spent by a tree between two readings. A process counts what it spent
 * between them: present in both (the same pid and start time), or started
 * after the first, all of its time. A process older than the first reading
 * that it missed (a failed read, a process that joined the tree) would
 * bring its whole past: it is left out and named, as is a root missing from
 * either reading and a process that left (its time in the window is lost).
 */
export function cpuBetween(before: CpuReading, after: CpuReading): CpuSpent {
  const problems: string[] = [];
  const earlier = new Map(before.procs.map((p) => [p.pid, p]));
  const key = (p: ProcCpu) => `${p.pid}@${p.start}`;
  const later = new Set(after.procs.map(key));
  for (const [label, reading] of [["before", before], ["after", after]]) {
    if (!(reading as CpuReading).procs.some((p) => p.pid === before.root)) {
      problems.push(
        `the engine's CPU (pid ${before.root}) could not be read ${label} the run`,
      );
    }
  }
  let ticks = 0;
  for (const p of after.procs) {
    const was = earlier.get(p.pid);
    if (was !== undefined && was.start === p.start) {
      ticks += p.ticks - was.ticks;
    } else if (p.start >= before.atTicks) {
      ticks += p.ticks;
    } else if (p.pid !== before.root) {
      problems.push(
        `pid ${p.pid} joined the tree during the run with ${
          (p.ticks / after.ticksPerSec).toFixed(2)
        } s of CPU from before it: not counted`,
      );
    }
  }
  for (const p of before.procs) {
    if (p.pid !== before.root && !later.has(key(p))) {
      problems.push(
        `pid ${p.pid} left the tree during the run: its CPU in the run is not counted`,
      );
    }
  }
  return {
    seconds: problems.some((p) => p.startsWith("the engine's"))
      ? Number.NaN
      : ticks / after.ticksPerSec,
    problems,
  };
}

/** How many cores a `Cpus_allowed_list` ("0", "0-1,3") names; NaN if it names none. */
export function cpuListSize(list: string): number {
  let n = 0;
  for (const part of list.trim().split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) return Number.NaN;
    n += m[2] === undefined ? 1 : Number(m[2]) - Number(m[1]) + 1;
  }
  return n > 0 ? n : Number.NaN;
}

/**
 * Why `cpuSeconds` cannot have been spent in `windowMs` on `cores` cores, or
 * null when it can. Two ticks of slack: /proc counts in whole ticks.
 */
export function impossibleCpu(
  cpuSeconds: number,
  windowMs: number,
  cores: number,
  ticksPerSec = 100,
): string | null {
  const most = windowMs / 1000 * cores + 2 / ticksPerSec;
  if (!(cpuSeconds > most)) return null;
  return `server CPU ${cpuSeconds.toFixed(2)} s in a ${
    (windowMs / 1000).toFixed(2)
  } s window is more than its ${cores} core(s) allow (${
    (cpuSeconds / (windowMs / 1000)).toFixed(2)
  } cores)`;
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
