/**
 * `--redirect-http PORT`: the plain HTTP listener's whole application. Each
 * request gets 308 Permanent Redirect to the same path on the HTTPS port;
 * 308, not 301, so a POST stays a POST (RFC 9110 §15.4.9).
 */
import { HttpError, STATUS } from "../http/errors.ts";
import type { Handler } from "../http/handler.ts";
import {
  hostAllowed,
  isLoopbackBind,
  splitHost,
} from "./middleware/host_guard.ts";

/** A name or an IP literal: nothing that could bend the Location's authority. */
const HOST_NAME = /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)$/;

export interface HttpsRedirectOptions {
  /** The HTTPS port (a function: it is known once that server is bound). */
  readonly httpsPort: () => number;
  /** The plain listener's own port, for the Host check. */
  readonly port: () => number;
  /** The address both listen on: names a Host-less request's target. */
  readonly hostname: string;
  /** Host values accepted, as `--allowed-hosts`; unset: loopback names when bound to loopback, else any. */
  readonly allowedHosts?: readonly string[];
}

/**
 * Answers every request with `308` and `Location: https://HOST[:PORT]/path?query`,
 * HOST from the request's Host (checked as the app checks it: 421 if not
 * allowed), PORT omitted when it is 443.
 */
export function httpsRedirect(opts: HttpsRedirectOptions): Handler {
  const wildcard = ["0.0.0.0", "::", "[::]"].includes(opts.hostname);
  // As the app's Host guard: on by default only when bound to loopback.
  const guarded = opts.allowedHosts !== undefined ||
    isLoopbackBind(opts.hostname);
  return (req) => {
    if (guarded && !hostAllowed(req.host, opts.allowedHosts, opts.port())) {
      throw new HttpError(STATUS.MisdirectedRequest, "Host not allowed", {
        expose: "This server does not answer to that Host",
      });
    }
    let name = splitHost(req.host).name;
    if (name !== "" && !HOST_NAME.test(name)) {
      throw new HttpError(STATUS.BadRequest, "Malformed Host", {
        expose: "Malformed Host header",
      });
    }
    if (name === "") {
      // HTTP/1.0 without Host: the address we listen on, if it names one.
      if (wildcard) {
        throw new HttpError(STATUS.BadRequest, "No Host to redirect to", {
          expose: "Send a Host header",
        });
      }
      name = opts.hostname.includes(":") && !opts.hostname.startsWith("[")
        ? `[${opts.hostname}]`
        : opts.hostname;
    }
    const port = opts.httpsPort();
    const target = req.path === "*"
      ? "/"
      : req.query === ""
      ? req.path
      : `${req.path}?${req.query}`;
    const location = `https://${name}${
      port === 443 ? "" : `:${port}`
    }${target}`;
    return {
      status: 308,
      headers: { location, "content-type": "text/plain; charset=utf-8" },
      body: `Moved to ${location}\n`,
    };
  };
}
