/**
 * An incremental UTF-8 validator (RFC 3629 §4) as a small state machine.
 * WebSocket text must be UTF-8 (RFC 6455 §8.1), checked as bytes arrive so
 * a bad byte in the first fragment fails the connection (1007) before the
 * rest of the message is read. No I/O here.
 */

// Byte classes: which bytes a state may take next differs only by these.
const ASCII = 0; // 00..7F
const CONT_LOW = 1; // 80..8F
const CONT_MID = 2; // 90..9F
const CONT_HIGH = 3; // A0..BF
const NEVER = 4; // C0 C1 F5..FF: overlong leads and code points past U+10FFFF
const LEAD2 = 5; // C2..DF
const LEAD_E0 = 6; // E0: second byte A0..BF, else overlong
const LEAD3 = 7; // E1..EC EE EF
const LEAD_ED = 8; // ED: second byte 80..9F, else a UTF-16 surrogate
const LEAD_F0 = 9; // F0: second byte 90..BF, else overlong
const LEAD4 = 10; // F1..F3
const LEAD_F4 = 11; // F4: second byte 80..8F, else past U+10FFFF
const CLASSES = 12;

const CLASS_OF = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  CLASS_OF[b] = b < 0x80
    ? ASCII
    : b < 0x90
    ? CONT_LOW
    : b < 0xa0
    ? CONT_MID
    : b < 0xc0
    ? CONT_HIGH
    : b < 0xc2
    ? NEVER
    : b < 0xe0
    ? LEAD2
    : b === 0xe0
    ? LEAD_E0
    : b === 0xed
    ? LEAD_ED
    : b < 0xf0
    ? LEAD3
    : b === 0xf0
    ? LEAD_F0
    : b < 0xf4
    ? LEAD4
    : b === 0xf4
    ? LEAD_F4
    : NEVER;
}

// States. ACCEPT is a character boundary; REJECT is final.
const ACCEPT = 0;
const REJECT = 1;
const NEED1 = 2; // one continuation byte left
const NEED2 = 3;
const NEED3 = 4;
const AFTER_E0 = 5; // A0..BF, then one more
const AFTER_ED = 6; // 80..9F, then one more
const AFTER_F0 = 7; // 90..BF, then two more
const AFTER_F4 = 8; // 80..8F, then two more
const STATES = 9;

/** NEXT[state * CLASSES + class] -> state; anything not set is REJECT. */
const NEXT = new Uint8Array(STATES * CLASSES).fill(REJECT);
function allow(from: number, classes: number[], to: number): void {
  for (const c of classes) NEXT[from * CLASSES + c] = to;
}
const ANY_CONT = [CONT_LOW, CONT_MID, CONT_HIGH];
allow(ACCEPT, [ASCII], ACCEPT);
allow(ACCEPT, [LEAD2], NEED1);
allow(ACCEPT, [LEAD3], NEED2);
allow(ACCEPT, [LEAD4], NEED3);
allow(ACCEPT, [LEAD_E0], AFTER_E0);
allow(ACCEPT, [LEAD_ED], AFTER_ED);
allow(ACCEPT, [LEAD_F0], AFTER_F0);
allow(ACCEPT, [LEAD_F4], AFTER_F4);
allow(NEED1, ANY_CONT, ACCEPT);
allow(NEED2, ANY_CONT, NEED1);
allow(NEED3, ANY_CONT, NEED2);
allow(AFTER_E0, [CONT_HIGH], NEED1);
allow(AFTER_ED, [CONT_LOW, CONT_MID], NEED1);
allow(AFTER_F0, [CONT_MID, CONT_HIGH], NEED2);
allow(AFTER_F4, [CONT_LOW], NEED2);

/** Below this many bytes, scanning ASCII a word at a time does not pay for its view. */
const WORD_SCAN_MIN = 64;

/** Index of the first 4-byte word from `i` holding a byte >= 0x80 (or near `end`). */
function skipAsciiWords(bytes: Uint8Array, i: number, end: number): number {
  while (i < end && ((bytes.byteOffset + i) & 3) !== 0) {
    if (bytes[i] >= 0x80) return i;
    i++;
  }
  const words = (end - i) >>> 2;
  const view = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
  let w = 0;
  while (w < words && (view[w] & 0x80808080) === 0) w++;
  return i + w * 4;
}

/**
 * Checks UTF-8 piece by piece: a message split at any byte across frames
 * or reads gives the same answer as the whole, and `write()` fails at the
 * first byte no valid text can contain.
 */
export class Utf8Validator {
  #state = ACCEPT;

  /** False once a byte was seen that cannot be UTF-8; it stays false until `reset()`. */
  write(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    let state = this.#state;
    if (state === REJECT) return false;
    let i = start;
    while (i < end) {
      if (state === ACCEPT) {
        // Fast path: runs of ASCII need no table.
        // Bytes first; words only once the run looks long (mixed-script
        // text has short ASCII runs, where a word view would not pay).
        const probe = Math.min(end, i + 16);
        while (i < probe && bytes[i] < 0x80) i++;
        if (i === probe && end - i >= WORD_SCAN_MIN) {
          i = skipAsciiWords(bytes, i, end);
        }
        while (i < end && bytes[i] < 0x80) i++;
        if (i === end) break;
      }
      state = NEXT[state * CLASSES + CLASS_OF[bytes[i++]]];
      if (state === REJECT) {
        this.#state = REJECT;
        return false;
      }
    }
    this.#state = state;
    return true;
  }

  /** True when everything written so far is whole, valid UTF-8. */
  get complete(): boolean {
    return this.#state === ACCEPT;
  }

  reset(): void {
    this.#state = ACCEPT;
  }
}

/** True when `bytes` are whole, valid UTF-8 (no surrogates, nothing past U+10FFFF). */
export function isUtf8(bytes: Uint8Array): boolean {
  const v = new Utf8Validator();
  return v.write(bytes) && v.complete;
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Bytes in the UTF-8 sequence that `lead` starts (1 for ASCII). */
function sequenceLength(lead: number): number {
  return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/** How many bytes at the end of valid UTF-8 `bytes[start..]` are a character cut short. */
function cutTail(bytes: Uint8Array, start: number): number {
  for (let k = 1; k <= 3 && bytes.length - k >= start; k++) {
    const b = bytes[bytes.length - k];
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    return k < sequenceLength(b) ? k : 0;
  }
  return 0;
}

/**
 * A text message built piece by piece: each piece is checked, then its
 * whole characters are decoded at once, so a message split across reads or
 * frames is never copied together first. A character cut between pieces
 * waits (at most 3 bytes) for the rest.
 */
export class Utf8Text {
  readonly #validator = new Utf8Validator();
  #text = "";
  /** A character cut between pieces; made when one first is (an idle socket holds none). */
  #carry: Uint8Array | undefined;
  #carryLen = 0;

  /** Adds the next bytes (not kept); false at the first that cannot be UTF-8. */
  write(bytes: Uint8Array): boolean {
    if (!this.#validator.write(bytes)) return false;
    let start = 0;
    if (this.#carryLen > 0) {
      const carry = this.#carry!;
      const need = sequenceLength(carry[0]);
      while (this.#carryLen < need && start < bytes.length) {
        carry[this.#carryLen++] = bytes[start++];
      }
      if (this.#carryLen < need) return true;
      this.#text += decoder.decode(carry.subarray(0, need));
      this.#carryLen = 0;
    }
    const end = bytes.length - cutTail(bytes, start);
    if (end > start) this.#text += decoder.decode(bytes.subarray(start, end));
    if (end < bytes.length) {
      const carry = this.#carry ??= new Uint8Array(4);
      for (let i = end; i < bytes.length; i++) {
        carry[this.#carryLen++] = bytes[i];
      }
    }
    return true;
  }

  /** The whole text, or undefined when it ends inside a character; then starts over. */
  finish(): string | undefined {
    const text = this.#validator.complete ? this.#text : undefined;
    this.reset();
    return text;
  }

  reset(): void {
    this.#validator.reset();
    this.#text = "";
    this.#carryLen = 0;
  }
}
