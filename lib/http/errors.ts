/**
 * Statuses, reason phrases and the one error type. Code anywhere throws an
 * {@link HttpError}; `renderError()` is the one place it becomes a reply body.
 */

/**
 * Every status the server or the default app produces on its own.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STATUS } from "@spindle/server";
 *
 * assert.equal(STATUS.NotFound, 404);
 * assert.equal(STATUS.TooManyRequests, 429);
 * ```
 */
export const STATUS = {
  Continue: 100,
  OK: 200,
  Created: 201,
  NoContent: 204,
  PartialContent: 206,
  MovedPermanently: 301,
  Found: 302,
  SeeOther: 303,
  NotModified: 304,
  TemporaryRedirect: 307,
  PermanentRedirect: 308,
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  RequestTimeout: 408,
  Conflict: 409,
  LengthRequired: 411,
  PreconditionFailed: 412,
  ContentTooLarge: 413,
  URITooLong: 414,
  UnsupportedMediaType: 415,
  RangeNotSatisfiable: 416,
  ExpectationFailed: 417,
  MisdirectedRequest: 421,
  UnprocessableContent: 422,
  UpgradeRequired: 426,
  TooManyRequests: 429,
  RequestHeaderFieldsTooLarge: 431,
  InternalServerError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
  HTTPVersionNotSupported: 505,
  InsufficientStorage: 507,
} as const;

/**
 * Any status in {@link STATUS}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STATUS, type Status } from "@spindle/server";
 *
 * const ok: Status = STATUS.OK;
 * assert.equal(ok, 200);
 * ```
 */
export type Status = typeof STATUS[keyof typeof STATUS];
/**
 * A status the server may answer with when something went wrong.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ErrorStatus, HttpError, STATUS } from "@spindle/server";
 *
 * const status: ErrorStatus = STATUS.NotFound;
 * assert.equal(new HttpError(status, "no such page").status, 404);
 * ```
 */
export type ErrorStatus = Extract<
  Status,
  | 400
  | 401
  | 403
  | 404
  | 405
  | 406
  | 408
  | 409
  | 411
  | 412
  | 413
  | 414
  | 415
  | 416
  | 417
  | 421
  | 422
  | 426
  | 429
  | 431
  | 500
  | 501
  | 503
  | 505
  | 507
>;

/** Reason phrases (RFC 9110 §15); unknown codes fall back to a class name. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  507: "Insufficient Storage",
};

/** The reason phrase for any status code. */
export function reasonPhrase(status: number): string {
  return STATUS_TEXT[status] ??
    [
      "Informational",
      "Success",
      "Redirection",
      "Client Error",
      "Server Error",
    ][Math.floor(status / 100) - 1] ?? "Unknown";
}

/**
 * Options of an {@link HttpError}: what the client sees besides the status.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpError, type HttpErrorOptions, STATUS } from "@spindle/server";
 *
 * const options: HttpErrorOptions = {
 *   expose: "Slow down",
 *   headers: { "retry-after": "10" },
 * };
 * const err = new HttpError(STATUS.TooManyRequests, "client over budget", options);
 * assert.equal(err.headers?.["retry-after"], "10");
 * ```
 */
export interface HttpErrorOptions extends ErrorOptions {
  /** Text safe to show the client; otherwise the reason phrase is shown. */
  expose?: string;
  /** Extra reply headers, such as `Allow` or `Retry-After`. */
  headers?: Readonly<Record<string, string>>;
  /** Close the connection after the reply (set for every head error). */
  close?: boolean;
}

/**
 * A failure that maps to one HTTP status. `message` is for the log.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpError, serve, STATUS } from "@spindle/server";
 *
 * await using server = serve({ port: 0, accessLog: false }, () => {
 *   throw new HttpError(STATUS.NotFound, "no user 7 in the table", {
 *     expose: "No such user", // the log gets the message, the client this
 *   });
 * });
 * const res = await fetch(`http://127.0.0.1:${server.port}/users/7`);
 * assert.equal(res.status, 404);
 * assert.match(await res.text(), /No such user/);
 * ```
 */
export class HttpError extends Error {
  /** Always "HttpError", so a log line says what was thrown. */
  override name = "HttpError";
  /** The status the client gets. */
  readonly status: ErrorStatus;
  /** Text safe to show the client; undefined: the reason phrase is shown. */
  readonly expose: string | undefined;
  /** Extra reply headers, such as `Allow` or `Retry-After`. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** True: the connection closes after the reply. */
  readonly close: boolean;

  /** An error answered with `status`; `message` goes to the log, never to the client. */
  constructor(status: ErrorStatus, message: string, opts?: HttpErrorOptions) {
    super(message, opts);
    this.status = status;
    this.expose = opts?.expose;
    this.headers = opts?.headers;
    this.close = opts?.close ?? false;
  }
}

/** A malformed request: 400 with the message shown, then close. */
export function badRequest(what: string): HttpError {
  const message = `Cannot parse request: ${what}`;
  return new HttpError(STATUS.BadRequest, message, {
    expose: message,
    close: true,
  });
}

/** An error reply's body and its media type. */
export interface ErrorBody {
  readonly contentType: string;
  readonly body: string;
}

/**
 * Renders an error for the client: JSON for API clients, HTML for browsers,
 * plain text otherwise. `accept` is the request's Accept header, if any.
 */
export function renderError(
  status: number,
  message: string,
  accept: string | undefined,
): ErrorBody {
  const reason = reasonPhrase(status);
  if (accept !== undefined) {
    const html = accept.indexOf("text/html");
    const json = accept.indexOf("json");
    if (json !== -1 && (html === -1 || json < html)) {
      return {
        contentType: "application/json",
        body: JSON.stringify({ error: message, status }) + "\n",
      };
    }
    if (html !== -1) {
      const text = escapeHtml(message);
      return {
        contentType: "text/html; charset=utf-8",
        body:
          `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${status} ${reason}</title></head>\n<body><h1>${status} ${reason}</h1>\n<p>${text}</p></body></html>\n`,
      };
    }
  }
  return { contentType: "text/plain; charset=utf-8", body: message + "\n" };
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for use in HTML content or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}
