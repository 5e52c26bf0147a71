/**
 * The contract between the engine and any application: a {@link Handler}
 * takes a {@link ServerRequest} and returns a {@link Reply}. No web `Request`
 * objects on this path; the fetch adapter builds them only when asked.
 */
import type { Limits } from "../config.ts";
import type { HeaderFields } from "./headers.ts";
import type { Socket } from "./socket.ts";

/**
 * A byte range of an open file; the engine streams it and closes the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FileBody, serve } from "@spindle/server";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "0123456789");
 * await using server = serve({ port: 0, accessLog: false }, async () => ({
 *   status: 200,
 *   body: new FileBody(await Deno.open(path), 2, 3), // bytes 2, 3 and 4
 * }));
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(await res.text(), "234");
 * await Deno.remove(path);
 * ```
 */
export class FileBody {
  /** `length` bytes of `file` from `start`; the engine closes `file` once sent. */
  constructor(
    readonly file: Deno.FsFile,
    readonly start: number,
    readonly length: number,
  ) {}
}

/**
 * What a reply carries. Strings are UTF-8 encoded. Streams and iterables are
 * sent with chunked coding unless the reply has a `content-length` header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ReplyBody } from "@spindle/server";
 *
 * const bodies: ReplyBody[] = [
 *   "text, sent as UTF-8",
 *   new Uint8Array([1, 2, 3]),
 *   ReadableStream.from([new Uint8Array([4])]), // sent chunked
 *   null, // no body
 * ];
 * assert.equal(bodies.length, 4);
 * ```
 */
export type ReplyBody =
  | string
  | Uint8Array
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>
  | FileBody
  | null
  | undefined;

/**
 * Reply header fields: a record or a list of pairs (for repeated names).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ReplyHeaders } from "@spindle/server";
 *
 * const record: ReplyHeaders = { "cache-control": "no-store" };
 * const pairs: ReplyHeaders = [["set-cookie", "a=1"], ["set-cookie", "b=2"]];
 * assert.ok(Array.isArray(pairs) && !Array.isArray(record));
 * ```
 */
export type ReplyHeaders =
  | Readonly<Record<string, string>>
  | ReadonlyArray<readonly [string, string]>;

/**
 * A response. The engine adds Date, Content-Length or chunking, and
 * Connection. A reply may be reused for many requests; a frozen header
 * record that comes back request after request is checked and encoded once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Reply } from "@spindle/server";
 *
 * const created: Reply = {
 *   status: 201,
 *   headers: { "content-type": "text/plain; charset=utf-8" },
 *   body: "made",
 * };
 * assert.equal(created.status, 201);
 * ```
 */
export interface Reply {
  /** The status code, 100 to 599. */
  readonly status: number;
  /** Header fields; the engine adds Date, the framing and Connection. */
  readonly headers?: ReplyHeaders;
  /** The body; none for HEAD, 204 and 304 whatever is given. */
  readonly body?: ReplyBody;
  /**
   * With status 101: what takes the connection over once the engine has
   * written `101 Switching Protocols` with `headers` and `Connection:
   * Upgrade` (a WebSocket). Only on an HTTP/1.1 request whose body was
   * read; otherwise the engine answers 500 and calls `cancel()`.
   * The engine's plumbing for `router.ws()`, not part of the package's API.
   *
   * @ignore
   */
  readonly upgrade?: Takeover;
}

/**
 * A protocol that takes a connection over after a 101 reply. The engine
 * keeps the connection counted (its slot, its address) until `run()`
 * settles, then closes the socket; meanwhile its deadline sweeper calls
 * `expire()` and a graceful shutdown calls `drain()`.
 */
export interface Takeover {
  /**
   * Serves the socket. `head` holds the bytes the client sent after the
   * request head (its first frames), the takeover's to keep.
   */
  run(socket: Socket, head: Uint8Array): Promise<void>;
  /** The 101 never went out (the client left first): release what was set up. */
  cancel(): void;
  /** Called by the sweeper, about once per tick: act on a passed deadline. */
  expire(now: number): void;
  /** Graceful shutdown: end the protocol politely, then let `run()` settle. */
  drain(): void;
}

/**
 * The request body, read lazily. The first read sends `100 Continue` when the
 * client asked for it; a handler that answers without reading never does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "@spindle/server";
 *
 * await using server = serve({ port: 0, accessLog: false }, async (req) => ({
 *   status: 200,
 *   body: `${req.body.length} bytes: ${await req.body.text()}`,
 * }));
 * const res = await fetch(`http://127.0.0.1:${server.port}/`, {
 *   method: "POST",
 *   body: "hi",
 * });
 * assert.equal(await res.text(), "2 bytes: hi");
 * ```
 */
export interface RequestBody {
  /** Content-Length, 0 when there is no body, null when chunked. */
  readonly length: number | null;
  /** True once every byte of the body has been read. */
  readonly consumed: boolean;
  /** Whole body. Over `maxBytes` (default and ceiling: `limits.maxBodyBytes`): HttpError 413. */
  bytes(maxBytes?: number): Promise<Uint8Array>;
  /** Whole body as UTF-8; invalid UTF-8: HttpError 400. */
  text(maxBytes?: number): Promise<string>;
  /** Whole body parsed as JSON; malformed: HttpError 400. */
  json(maxBytes?: number): Promise<unknown>;
  /** The body piece by piece as it arrives; each piece is the caller's to keep. */
  chunks(maxBytes?: number): AsyncIterable<Uint8Array>;
  /** The body as a web stream (for the fetch adapter). */
  stream(maxBytes?: number): ReadableStream<Uint8Array>;
}

/**
 * One parsed request, as handed to a {@link Handler}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve, type ServerRequest } from "@spindle/server";
 *
 * function describe(req: ServerRequest): string {
 *   return `${req.method} ${req.path} ${req.query} ${req.version}`;
 * }
 * await using server = serve(
 *   { port: 0, accessLog: false },
 *   (req) => ({ status: 200, body: describe(req) }),
 * );
 * const res = await fetch(`http://127.0.0.1:${server.port}/a%20b?c=1`);
 * assert.equal(await res.text(), "GET /a%20b c=1 HTTP/1.1");
 * ```
 */
export interface ServerRequest {
  /** Method token as sent (methods are case-sensitive). */
  readonly method: string;
  /** Request target exactly as sent. */
  readonly target: string;
  /** Path part of the target, still percent-encoded; "*" for asterisk-form. */
  readonly path: string;
  /** Query after "?", without it; "" when absent. */
  readonly query: string;
  /** "HTTP/2" on an HTTP/2 stream (TLS with ALPN h2, or `--h2c`). */
  readonly version: "HTTP/1.0" | "HTTP/1.1" | "HTTP/2";
  /** The header fields, names in lower case. */
  readonly headers: HeaderFields;
  /** Host header, the authority of an absolute-form target, or HTTP/2's `:authority`. */
  readonly host: string;
  /** The client's address: the TCP peer, or the client a trusted PROXY protocol header names. */
  readonly remoteAddr: Deno.NetAddr;
  /** True on a TLS connection. */
  readonly secure: boolean;
  /** The body, read on demand. */
  readonly body: RequestBody;
  /** `Date.now()` when the head was complete (a cheap clock; ms resolution). */
  readonly startTime: number;
  /** The engine's limits (a WebSocket upgrade holds its session to them). */
  readonly limits: Limits;
  /**
   * The authenticated user, set by an auth layer; the access line shows it
   * (CLF's `%u`). Never the password.
   */
  user?: string;
  /**
   * The Accept value an error reply to this request is rendered for, in
   * place of the client's: an API route sets `application/json`, so a
   * client that names no type still gets JSON (`jsonErrors`).
   */
  errorAccept?: string;
}

/**
 * The application, seen from the engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Handler, serve } from "@spindle/server";
 *
 * const hello: Handler = (req) => ({ status: 200, body: `hello ${req.path}` });
 * await using server = serve({ port: 0, accessLog: false }, hello);
 * const res = await fetch(`http://127.0.0.1:${server.port}/you`);
 * assert.equal(await res.text(), "hello /you");
 * ```
 */
export type Handler = (req: ServerRequest) => Reply | Promise<Reply>;
