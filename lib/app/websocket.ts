/**
 * WebSocket routes for the router: the handler gets a socket shaped like
 * the web `WebSocket` (`send`, `close`, `onmessage`, `bufferedAmount`, or
 * `for await` over its messages) and the request that opened it.
 */
import type { Reply } from "../http/handler.ts";
import type { UpgradeOptions } from "../http/ws/handshake.ts";
import type { ServerWebSocket } from "../http/ws/socket.ts";
import { upgradeWebSocket } from "../http/ws_connection.ts";
import type { AppRequest } from "./app_request.ts";

export type { ServerWebSocket, WsMessage } from "../http/ws/socket.ts";

/**
 * A WebSocket route's handler. It runs before the 101 is written: set
 * `onmessage` (or start iterating) here; `send()` works from "open" on.
 * What it throws answers 500 instead of the 101; a promise it returns that
 * rejects closes the socket with 1011. Either error goes to the log.
 */
export type WsHandler = (
  ws: ServerWebSocket,
  req: AppRequest,
) => void | Promise<void>;

/** What a WebSocket route accepts: subprotocols, compression, origins. */
export type WsRouteOptions = UpgradeOptions;

/** The app handler behind `router.ws()`: upgrade, then hand the socket to `handler`. */
export function wsRoute(
  handler: WsHandler,
  options: WsRouteOptions = {},
): (req: AppRequest) => Reply {
  return (req) => {
    const { socket, reply } = upgradeWebSocket(req.raw, options);
    let done;
    try {
      done = handler(socket, req);
    } catch (err) {
      reply.upgrade.cancel();
      throw err;
    }
    if (done instanceof Promise) done.catch((err) => reply.upgrade.fail(err));
    return reply;
  };
}
