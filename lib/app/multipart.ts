/**
 * multipart/form-data (RFC 7578 on RFC 2046 §5.1) as an I/O-free push
 * parser: `feed()` it the body piece by piece, take events from `next()`
 * until it has none, feed again, and call `end()` when the body is over.
 * File data comes out as views of the bytes fed, never gathered, so a
 * part of any size takes memory for one piece and a boundary's worth of
 * carry-over. The boundary is found with Boyer-Moore-Horspool.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MultipartParser } from "./multipart.ts";
 *
 * const body = "--xyz\r\n" +
 *   'Content-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\n' +
 *   "hello\r\n--xyz--\r\n";
 * const parser = new MultipartParser("xyz", {
 *   maxParts: 10,
 *   maxPartHeadBytes: 1024,
 *   maxPartBytes: 1024,
 *   maxBytes: 4096,
 * });
 * parser.feed(new TextEncoder().encode(body));
 * const kinds = [];
 * for (let e = parser.next(); e !== undefined; e = parser.next()) {
 *   kinds.push(e.type === "part" ? e.part.filename : e.type);
 * }
 * parser.end();
 * assert.deepEqual(kinds, ["a.txt", "data", "end", "done"]);
 * ```
 */
import { HttpError, STATUS } from "../http/errors.ts";

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const DASH = 0x2d;

/** Spaces and tabs allowed after a boundary on its line (RFC 2046 transport-padding). */
const MAX_PADDING = 64;

// RFC 2046 §5.1.1 bchars: what a boundary may hold (and a space, not last).
const BCHARS = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
// RFC 9110 §5.6.2 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TOKEN_BYTE = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN_BYTE[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN_BYTE[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN_BYTE[c] = TOKEN_BYTE[c | 0x20] = 1;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/** Limits on one form; each crossing is a 413. */
export interface MultipartLimits {
  /** Parts in the form. */
  readonly maxParts: number;
  /** One part's header section, in bytes. */
  readonly maxPartHeadBytes: number;
  /** One part's content, in bytes. */
  readonly maxPartBytes: number;
  /** The whole body as fed, preamble and epilogue included. */
  readonly maxBytes: number;
}

/** A part's head: what its Content-Disposition and Content-Type say. */
export interface PartHead {
  /** The form field's name. */
  readonly name: string;
  /**
   * The file name as sent (`filename*` preferred, browsers' `%22`, `%0D`,
   * `%0A` decoded), unchecked: run it through `checkFileName()`. Undefined
   * for a plain field; "" for a file input left empty.
   */
  readonly filename: string | undefined;
  /** Content-Type, `text/plain` when absent (RFC 7578 §4.4). */
  readonly contentType: string;
}

/** What the parser found; `data` views stay valid until the next `feed()`. */
export type MultipartEvent =
  | { readonly type: "part"; readonly part: PartHead }
  | { readonly type: "data"; readonly bytes: Uint8Array }
  | { readonly type: "end" }
  | { readonly type: "done" };

const END: MultipartEvent = Object.freeze({ type: "end" });
const NO_BYTES = new Uint8Array(0);
const DONE: MultipartEvent = Object.freeze({ type: "done" });

function malformed(what: string): HttpError {
  const message = `Cannot parse form: ${what}`;
  return new HttpError(STATUS.BadRequest, message, { expose: message });
}

function tooLarge(what: string): HttpError {
  return new HttpError(STATUS.ContentTooLarge, `Form over a limit: ${what}`, {
    expose: `Form is too large: ${what}`,
    close: true, // the rest of the body is not worth reading
  });
}

/** Splits `; a=b; c="d"` into lower-case names and values (RFC 9110 §5.6.6). */
function parseParams(text: string, what: string): Map<string, string> {
  const params = new Map<string, string>();
  let i = 0;
  const n = text.length;
  const skipOws = () => {
    while (i < n && (text[i] === " " || text[i] === "\t")) i++;
  };
  for (;;) {
    skipOws();
    if (i === n) return params;
    if (text[i] !== ";") throw malformed(`${what}: expected ";"`);
    i++;
    skipOws();
    if (i === n) return params; // a trailing ";" is common and harmless
    const eq = text.indexOf("=", i);
    if (eq === -1) throw malformed(`${what}: parameter without a value`);
    const name = text.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) throw malformed(`${what}: bad parameter name`);
    i = eq + 1;
    skipOws();
    let value: string;
    if (text[i] === '"') {
      value = "";
      for (i++;; i++) {
        if (i >= n) throw malformed(`${what}: unterminated quoted string`);
        const c = text[i];
        if (c === '"') break;
        if (c === "\\" && i + 1 < n) value += text[++i]; // quoted-pair
        else value += c;
      }
      i++;
    } else {
      const start = i;
      while (i < n && text[i] !== ";" && text[i] !== " " && text[i] !== "\t") {
        i++;
      }
      value = text.slice(start, i);
      if (!TOKEN.test(value)) throw malformed(`${what}: bad parameter value`);
    }
    if (params.has(name)) throw malformed(`${what}: ${name} given twice`);
    params.set(name, value);
  }
}

/**
 * The boundary of a `multipart/form-data` Content-Type, quoted or not.
 *
 * @throws {HttpError} 415 for another media type; 400 for a missing or bad
 *   boundary (RFC 2046: 1 to 70 characters of a small set, no final space).
 */
export function boundaryOf(contentType: string | undefined): string {
  const semi = contentType?.indexOf(";") ?? -1;
  const type = (semi === -1 ? contentType ?? "" : contentType!.slice(0, semi))
    .trim().toLowerCase();
  if (type !== "multipart/form-data") {
    const message = "Content-Type must be multipart/form-data";
    throw new HttpError(STATUS.UnsupportedMediaType, message, {
      expose: message,
    });
  }
  const boundary = semi === -1
    ? undefined
    : parseParams(contentType!.slice(semi), "Content-Type").get("boundary");
  if (boundary === undefined) throw malformed("no boundary in Content-Type");
  if (!BCHARS.test(boundary)) throw malformed("bad boundary in Content-Type");
  return boundary;
}

const FORM_ESCAPES: Readonly<Record<string, string>> = {
  "%22": '"',
  "%0d": "\r",
  "%0a": "\n",
};

/**
 * Browsers escape `"`, CR and LF in names as %22, %0D, %0A (HTML's form
 * encoding) and nothing else, so only those are decoded: a name with a
 * literal "%41" keeps it.
 */
function unescapeFormName(text: string): string {
  return text.includes("%")
    ? text.replace(/%(?:22|0[dDaA])/g, (m) => FORM_ESCAPES[m.toLowerCase()])
    : text;
}

/** `UTF-8''a%20b.txt` (RFC 8187 ext-value), decoded; 400 when malformed. */
function decodeExtValue(value: string): string {
  const m = /^([A-Za-z0-9!#$%&+\-^_`{}~]+)'[A-Za-z0-9-]*'(.*)$/.exec(value);
  if (m === null) throw malformed("filename* is not charset'lang'value");
  const charset = m[1].toLowerCase();
  if (!/^(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-Fa-f]{2})*$/.test(m[2])) {
    throw malformed("filename* holds a character it must escape");
  }
  const bytes = [];
  for (let i = 0; i < m[2].length; i++) {
    const c = m[2].charCodeAt(i);
    if (c === 0x25) {
      bytes.push(parseInt(m[2].slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c);
  }
  const raw = Uint8Array.from(bytes);
  if (charset === "utf-8") {
    try {
      return utf8.decode(raw);
    } catch {
      throw malformed("filename* is not UTF-8");
    }
  }
  if (charset === "iso-8859-1") return latin1.decode(raw);
  throw malformed(`filename* in charset ${charset}`);
}

/**
 * Reads a part's `Content-Disposition` (RFC 7578 §4.2, RFC 6266 grammar):
 * `form-data; name="field"; filename="a.txt"`. A `filename*` (RFC 8187),
 * which some clients send though RFC 7578 says not to, wins over
 * `filename`.
 *
 * @throws {HttpError} 400 for another disposition type, no name, or bad syntax.
 */
export function parseDisposition(
  value: string,
): { name: string; filename: string | undefined } {
  const semi = value.indexOf(";");
  const type = (semi === -1 ? value : value.slice(0, semi)).trim()
    .toLowerCase();
  if (type !== "form-data") {
    throw malformed("part's Content-Disposition is not form-data");
  }
  const params = semi === -1
    ? new Map<string, string>()
    : parseParams(value.slice(semi), "Content-Disposition");
  const name = params.get("name");
  if (name === undefined) throw malformed("part without a name");
  const ext = params.get("filename*");
  const plain = params.get("filename");
  const filename = ext !== undefined
    ? decodeExtValue(ext)
    : plain === undefined
    ? undefined
    : unescapeFormName(plain);
  return { name: unescapeFormName(name), filename };
}

/** Parses a part's header lines (`head` ends with CRLF); 400 for bad syntax. */
function parsePartHead(head: Uint8Array): PartHead {
  let text: string;
  try {
    text = utf8.decode(head);
  } catch {
    throw malformed("part header is not UTF-8");
  }
  let disposition: string | undefined;
  let contentType: string | undefined;
  const lines = text.split("\r\n");
  lines.pop(); // "" after the final CRLF
  for (const line of lines) {
    const colon = line.indexOf(":");
    // No obs-fold, no space before the colon, a token name (as the request head).
    if (colon <= 0) throw malformed("part header line without a name");
    for (let i = 0; i < colon; i++) {
      if (TOKEN_BYTE[line.charCodeAt(i)] !== 1) {
        throw malformed("bad part header name");
      }
    }
    const value = line.slice(colon + 1).trim();
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
      throw malformed("control character in a part header");
    }
    switch (line.slice(0, colon).toLowerCase()) {
      case "content-disposition":
        if (disposition !== undefined) {
          throw malformed("two Content-Disposition fields in a part");
        }
        disposition = value;
        break;
      case "content-type":
        if (contentType !== undefined) {
          throw malformed("two Content-Type fields in a part");
        }
        contentType = value;
        break;
      case "content-transfer-encoding": {
        // Deprecated (RFC 7578 §4.7); an encoding we would store undecoded is refused.
        const cte = value.toLowerCase();
        if (cte !== "binary" && cte !== "8bit" && cte !== "7bit") {
          throw malformed(
            `Content-Transfer-Encoding ${value} is not supported`,
          );
        }
        break;
      }
    }
  }
  if (disposition === undefined) {
    throw malformed("part without Content-Disposition");
  }
  const { name, filename } = parseDisposition(disposition);
  return {
    name,
    filename,
    contentType: contentType === undefined || contentType === ""
      ? "text/plain"
      : contentType,
  };
}

const enum State {
  /** Before the first boundary: skipped. */
  Preamble,
  /** A part's header section. */
  Head,
  /** A part's content. */
  Data,
  /** After the close delimiter: skipped. */
  Epilogue,
}

/** See the module comment; one parser per form. */
export class MultipartParser {
  readonly #limits: MultipartLimits;
  /** CR LF "--" boundary: what ends a part's content. */
  readonly #needle: Uint8Array;
  /** Horspool's shift for each byte value. */
  readonly #shift: Uint8Array;
  #state = State.Preamble;
  /** The bytes being parsed: the piece fed, after any carried-over bytes. */
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  /** Bytes held back at the end of a piece: maybe the start of a boundary. */
  #carry: Uint8Array;
  /** The part head being gathered, after a virtual CR LF. */
  readonly #head: Uint8Array;
  #headLen = 0;
  /** Events found and not yet taken: at most data, end and the next part. */
  readonly #events: MultipartEvent[] = [];
  #parts = 0;
  #partBytes = 0;
  #totalBytes = 0;

  constructor(boundary: string, limits: MultipartLimits) {
    if (!BCHARS.test(boundary)) throw new TypeError("Bad multipart boundary");
    this.#limits = limits;
    const needle = this.#needle = encoder.encode(`\r\n--${boundary}`);
    const n = needle.length; // at most 74: fits a byte
    const shift = this.#shift = new Uint8Array(256).fill(n);
    for (let k = 0; k < n - 1; k++) shift[needle[k]] = n - 1 - k;
    // The body starts as if after a CR LF, so a first boundary at byte 0
    // is found like any other (RFC 2046: the preamble may be empty).
    this.#carry = Uint8Array.of(CR, LF);
    this.#head = new Uint8Array(limits.maxPartHeadBytes + 6);
  }

  /** True once the close delimiter was seen. */
  get done(): boolean {
    return this.#state === State.Epilogue;
  }

  /**
   * Hands over the next piece of the body. Take every event from
   * {@link next} first: views from the previous piece end here.
   *
   * @throws {HttpError} 413 past `maxBytes`.
   */
  feed(piece: Uint8Array): void {
    this.#totalBytes += piece.length;
    if (this.#totalBytes > this.#limits.maxBytes) {
      throw tooLarge(`more than ${this.#limits.maxBytes} bytes`);
    }
    if (this.#state === State.Epilogue) return;
    if (this.#pos !== this.#buf.length || this.#events.length !== 0) {
      throw new TypeError("feed() before next() took every event");
    }
    const carry = this.#carry;
    if (carry.length === 0) {
      this.#buf = piece;
    } else {
      // Rare: the last piece ended inside what may be a boundary.
      const joined = new Uint8Array(carry.length + piece.length);
      joined.set(carry);
      joined.set(piece, carry.length);
      this.#buf = joined;
      this.#carry = NO_BYTES;
    }
    this.#pos = 0;
  }

  /**
   * The next event, or undefined when the parser needs more input (or has
   * said `done`).
   *
   * @throws {HttpError} 400 for a malformed form, 413 past a limit.
   */
  next(): MultipartEvent | undefined {
    for (;;) {
      if (this.#events.length !== 0) return this.#events.shift();
      if (this.#pos === this.#buf.length || this.#state === State.Epilogue) {
        return undefined;
      }
      if (this.#state === State.Head) this.#readHead();
      else this.#scan();
    }
  }

  /**
   * Says the body is over.
   *
   * @throws {HttpError} 400 when the close delimiter never came (a body cut
   *   short, or not this boundary's form at all).
   */
  end(): void {
    if (this.#state !== State.Epilogue) {
      throw malformed(
        this.#parts === 0
          ? "no boundary found in the body"
          : "body ended before the final boundary",
      );
    }
  }

  /**
   * Looks for the next boundary line from #pos: queues the content before
   * it, the end of the part and moves on; or, with no boundary in sight,
   * queues the content and keeps back a tail that may begin one.
   */
  #scan(): void {
    const buf = this.#buf;
    const end = buf.length;
    const start = this.#pos;
    const n = this.#needle.length;
    for (let from = start;;) {
      const at = this.#find(buf, from, end);
      if (at === -1) {
        this.#hold(
          buf,
          start,
          this.#partialAt(buf, Math.max(start, end - n + 1), end),
        );
        return;
      }
      // The rest of the boundary line: "--" (the last), or padding, CR LF.
      let j = at + n;
      if (j + 1 >= end) return this.#hold(buf, start, at);
      const last = buf[j] === DASH && buf[j + 1] === DASH;
      if (!last) {
        while (j < end && (buf[j] === SP || buf[j] === HTAB)) j++;
        if (j - (at + n) > MAX_PADDING) {
          throw malformed("boundary line padded with too many spaces");
        }
        if (j + 1 >= end) return this.#hold(buf, start, at);
        if (buf[j] !== CR || buf[j + 1] !== LF) {
          from = at + 1; // "--boundaryX": not a boundary line, just content
          continue;
        }
      }
      this.#content(buf, start, at);
      this.#pos = j + 2;
      if (this.#state === State.Data) this.#events.push(END);
      if (last) {
        this.#state = State.Epilogue;
        this.#events.push(DONE);
      } else {
        if (++this.#parts > this.#limits.maxParts) {
          throw tooLarge(`more than ${this.#limits.maxParts} parts`);
        }
        this.#state = State.Head;
        this.#head[0] = CR;
        this.#head[1] = LF;
        this.#headLen = 2;
      }
      return;
    }
  }

  /** Queues buf[from, to) as content, if in a part; the rest is carried over. */
  #hold(buf: Uint8Array, from: number, to: number): void {
    this.#content(buf, from, to);
    this.#carry = to === buf.length ? NO_BYTES : buf.slice(to);
    this.#pos = buf.length;
  }

  /** Queues buf[from, to) as a data event when in a part's content. */
  #content(buf: Uint8Array, from: number, to: number): void {
    if (this.#state !== State.Data || to === from) return;
    this.#partBytes += to - from;
    if (this.#partBytes > this.#limits.maxPartBytes) {
      throw tooLarge(`a part of more than ${this.#limits.maxPartBytes} bytes`);
    }
    this.#events.push({ type: "data", bytes: buf.subarray(from, to) });
  }

  /** Gathers a part's header section; queues the part once its blank line came. */
  #readHead(): void {
    const buf = this.#buf;
    const head = this.#head;
    const cap = head.length;
    const before = this.#headLen;
    const n = Math.min(buf.length - this.#pos, cap - before);
    head.set(buf.subarray(this.#pos, this.#pos + n), before);
    const len = this.#headLen = before + n;
    // CR LF CR LF, searched from where the last piece left off.
    for (let i = Math.max(before - 3, 0); i + 3 < len; i++) {
      if (
        head[i + 3] === LF && head[i + 2] === CR && head[i + 1] === LF &&
        head[i] === CR
      ) {
        const lines = head.subarray(2, i + 2);
        for (let k = 0; k < lines.length; k++) {
          const c = lines[k];
          // Line ends are CR LF: a bare CR or LF is refused, as in the request head.
          if (
            (c === CR && lines[k + 1] !== LF) ||
            (c === LF && lines[k - 1] !== CR)
          ) throw malformed("bare CR or LF in a part header");
        }
        this.#pos += i + 4 - before;
        this.#state = State.Data;
        this.#partBytes = 0;
        this.#events.push({ type: "part", part: parsePartHead(lines) });
        return;
      }
    }
    this.#pos += n;
    if (len === cap) {
      throw tooLarge(
        `a part header of more than ${this.#limits.maxPartHeadBytes} bytes`,
      );
    }
  }

  /** Index of the boundary in buf[from, end), or -1 (Boyer-Moore-Horspool). */
  #find(buf: Uint8Array, from: number, end: number): number {
    const needle = this.#needle;
    const shift = this.#shift;
    const n = needle.length;
    const last = needle[n - 1];
    for (let i = from + n - 1; i < end;) {
      const c = buf[i];
      if (c === last) {
        const base = i - n + 1;
        let k = n - 2;
        while (k >= 0 && buf[base + k] === needle[k]) k--;
        if (k < 0) return base;
      }
      i += shift[c];
    }
    return -1;
  }

  /** First index in [from, end) from which buf's rest starts the boundary; else end. */
  #partialAt(buf: Uint8Array, from: number, end: number): number {
    const needle = this.#needle;
    for (let i = from; i < end; i++) {
      if (buf[i] !== CR) continue;
      let k = 1;
      while (i + k < end && buf[i + k] === needle[k]) k++;
      if (i + k === end) return i;
    }
    return end;
  }
}
