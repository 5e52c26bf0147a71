/**
 * WebSocket for web-standard apps: `upgradeWebSocket(request)` returns
 * `{ socket, response }` as `Deno.upgradeWebSocket` does, for requests the
 * fetch adapter made. The adapter remembers each upgrade request's engine
 * request, and honours the 101 response the app returns by handing the
 * connection to the socket.
 */
import { HttpError } from "../http/errors.ts";
import type { Reply, ServerRequest } from "../http/handler.ts";
import type { UpgradeOptions } from "../http/ws/handshake.ts";
import type { ServerWebSocket } from "../http/ws/socket.ts";
import { webSocketRequired } from "../http/ws/upgrade_request.ts";
import {
  upgradeWebSocket as upgradeRequest,
  type WebSocketUpgrade,
} from "../http/ws_connection.ts";

/**
 * `Deno.upgradeWebSocket`'s options, and ours.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type FetchUpgradeOptions, serveFetch, upgradeWebSocket } from "@spindle/server";
 *
 * const options: FetchUpgradeOptions = { protocol: "chat.v1", compression: true };
 * await using server = serveFetch({
 *   port: 0,
 *   accessLog: false,
 *   fetch: (request) => upgradeWebSocket(request, options).response,
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`, ["chat.v1"]);
 * await new Promise((resolve) => ws.onopen = resolve);
 * assert.equal(ws.protocol, "chat.v1");
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export interface FetchUpgradeOptions extends UpgradeOptions {
  /** The subprotocol to agree, if the client offers it (as Deno's option). */
  readonly protocol?: string;
  /** Deno's ping interval; here `limits.wsIdleTimeoutMs` applies instead. */
  readonly idleTimeout?: number;
}

/** An upgrade request the adapter made, and the upgrade once the app asked for it. */
interface Pending {
  readonly raw: ServerRequest;
  upgrade: WebSocketUpgrade | undefined;
}

const pending = new WeakMap<Request, Pending>();

/**
 * What upgradeWebSocket() threw, by request: a framework that catches
 * everything (Hono's `onError`) turns it into a 500, which the adapter
 * answers with this instead.
 */
const refusals = new WeakMap<Request, HttpError>();

/**
 * For the fetch adapter, once the app answered `request` with a 500 or
 * threw: the refusal upgradeWebSocket() threw for it, to answer instead.
 */
export function takeRefusal(request: Request): HttpError | undefined {
  const refusal = refusals.get(request);
  refusals.delete(request);
  return refusal;
}

/** For the fetch adapter: `request` was made from `raw`, which asks to upgrade. */
export function trackUpgrade(request: Request, raw: ServerRequest): void {
  pending.set(request, { raw, upgrade: undefined });
}

/**
 * For the fetch adapter, once the app answered `request`: the 101 reply
 * that hands the connection to the socket, or undefined to send
 * `response` as it is (the app did not upgrade, or answered otherwise, and
 * the socket is then closed with 1006 before it opened).
 */
export function takeUpgrade(
  request: Request,
  response: Response | undefined,
): Reply | undefined {
  const slot = pending.get(request);
  pending.delete(request);
  const upgrade = slot?.upgrade;
  if (upgrade === undefined) return undefined;
  if (response?.status !== 101) {
    upgrade.reply.upgrade.cancel();
    return undefined;
  }
  // The response's fields: middleware may have added some to the handshake's.
  const headers: [string, string][] = [];
  for (const pair of response.headers) headers.push(pair);
  return { status: 101, headers, upgrade: upgrade.reply.upgrade };
}

const denoUpgrade = Deno.upgradeWebSocket;

/**
 * Upgrades a request the fetch adapter made, as `Deno.upgradeWebSocket`
 * does: the app returns `response` (status 101) and uses `socket`, shaped
 * like the web `WebSocket`. A request from elsewhere (`Deno.serve`) goes to
 * `Deno.upgradeWebSocket`, so one app runs on both. Throws HttpError 400
 * for a request that is not a valid upgrade (403 for an origin not in
 * `options.origins`, 426 for a version other than 13), and Deno's
 * TypeError for one with no `Upgrade`; the adapter answers each with its
 * status (426 for the last) even when the app's framework made a 500 of
 * it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serveFetch, upgradeWebSocket } from "@spindle/server";
 *
 * await using server = serveFetch({
 *   port: 0,
 *   accessLog: false,
 *   fetch: (request) => {
 *     const { socket, response } = upgradeWebSocket(request);
 *     socket.onmessage = (e) => socket.send(`echo: ${e.data}`);
 *     return response;
 *   },
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
 * const reply = new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
 * ws.onopen = () => ws.send("hi");
 * assert.equal(await reply, "echo: hi");
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  options: FetchUpgradeOptions = {},
): { socket: ServerWebSocket; response: Response } {
  const slot = pending.get(request);
  if (slot === undefined) {
    // Not an upgrade the adapter saw, or a request from Deno.serve: Deno's
    // throws for the former, and the adapter answers 426 for it.
    try {
      const { socket, response } = denoUpgrade(request, options);
      return { socket: socket as unknown as ServerWebSocket, response };
    } catch (err) {
      refusals.set(
        request,
        webSocketRequired(
          `${request.method} without a WebSocket upgrade: ${err}`,
          "This path speaks WebSocket only",
        ),
      );
      throw err;
    }
  }
  if (slot.upgrade !== undefined) {
    throw new TypeError("upgradeWebSocket() was called twice for one request");
  }
  const { protocol, idleTimeout: _, ...opts } = options;
  let upgrade;
  try {
    upgrade = upgradeRequest(
      slot.raw,
      protocol === undefined ? opts : { ...opts, protocols: [protocol] },
    );
  } catch (err) {
    if (err instanceof HttpError) refusals.set(request, err);
    throw err;
  }
  slot.upgrade = upgrade;
  return {
    socket: upgrade.socket,
    response: new Response(null, {
      status: 101,
      headers: upgrade.reply.headers as [string, string][],
    }),
  };
}

let routed = false;

/**
 * Makes `Deno.upgradeWebSocket` accept the fetch adapter's requests too
 * (others still go to Deno's own), so an app written for `Deno.serve`,
 * such as Hono with `upgradeWebSocket` from `hono/deno`, runs unchanged.
 * Idempotent; the fetch adapter calls it.
 */
export function routeDenoUpgrades(): void {
  if (routed) return;
  routed = true;
  const upgrade = (request: Request, options?: Deno.UpgradeWebSocketOptions) =>
    upgradeWebSocket(request, options) as unknown as Deno.WebSocketUpgrade;
  Object.defineProperty(Deno, "upgradeWebSocket", {
    value: upgrade,
    writable: true,
    configurable: true,
    enumerable: true,
  });
}
