/** LogTape setup: the one place logging is configured. Libraries only call getLogger(). */
import {
  configure,
  getStreamSink,
  getTextFormatter,
  jsonLinesFormatter,
  type LogLevel,
  reset,
} from "@logtape/logtape";

export type LogFormat = "text" | "json";

export interface LogOptions {
  readonly format: LogFormat;
  /** No access lines: warnings, errors and the start line only. */
  readonly quiet: boolean;
  /** Where lines go; stdout by default. */
  readonly stream?: WritableStream<Uint8Array>;
}

/** Sends every `spindle.*` record to one stream, as text or JSON lines. */
export async function setupLogging(opts: LogOptions): Promise<void> {
  const formatter = opts.format === "json"
    ? jsonLinesFormatter
    : getTextFormatter({
      timestamp: "date-time-tz",
      level: "ABBR",
      category: ".",
      // Strings as they are (`GET /x`, not `"GET" "/x"`); control bytes escaped.
      value: "bare",
    });
  const level: LogLevel = "info";
  await configure({
    reset: true,
    sinks: {
      out: getStreamSink(opts.stream ?? Deno.stdout.writable, { formatter }),
    },
    loggers: [
      { category: ["spindle"], lowestLevel: level, sinks: ["out"] },
      {
        category: ["spindle", "access"],
        lowestLevel: opts.quiet ? "warning" : "info",
        sinks: ["out"],
        parentSinks: "override",
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["out"] },
    ],
  });
}

/** Flushes and detaches the sinks (before exit). */
export async function stopLogging(): Promise<void> {
  await reset();
}
