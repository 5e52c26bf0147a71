/**
 * CORS for the API routes and static files, off unless configured (`--cors`).
 * Preflights are answered from the route's own `Allow` (the static handler's
 * for files), so CORS never offers a method the path would refuse.
 */
import { HttpError } from "../../http/errors.ts";
import { errorWithHeaders, replyHeader, withHeaders } from "../response.ts";
import type { Middleware } from "../router.ts";

/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;
// Access-Control-Request-Headers is a list of tokens; anything else is not echoed.
const HEADER_LIST =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

/**
 * Adds CORS fields to every reply (routes, static files, errors) whose
 * request's Origin is allowed.
 * `origins` is `*` or a comma-separated list of origins
 * (`https://app.example, http://localhost:5173`); a listed origin is echoed
 * back with `Vary: Origin`.
 */
export function cors(origins: string): Middleware {
  const list = origins.split(",").map((o) => o.trim().replace(/\/$/, ""))
    .filter((o) => o !== "");
  const any = list.includes("*");
  return async (req, next) => {
    const origin = req.header("origin");
    const allowed = origin !== undefined && (any || list.includes(origin));
    const fields: Record<string, string> = {};
    if (!any) fields.vary = "Origin";
    if (allowed) {
      fields["access-control-allow-origin"] = any ? "*" : origin;
      fields["access-control-expose-headers"] =
        "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, " +
        // What a script reading files needs: resumed and ranged reads, names of downloads.
        "Content-Range, Accept-Ranges, ETag, Content-Disposition";
    }
    const preflight = req.method === "OPTIONS" && allowed &&
      req.header("access-control-request-method") !== undefined;
    let reply;
    try {
      reply = await next();
    } catch (err) {
      throw err instanceof HttpError ? errorWithHeaders(err, fields) : err;
    }
    if (preflight) {
      const allow = replyHeader(reply, "allow");
      if (allow !== undefined) fields["access-control-allow-methods"] = allow;
      const asked = req.header("access-control-request-headers");
      if (asked !== undefined && HEADER_LIST.test(asked.trim())) {
        fields["access-control-allow-headers"] = asked.trim();
      }
      fields["access-control-max-age"] = String(PREFLIGHT_MAX_AGE_S);
      fields.vary = any
        ? "Access-Control-Request-Method, Access-Control-Request-Headers"
        : "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
    }
    const vary = replyHeader(reply, "vary");
    if (vary !== undefined && fields.vary !== undefined) {
      fields.vary = `${vary}, ${fields.vary}`;
    }
    return withHeaders(reply, fields);
  };
}
