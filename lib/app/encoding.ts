/**
 * Content-coding negotiation (RFC 9110 §12.5.3), shared by the static handler
 * and the compression middleware so both read Accept-Encoding the same way.
 */

/** One Accept-Encoding entry: a coding (lower case) and its weight. */
interface Weighted {
  readonly coding: string;
  readonly q: number;
}

// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/** Accept-Encoding as parsed: its entries, and the weight of "*" if named. */
interface Accepted {
  readonly entries: readonly Weighted[];
  readonly star: number | undefined;
}

// A client sends the same Accept-Encoding with every request: parse a value
// once, not for each of the two or three questions a request asks of it.
let lastValue = "";
let lastAccepted: Accepted = { entries: [], star: undefined };

/** Parses Accept-Encoding; entries with a malformed weight are dropped. */
function parseAcceptEncoding(value: string): Accepted {
  if (value === lastValue) return lastAccepted;
  const entries: Weighted[] = [];
  let star: number | undefined;
  for (const part of value.split(",")) {
    const [rawCoding, ...params] = part.split(";");
    let coding = rawCoding.trim().toLowerCase();
    if (coding === "") continue;
    if (coding === "x-gzip") coding = "gzip"; // RFC 9110 §8.4.1.3
    let q = 1;
    let ok = true;
    for (const param of params) {
      const eq = param.indexOf("=");
      if (eq === -1) continue;
      if (param.slice(0, eq).trim().toLowerCase() !== "q") continue;
      const text = param.slice(eq + 1).trim();
      if (!QVALUE.test(text)) ok = false;
      else q = Number(text);
    }
    if (!ok) continue;
    entries.push({ coding, q });
    if (coding === "*") star = Math.max(star ?? 0, q);
  }
  lastValue = value;
  return lastAccepted = { entries, star };
}

/** The highest weight given to `coding` by name; undefined if not named. */
function weightOf(
  entries: readonly Weighted[],
  coding: string,
): number | undefined {
  let q: number | undefined;
  for (const entry of entries) {
    if (entry.coding === coding) q = Math.max(q ?? 0, entry.q);
  }
  return q;
}

/**
 * Picks the content coding to send: the acceptable coding with the highest
 * weight, ties broken by the order of `available` (server preference, best
 * first, e.g. `["br", "gzip"]`). "identity" is always available, after the
 * listed ones, and is what a request without Accept-Encoding gets.
 *
 * @returns a coding from `available`, "identity", or null when the client
 *   refused everything including identity (`identity;q=0` or `*;q=0`): 406.
 */
export function negotiateEncoding(
  acceptEncoding: string | undefined,
  available: readonly string[],
): string | null {
  // No field: anything goes, but RFC 9110 §12.5.3 suggests no coding at all.
  if (acceptEncoding === undefined) return "identity";
  const { entries, star } = parseAcceptEncoding(acceptEncoding);
  let best: string | null = null;
  let bestQ = 0;
  for (const coding of available) {
    if (coding === "identity") continue;
    const q = weightOf(entries, coding) ?? star ?? 0;
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  const identityQ = weightOf(entries, "identity");
  // Identity is acceptable unless excluded by name or by "*;q=0"; unnamed,
  // it ranks below any coding the client named.
  if (identityQ !== undefined) {
    if (identityQ > bestQ) return "identity";
    if (best === null && identityQ > 0) return "identity";
  } else if (best === null && star !== 0) {
    return "identity";
  }
  return best;
}
