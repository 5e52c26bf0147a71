/**
 * Headless Chromium driven over the DevTools protocol (a WebSocket), for
 * tests that must watch a page change: wait for its events, never sleep.
 */

export const CHROMIUM = "/usr/bin/chromium";

/** Headless, offline and quiet: no sandbox (root in CI), no update or sync traffic. */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Why Chromium cannot run here, or undefined. */
export function chromiumMissing(): string | undefined {
  try {
    Deno.statSync(CHROMIUM);
    return undefined;
  } catch {
    return `${CHROMIUM} not found`;
  }
}

type Message = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
};

/** One browser, one page; `await using` closes both and removes the profile. */
export class Browser implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #profile: string;
  readonly #socket: WebSocket;
  /** Ends when Chromium's stderr closes: awaited, so no read outlives the test. */
  readonly #stderrDrained: Promise<void>;
  readonly #pending = new Map<number, (m: Message) => void>();
  readonly #waiters: { method: string; resolve: (m: Message) => void }[] = [];
  readonly #listeners = new Map<string, ((m: Message) => void)[]>();
  #nextId = 1;
  #session = "";

  private constructor(
    child: Deno.ChildProcess,
    profile: string,
    socket: WebSocket,
    stderrDrained: Promise<void>,
  ) {
    this.#stderrDrained = stderrDrained;
    this.#child = child;
    this.#profile = profile;
    this.#socket = socket;
    socket.onmessage = (e) => {
      const m = JSON.parse(e.data) as Message;
      if (m.id !== undefined) {
        this.#pending.get(m.id)?.(m);
        this.#pending.delete(m.id);
        return;
      }
      for (const listen of this.#listeners.get(m.method ?? "") ?? []) {
        listen(m);
      }
      const i = this.#waiters.findIndex((w) => w.method === m.method);
      if (i !== -1) this.#waiters.splice(i, 1)[0].resolve(m);
    };
  }

  /**
   * Starts Chromium offline and quiet, with one blank page attached;
   * `extraArgs` go on its command line (e.g. `--ignore-certificate-errors`).
   */
  static async launch(extraArgs: readonly string[] = []): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "spindle_cdp_" });
    const child = new Deno.Command(CHROMIUM, {
      args: [
        ...CHROMIUM_FLAGS,
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        ...extraArgs,
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
    const reader = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = "";
    let url: string | undefined;
    while (url === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`Chromium exited: ${seen}`);
      seen += value;
      url = /DevTools listening on (ws:\/\/\S+)/.exec(seen)?.[1];
    }
    const drained = (async () => {
      while (!(await reader.read()).done) { /* keep the pipe flowing */ }
    })();
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    const browser = new Browser(child, profile, socket, drained);
    const target = await browser.#send("Target.createTarget", {
      url: "about:blank",
    }, false);
    const attached = await browser.#send("Target.attachToTarget", {
      targetId: target.targetId,
      flatten: true,
    }, false);
    browser.#session = attached.sessionId as string;
    await browser.send("Page.enable");
    await browser.send("Runtime.enable");
    return browser;
  }

  /** Sends a command to the page; resolves with its result, throws its error. */
  send(
    method: string,
    params: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    return this.#send(method, params, true);
  }

  #send(
    method: string,
    params: Record<string, unknown>,
    toPage: boolean,
  ): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const message: Message = { id, method, params };
    if (toPage) message.sessionId = this.#session;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (m) => {
        if (m.error) reject(new Error(`${method}: ${m.error.message}`));
        else resolve(m.result ?? {});
      });
      this.#socket.send(JSON.stringify(message));
    });
  }

  /** Calls `listen` with every event named `method` from now on. */
  on(method: string, listen: (params: Record<string, unknown>) => void): void {
    const list = this.#listeners.get(method) ?? [];
    list.push((m) => listen(m.params ?? {}));
    this.#listeners.set(method, list);
  }

  /** The next event named `method` from now on (register before causing it). */
  event(method: string): Promise<Message> {
    return new Promise((resolve) => this.#waiters.push({ method, resolve }));
  }

  /** Loads `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    const loaded = this.event("Page.loadEventFired");
    await this.send("Page.navigate", { url });
    await loaded;
  }

  /** Evaluates `expression` in the page, awaiting a promise; returns its value. */
  async eval(expression: string): Promise<unknown> {
    const r = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    const details = r.exceptionDetails as { text?: string } | undefined;
    if (details !== undefined) {
      throw new Error(`In the page: ${JSON.stringify(details)}`);
    }
    return (r.result as { value?: unknown }).value;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#socket.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((r) => this.#socket.onclose = r);
      this.#socket.close();
      await closed;
    }
    try {
      this.#child.kill();
    } catch { /* exited */ }
    await this.#child.status;
    await this.#stderrDrained;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}

/** `promise`, or a rejection naming `what` after `ms` (generous: the machine is busy). */
export function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Timed out: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
