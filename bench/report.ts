/**
 * Result rows and how they are shown: the Markdown table of
 * bench/results.md and the bars of bench/results.svg.
 */
import type { ChartBar } from "./chart.ts";
import type { RatioSummary, Target } from "./stats.ts";

/** Spindle's and the reference's CPU per unit of work. */
export interface CpuPair {
  readonly spindle: number;
  readonly reference: number;
  /** "µs/req" or "µs/MiB". */
  readonly unit: string;
}

/** One line of the results table. */
export interface Row {
  /** Case number, with a letter when a case gives several rows ("3b"). */
  readonly id: string;
  readonly title: string;
  /** Spindle's figure, e.g. "105,000 req/s". */
  readonly spindle: string;
  /** The reference's figure, or "-". */
  readonly reference: string;
  /** The figure the target judges: a median paired ratio, KiB, ms. */
  readonly value: number;
  /** `value` as shown, with its spread, e.g. "0.41x (0.38-0.44)". */
  readonly valueText: string;
  /** Median server CPU per request (or MiB), in µs; null where not measured. */
  readonly cpu: CpuPair | null;
  /**
   * Other servers' median CPU per unit measured in the same rounds, by
   * name (3b: {@link PARSE_REPLY_CPU}).
   */
  readonly moreCpu?: Readonly<Record<string, number>>;
  readonly target: Target;
  /** What fails the row besides the target: errors, a missing access log. */
  readonly problems: readonly string[];
  /** Doubts that do not fail it, e.g. a server that was not saturated. */
  readonly caveats: readonly string[];
  /** The chart's label and text beside the bar. */
  readonly chartLabel: string;
  readonly chartText: string;
}

export type Verdict = "pass" | "FAIL";

export function verdictOf(row: Row): Verdict {
  return row.problems.length === 0 && row.target.holds(row.value)
    ? "pass"
    : "FAIL";
}

/** A row for a case that could not run: it fails, and says why. */
export function failedRow(id: string, title: string, why: string): Row {
  return {
    id,
    title,
    spindle: "-",
    reference: "-",
    value: Number.NaN,
    valueText: "-",
    cpu: null,
    target: { text: "-", holds: () => false, score: () => Number.NaN },
    problems: [why],
    caveats: [],
    chartLabel: `${id} ${title}`,
    chartText: "did not run",
  };
}

export function fmtRps(n: number): string {
  return `${Math.round(n).toLocaleString("en-US")} req/s`;
}

export function fmtBytes(n: number): string {
  const KIB = 1024;
  if (Math.abs(n) >= KIB ** 3) return `${(n / KIB ** 3).toFixed(2)} GiB`;
  if (Math.abs(n) >= KIB ** 2) return `${(n / KIB ** 2).toFixed(1)} MiB`;
  if (Math.abs(n) >= KIB) return `${(n / KIB).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

export function fmtRatio(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(2)}x` : "n/a";
}

export function fmtMs(us: number): string {
  const ms = us / 1000;
  return Number.isNaN(ms) ? "n/a" : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

/** "0.41x (0.38-0.44)": the median paired ratio and its range. */
export function fmtSummary(s: RatioSummary): string {
  return s.ratios.length > 1
    ? `${fmtRatio(s.median)} (${s.low.toFixed(2)}-${s.high.toFixed(2)})`
    : fmtRatio(s.median);
}

/** "9.4 / 7.2 µs/req": Spindle's then the reference's median CPU per unit. */
export function fmtCpuPair(cpu: CpuPair | null): string {
  if (cpu === null) return "-";
  const f = (n: number) => Number.isNaN(n) ? "n/a" : n.toFixed(n < 10 ? 2 : 1);
  return `${f(cpu.spindle)} / ${f(cpu.reference)} ${cpu.unit}`;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}

/** The results table, in the order rows were added. */
export function renderTable(rows: readonly Row[]): string {
  const lines = [
    "| # | Case | Spindle | Reference | Measured | Target | Server CPU (Spindle / ref.) | Result |",
    "|---|---|---:|---:|---:|---|---:|---|",
  ];
  for (const r of rows) {
    const verdict = verdictOf(r);
    const why = [...r.problems, ...r.caveats];
    lines.push(
      `| ${r.id} | ${cell(r.title)} | ${cell(r.spindle)} | ${
        cell(r.reference)
      } | ${cell(r.valueText)} | ${cell(r.target.text)} | ${
        cell(fmtCpuPair(r.cpu))
      } | ${verdict === "FAIL" ? "**FAIL**" : "pass"}${
        why.length ? ` (${cell(why.join("; "))})` : ""
      } |`,
    );
  }
  return lines.join("\n");
}

/** One chart bar per row. */
export function chartBars(rows: readonly Row[]): ChartBar[] {
  return rows.map((r) => ({
    label: r.chartLabel,
    score: r.target.score(r.value),
    text: r.chartText,
    pass: verdictOf(r) === "pass",
  }));
}

/** Row 3b's {@link Row.moreCpu} key: the bare loop + parseHead() + reply writer. */
export const PARSE_REPLY_CPU = "parse+reply loop";

/**
 * Where a request's CPU goes, layer by layer, from the rows of one run: the
 * bare Deno.listen loop (row 3b's reference), that loop plus the engine's
 * parse and reply (3b's parse+reply loop), the engine alone (3b), the
 * default app with --quiet (2) and with its access log (1), against
 * Deno.serve (1's reference). A saturated core serves 1 / (CPU per
 * request), so a throughput target is a CPU budget: Deno.serve's cost over
 * the target ratio. Null unless all those rows were measured.
 */
export function cpuLadder(rows: readonly Row[]): string | null {
  const find = (id: string) => rows.find((r) => r.id === id);
  const [app, quiet, engine] = ["1", "2", "3b"].map((id) => find(id)?.cpu);
  if (!app || !quiet || !engine) return null;
  const values = [
    engine.reference,
    find("3b")?.moreCpu?.[PARSE_REPLY_CPU] ?? Number.NaN,
    engine.spindle,
    quiet.spindle,
    app.spindle,
    app.reference,
  ];
  if (values.some((n) => !Number.isFinite(n))) return null;
  const [floor, parse, bare, noLog, withLog, deno] = values;
  const us = (n: number) => `${n.toFixed(2)} µs`;
  const step = (n: number, from: number) =>
    `${us(n)} (${n >= from ? "+" : ""}${(n - from).toFixed(2)}`;
  const budget = deno / 0.9;
  const left = budget >= parse
    ? `${
      us(budget - parse)
    } over the parse+reply loop for the keep-alive loop, app and log`
    : `${us(parse - budget)} less than the parse+reply loop alone`;
  return `CPU per request, layer by layer (medians of this run): the bare Deno.listen loop ${
    us(floor)
  }; plus the engine's parseHead() and reply writer (parse+reply loop) ${
    step(parse, floor)
  }: parse, reply); the engine alone ${
    step(bare, parse)
  }: its loop with deadlines, limits, keep-alive); the default app with --quiet ${
    step(noLog, bare)
  }: router, middleware, handler); with its access log ${
    step(withLog, noLog)
  }: the log). Deno.serve's hello costs ${
    us(deno)
  }. On one saturated core, case 1's 0.9x target leaves ${
    us(budget)
  } per request: ${left}; case 2's 1.0x leaves ${us(deno)}.`;
}
