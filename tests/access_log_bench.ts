/**
 * What one access line costs, per format, against the LogTape record the
 * engine used to log per request. Run with `deno bench tests/access_log_bench.ts`.
 * Output is counted and dropped, so this is formatting and batching alone.
 */
import {
  configure,
  getLogger,
  getStreamSink,
  getTextFormatter,
  reset,
} from "@logtape/logtape";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { type AccessFormat, AccessLog } from "../lib/http/access_log.ts";
import { parseHead } from "../lib/http/parser.ts";

const raw = new TextEncoder().encode(
  "GET /echo/hello HTTP/1.1\r\nHost: localhost:8080\r\n" +
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0\r\n" +
    "Referer: http://localhost:8080/\r\nAccept: */*\r\n\r\n",
);
const head = parseHead(raw, 0, raw.length, DEFAULT_LIMITS);
let written = 0;
const devNull = {
  writeSync(bytes: Uint8Array): number {
    written += bytes.length;
    return bytes.length;
  },
};

for (const format of ["text", "json", "common", "combined"] as AccessFormat[]) {
  const log = new AccessLog({ format, output: devNull, flushMs: 60_000 });
  Deno.bench(`AccessLog.append(): ${format}`, {
    group: "access line",
    baseline: format === "text",
  }, () => {
    log.append("127.0.0.1", head, 200, 140, Date.now() - 1, false, undefined);
  });
}

// The path this replaced: a LogTape record, its text formatter and a stream sink.
await configure({
  reset: true,
  sinks: {
    out: getStreamSink(
      new WritableStream<Uint8Array>({
        write(chunk) {
          written += chunk.length;
        },
      }),
      {
        formatter: getTextFormatter({
          timestamp: "date-time-tz",
          level: "ABBR",
          category: ".",
          value: "bare",
        }),
      },
    ),
  },
  loggers: [{ category: ["spindle"], lowestLevel: "info", sinks: ["out"] }],
});
const logtape = getLogger(["spindle", "access"]);
Deno.bench("LogTape record (before)", { group: "access line" }, () => {
  logtape.info('{client} "{method} {target}" {status} {bytes} {ms}ms', {
    client: "127.0.0.1",
    method: head.method,
    target: head.target,
    status: 200,
    bytes: 140,
    ms: 1,
  });
});
globalThis.addEventListener("unload", () => void reset());
