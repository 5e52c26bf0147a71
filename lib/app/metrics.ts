/**
 * Counters for `/metrics` in the Prometheus text format (version 0.0.4).
 * Requests are labelled by route template and status class, never by raw
 * path or method, so no client can grow the label set. With `--workers`,
 * totals over every worker, and the engine's series per worker too.
 */
import { HttpError } from "../http/errors.ts";
import {
  ENGINE_FIELDS,
  type EngineField,
  type EngineStats,
} from "../http/stats.ts";
import {
  type CounterKind,
  CounterTable,
  createCounterMemory,
} from "../shared/counters.ts";
import type { Middleware } from "./chain.ts";

/** Prometheus text exposition media type. */
export const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** Escapes a label value: backslash, double quote and newline (exposition format). */
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** Where an engine's counters go when the engines share one table. */
export interface SharedCounters {
  readonly table: CounterTable;
  /** This engine's row. */
  readonly cell: number;
}

/** The table column of an engine field. */
export function engineColumn(field: EngineField): string {
  return `engine.${field}`;
}

/** The engine's fields as a counter table's first columns, in row order. */
export const ENGINE_COLUMNS: readonly (readonly [string, CounterKind])[] =
  ENGINE_FIELDS.map(([field, kind]) => [engineColumn(field), kind]);

/** Replacements of a worker that died, counted by the supervisor per slot. */
export const RESTARTS_COLUMN = "worker.restarts";

const RATE_LIMITED = "app.rateLimited";
const MISDIRECTED = "app.misdirected";
/** Requests of a route whose label does not fit the table. */
const OTHER_ROUTE = "other";
/** `http\0<class>\0<route>`: a route's requests of one status class. */
const ROUTE_PREFIX = "http\0";

/** The engine's series: field, metric name, help, and whether it is a gauge. */
const ENGINE_METRICS: readonly (readonly [EngineField, string, string])[] = [
  [
    "requests",
    "requests_total",
    "Requests answered by the engine, any status.",
  ],
  ["bytesIn", "received_bytes_total", "Bytes read from client sockets."],
  ["bytesOut", "sent_bytes_total", "Bytes written to client sockets."],
  ["accepted", "connections_accepted_total", "Connections accepted."],
  ["active", "connections_active", "Connections being handled."],
  ["queued", "connections_queued", "Connections waiting for a slot."],
  ["rejected", "connections_rejected_total", "Connections refused with 503."],
];

/**
 * The application's counters; the engine's live in {@link EngineStats}.
 * With {@link SharedCounters}, both go to a table every `--workers` engine
 * writes its own row of, and {@link render} shows totals over all of them
 * plus a `spindle_worker_*` series per worker.
 */
export class AppMetrics {
  readonly #table: CounterTable;
  readonly #row: Float64Array;
  /** Engine counters come from the table (else from the stats passed to render). */
  readonly #shared: boolean;
  /** Route label -> its columns, one per status class (index 0 is 1xx). */
  readonly #routes = new Map<string, readonly number[]>();
  // Requests come in runs for one route: the last one skips the Map.
  #lastRoute: string | undefined;
  #lastCols: readonly number[] = [];
  readonly #rateLimited: number;
  readonly #misdirected: number;

  constructor(shared?: SharedCounters) {
    this.#shared = shared !== undefined;
    if (shared === undefined) {
      const table = new CounterTable(createCounterMemory(1, 1));
      table.attach(0, 1);
      shared = { table, cell: 0 };
    }
    this.#table = shared.table;
    this.#row = shared.table.row(shared.cell);
    this.#rateLimited = this.#table.column(RATE_LIMITED);
    this.#misdirected = this.#table.column(MISDIRECTED);
    this.#columnsOf(OTHER_ROUTE);
  }

  /** Requests refused by this engine's rate limiter. */
  get rateLimited(): number {
    return this.#row[this.#rateLimited];
  }
  set rateLimited(n: number) {
    this.#row[this.#rateLimited] = n;
  }
  /** Requests refused by this engine's Host guard. */
  get misdirected(): number {
    return this.#row[this.#misdirected];
  }
  set misdirected(n: number) {
    this.#row[this.#misdirected] = n;
  }

  #columnsOf(route: string): readonly number[] {
    let cols = this.#routes.get(route);
    if (cols !== undefined) return cols;
    try {
      cols = CLASSES.map((c) =>
        this.#table.column(`${ROUTE_PREFIX}${c}\0${route}`)
      );
    } catch {
      cols = [-1]; // a label longer than the table takes
    }
    if (cols.includes(-1)) cols = this.#routes.get(OTHER_ROUTE) ?? [];
    this.#routes.set(route, cols);
    return cols;
  }

  /** Counts one answered request. */
  record(route: string, status: number): void {
    let cols = this.#lastCols;
    if (route !== this.#lastRoute) {
      cols = this.#routes.get(route) ?? this.#columnsOf(route);
      this.#lastRoute = route;
      this.#lastCols = cols;
    }
    const cls = (status / 100 | 0) - 1;
    if (cls >= 0 && cls < cols.length) this.#row[cols[cls]]++;
  }

  /** This engine's count for one route and class ("2xx"); only tests read it. */
  requests(route: string, statusClass: typeof CLASSES[number]): number {
    const cols = this.#routes.get(route);
    return cols === undefined
      ? 0
      : this.#row[cols[CLASSES.indexOf(statusClass)]];
  }

  /** The whole exposition: app counters, then the engine's. */
  render(stats: EngineStats, now: number = Date.now()): string {
    const snap = this.#table.read();
    const col = new Map(snap.names.map((n, i) => [n, i]));
    const total = (name: string) => snap.total[col.get(name) ?? -1] ?? 0;
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
    snap.names.forEach((name, i) => {
      if (!name.startsWith(ROUTE_PREFIX) || snap.total[i] === 0) return;
      const cls = name.slice(ROUTE_PREFIX.length, ROUTE_PREFIX.length + 3);
      const route = name.slice(ROUTE_PREFIX.length + 4);
      requestLines.push(
        `spindle_http_requests_total{route="${label(route)}",status="${cls}"} ${
          snap.total[i]
        }`,
      );
    });
    metric(
      "spindle_http_requests_total",
      "counter",
      "Requests answered by the app, by route template and status class.",
      requestLines,
    );
    const engine = (field: EngineField) =>
      this.#shared ? total(engineColumn(field)) : stats[field];
    const one = (name: string, type: string, help: string, value: number) =>
      metric(name, type, help, [`${name} ${value}`]);
    for (const [field, name, help] of ENGINE_METRICS) {
      const kind = ENGINE_FIELDS.find(([f]) => f === field)![1];
      one(`spindle_${name}`, kind, help, engine(field));
    }
    one(
      "spindle_rate_limited_total",
      "counter",
      "Requests refused with 429.",
      total(RATE_LIMITED),
    );
    one(
      "spindle_misdirected_total",
      "counter",
      "Requests refused with 421 by the Host guard.",
      total(MISDIRECTED),
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
    if (this.#shared && snap.bySlot.size > 1) {
      const slots = [...snap.bySlot.keys()].sort((a, b) => a - b);
      const perWorker = (
        name: string,
        kind: string,
        help: string,
        column: string,
      ) => {
        const i = col.get(column);
        metric(
          `spindle_worker_${name}`,
          kind,
          `${help} Per worker.`,
          slots.map((s) =>
            `spindle_worker_${name}{worker="${s}"} ${
              i === undefined ? 0 : snap.bySlot.get(s)![i]
            }`
          ),
        );
      };
      for (const [field, name, help] of ENGINE_METRICS) {
        const kind = ENGINE_FIELDS.find(([f]) => f === field)![1];
        perWorker(name, kind, help, engineColumn(field));
      }
      perWorker(
        "restarts_total",
        "counter",
        "Times the worker died and was replaced.",
        RESTARTS_COLUMN,
      );
    }
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
