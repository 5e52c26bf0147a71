/**
 * The two ways the engine carries TLS (lib/http/tls.ts): node's listener
 * when the descriptor limit is known with room for its accept queue (128)
 * besides the reserve, else Deno's. Tests of TLS run on both, each chosen by
 * a limit given here: left unset, the limit is read from /proc/self/limits
 * when the test may read it (`deno test -A`), and not otherwise.
 */
import assert from "node:assert/strict";
import type { Limits } from "../../lib/config.ts";
import type { Handler } from "../../lib/http/handler.ts";
import {
  serve,
  type ServeOptions,
  type Server,
} from "../../lib/http/server.ts";
import type { Pem } from "./cert.ts";

/** Each transport's name, and the limits that choose it. */
export const TRANSPORTS: readonly [name: string, limits: Partial<Limits>][] = [
  // 256 descriptors: 64 kept in reserve, 192 for sockets, too few to hold
  // node's queue of 128 as well.
  ["Deno's socket", { maxOpenFiles: 256 }],
  ["node's socket", { maxOpenFiles: 8192 }],
];

/**
 * An HTTPS server on `transport`, once it listens. node's listener binds a
 * turn later, so `port` is 0 until `ready`: this checks which one it got.
 */
export async function startTls(
  transport: string,
  pem: Pem,
  handler: Handler,
  limits: Partial<Limits> = {},
  options: Partial<ServeOptions> = {},
): Promise<Server> {
  const base = TRANSPORTS.find(([name]) => name === transport)![1];
  const server = serve(
    {
      port: 0,
      accessLog: false,
      cert: pem.cert,
      key: pem.key,
      ...options,
      limits: { ...base, ...limits },
    },
    handler,
  );
  const boundAtOnce = server.port !== 0;
  await server.ready;
  assert.equal(boundAtOnce, transport === "Deno's socket", "transport");
  return server;
}
