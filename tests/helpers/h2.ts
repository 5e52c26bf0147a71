/**
 * The client's side of HTTP/2 session tests: builds the frames a client
 * (honest or not) sends, feeds them to an {@link H2Session}, and reads the
 * session's output back as frames with their header blocks decoded.
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../../lib/config.ts";
import {
  CLIENT_PREFACE,
  encodeFrame,
  errorName,
  FRAME,
  type Frame,
  FRAME_HEADER_BYTES,
  type FrameInit,
  frameLength,
  parseFrame,
  type Priority,
} from "../../lib/http/h2/frames.ts";
import { HpackDecoder, HpackEncoder, INDEX } from "../../lib/http/h2/hpack.ts";
import { type H2Event, H2Session } from "../../lib/http/h2/session.ts";
import { OutBuffer } from "../../lib/http/response.ts";
import { concat } from "./bytes.ts";

export type Fields = readonly (readonly [string, string])[];

/** A GET for `path` with the pseudo-header fields every client sends. */
export function get(path = "/", extra: Fields = []): Fields {
  return [
    [":method", "GET"],
    [":scheme", "https"],
    [":path", path],
    [":authority", "localhost"],
    ...extra,
  ];
}

/** A frame the session wrote, with its header block decoded if it ends one. */
export type OutFrame = Frame & { readonly fields?: [string, string][] };

export interface HeadersOptions {
  readonly endStream?: boolean;
  readonly priority?: Priority;
  readonly padding?: number;
}

/** One client connection to a session, driven frame by frame. */
export class FakeClient {
  readonly session: H2Session;
  readonly encoder = new HpackEncoder(4096);
  readonly decoder = new HpackDecoder(4096);
  /** Every event the session produced, in order. */
  readonly events: H2Event[] = [];
  /** Every frame the session wrote, in order (fill with `read()`). */
  readonly frames: OutFrame[] = [];

  /** Sends the preface and an empty SETTINGS unless `preface` is false. */
  constructor(limits: Limits = DEFAULT_LIMITS, preface = true) {
    this.session = new H2Session(limits);
    if (preface) {
      this.send(CLIENT_PREFACE, {
        type: FRAME.SETTINGS,
        ack: false,
        settings: [],
      });
    }
  }

  /** Feeds frames or raw bytes, in one receive() call; returns that call's events. */
  send(...parts: (FrameInit | Uint8Array)[]): H2Event[] {
    const bytes = concat(
      parts.map((p) => p instanceof Uint8Array ? p : encodeFrame(p)),
    );
    const events = this.session.receive(bytes);
    this.events.push(...events);
    return events;
  }

  /** A header block for `fields`, encoded with the client's table. */
  block(fields: Fields): Uint8Array {
    return encodeBlock(this.encoder, fields);
  }

  /** A HEADERS frame carrying all of `fields`. */
  headers(
    streamId: number,
    fields: Fields,
    options: HeadersOptions = {},
  ): FrameInit {
    return {
      type: FRAME.HEADERS,
      streamId,
      endStream: options.endStream ?? true,
      endHeaders: true,
      priority: options.priority,
      fragment: this.block(fields),
      padding: options.padding,
    };
  }

  data(
    streamId: number,
    data: string | Uint8Array,
    endStream = true,
  ): FrameInit {
    return {
      type: FRAME.DATA,
      streamId,
      endStream,
      data: typeof data === "string" ? new TextEncoder().encode(data) : data,
      flowLength: 0,
    };
  }

  readonly #reader = new FrameReader(this.decoder);

  /** Parses what the session wrote since the last read. */
  read(): OutFrame[] {
    const fresh = this.#reader.read(this.session.takeOutput());
    this.frames.push(...fresh);
    return fresh;
  }

  /** The frames of `type` among those read so far. */
  framesOf<T extends Frame["type"]>(type: T): Extract<OutFrame, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as Extract<
      OutFrame,
      { type: T }
    >[];
  }

  /** The events of `type` so far. */
  eventsOf<T extends H2Event["type"]>(
    type: T,
  ): Extract<H2Event, { type: T }>[] {
    return this.events.filter((e) => e.type === type) as Extract<
      H2Event,
      { type: T }
    >[];
  }

  /** The GOAWAY the session sent, if any (reads first). */
  goaway(): Extract<OutFrame, { type: typeof FRAME.GOAWAY }> | undefined {
    this.read();
    return this.framesOf(FRAME.GOAWAY)[0];
  }
}

/** A header block for `fields`, every field offered to `encoder`'s table. */
export function encodeBlock(encoder: HpackEncoder, fields: Fields): Uint8Array {
  const out = new OutBuffer();
  encoder.beginBlock(out);
  for (const [name, value] of fields) {
    encoder.writeField(out, name, value, INDEX);
  }
  return out.buf.slice(0, out.len);
}

/**
 * The start of a Node script (`node -e`) that asks an HTTP/2 server
 * questions: `session`, connected to process.argv[1] (trusting the CA file
 * in argv[2], if any), and `ask(headers, body?)`, which sends a body with
 * trailers and resolves with `{ status, body }`.
 */
export const NODE_H2_ASK = `
const http2 = require("node:http2");
const [url, ca] = process.argv.slice(1);
const session = http2.connect(url, ca ? { ca: require("node:fs").readFileSync(ca) } : {});
const ask = (headers, body) => new Promise((resolve, reject) => {
  const req = session.request(headers, { endStream: body === undefined, waitForTrailers: body !== undefined });
  let status = 0;
  const chunks = [];
  req.on("response", (h) => { status = h[":status"]; });
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString() }));
  req.on("error", reject);
  if (body !== undefined) {
    req.on("wantTrailers", () => req.sendTrailers({ "x-sum": String(body.length) }));
    req.end(body);
  }
});
`;

/** A server's frames from its bytes as they come, any split; header blocks decoded. */
export class FrameReader {
  readonly #decoder: HpackDecoder;
  #pending = new Uint8Array(0);
  #block: Uint8Array[] = [];

  constructor(decoder: HpackDecoder) {
    this.#decoder = decoder;
  }

  /** The frames `bytes` completes; a partial one waits for the next call. */
  read(bytes: Uint8Array): OutFrame[] {
    const fresh: OutFrame[] = [];
    const all = concat([this.#pending, bytes]);
    let at = 0;
    for (;;) {
      const frame = parseFrame(all, at, all.length, 1 << 24) as Frame | null;
      if (frame === null) break;
      at += FRAME_HEADER_BYTES + frameLength(all, at);
      let out: OutFrame = frame;
      if (frame.type === FRAME.HEADERS || frame.type === FRAME.CONTINUATION) {
        this.#block.push(frame.fragment);
        if (frame.endHeaders) {
          const block = concat(this.#block);
          this.#block = [];
          const list = this.#decoder.decode(block, 0, block.length, Infinity);
          out = {
            ...frame,
            fields: list.names.map((n, i) => [n, list.values[i]]),
          };
        }
      }
      fresh.push(out);
    }
    this.#pending = all.slice(at);
    return fresh;
  }
}

/** Asserts the session ended the connection with GOAWAY `code`. */
export function assertGoaway(c: FakeClient, code: number): void {
  const g = c.goaway();
  assert.ok(g !== undefined, "no GOAWAY sent");
  assert.equal(
    errorName(g.code),
    errorName(code),
    new TextDecoder().decode(g.debug),
  );
  assert.equal(c.session.finished, true);
}
