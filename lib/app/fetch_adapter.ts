/**
 * Web-standard apps (`(Request) => Response`, as Hono, itty-router or a
 * plain `Deno.serve` handler are written) on our engine. A web `Request` is
 * built only here, per request; the body stays a stream both ways.
 */
import { HttpError, STATUS } from "../http/errors.ts";
import type { Handler, Reply, ServerRequest } from "../http/handler.ts";
import { serve, type ServeOptions, type Server } from "../http/server.ts";
import {
  routeDenoUpgrades,
  takeRefusal,
  takeUpgrade,
  trackUpgrade,
} from "./fetch_websocket.ts";

export {
  type FetchUpgradeOptions,
  upgradeWebSocket,
} from "./fetch_websocket.ts";

/**
 * What the fetch handler gets besides the request (like `Deno.ServeHandlerInfo`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type FetchInfo, serveFetch } from "@spindle/server";
 *
 * const who = (info: FetchInfo) => info.remoteAddr.hostname;
 * await using server = serveFetch({
 *   port: 0,
 *   accessLog: false,
 *   fetch: (_request, info) => new Response(who(info)),
 * });
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(await res.text(), "127.0.0.1");
 * ```
 */
export interface FetchInfo {
  /** The client's address, as in {@link ServerRequest.remoteAddr}. */
  readonly remoteAddr: Deno.NetAddr;
  /** True on a TLS connection. */
  readonly secure: boolean;
}

/**
 * A web-standard handler; Hono's `app.fetch` fits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type FetchHandler, serveFetch } from "@spindle/server";
 *
 * const app: FetchHandler = (request, info) =>
 *   Response.json({ url: new URL(request.url).pathname, secure: info.secure });
 * await using server = serveFetch({ port: 0, accessLog: false, fetch: app });
 * const res = await fetch(`http://127.0.0.1:${server.port}/x`);
 * assert.deepEqual(await res.json(), { url: "/x", secure: false });
 * ```
 */
export type FetchHandler = (
  request: Request,
  info: FetchInfo,
) => Response | Promise<Response>;

const NO_BODY_METHODS = new Set(["GET", "HEAD"]);

/** Builds the web Request: URL from Host and path, headers as sent, body as a stream. */
export function toRequest(req: ServerRequest): Request {
  const scheme = req.secure ? "https" : "http";
  // Concatenate, never resolve: `new URL("//evil/x", base)` would change the host.
  const host = req.host === "" ? "localhost" : req.host;
  let url: URL;
  const headers = new Headers();
  try {
    url = new URL(
      `${scheme}://${host}${req.path}${
        req.query === "" ? "" : "?" + req.query
      }`,
    );
    for (const [name, value] of req.headers) headers.append(name, value);
  } catch (err) {
    throw new HttpError(STATUS.BadRequest, "Cannot build a web Request", {
      expose: "Request target or headers are not valid for this app",
      cause: err,
    });
  }
  const hasBody = !NO_BODY_METHODS.has(req.method) && req.body.length !== 0;
  return new Request(url, {
    method: req.method,
    headers,
    body: hasBody ? req.body.stream() : null,
    // @ts-ignore: `duplex` is required by the fetch spec for stream bodies, not yet typed
    duplex: "half",
  });
}

/** `pending`'s result if it settles within this turn, else undefined. */
async function readyNow<T>(pending: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    pending,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 0);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

/** The body whole if it is complete already (a string or bytes Response), else a stream. */
async function wholeIfReady(
  body: ReadableStream<Uint8Array>,
): Promise<Uint8Array | ReadableStream<Uint8Array>> {
  const reader = body.getReader();
  const ready: Uint8Array[] = [];
  let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  // A Response made from a string has every byte queued already; a live
  // stream does not. Look two reads ahead at most, never waiting on a slow
  // producer: an event stream's head goes out before its first event.
  while (ready.length < 2) {
    pending = reader.read();
    const result = await readyNow(pending);
    if (result === undefined) break; // not here yet: the stream picks it up
    pending = undefined;
    if (result.done) {
      reader.releaseLock();
      return ready[0] ?? new Uint8Array(0);
    }
    ready.push(result.value);
  }
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = ready.shift();
      if (chunk !== undefined) return controller.enqueue(chunk);
      const result = await (pending ?? reader.read());
      pending = undefined;
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Turns a web Response into a Reply: status, every header, body as a stream. */
export async function toReply(response: Response): Promise<Reply> {
  const headers: [string, string][] = [];
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") headers.push([name, value]);
  }
  // Iteration already yields each set-cookie apart; getSetCookie() says so outright.
  for (const cookie of response.headers.getSetCookie()) {
    headers.push(["set-cookie", cookie]);
  }
  const body = response.body;
  const status = response.status;
  if (body === null || status === 204 || status === 304) {
    await body?.cancel();
    return { status, headers, body: null };
  }
  // HEAD keeps its body: the engine drops it once it has the length GET
  // would send (RFC 9110 §8.6: a HEAD reply's Content-Length must match).
  if (response.headers.has("content-length")) return { status, headers, body };
  // No length given: if the body turns out complete, send it with one.
  return { status, headers, body: await wholeIfReady(body) };
}

/**
 * Wraps a web-standard fetch handler as an engine {@link Handler}. The app
 * upgrades a WebSocket with this module's `upgradeWebSocket(request)`, or
 * with `Deno.upgradeWebSocket`, which from the first call on accepts this
 * adapter's requests too (as Hono's `hono/deno` helper calls it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromFetch, serve } from "@spindle/server";
 *
 * const handler = fromFetch((request) => new Response(`hi ${new URL(request.url).pathname}`));
 * await using server = serve({ port: 0, accessLog: false }, handler);
 * const res = await fetch(`http://127.0.0.1:${server.port}/there`);
 * assert.equal(await res.text(), "hi /there");
 * ```
 */
export function fromFetch(fetch: FetchHandler): Handler {
  routeDenoUpgrades();
  return async (req) => {
    const request = toRequest(req);
    const upgrading = req.headers.get("upgrade") !== undefined;
    if (upgrading) trackUpgrade(request, req);
    let response: Response;
    try {
      response = await fetch(request, {
        remoteAddr: req.remoteAddr,
        secure: req.secure,
      });
    } catch (err) {
      if (upgrading) takeUpgrade(request, undefined); // a socket never to open
      throw takeRefusal(request) ?? err;
    }
    if (upgrading) {
      const reply = takeUpgrade(request, response);
      if (reply !== undefined) return reply;
    }
    // A handshake upgradeWebSocket() refused, which the app's framework
    // caught and made a 500 of (Hono does): the refusal's own status.
    if (response.status === 500) {
      const refusal = takeRefusal(request);
      if (refusal !== undefined) {
        await response.body?.cancel();
        throw refusal;
      }
    }
    return await toReply(response);
  };
}

/**
 * Serves a web-standard app (`{ fetch }`, e.g. a Hono app) on our engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serveFetch } from "@spindle/server";
 *
 * await using server = serveFetch({
 *   port: 0,
 *   accessLog: false,
 *   fetch: async (request) => new Response(`got ${(await request.text()).length}`),
 * });
 * const res = await fetch(`http://127.0.0.1:${server.port}/`, { method: "POST", body: "12345" });
 * assert.equal(await res.text(), "got 5");
 * ```
 */
export function serveFetch(
  options: ServeOptions & { readonly fetch: FetchHandler },
): Server {
  const { fetch, ...config } = options;
  return serve(config, fromFetch(fetch));
}
