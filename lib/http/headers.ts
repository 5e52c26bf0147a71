/**
 * Request header fields as parsed: names lower-cased, values as sent.
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
  /** Name, value, name, value...: one list, so a request makes one array, not two. */
  readonly #fields: string[];

  /** `fields`: each name (lower case already) then its value; kept, not copied. */
  constructor(fields: string[] = []) {
    this.#fields = fields;
  }

  /** Fields from a list of names (lower case already) and one of their values. */
  static fromLists(
    names: readonly string[],
    values: readonly string[],
  ): HeaderFields {
    const fields: string[] = new Array(names.length * 2);
    for (let i = 0; i < names.length; i++) {
      fields[2 * i] = names[i];
      fields[2 * i + 1] = values[i];
    }
    return new HeaderFields(fields);
  }

  /** Number of field lines. */
  get size(): number {
    return this.#fields.length >> 1;
  }

  /** The first value of `name` (any case), or undefined. */
  get(name: string): string | undefined {
    const fields = this.#fields;
    let sameLength = false;
    for (let i = 0; i < fields.length; i += 2) {
      const stored = fields[i];
      if (stored === name) return fields[i + 1];
      if (stored.length === name.length) sameLength = true;
    }
    // Callers mostly ask in lower case already: a miss then costs no fold.
    // Folding never changes the length of a name that could match (a
    // token: ASCII), so with no name of this length it is a miss as sent.
    if (!sameLength || isLower(name)) return undefined;
    return this.get(name.toLowerCase());
  }

  /** Every value of `name`, joined by ", " as RFC 9110 §5.3 allows, or undefined. */
  getJoined(name: string): string | undefined {
    if (!isLower(name)) name = name.toLowerCase();
    const fields = this.#fields;
    let out: string | undefined;
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === name) {
        out = out === undefined ? fields[i + 1] : `${out}, ${fields[i + 1]}`;
      }
    }
    return out;
  }

  /** True when a field of this name (any case) was sent. */
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Field lines in arrival order, as [lower-case name, value]. */
  *entries(): IterableIterator<[string, string]> {
    const fields = this.#fields;
    for (let i = 0; i < fields.length; i += 2) {
      yield [fields[i], fields[i + 1]];
    }
  }

  /** Field lines in arrival order, as [lower-case name, value]. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
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
