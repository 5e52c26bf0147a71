import assert from "node:assert/strict";
import {
  evaluatePreconditions,
  httpDate,
  ifRangeHolds,
  type Validators,
} from "../lib/app/conditional.ts";
import { HeaderFields } from "../lib/http/headers.ts";

const MTIME = Date.UTC(2024, 0, 15, 12, 0, 0, 250); // sub-second part is ignored
const V: Validators = { etag: '"3e8-18d0c5b7d3a"', lastModifiedMs: MTIME };
const SAME = httpDate(MTIME);
const BEFORE = httpDate(MTIME - 60_000);
const AFTER = httpDate(MTIME + 60_000);

function fields(h: Record<string, string>): HeaderFields {
  return HeaderFields.fromLists(Object.keys(h), Object.values(h));
}

const cases: [
  name: string,
  method: string,
  headers: Record<string, string>,
  expected: 200 | 304 | 412,
][] = [
  ["no conditions", "GET", {}, 200],
  ["If-None-Match: same tag", "GET", { "if-none-match": V.etag }, 304],
  ["If-None-Match: weak form of the tag", "GET", {
    "if-none-match": `W/${V.etag}`,
  }, 304],
  ["If-None-Match: in a list", "GET", {
    "if-none-match": `"a", "b,c", ${V.etag}`,
  }, 304],
  ["If-None-Match: other tag", "GET", { "if-none-match": '"other"' }, 200],
  ["If-None-Match: *", "GET", { "if-none-match": "*" }, 304],
  ["If-None-Match: unquoted junk", "GET", {
    "if-none-match": "3e8-18d0c5b7d3a",
  }, 200],
  ["If-None-Match on HEAD", "HEAD", { "if-none-match": V.etag }, 304],
  ["If-None-Match on PUT", "PUT", { "if-none-match": "*" }, 412],
  ["If-Modified-Since: same second", "GET", { "if-modified-since": SAME }, 304],
  ["If-Modified-Since: later", "GET", { "if-modified-since": AFTER }, 304],
  ["If-Modified-Since: earlier", "GET", { "if-modified-since": BEFORE }, 200],
  ["If-Modified-Since: invalid date", "GET", {
    "if-modified-since": "yesterday",
  }, 200],
  [
    "If-Modified-Since: a bare number",
    "GET",
    { "if-modified-since": "1" },
    200,
  ],
  ["If-Modified-Since: in the future", "GET", {
    "if-modified-since": httpDate(Date.now() + 86_400_000),
  }, 200],
  ["If-Modified-Since: RFC 850 form", "GET", {
    "if-modified-since": "Monday, 15-Jan-24 12:00:00 GMT",
  }, 304],
  ["If-Modified-Since: asctime form", "GET", {
    "if-modified-since": "Mon Jan 15 12:00:00 2024",
  }, 304],
  // RFC 9110 §13.1.3: not a valid HTTP-date (GMT, one of three forms) is
  // ignored, never read as some other time.
  ["If-Modified-Since: a zone other than GMT", "GET", {
    "if-modified-since": "Mon, 15 Jan 2024 12:00:00 PST",
  }, 200],
  ["If-Modified-Since: GMT with an offset", "GET", {
    "if-modified-since": "Mon, 15 Jan 2024 20:00:00 GMT+0800",
  }, 200],
  ["If-Modified-Since: junk before the date", "GET", {
    "if-modified-since": `x ${SAME}`,
  }, 200],
  ["If-Modified-Since: 31 February", "GET", {
    "if-modified-since": "Sat, 31 Feb 2024 12:00:00 GMT",
  }, 200],
  ["If-Modified-Since: hour 24", "GET", {
    "if-modified-since": "Mon, 15 Jan 2024 24:00:00 GMT",
  }, 200],
  ["If-Modified-Since: no seconds", "GET", {
    "if-modified-since": "Mon, 15 Jan 2024 12:01 GMT",
  }, 200],
  ["If-Modified-Since: lower-case month", "GET", {
    "if-modified-since": "Mon, 15 jan 2024 12:00:00 GMT",
  }, 200],
  ["If-Modified-Since: RFC 850 year 94 is 1994", "GET", {
    "if-modified-since": "Sunday, 06-Nov-94 08:49:37 GMT",
  }, 200],
  ["If-Modified-Since: asctime with a one-digit day", "GET", {
    "if-modified-since": "Sat Feb  3 12:00:00 2024",
  }, 304],
  ["If-Modified-Since on POST", "POST", { "if-modified-since": SAME }, 200],
  // §13.2.2 step 4: If-Modified-Since only counts without If-None-Match.
  ["If-None-Match mismatch beats If-Modified-Since", "GET", {
    "if-none-match": '"other"',
    "if-modified-since": AFTER,
  }, 200],
  ["If-None-Match match with old If-Modified-Since", "GET", {
    "if-none-match": V.etag,
    "if-modified-since": BEFORE,
  }, 304],
  ["If-Match: same tag", "GET", { "if-match": V.etag }, 200],
  ["If-Match: *", "GET", { "if-match": "*" }, 200],
  ["If-Match: in a list", "GET", { "if-match": `"x", ${V.etag}` }, 200],
  ["If-Match: other tag", "GET", { "if-match": '"other"' }, 412],
  ["If-Match: weak tag (strong comparison)", "GET", {
    "if-match": `W/${V.etag}`,
  }, 412],
  [
    "If-Unmodified-Since: same second",
    "GET",
    { "if-unmodified-since": SAME },
    200,
  ],
  ["If-Unmodified-Since: later", "GET", { "if-unmodified-since": AFTER }, 200],
  [
    "If-Unmodified-Since: earlier",
    "GET",
    { "if-unmodified-since": BEFORE },
    412,
  ],
  [
    "If-Unmodified-Since: invalid",
    "GET",
    { "if-unmodified-since": "soon" },
    200,
  ],
  // 11:00 PST is 19:00 GMT, after the change: were it read as 11:00 GMT, 412.
  ["If-Unmodified-Since: a zone other than GMT", "GET", {
    "if-unmodified-since": "Mon, 15 Jan 2024 11:00:00 PST",
  }, 200],
  // §13.2.2 step 2: If-Unmodified-Since only counts without If-Match.
  ["If-Match pass beats If-Unmodified-Since", "GET", {
    "if-match": V.etag,
    "if-unmodified-since": BEFORE,
  }, 200],
  // Step 1 before step 3: 412 wins over 304.
  ["If-Match fail with If-None-Match match", "GET", {
    "if-match": '"x"',
    "if-none-match": V.etag,
  }, 412],
  ["If-Match pass then If-None-Match match", "GET", {
    "if-match": V.etag,
    "if-none-match": V.etag,
  }, 304],
  ["If-Unmodified-Since fail with If-None-Match match", "GET", {
    "if-unmodified-since": BEFORE,
    "if-none-match": V.etag,
  }, 412],
  ["If-Unmodified-Since pass, If-Modified-Since match", "GET", {
    "if-unmodified-since": AFTER,
    "if-modified-since": SAME,
  }, 304],
];
for (const [name, method, headers, expected] of cases) {
  Deno.test(`evaluatePreconditions() gives ${expected} for ${method} with ${name}`, () => {
    assert.equal(evaluatePreconditions(method, fields(headers), V), expected);
  });
}

Deno.test("evaluatePreconditions() reads If-None-Match spread over several lines", () => {
  const h = HeaderFields.fromLists(["if-none-match", "if-none-match"], [
    '"a"',
    V.etag,
  ]);
  assert.equal(evaluatePreconditions("GET", h, V), 304);
});

const ifRange: [name: string, value: string | undefined, holds: boolean][] = [
  ["absent", undefined, true],
  ["same strong tag", V.etag, true],
  ["other tag", '"other"', false],
  ["weak tag", `W/${V.etag}`, false],
  ["a list", `${V.etag}, "x"`, false],
  ["exact date", SAME, true],
  ["later date", AFTER, false],
  ["earlier date", BEFORE, false],
  ["junk", "whenever", false],
  // §13.1.5: neither one entity-tag nor one HTTP-date: false.
  ["a tag with junk after it", `${V.etag} junk`, false],
  ["a tag and a comma", `${V.etag},`, false],
  ["the date with junk before it", `x ${SAME}`, false],
  ["the date with junk after it", `${SAME} x`, false],
];
for (const [name, value, holds] of ifRange) {
  Deno.test(`ifRangeHolds() is ${holds} for If-Range ${name}`, () => {
    assert.equal(
      ifRangeHolds(fields(value === undefined ? {} : { "if-range": value }), V),
      holds,
    );
  });
}

Deno.test("ifRangeHolds() never holds for a weak validator of ours", () => {
  const weak = { ...V, etag: `W/${V.etag}` };
  assert.equal(
    ifRangeHolds(fields({ "if-range": `W/${V.etag}` }), weak),
    false,
  );
  assert.equal(ifRangeHolds(fields({ "if-range": V.etag }), weak), false);
});
