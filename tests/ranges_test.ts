import assert from "node:assert/strict";
import {
  MAX_RANGES,
  multipartLayout,
  parseRange,
  type RangeResult,
} from "../lib/app/ranges.ts";

const SIZE = 1000;
const cases: [range: string, expected: RangeResult][] = [
  ["bytes=0-99", [{ start: 0, end: 99 }]],
  ["bytes=500-", [{ start: 500, end: 999 }]],
  ["bytes=-500", [{ start: 500, end: 999 }]],
  ["bytes=-5000", [{ start: 0, end: 999 }]], // longer suffix: the whole file
  ["bytes=900-5000", [{ start: 900, end: 999 }]], // last-pos past the end is clamped
  ["bytes=999-999", [{ start: 999, end: 999 }]],
  ["bytes=0-0,-1", [{ start: 0, end: 0 }, { start: 999, end: 999 }]],
  ["Bytes = 1-2", [{ start: 1, end: 2 }]],
  ["bytes=0-9, 20-29", [{ start: 0, end: 9 }, { start: 20, end: 29 }]],
  ["bytes=20-29,0-9", [{ start: 0, end: 9 }, { start: 20, end: 29 }]], // sorted
  ["bytes=0-9,5-19", [{ start: 0, end: 19 }]], // overlapping: merged
  ["bytes=0-9,10-19", [{ start: 0, end: 19 }]], // adjacent: merged
  ["bytes=0-9,0-9,0-9", [{ start: 0, end: 9 }]],
  ["bytes=0-9,2000-3000", [{ start: 0, end: 9 }]], // unsatisfiable spec dropped
  ["bytes=0-99999999999999999999999", [{ start: 0, end: 999 }]],
  ["bytes=1000-", "unsatisfiable"],
  ["bytes=1000-2000", "unsatisfiable"],
  ["bytes=-0", "unsatisfiable"],
  ["bytes=5000-,-0", "unsatisfiable"],
  ["bytes=99999999999999999999999-", "unsatisfiable"],
  // Invalid: ignored, the whole file is sent.
  ["bytes=", null],
  ["bytes=,", null],
  ["bytes=abc", null],
  ["bytes=5-1", null],
  ["bytes=1-2-3", null],
  ["bytes=-", null],
  ["bytes=0x10-20", null],
  ["bytes=+1-2", null],
  ["bytes=1.5-2", null],
  ["bytes=1 - 2", null],
  ["bytes=0-1,x", null],
  ["items=0-1", null],
  ["bytes 0-1", null],
  ["", null],
  [
    `bytes=${
      Array.from(
        { length: MAX_RANGES + 1 },
        (_, i) => `${i * 10}-${i * 10 + 1}`,
      ).join(",")
    }`,
    null,
  ],
];
for (const [range, expected] of cases) {
  Deno.test(`parseRange() gives ${JSON.stringify(expected)} for "${range}" of ${SIZE} bytes`, () => {
    assert.deepEqual(parseRange(range, SIZE), expected);
  });
}

Deno.test("parseRange() accepts exactly MAX_RANGES specs", () => {
  const specs = Array.from(
    { length: MAX_RANGES },
    (_, i) => `${i * 10}-${i * 10 + 1}`,
  );
  const ranges = parseRange(`bytes=${specs.join(",")}`, SIZE);
  assert.ok(Array.isArray(ranges));
  assert.equal(ranges.length, MAX_RANGES);
});

Deno.test("parseRange() ignores any range of an empty file", () => {
  for (const r of ["bytes=0-0", "bytes=-1", "bytes=0-", "bytes=5-9"]) {
    assert.equal(parseRange(r, 0), null, r);
  }
});

Deno.test("multipartLayout() length matches the framing it describes", () => {
  const ranges = [{ start: 0, end: 9 }, { start: 100, end: 149 }];
  const layout = multipartLayout(ranges, SIZE, "text/plain; charset=utf-8");
  const boundary = layout.contentType.match(/boundary=(\w+)$/)![1];
  const text = new TextDecoder();
  assert.equal(
    text.decode(layout.heads[0]),
    `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-9/1000\r\n\r\n`,
  );
  assert.ok(text.decode(layout.heads[1]).startsWith(`\r\n--${boundary}\r\n`));
  assert.equal(text.decode(layout.tail), `\r\n--${boundary}--\r\n`);
  const framing = layout.heads[0].length + layout.heads[1].length +
    layout.tail.length;
  assert.equal(layout.length, framing + 10 + 50);
});
