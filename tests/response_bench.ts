/**
 * How long the reply-head encoder takes for typical replies. Run with
 * `deno bench tests/response_bench.ts`; compare before and after a change.
 */
import { OutBuffer, writeFields, writeFraming } from "../lib/http/response.ts";

const out = new OutBuffer();
const HELLO = Object.freeze({ "content-type": "text/plain" });
const STATIC: [string, string][] = [
  ["content-type", "text/html; charset=utf-8"],
  ["vary", "Accept-Encoding"],
  ["etag", '"400-18c1a2b3c4d"'],
  ["last-modified", "Tue, 02 Jan 2024 03:04:05 GMT"],
  ["cache-control", "no-cache"],
  ["accept-ranges", "bytes"],
];
const now = Date.now();

Deno.bench("hello reply head (frozen headers)", () => {
  writeFields(out, 200, HELLO, now);
  writeFraming(out, 5, false, false, false);
  out.take();
});

Deno.bench("static file reply head (6 fields)", () => {
  writeFields(out, 200, STATIC, now);
  writeFraming(out, 1024, false, false, false);
  out.take();
});

Deno.bench("error reply head (no fields)", () => {
  writeFields(out, 404, undefined, now);
  writeFraming(out, 9, false, true, false);
  out.take();
});
