/**
 * How long the head parser takes on typical requests. Run with
 * `deno bench tests/parser_bench.ts`; compare before and after a change.
 */
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { findHeadEnd, parseHead } from "../lib/http/parser.ts";

const encoder = new TextEncoder();

const SMALL = encoder.encode(
  "GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
);
const BROWSER = encoder.encode(
  "GET /static/app.js?v=3 HTTP/1.1\r\n" +
    "Host: localhost:8080\r\n" +
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 " +
    "(KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
    "Accept-Encoding: gzip, deflate, br\r\n" +
    "Accept-Language: en-GB,en;q=0.9\r\n" +
    "Cache-Control: no-cache\r\n" +
    "Connection: keep-alive\r\n" +
    `Cookie: session=${"c".repeat(200)}\r\n` +
    'If-None-Match: W/"5e-18c1a2b3c4d"\r\n' +
    "Referer: http://localhost:8080/\r\n\r\n",
);
const POST = encoder.encode(
  "POST /api/items HTTP/1.1\r\nHost: localhost\r\n" +
    "Content-Type: application/json\r\nContent-Length: 27\r\n\r\n",
);

for (
  const [name, bytes] of [["small", SMALL], ["browser", BROWSER], [
    "post",
    POST,
  ]] as const
) {
  // parseHead() folds names in place, so each run parses a fresh copy.
  const buf = new Uint8Array(bytes.length);
  Deno.bench(`findHeadEnd() + parseHead(): ${name} (${bytes.length} B)`, {
    group: name,
    baseline: true,
  }, () => {
    buf.set(bytes);
    const end = findHeadEnd(buf, 0, buf.length);
    parseHead(buf, 0, end, DEFAULT_LIMITS);
  });
  Deno.bench(`findHeadEnd(): ${name}`, { group: name }, () => {
    findHeadEnd(bytes, 0, bytes.length);
  });
}
