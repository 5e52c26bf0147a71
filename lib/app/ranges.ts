/**
 * Byte ranges (RFC 9110 §14): parsing the Range field against a known size,
 * and the multipart/byteranges framing for replies with several ranges.
 */

/** An inclusive byte range, as in `Content-Range: bytes start-end/size`. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * What to do with a Range field: `null` ignores it (send the whole file with
 * 200), "unsatisfiable" is 416, a list (ascending, disjoint) is 206.
 */
export type RangeResult = null | "unsatisfiable" | readonly ByteRange[];

/**
 * More range-specs than this and the Range field is ignored (200), as nginx's
 * `max_ranges` does: a thousand tiny ranges cost the server far more than the
 * client (CVE-2011-3192, "Apache Killer").
 */
export const MAX_RANGES = 16;

const DIGITS = /^\d+$/;

/**
 * Parses a Range field for a representation of `size` bytes. Overlapping and
 * adjacent ranges are merged and sorted, so the parts never repeat a byte.
 * Ignored (null): a unit other than `bytes`, any invalid range-spec
 * (RFC 9110 §14.2 says to ignore an invalid field), more than
 * {@link MAX_RANGES} specs, and any range on an empty file (which has no byte
 * to point at, so it is always sent whole with 200).
 */
export function parseRange(value: string, size: number): RangeResult {
  const eq = value.indexOf("=");
  if (eq === -1 || value.slice(0, eq).trim().toLowerCase() !== "bytes") {
    return null;
  }
  if (size === 0) return null;
  const specs = value.slice(eq + 1).split(",");
  const ranges: ByteRange[] = [];
  let count = 0;
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === "") continue; // RFC 9110 §5.6.1: empty list elements are allowed
    if (++count > MAX_RANGES) return null;
    const dash = spec.indexOf("-");
    if (dash === -1) return null;
    const first = spec.slice(0, dash);
    const last = spec.slice(dash + 1);
    if (first === "") {
      // suffix-range "-N": the last N bytes
      if (!DIGITS.test(last)) return null;
      const length = Number(last);
      if (length > 0) {
        ranges.push({ start: Math.max(0, size - length), end: size - 1 });
      }
      continue;
    }
    if (!DIGITS.test(first) || (last !== "" && !DIGITS.test(last))) return null;
    const start = Number(first);
    const end = last === "" ? Infinity : Number(last);
    if (end < start) return null; // invalid, not merely unsatisfiable
    if (start < size) ranges.push({ start, end: Math.min(end, size - 1) });
  }
  if (count === 0) return null;
  if (ranges.length === 0) return "unsatisfiable";
  return coalesce(ranges);
}

/** Sorts ranges and merges those that overlap or touch. */
function coalesce(ranges: ByteRange[]): ByteRange[] {
  if (ranges.length === 1) return ranges;
  ranges.sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [ranges[0]];
  for (let i = 1; i < ranges.length; i++) {
    const prev = out[out.length - 1];
    const next = ranges[i];
    if (next.start <= prev.end + 1) {
      out[out.length - 1] = {
        start: prev.start,
        end: Math.max(prev.end, next.end),
      };
    } else {
      out.push(next);
    }
  }
  return out;
}

/** `bytes start-end/size`, the Content-Range of one part. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** The framing around each part of a multipart/byteranges body. */
export interface MultipartLayout {
  /** Content-Type of the whole reply, with the boundary. */
  readonly contentType: string;
  /** Head of each part (boundary line, Content-Type, Content-Range, blank line), in order. */
  readonly heads: readonly Uint8Array[];
  /** The closing boundary. */
  readonly tail: Uint8Array;
  /** Exact byte length of the whole body. */
  readonly length: number;
}

const encoder = new TextEncoder();

/**
 * Lays out a multipart/byteranges body (RFC 9110 §14.6) for `ranges` of a
 * representation of `size` bytes and media type `type`. The body is
 * `heads[0]`, bytes of range 0, `heads[1]`, ..., then `tail`.
 */
export function multipartLayout(
  ranges: readonly ByteRange[],
  size: number,
  type: string,
): MultipartLayout {
  const boundary = crypto.randomUUID().replaceAll("-", "");
  let length = 0;
  const heads = ranges.map((range, i) => {
    const head = encoder.encode(
      `${i === 0 ? "" : "\r\n"}--${boundary}\r\nContent-Type: ${type}\r\n` +
        `Content-Range: ${contentRange(range, size)}\r\n\r\n`,
    );
    length += head.length + range.end - range.start + 1;
    return head;
  });
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  length += tail.length;
  return {
    contentType: `multipart/byteranges; boundary=${boundary}`,
    heads,
    tail,
    length,
  };
}
