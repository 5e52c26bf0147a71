/**
 * MB/s of the multipart parser: a 16 MiB file in 64 KiB pieces (what the
 * engine's body reader hands out), random bytes and CRLF-heavy text, and a
 * form of 1,000 small fields. `deno bench tests/multipart_bench.ts`.
 */
import { MultipartParser } from "../lib/app/multipart.ts";

const encoder = new TextEncoder();
const BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"; // Chrome's shape
const PIECE = 64 * 1024;
const LIMITS = {
  maxParts: 10_000,
  maxPartHeadBytes: 8 * 1024,
  maxPartBytes: 1 << 30,
  maxBytes: 1 << 30,
};

function formOf(data: Uint8Array): Uint8Array {
  const head = encoder.encode(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = encoder.encode(`\r\n--${BOUNDARY}--\r\n`);
  const out = new Uint8Array(head.length + data.length + tail.length);
  out.set(head);
  out.set(data, head.length);
  out.set(tail, head.length + data.length);
  return out;
}

function pieces(body: Uint8Array): Uint8Array[] {
  const out = [];
  for (let at = 0; at < body.length; at += PIECE) {
    out.push(body.subarray(at, at + PIECE));
  }
  return out;
}

/** Parses the whole body; returns the content bytes seen. */
function run(body: Uint8Array[]): number {
  const parser = new MultipartParser(BOUNDARY, LIMITS);
  let bytes = 0;
  for (const piece of body) {
    parser.feed(piece);
    for (let e = parser.next(); e !== undefined; e = parser.next()) {
      if (e.type === "data") bytes += e.bytes.length;
    }
  }
  parser.end();
  return bytes;
}

const SIZE = 16 * 1024 * 1024;
const random = new Uint8Array(SIZE);
for (let at = 0; at < SIZE; at += 65536) {
  crypto.getRandomValues(random.subarray(at, at + 65536));
}
const text = encoder.encode(
  "a line of text with -- dashes and CRLF line ends, as a log or CSV\r\n"
    .repeat(SIZE / 68),
);
const fields = encoder.encode(
  Array.from(
    { length: 1000 },
    (_, i) =>
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="field${i}"\r\n\r\nvalue ${i}\r\n`,
  ).join("") + `--${BOUNDARY}--\r\n`,
);

const cases: [string, Uint8Array[]][] = [
  ["16 MiB of random bytes", pieces(formOf(random))],
  ["16 MiB of CRLF text", pieces(formOf(text))],
  ["1,000 small fields", pieces(fields)],
];
for (const [name, body] of cases) {
  Deno.bench(name, () => {
    run(body);
  });
}

// One timed pass each, printed as MB/s (deno bench shows time per run).
for (const [name, body] of cases) {
  const size = body.reduce((n, p) => n + p.length, 0);
  run(body);
  const t = performance.now();
  run(body);
  const ms = performance.now() - t;
  console.log(`${name}: ${(size / 1e6 / (ms / 1000)).toFixed(0)} MB/s`);
}
