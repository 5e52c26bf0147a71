/**
 * WebSocket routes for the router: the handler gets a socket shaped like
 * the web `WebSocket` (`send`, `close`, `onmessage`, `bufferedAmount`, or
 * `for await` over its messages) and the request that opened it.
 */
import type { Reply } from "../http/handler.ts";
import type { UpgradeOptions } from "../http/ws/handshake.ts";
import type { ServerWebSocket, WsHandlers } from "../http/ws/socket.ts";
import type { AppRequest } from "./app_request.ts";

export type {
  ServerWebSocket,
  WsEventHandler,
  WsHandlers,
  WsMessage,
} from "../http/ws/socket.ts";

/**
 * A WebSocket route's handler. It runs before the 101 is written: set
 * `onmessage` (or start iterating) here; `send()` works from "open" on.
 * What it throws answers 500 instead of the 101; a promise it returns that
 * rejects closes the socket with 1011. Either error goes to the log.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Router, serve, type WsHandler } from "@spindle/server";
 *
 * const room: WsHandler = (ws, req) => {
 *   ws.onmessage = (e) => ws.send(`${req.params.room}: ${e.data}`);
 * };
 * const app = new Router().ws("/chat/{room}", room);
 * await using server = serve({ port: 0, accessLog: false }, app.handler());
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/chat/lobby`);
 * const reply = new Promise((resolve) => ws.onmessage = (e) => resolve(e.data));
 * ws.onopen = () => ws.send("hi");
 * assert.equal(await reply, "lobby: hi");
 * const closed = new Promise((resolve) => ws.onclose = resolve);
 * ws.close();
 * await closed;
 * ```
 */
export type WsHandler = (
  ws: ServerWebSocket,
  req: AppRequest,
) => void | Promise<void>;

/**
 * What a WebSocket route accepts: subprotocols, compression, origins.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Router, type WsRouteOptions } from "@spindle/server";
 *
 * const options: WsRouteOptions = { protocols: ["chat.v1"], compression: true };
 * const app = new Router().ws("/chat", (ws) => {
 *   ws.onmessage = (e) => ws.send(e.data);
 * }, options);
 * assert.equal(typeof app.handler(), "function");
 * ```
 */
export type WsRouteOptions = UpgradeOptions;

/**
 * The WebSocket code, loaded at the first upgrade: an app that has a
 * WebSocket route but no client for it yet starts without it.
 */
let wsCode: Promise<typeof import("../http/ws_connection.ts")> | undefined;

/**
 * The app handler behind `router.ws()`: upgrade, then hand the socket to
 * `handler`, or to `handlers`' methods (with the request as `open`'s
 * second argument).
 */
export function wsRoute(
  handler: WsHandler | WsHandlers<AppRequest>,
  options: WsRouteOptions = {},
): (req: AppRequest) => Promise<Reply> {
  const run: WsHandler = typeof handler === "function"
    ? handler
    : (ws, req) => ws.handleWith(handler, req);
  return async (req) => {
    const { upgradeWebSocket } = await (wsCode ??= import(
      "../http/ws_connection.ts"
    ));
    const { socket, reply } = upgradeWebSocket(req.raw, options);
    let done;
    try {
      done = run(socket, req);
    } catch (err) {
      reply.upgrade.cancel();
      throw err;
    }
    if (done instanceof Promise) done.catch((err) => reply.upgrade.fail(err));
    return reply;
  };
}
