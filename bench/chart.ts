/**
 * A small hand-written SVG writer for the bench's chart: one horizontal bar
 * per result row, its length the share of the target reached (1.0 = target
 * met), with the measured figure and the target written beside it. No
 * browser, no library: a string of SVG elements.
 */

/** One bar of the chart. */
export interface ChartBar {
  /** Row label, e.g. "1 Default app, access log on". */
  readonly label: string;
  /** Share of the target reached (see `Target.score`); NaN: not measured. */
  readonly score: number;
  /** The figure and its target, e.g. "0.41x Deno.serve (target >= 0.9x)". */
  readonly text: string;
  readonly pass: boolean;
}

/** Width of a character of the 12 px labels, a little above the average. */
const CHAR_WIDTH = 7;
const MIN_WIDTH = 760;
const BAR_WIDTH = 300;
const ROW_HEIGHT = 24;
const BAR_HEIGHT = 14;
const TOP = 48;
const BOTTOM = 30;
const FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif";
/** Bars stop at this score; longer ones end in an arrow. */
export const MAX_SCORE = 3;
const PASS_COLOR = "#2e7d32";
const FAIL_COLOR = "#c62828";

/** Escapes text for SVG content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) =>
      ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[
        c
      ]!,
  );
}

/** Pixel length of a bar for `score`, capped at MAX_SCORE; 0 for NaN. */
export function barLength(score: number): number {
  if (Number.isNaN(score) || score <= 0) return 0;
  return Math.round(Math.min(score, MAX_SCORE) / MAX_SCORE * BAR_WIDTH);
}

/** The whole chart as an SVG document. */
export function renderChart(title: string, bars: readonly ChartBar[]): string {
  const height = TOP + bars.length * ROW_HEIGHT + BOTTOM;
  // Sized to the longest label and text, so neither is cut off.
  const texts = bars.map((b) =>
    Number.isNaN(b.score) ? `${b.text} (not measured)` : b.text
  );
  const longest = (list: string[]) => Math.max(0, ...list.map((t) => t.length));
  const x0 = 20 + CHAR_WIDTH * longest(bars.map((b) => b.label));
  const width = Math.max(
    MIN_WIDTH,
    x0 + BAR_WIDTH + 28 + CHAR_WIDTH * longest(texts),
  );
  const targetX = x0 + barLength(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" style="${FONT}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${
      escapeXml(title)
    }</text>`,
    `<text x="12" y="40" font-size="11" fill="#555">Bar: share of the target reached (the line at 1.0 is the target; longer is better). Green: met. Red: missed.</text>`,
  ];
  for (const [i, bar] of bars.entries()) {
    const y = TOP + i * ROW_HEIGHT;
    const mid = y + ROW_HEIGHT / 2;
    const length = barLength(bar.score);
    const color = bar.pass ? PASS_COLOR : FAIL_COLOR;
    out.push(
      `<text x="${x0 - 8}" y="${mid + 4}" font-size="12" text-anchor="end">${
        escapeXml(bar.label)
      }</text>`,
    );
    if (length > 0) {
      out.push(
        `<rect x="${x0}" y="${
          mid - BAR_HEIGHT / 2
        }" width="${length}" height="${BAR_HEIGHT}" fill="${color}"/>`,
      );
    }
    if (bar.score > MAX_SCORE) {
      // Past the scale: an arrowhead says the bar goes on.
      const tip = x0 + length;
      out.push(
        `<path d="M${tip} ${mid - BAR_HEIGHT / 2 - 2}L${
          tip + 8
        } ${mid}L${tip} ${mid + BAR_HEIGHT / 2 + 2}Z" fill="${color}"/>`,
      );
    }
    out.push(
      `<text x="${x0 + BAR_WIDTH + 16}" y="${mid + 4}" font-size="12" fill="${
        Number.isNaN(bar.score) ? "#777" : color
      }">${escapeXml(texts[i])}</text>`,
    );
  }
  const axisY = TOP + bars.length * ROW_HEIGHT;
  out.push(
    `<line x1="${targetX}" y1="${TOP - 4}" x2="${targetX}" y2="${
      axisY + 4
    }" stroke="#222" stroke-dasharray="4 3"/>`,
    `<line x1="${x0}" y1="${axisY + 4}" x2="${x0 + BAR_WIDTH}" y2="${
      axisY + 4
    }" stroke="#999"/>`,
  );
  for (let tick = 0; tick <= MAX_SCORE; tick++) {
    out.push(
      `<text x="${x0 + barLength(tick)}" y="${
        axisY + 18
      }" font-size="11" text-anchor="middle" fill="#555">${tick}.0</text>`,
    );
  }
  out.push("</svg>", "");
  return out.join("\n");
}
