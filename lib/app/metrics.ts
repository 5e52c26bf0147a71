/**
 * Counters for `/metrics` in the Prometheus text format (version 0.0.4).
 * Requests are labelled by route template and status class, never by raw
 * path or method, so no client can grow the label set.
 */
import { HttpError } from "../http/errors.ts";
import type { EngineStats } from "../http/stats.ts";
import type { Middleware } from "./chain.ts";

/** Prometheus text exposition media type. */
export const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** Escapes a label value: backslash, double quote and newline (exposition format). */
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** The application's counters; the engine's live in {@link EngineStats}. */
export class AppMetrics {
  /** Route label -> counts per status class (index 0 is 1xx). */
  readonly #requests = new Map<string, Float64Array>();
  // Requests come in runs for one route: the last one skips the Map.
  #lastRoute: string | undefined;
  #lastCounts: Float64Array = new Float64Array(CLASSES.length);
  /** Requests refused by the rate limiter. */
  rateLimited = 0;
  /** Requests refused by the Host guard. */
  misdirected = 0;

  /** Counts one answered request. */
  record(route: string, status: number): void {
    let counts = this.#lastCounts;
    if (route !== this.#lastRoute) {
      counts = this.#requests.get(route) ?? this.#add(route);
      this.#lastRoute = route;
      this.#lastCounts = counts;
    }
    const cls = (status / 100 | 0) - 1;
    if (cls >= 0 && cls < 5) counts[cls]++;
  }

  #add(route: string): Float64Array {
    const counts = new Float64Array(CLASSES.length);
    this.#requests.set(route, counts);
    return counts;
  }

  /** Count for one route and class ("2xx"); only tests read it. */
  requests(route: string, statusClass: typeof CLASSES[number]): number {
    return this.#requests.get(route)?.[CLASSES.indexOf(statusClass)] ?? 0;
  }

  /** The whole exposition: app counters, then the engine's. */
  render(stats: EngineStats, now: number = Date.now()): string {
    const out: string[] = [];
    const metric = (
      name: string,
      type: string,
      help: string,
      lines: string[],
    ) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    const requestLines: string[] = [];
    for (const [route, counts] of this.#requests) {
      counts.forEach((n, i) => {
        if (n > 0) {
          requestLines.push(
            `spindle_http_requests_total{route="${label(route)}",status="${
              CLASSES[i]
            }"} ${n}`,
          );
        }
      });
    }
    metric(
      "spindle_http_requests_total",
      "counter",
      "Requests answered by the app, by route template and status class.",
      requestLines,
    );
    const one = (name: string, type: string, help: string, value: number) =>
      metric(name, type, help, [`${name} ${value}`]);
    one(
      "spindle_requests_total",
      "counter",
      "Requests answered by the engine, any status.",
      stats.requests,
    );
    one(
      "spindle_received_bytes_total",
      "counter",
      "Bytes read from client sockets.",
      stats.bytesIn,
    );
    one(
      "spindle_sent_bytes_total",
      "counter",
      "Bytes written to client sockets.",
      stats.bytesOut,
    );
    one(
      "spindle_connections_accepted_total",
      "counter",
      "Connections accepted.",
      stats.accepted,
    );
    one(
      "spindle_connections_active",
      "gauge",
      "Connections being handled.",
      stats.active,
    );
    one(
      "spindle_connections_queued",
      "gauge",
      "Connections waiting for a slot.",
      stats.queued,
    );
    one(
      "spindle_connections_rejected_total",
      "counter",
      "Connections refused with 503.",
      stats.rejected,
    );
    one(
      "spindle_rate_limited_total",
      "counter",
      "Requests refused with 429.",
      this.rateLimited,
    );
    one(
      "spindle_misdirected_total",
      "counter",
      "Requests refused with 421 by the Host guard.",
      this.misdirected,
    );
    one(
      "spindle_draining",
      "gauge",
      "1 while shutting down.",
      stats.draining ? 1 : 0,
    );
    one(
      "spindle_uptime_seconds",
      "gauge",
      "Seconds since the server started.",
      Math.max(0, (now - stats.startedAt) / 1000),
    );
    return out.join("\n") + "\n";
  }

  /**
   * Middleware counting every request that reaches the app, errors
   * included, under its route as it stands once answered (a fallback may
   * name what it was: `upload-files` for form uploads).
   */
  middleware(): Middleware {
    return {
      after: (req, reply) => {
        this.record(req.route ?? "none", reply.status);
        return reply;
      },
      error: (req, err) => {
        const status = err instanceof HttpError ? err.status : 500;
        this.record(req.route ?? "none", status);
        throw err;
      },
    };
  }
}
