/**
 * Request header fields as parsed: names lower-cased, values as sent.
 *
 * The fields stay in the text of the head they came in, one string: a
 * name's or a value's own string is made only when asked for, so the
 * fields nobody reads (most of a browser's) cost no string each.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "@spindle/server";
 *
 * await using server = serve({ port: 0, accessLog: false }, (req) => ({
 *   status: 200,
 *   body: `${req.headers.get("x-name")} ${req.headers.has("X-Name")}`,
 * }));
 * const res = await fetch(`http://127.0.0.1:${server.port}/`, {
 *   headers: { "X-Name": "ada" },
 * });
 * assert.equal(await res.text(), "ada true");
 * ```
 */
export class HeaderFields {
  /** The text the field lines are in (a whole head, or lines made by {@link fromLists}). */
  readonly #text: string;
  /**
   * Where each field line starts in `#text`, in arrival order, then where
   * the line after the last one starts: line n is `[starts[n], starts[n + 1])`.
   */
  readonly #starts: readonly number[];

  /**
   * Fields kept where they are, not copied: `starts[n]` is where the n-th
   * field line starts in `text`, a line being a name (a token, lower case
   * already), ":", optional SP or HTAB, the value (no CR), optional SP or
   * HTAB, CR LF: what `parseHead()` has checked every line to be. One more
   * entry says where the last line ends (just past its LF).
   */
  constructor(text = "", starts: readonly number[] = [0]) {
    this.#text = text;
    this.#starts = starts;
  }

  /**
   * Fields from a list of names (lower case already) and one of their
   * values, as a parser keeps them: no CR, no SP or HTAB at either end
   * (HTTP/2's checks refuse those). Throws TypeError for one that is not.
   */
  static fromLists(
    names: readonly string[],
    values: readonly string[],
  ): HeaderFields {
    const starts: number[] = new Array(names.length + 1);
    let text = "";
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const value = values[i];
      if (name === "" || name.includes(":") || name.includes("\r")) {
        throw new TypeError(`not a field name: ${JSON.stringify(name)}`);
      }
      if (
        value.includes("\r") || isOws(value.charCodeAt(0)) ||
        isOws(value.charCodeAt(value.length - 1))
      ) {
        throw new TypeError(
          `not a trimmed field value: ${JSON.stringify(value)}`,
        );
      }
      starts[i] = text.length;
      text += `${name}:${value}\r\n`;
    }
    starts[names.length] = text.length;
    return new HeaderFields(text, starts);
  }

  /** Number of field lines. */
  get size(): number {
    return this.#starts.length - 1;
  }

  /** The first value of `name` (any case), or undefined. */
  get(name: string): string | undefined {
    let n = this.#indexOf(name, 0);
    if (n === NO_SUCH_LENGTH) return undefined;
    if (n < 0) {
      // Callers mostly ask in lower case already: a miss then costs no fold.
      // Folding never changes the length of a name that could match (a
      // token: ASCII), so with no name of this length it is a miss as sent.
      if (isLower(name)) return undefined;
      name = name.toLowerCase();
      n = this.#indexOf(name, 0);
      if (n < 0) return undefined;
    }
    return this.#value(n, this.#starts[n] + name.length);
  }

  /** Every value of `name`, joined by ", " as RFC 9110 §5.3 allows, or undefined. */
  getJoined(name: string): string | undefined {
    let n = this.#indexOf(name, 0);
    if (n < 0) {
      // As get(): a miss in lower case, or with no name of this length,
      // costs no fold.
      if (n === NO_SUCH_LENGTH || isLower(name)) return undefined;
      name = name.toLowerCase();
      n = this.#indexOf(name, 0);
    }
    const starts = this.#starts;
    let out: string | undefined;
    for (; n >= 0; n = this.#indexOf(name, n + 1)) {
      const value = this.#value(n, starts[n] + name.length);
      out = out === undefined ? value : `${out}, ${value}`;
    }
    return out;
  }

  /**
   * True when a field whose name starts with `prefix` was sent: one pass
   * that rules out a family of fields (`if-`) at once. `prefix` is the start
   * of a name as stored: lower case, token characters only (no ":").
   */
  hasPrefix(prefix: string): boolean {
    const text = this.#text;
    const starts = this.#starts;
    const length = prefix.length;
    next: for (let n = 0; n < starts.length - 1; n++) {
      const start = starts[n];
      for (let k = 0; k < length; k++) {
        if (text.charCodeAt(start + k) !== prefix.charCodeAt(k)) continue next;
      }
      return true;
    }
    return false;
  }

  /** True when a field of this name (any case) was sent. */
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Field lines in arrival order, as [lower-case name, value]. */
  *entries(): IterableIterator<[string, string]> {
    const text = this.#text;
    const starts = this.#starts;
    for (let n = 0; n < starts.length - 1; n++) {
      let colon = starts[n] + 1; // a name is one byte or more
      while (text.charCodeAt(colon) !== COLON) colon++;
      yield [text.slice(starts[n], colon), this.#value(n, colon)];
    }
  }

  /** Field lines in arrival order, as [lower-case name, value]. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /**
   * Index of the first field from the `from`-th on named exactly `name`;
   * a miss is {@link NO_SUCH_LENGTH} when no name the folded `name` could
   * be was looked at.
   */
  #indexOf(name: string, from: number): number {
    const text = this.#text;
    const starts = this.#starts;
    const length = name.length;
    const first = name.charCodeAt(0);
    let miss = NO_SUCH_LENGTH;
    next: for (let n = from; n < starts.length - 1; n++) {
      const start = starts[n];
      // A name ends at the first ":" of its line: one this long has it here.
      if (text.charCodeAt(start + length) !== COLON) continue;
      // Folded, the name asked could still be this one (a colon in a value,
      // as a port's, passes the test above): its first byte less case.
      if (first >= 0x80 || ((text.charCodeAt(start) ^ first) & ~0x20) === 0) {
        miss = NO_SUCH_NAME;
      }
      for (let k = 0; k < length; k++) {
        const c = name.charCodeAt(k);
        // Also a miss for a name with a ":" in it: a field's has none.
        if (c !== text.charCodeAt(start + k) || c === COLON) continue next;
      }
      return n;
    }
    return miss;
  }

  /** The value of the n-th field, whose ":" is at `colon`, without the OWS around it. */
  #value(n: number, colon: number): string {
    const text = this.#text;
    let from = colon + 1;
    let to = this.#starts[n + 1] - 2; // its CR
    while (from < to && isOws(text.charCodeAt(from))) from++;
    while (to > from && isOws(text.charCodeAt(to - 1))) to--;
    return text.slice(from, to);
  }
}

const COLON = 0x3a;
/** A miss where some field's name was as long as the one asked for. */
const NO_SUCH_NAME = -1;
/** A miss where no field's name was as long as the one asked for. */
const NO_SUCH_LENGTH = -2;

/** SP or HTAB: optional white space around a value (RFC 9110 §5.6.3). */
function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * True when `toLowerCase()` would return `name` as it is: no A-Z and
 * nothing beyond ASCII (some of which folds, as the Kelvin sign to "k").
 */
function isLower(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c >= 0x80) return false;
  }
  return true;
}
