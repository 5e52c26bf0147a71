/**
 * Strict-Transport-Security (RFC 6797) on replies sent over HTTPS, off
 * unless asked (`--hsts`): a browser that saw it uses HTTPS for the host
 * until max-age runs out. Never over plain HTTP, where a man in the middle
 * could set or strip it (§7.2); browsers also ignore it on a connection with
 * certificate errors, so a self-signed certificate does not pin a name.
 */
import { HttpError } from "../../http/errors.ts";
import type { MiddlewareHooks } from "../chain.ts";
import { errorWithHeaders, withHeaders } from "../replies.ts";

/** Adds `Strict-Transport-Security: max-age=maxAgeS` to every HTTPS reply, errors too. */
export function hsts(maxAgeS: number): MiddlewareHooks {
  const fields = Object.freeze({
    "strict-transport-security": `max-age=${maxAgeS}`,
  });
  return {
    after: (req, reply) => req.raw.secure ? withHeaders(reply, fields) : reply,
    error: (req, err) => {
      throw req.raw.secure && err instanceof HttpError
        ? errorWithHeaders(err, fields)
        : err;
    },
  };
}
