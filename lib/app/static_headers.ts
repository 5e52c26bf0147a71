/**
 * `--header "Name: value"`: fixed header fields on every reply of the static
 * handler (errors, 304s and listings included), as http-server's `-H` and
 * nginx's `add_header ... always`.
 */
import { HttpError } from "../http/errors.ts";
import type { Handler, Reply } from "../http/handler.ts";
import { errorWithHeaders, replyHeader, withHeaders } from "./replies.ts";

/**
 * Wraps `inner` so each reply carries `fields` (lower-case names), replacing
 * a field of the same name. `vary` is added to the reply's own, never
 * replacing it: the reply still depends on what it said it depends on. A
 * name given twice is sent once, its values joined by ", ".
 */
export function withFixedHeaders(
  inner: Handler,
  fields: readonly (readonly [string, string])[],
): Handler {
  if (fields.length === 0) return inner;
  const extra: Record<string, string> = {};
  for (const [name, value] of fields) {
    extra[name] = extra[name] === undefined
      ? value
      : `${extra[name]}, ${value}`;
  }
  const vary = extra.vary;
  const add = (reply: Reply): Reply => {
    if (vary === undefined) return withHeaders(reply, extra);
    const own = replyHeader(reply, "vary");
    return withHeaders(reply, {
      ...extra,
      vary: own === undefined ? vary : `${own}, ${vary}`,
    });
  };
  const failed = (err: unknown): never => {
    throw err instanceof HttpError ? errorWithHeaders(err, extra) : err;
  };
  // Synchronous when the handler is (a file in memory): no promise added.
  return (req) => {
    let reply: Reply | Promise<Reply>;
    try {
      reply = inner(req);
    } catch (err) {
      return failed(err);
    }
    return reply instanceof Promise ? reply.then(add, failed) : add(reply);
  };
}
