/**
 * CORS for the API routes and static files, off unless configured (`--cors`).
 * Preflights are answered from the route's own `Allow` (the static handler's
 * for files), so CORS never offers a method the path would refuse.
 */
import { HttpError } from "../../http/errors.ts";
import type { Reply } from "../../http/handler.ts";
import type { AppRequest } from "../app_request.ts";
import { errorWithHeaders, replyHeader, withHeaders } from "../replies.ts";
import type { Middleware } from "../chain.ts";

/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;
// Access-Control-Request-Headers is a list of tokens; anything else is not echoed.
const HEADER_LIST =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

const EXPOSED =
  "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, " +
  // What a script reading files needs: resumed and ranged reads, names of downloads.
  "Content-Range, Accept-Ranges, ETag, Content-Disposition";

/** `fields` added to `reply`, its own Vary kept in front. */
function withFields(
  reply: Reply,
  fields: Readonly<Record<string, string>>,
): Reply {
  const vary = replyHeader(reply, "vary");
  if (vary !== undefined && fields.vary !== undefined) {
    fields = { ...fields, vary: `${vary}, ${fields.vary}` };
  }
  return withHeaders(reply, fields);
}

/**
 * Merged fields of a frozen reply record and one of our frozen field sets
 * (there are a few per configuration): made once, frozen, so the engine
 * encodes them once too.
 */
const merged = new WeakMap<object, Map<object, Reply["headers"]>>();

function withConstantFields(
  reply: Reply,
  fields: Readonly<Record<string, string>>,
): Reply {
  const headers = reply.headers;
  if (
    headers === undefined || Array.isArray(headers) ||
    !Object.isFrozen(headers)
  ) return withFields(reply, fields);
  let byFields = merged.get(headers);
  if (byFields === undefined) merged.set(headers, byFields = new Map());
  let out = byFields.get(fields);
  if (out === undefined) {
    out = Object.freeze(withFields(reply, fields).headers);
    byFields.set(fields, out);
  }
  return { ...reply, headers: out };
}

/**
 * Adds CORS fields to every reply (routes, static files, errors) whose
 * request's Origin is allowed.
 * `origins` is `*` or a comma-separated list of origins
 * (`https://app.example, http://localhost:5173`); a listed origin is echoed
 * back with `Vary: Origin`. A request the fields would not change (no
 * Origin, with `*`) passes through untouched.
 */
export function cors(origins: string): Middleware {
  const list = origins.split(",").map((o) => o.trim().replace(/\/$/, ""))
    .filter((o) => o !== "");
  const any = list.includes("*");
  // The fields of a request that is not a preflight, made once where they can be.
  const refused: Readonly<Record<string, string>> | undefined = any
    ? undefined
    : Object.freeze({ vary: "Origin" });
  const grantAny = Object.freeze({
    "access-control-allow-origin": "*",
    "access-control-expose-headers": EXPOSED,
  });
  const grants = new Map(list.map((origin) => [
    origin,
    Object.freeze({
      vary: "Origin",
      "access-control-allow-origin": origin,
      "access-control-expose-headers": EXPOSED,
    }),
  ]));
  /** The fields for `req`'s Origin; undefined when there are none to add. */
  const fieldsFor = (req: AppRequest) => {
    const origin = req.header("origin");
    if (origin === undefined) return refused;
    if (any) return grantAny;
    return grants.get(origin) ?? refused;
  };
  return {
    after: (req, reply) => {
      const fields = fieldsFor(req);
      if (fields === undefined) return reply;
      const preflight = fields !== refused && req.method === "OPTIONS" &&
        req.header("access-control-request-method") !== undefined;
      return preflight
        ? withFields(reply, preflightFields(req, reply, fields, any))
        : withConstantFields(reply, fields);
    },
    error: (req, err) => {
      const fields = fieldsFor(req);
      throw err instanceof HttpError && fields !== undefined
        ? errorWithHeaders(err, fields)
        : err;
    },
  };
}

/** The grant plus what a preflight answers: the route's methods, the asked headers. */
function preflightFields(
  req: AppRequest,
  reply: Reply,
  granted: Readonly<Record<string, string>>,
  any: boolean,
): Record<string, string> {
  const fields: Record<string, string> = { ...granted };
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
  return fields;
}
