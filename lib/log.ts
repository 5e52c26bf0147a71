/**
 * Logging setup: the one place logging is configured. Libraries only call
 * getLogger(); the engine writes access lines to the sink set here.
 */
import {
  configure,
  getStreamSink,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  reset,
  type TextFormatter,
} from "./npm/logtape.ts";
import {
  type AccessFormat,
  AccessLog,
  type AccessOutput,
  setAccessLog,
} from "./http/access_log.ts";

export type LogFormat = AccessFormat;

export interface LogOptions {
  readonly format: LogFormat;
  /** No access lines: warnings, errors and the start line only. */
  readonly quiet: boolean;
  /**
   * Where records other than access lines go: stdout by default; stderr for
   * `common` and `combined`, so stdout holds nothing but the access log.
   */
  readonly stream?: WritableStream<Uint8Array>;
  /** Where access lines go; stdout by default. */
  readonly accessOutput?: AccessOutput;
}

/**
 * Sends every `spindle.*` record to one stream, as text or JSON lines, and
 * sets up the engine's access log in the same format.
 */
export async function setupLogging(opts: LogOptions): Promise<void> {
  const clf = opts.format === "common" || opts.format === "combined";
  const formatter = opts.format === "json"
    ? jsonLineFormatter
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
      out: getStreamSink(
        opts.stream ?? (clf ? Deno.stderr.writable : Deno.stdout.writable),
        { formatter },
      ),
    },
    loggers: [
      { category: ["spindle"], lowestLevel: level, sinks: ["out"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["out"] },
    ],
  });
  setAccessLog(
    opts.quiet
      ? undefined
      : new AccessLog({ format: opts.format, output: opts.accessOutput }),
  );
}

/** Writes the access lines still buffered, then flushes and detaches the sinks (before exit). */
export async function stopLogging(): Promise<void> {
  setAccessLog(undefined);
  await reset();
}

/**
 * LogTape's JSON Lines shape (`@timestamp`, `level`, `message`, `logger`,
 * `properties`), with the message's values rendered bare as in text lines:
 * `Listening on http://...`, not `Listening on "http://..."`. Properties
 * keep their JSON types; an Error keeps its name, message and stack.
 */
const jsonLineFormatter: TextFormatter = (record: LogRecord): string => {
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    message += i % 2 === 0 || typeof part === "string"
      ? part
      : part instanceof Error
      ? String(part)
      : stringify(part);
  }
  return stringify({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level === "warning" ? "WARN" : record.level.toUpperCase(),
    message,
    logger: record.category.join("."),
    properties: record.properties,
  }) + "\n";
};

/** JSON of a value a log call passed; never throws (cycles become a string). */
function stringify(value: unknown): string {
  try {
    return JSON.stringify(value, jsonValue) ?? String(value);
  } catch {
    return JSON.stringify(String(value));
  }
}

function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
