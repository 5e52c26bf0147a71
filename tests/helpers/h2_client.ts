/**
 * A hand-driven HTTP/2 client over a real socket, for engine tests that
 * need frame-level control (attacks, flow control, GOAWAY): it sends the
 * frames it is told to, and keeps every frame the server sends, its header
 * blocks decoded. Honest by default (acks SETTINGS, opens its windows
 * wide); each wait is bounded, so a server that hangs fails the test.
 */
import assert from "node:assert/strict";
import {
  CLIENT_PREFACE,
  encodeFrame,
  ERROR,
  errorName,
  FRAME,
  type FrameInit,
  MAX_WINDOW,
  SETTING,
} from "../../lib/http/h2/frames.ts";
import { HpackDecoder, HpackEncoder } from "../../lib/http/h2/hpack.ts";
import { concat } from "./bytes.ts";
import { encodeBlock, type Fields, FrameReader, type OutFrame } from "./h2.ts";

export type { Fields, OutFrame } from "./h2.ts";
export { ERROR, FRAME, SETTING };

/** How long a wait lasts before it fails the test (the machine is busy). */
export const H2_WAIT_MS = 10_000;

export interface H2ClientOptions {
  /** Connect with TLS and ALPN h2, trusting this CA certificate (PEM). */
  readonly caCert?: string;
  /** Our SETTINGS; default: the largest stream window. */
  readonly settings?: readonly [number, number][];
  /** Grow the connection window to the maximum at once (default true). */
  readonly openWindow?: boolean;
  /** Ack the server's SETTINGS (default true). */
  readonly ackSettings?: boolean;
  /** Send the preface and SETTINGS at once (default true). */
  readonly preface?: boolean;
  /** Give back the window each DATA frame used, as a reading client does (default false). */
  readonly creditData?: boolean;
  /** Never read the socket: a client that stopped reading (default false). */
  readonly deaf?: boolean;
}

/** A reply as {@link H2Client.request} collects it. */
export interface H2Reply {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: Uint8Array;
  readonly text: string;
  /** The stream ended with RST_STREAM rather than END_STREAM: its code. */
  readonly resetCode?: number;
}

export class H2Client implements AsyncDisposable {
  readonly conn: Deno.Conn;
  /** The protocol ALPN chose, on TLS. */
  readonly alpn: string | null;
  readonly encoder = new HpackEncoder(4096);
  readonly decoder = new HpackDecoder(65536);
  /** Every frame received, in order. */
  readonly frames: OutFrame[] = [];
  /** True once the server closed the connection (or it failed). */
  closed = false;
  #nextId = 1;
  readonly #reader = new FrameReader(this.decoder);
  #waiters: (() => void)[] = [];
  readonly #reading: Promise<void>;
  readonly #ackSettings: boolean;
  readonly #creditData: boolean;
  /** Flow control of what we send: the server's windows, as it moved them. */
  #initialWindow = 65_535;
  readonly #credit = new Map<number, number>();
  readonly #sent = new Map<number, number>();
  #sentAll = 0;
  /** Writes in order: acks sent by the reader never split a test's frames. */
  #writes: Promise<void> = Promise.resolve();

  private constructor(
    conn: Deno.Conn,
    alpn: string | null,
    opts: H2ClientOptions,
  ) {
    this.conn = conn;
    this.alpn = alpn;
    this.#ackSettings = opts.ackSettings ?? true;
    this.#creditData = opts.creditData ?? false;
    this.#reading = opts.deaf ? Promise.resolve() : this.#readLoop();
  }

  static async connect(
    port: number,
    opts: H2ClientOptions = {},
  ): Promise<H2Client> {
    let conn: Deno.Conn;
    let alpn: string | null = null;
    if (opts.caCert !== undefined) {
      const tls = await Deno.connectTls({
        hostname: "localhost",
        port,
        caCerts: [opts.caCert],
        alpnProtocols: ["h2", "http/1.1"],
      });
      alpn = (await tls.handshake()).alpnProtocol;
      conn = tls;
    } else {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    }
    const client = new H2Client(conn, alpn, opts);
    if (opts.preface ?? true) {
      const frames: FrameInit[] = [{
        type: FRAME.SETTINGS,
        ack: false,
        settings: [
          ...(opts.settings ??
            [[SETTING.INITIAL_WINDOW_SIZE, MAX_WINDOW] as [number, number]]),
        ],
      }];
      if (opts.openWindow ?? true) {
        frames.push({
          type: FRAME.WINDOW_UPDATE,
          streamId: 0,
          increment: MAX_WINDOW - 65_535,
        });
      }
      await client.send(CLIENT_PREFACE, ...frames);
    }
    return client;
  }

  /** The next odd stream id, taken. */
  nextStream(): number {
    const id = this.#nextId;
    this.#nextId += 2;
    return id;
  }

  /** Writes frames or raw bytes, together, after what is being written. */
  send(...parts: (FrameInit | Uint8Array)[]): Promise<void> {
    const bytes = concat(
      parts.map((p) => p instanceof Uint8Array ? p : encodeFrame(p)),
    );
    const write = async () => {
      for (let off = 0; off < bytes.length;) {
        off += await this.conn.write(bytes.subarray(off));
      }
    };
    const done = this.#writes.then(write);
    this.#writes = done.catch(() => {});
    return done;
  }

  /** A header block for `fields` with this client's HPACK table. */
  block(fields: Fields): Uint8Array {
    return encodeBlock(this.encoder, fields);
  }

  headers(streamId: number, fields: Fields, endStream = true): FrameInit {
    return {
      type: FRAME.HEADERS,
      streamId,
      endStream,
      endHeaders: true,
      priority: undefined,
      fragment: this.block(fields),
    };
  }

  data(streamId: number, data: string | Uint8Array, endStream = true) {
    return {
      type: FRAME.DATA,
      streamId,
      endStream,
      data: typeof data === "string" ? new TextEncoder().encode(data) : data,
      flowLength: 0,
    } as const;
  }

  /**
   * Sends a request on a new stream (with its body in DATA frames of 16
   * KiB) and waits for its end. `fields` are added after the pseudo-header
   * fields.
   */
  async request(
    path: string,
    opts: {
      method?: string;
      body?: string | Uint8Array;
      fields?: Fields;
      authority?: string;
    } = {},
  ): Promise<H2Reply> {
    const id = this.nextStream();
    const fields: [string, string][] = [
      [":method", opts.method ?? (opts.body === undefined ? "GET" : "POST")],
      [":scheme", this.alpn === null ? "http" : "https"],
      [":path", path],
      [":authority", opts.authority ?? "localhost"],
      ...(opts.fields ?? []).map(([n, v]): [string, string] => [n, v]),
    ];
    const body = typeof opts.body === "string"
      ? new TextEncoder().encode(opts.body)
      : opts.body;
    await this.send(this.headers(id, fields, body === undefined));
    if (body !== undefined) await this.sendBody(id, body);
    return await this.reply(id);
  }

  /**
   * Sends `body` on stream `id` in DATA frames of up to 16 KiB, never past
   * the windows the server gave (waits for its WINDOW_UPDATEs); the last
   * frame ends the stream. Stops if the stream is reset.
   */
  async sendBody(id: number, body: Uint8Array): Promise<void> {
    let at = 0;
    do {
      const room = Math.min(this.#connWindow(), this.#streamWindow(id));
      if (room <= 0 && body.length > 0) {
        if (
          this.frames.some((f) =>
            f.type === FRAME.RST_STREAM && f.streamId === id
          )
        ) return;
        const seen = this.frames.length;
        await this.until(
          (f) => this.frames.indexOf(f) >= seen,
          "a WINDOW_UPDATE",
        );
        continue;
      }
      const end = Math.min(at + 16_384, at + room, body.length);
      await this.send(
        this.data(id, body.subarray(at, end), end === body.length),
      );
      this.#sent.set(id, (this.#sent.get(id) ?? 0) + end - at);
      this.#sentAll += end - at;
      at = end;
    } while (at < body.length);
  }

  #connWindow(): number {
    return 65_535 + (this.#credit.get(0) ?? 0) - this.#sentAll;
  }

  #streamWindow(id: number): number {
    return this.#initialWindow + (this.#credit.get(id) ?? 0) -
      (this.#sent.get(id) ?? 0);
  }

  /** Waits for stream `id` to end and returns its reply. */
  async reply(id: number): Promise<H2Reply> {
    await this.until((f) =>
      streamOf(f) === id &&
      (f.type === FRAME.RST_STREAM ||
        ((f.type === FRAME.DATA || f.type === FRAME.HEADERS) && f.endStream))
    );
    return this.replyOf(id);
  }

  /** What stream `id` received so far, as a reply. */
  replyOf(id: number): H2Reply {
    const mine = this.frames.filter((f) => streamOf(f) === id);
    const heads = mine.filter((f) => f.fields !== undefined);
    const final = heads.find((f) =>
      Number(f.fields!.find(([n]) => n === ":status")?.[1]) >= 200
    );
    const headers = new Map<string, string>();
    for (const [name, value] of final?.fields ?? []) headers.set(name, value);
    const body = concat(
      mine.flatMap((f) => f.type === FRAME.DATA ? [f.data] : []),
    );
    const rst = mine.find((f) => f.type === FRAME.RST_STREAM);
    return {
      status: Number(headers.get(":status") ?? 0),
      headers,
      body,
      text: new TextDecoder().decode(body),
      resetCode: rst?.type === FRAME.RST_STREAM ? rst.code : undefined,
    };
  }

  /** Waits until a frame received matches `match`; returns it. */
  async until(
    match: (f: OutFrame) => boolean,
    what = "the expected frame",
    ms = H2_WAIT_MS,
  ): Promise<OutFrame> {
    const deadline = Date.now() + ms;
    let seen = 0;
    for (;;) {
      for (; seen < this.frames.length; seen++) {
        if (match(this.frames[seen])) return this.frames[seen];
      }
      if (this.closed) {
        throw new Error(`Connection closed before ${what}: ${this.summary()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`Timed out waiting for ${what}: ${this.summary()}`);
      }
      await this.#next(left);
    }
  }

  /** The GOAWAY the server sent, waited for. */
  async goaway(ms = H2_WAIT_MS) {
    const f = await this.until((f) => f.type === FRAME.GOAWAY, "GOAWAY", ms);
    return f as Extract<OutFrame, { type: typeof FRAME.GOAWAY }>;
  }

  /** Asserts a GOAWAY with `code` came, and then the close. */
  async assertGoaway(code: number, ms = H2_WAIT_MS): Promise<void> {
    const g = await this.goaway(ms);
    assert.equal(
      errorName(g.code),
      errorName(code),
      new TextDecoder().decode(g.debug),
    );
    await this.closedWithin(ms);
  }

  /** Waits for the server to close the connection. */
  async closedWithin(ms = H2_WAIT_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Still open after ${ms} ms`);
      await this.#next(left);
    }
  }

  /** Frame types received, for failure messages. */
  summary(): string {
    return this.frames.map((f) =>
      `${f.type === FRAME.GOAWAY ? `GOAWAY(${errorName(f.code)})` : f.type}@${
        streamOf(f)
      }`
    ).join(" ");
  }

  #next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#take(buf.subarray(0, n));
        this.#wake();
      }
    } catch {
      // reset by the server: closed all the same
    } finally {
      this.closed = true;
      this.#wake();
    }
  }

  #take(bytes: Uint8Array): void {
    for (const frame of this.#reader.read(bytes)) {
      if (frame.type === FRAME.WINDOW_UPDATE) {
        const id = frame.streamId;
        this.#credit.set(id, (this.#credit.get(id) ?? 0) + frame.increment);
      } else if (frame.type === FRAME.SETTINGS && !frame.ack) {
        for (const [setting, value] of frame.settings) {
          if (setting === SETTING.INITIAL_WINDOW_SIZE) {
            this.#initialWindow = value;
          }
        }
        if (this.#ackSettings) {
          this.send({ type: FRAME.SETTINGS, ack: true, settings: [] }).catch(
            () => {},
          );
        }
      } else if (
        frame.type === FRAME.DATA && this.#creditData && frame.flowLength > 0
      ) {
        const increment = frame.flowLength;
        this.send(
          { type: FRAME.WINDOW_UPDATE, streamId: 0, increment },
          { type: FRAME.WINDOW_UPDATE, streamId: frame.streamId, increment },
        ).catch(() => {});
      }
      this.frames.push(frame);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.conn.close();
    } catch { /* closed */ }
    await this.#reading;
  }
}

/** The stream a frame belongs to; 0 for the connection's own frames. */
export function streamOf(f: OutFrame): number {
  return "streamId" in f ? f.streamId : 0;
}

/** The error name of a code, for messages. */
export function codeName(code: number | undefined): string {
  return code === undefined ? "none" : errorName(code);
}
