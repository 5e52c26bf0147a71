/**
 * `--watch`: a change under the root reloads the pages open in browsers. The
 * root is watched with `Deno.watchFs`; changes are gathered for a moment
 * (an editor's save is a write, a rename and a chmod) and then told to every
 * page over one server-sent-events stream each. A page learns of it through
 * a tiny script the static handler adds to HTML replies: a stylesheet
 * change swaps the stylesheets in place, anything else reloads the page.
 */
import type { Reply, ServerRequest } from "../http/handler.ts";
import { STATUS } from "../http/errors.ts";

/** Where pages listen for changes; no file is served from here while watching. */
export const LIVE_RELOAD_PATH = "/__spindle/live-reload";

/** Timings of the watcher and its streams; tests shrink them. */
export interface LiveReloadTuning {
  /** Quiet time after the last change before pages are told. */
  readonly debounceMs: number;
  /** Longest a burst of changes delays the news. */
  readonly maxDelayMs: number;
  /** A comment on every stream this often: a vanished page is found by the failed write. */
  readonly heartbeatMs: number;
  /** Events a page may leave unread before its stream is closed (a stuck tab). */
  readonly maxQueuedEvents: number;
}

export const DEFAULT_LIVE_RELOAD: LiveReloadTuning = Object.freeze({
  debounceMs: 100, // an editor's write, rename and chmod land within it
  maxDelayMs: 1000, // a build writing for seconds still shows progress
  heartbeatMs: 15_000, // under common proxy idle timeouts (30-60 s)
  maxQueuedEvents: 64,
});

const encoder = new TextEncoder();
const HELLO = encoder.encode("retry: 1000\n: watching for changes\n\n");
const PING = encoder.encode(": ping\n\n");

/**
 * The script added to HTML replies. On "css" it loads each same-origin
 * stylesheet again beside the old one and drops the old once the new one
 * applies (no flash); on "reload", or on coming back after the server was
 * away, it reloads the page.
 */
export const LIVE_RELOAD_SCRIPT = `
<script>/* spindle --watch */(()=>{const s=new EventSource(${
  JSON.stringify(LIVE_RELOAD_PATH)
});let lost=false;s.onerror=()=>{lost=true};s.onopen=()=>{if(lost)location.reload()};s.addEventListener("reload",()=>location.reload());s.addEventListener("css",()=>{for(const l of document.querySelectorAll('link[rel~="stylesheet"]')){const u=new URL(l.href);if(u.origin!==location.origin)continue;u.searchParams.set("spindle-reload",Date.now());const n=l.cloneNode();n.href=u.href;n.onload=()=>l.remove();l.after(n)}})})()</script>
`;
const SCRIPT_BYTES = encoder.encode(LIVE_RELOAD_SCRIPT);

/** `bytes` with the live-reload script after them. */
export function withLiveReload(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + SCRIPT_BYTES.length);
  out.set(bytes);
  out.set(SCRIPT_BYTES, bytes.length);
  return out;
}

/** Length of the script {@link withLiveReload} adds. */
export const LIVE_RELOAD_BYTES = SCRIPT_BYTES.length;

/** The script alone, to send after a streamed page. */
export function liveReloadTail(): Uint8Array {
  return SCRIPT_BYTES;
}

/**
 * Watches `root` and keeps the pages' event streams. Closing it (or
 * aborting `signal`: the server is draining) stops the watcher and ends
 * every stream, so shutdown does not wait for open tabs.
 */
export class LiveReload {
  readonly #root: string;
  readonly #denyDots: boolean;
  readonly #tuning: LiveReloadTuning;
  readonly #pages = new Set<ReadableStreamDefaultController<Uint8Array>>();
  readonly #watcher: Deno.FsWatcher;
  readonly #watching: Promise<void>;
  #changed = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #firstAt = 0;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(
    root: string,
    opts: {
      readonly denyDots: boolean;
      readonly signal?: AbortSignal;
      readonly tuning?: Partial<LiveReloadTuning>;
    },
  ) {
    this.#root = root.endsWith("/") ? root : `${root}/`;
    this.#denyDots = opts.denyDots;
    this.#tuning = { ...DEFAULT_LIVE_RELOAD, ...opts.tuning };
    this.#watcher = Deno.watchFs(root, { recursive: true });
    this.#watching = this.#watch();
    if (opts.signal?.aborted) this.close();
    else opts.signal?.addEventListener("abort", () => this.close());
  }

  /** Pages listening now. */
  get pages(): number {
    return this.#pages.size;
  }

  /** The event stream for one page: `text/event-stream`, never ending on its own. */
  events(req: ServerRequest): Reply {
    const headers = {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
    };
    if (req.method === "HEAD") return { status: STATUS.OK, headers };
    if (this.#closed) {
      // Draining: end at once; the page's EventSource retries elsewhere.
      return {
        status: STATUS.NoContent,
        headers: { "cache-control": "no-store" },
      };
    }
    let page: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        page = controller;
        this.#pages.add(controller);
        controller.enqueue(HELLO);
        this.#heartbeat ??= setInterval(
          () => this.#send(PING),
          this.#tuning.heartbeatMs,
        );
      },
      cancel: () => this.#drop(page),
    });
    return { status: STATUS.OK, headers, body };
  }

  /** Stops watching and ends every stream (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    try {
      this.#watcher.close();
    } catch {
      // already closed
    }
    for (const page of this.#pages) {
      try {
        page.close();
      } catch {
        // cancelled meanwhile
      }
    }
    this.#pages.clear();
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /** Resolves once the watcher has stopped. */
  get closed(): Promise<void> {
    return this.#watching;
  }

  async #watch(): Promise<void> {
    try {
      for await (const event of this.#watcher) {
        if (event.kind === "access" || event.kind === "other") continue;
        for (const path of event.paths) this.#note(path);
      }
    } catch {
      // the watcher was closed, or the root vanished: nothing more to tell
    }
  }

  #note(path: string): void {
    // Names under the root as URLs; a change in a dot-folder (.git) that
    // would not be served reloads nothing.
    const rel = path.startsWith(this.#root)
      ? path.slice(this.#root.length - 1)
      : path;
    if (this.#denyDots && rel.includes("/.")) return;
    this.#changed.add(rel);
    const now = Date.now();
    if (this.#timer === undefined) this.#firstAt = now;
    clearTimeout(this.#timer);
    const wait = Math.min(
      this.#tuning.debounceMs,
      Math.max(0, this.#firstAt + this.#tuning.maxDelayMs - now),
    );
    this.#timer = setTimeout(() => this.#flush(), wait);
  }

  #flush(): void {
    this.#timer = undefined;
    const paths = [...this.#changed];
    this.#changed = new Set();
    if (paths.length === 0 || this.#closed) return;
    const kind = paths.every((p) => p.endsWith(".css")) ? "css" : "reload";
    this.#send(
      encoder.encode(`event: ${kind}\ndata: ${JSON.stringify(paths)}\n\n`),
    );
  }

  #send(bytes: Uint8Array): void {
    for (const page of this.#pages) {
      // A page that stopped reading would queue events without end.
      if ((page.desiredSize ?? 0) < -this.#tuning.maxQueuedEvents) {
        this.#drop(page);
        try {
          page.close();
        } catch {
          // cancelled meanwhile
        }
        continue;
      }
      page.enqueue(bytes);
    }
  }

  #drop(page: ReadableStreamDefaultController<Uint8Array>): void {
    this.#pages.delete(page);
    if (this.#pages.size === 0) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }
}
