/**
 * HPACK (RFC 7541): header lists to header blocks and back. No I/O. The
 * decoder reads request blocks and stops keeping fields once a list grows
 * past its limit, yet still walks the whole block so its table stays in
 * step with the client's; the encoder writes reply blocks with a policy of
 * what it indexes. Names and values are strings of octets (Latin-1).
 */
import { latin1 } from "../parser.ts";
import type { OutBuffer } from "../response.ts";
import {
  decodeHuffman,
  encodeHuffman,
  HuffmanError,
  huffmanLength,
  maxDecodedLength,
} from "./huffman.ts";

/** A header block RFC 7541 does not allow; HTTP/2 answers COMPRESSION_ERROR. */
export class HpackError extends Error {
  override name = "HpackError";
}

/** The static table (RFC 7541 Appendix A); index 1 is `STATIC_TABLE[0]`. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

const STATIC_COUNT = STATIC_TABLE.length;

/** Name -> its first static index; name -> value -> static index. */
const STATIC_NAMES = new Map<string, number>();
const STATIC_PAIRS = new Map<string, Map<string, number>>();
for (let i = STATIC_COUNT - 1; i >= 0; i--) {
  const [name, value] = STATIC_TABLE[i];
  STATIC_NAMES.set(name, i + 1);
  if (value !== "") {
    let values = STATIC_PAIRS.get(name);
    if (values === undefined) STATIC_PAIRS.set(name, values = new Map());
    values.set(value, i + 1);
  }
}

/** What one entry costs in a table (§4.1): its octets and 32 more. */
export const ENTRY_OVERHEAD = 32;

/** Largest integer we read: anything bigger is past every limit we have. */
const MAX_INTEGER = 2 ** 31 - 1;

/**
 * The dynamic table (§2.3.2) as a ring, so adding and evicting cost the
 * same whatever its length. Index 0 is the newest entry.
 */
export class DynamicTable {
  #names: string[] = [];
  #values: string[] = [];
  #mask = -1;
  #first = 0;
  #count = 0;
  #bytes = 0;
  #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
    this.#resize(MIN_SLOTS);
  }

  /** Entries held. */
  get length(): number {
    return this.#count;
  }

  /** Octets held, counted as §4.1 does. */
  get bytes(): number {
    return this.#bytes;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  name(i: number): string {
    return this.#names[(this.#first + this.#count - 1 - i) & this.#mask];
  }

  value(i: number): string {
    return this.#values[(this.#first + this.#count - 1 - i) & this.#mask];
  }

  /** Adds an entry, evicting old ones (§4.4); one larger than the table empties it. */
  add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.#evictTo(this.#maxBytes - size);
    if (size > this.#maxBytes) return;
    if (this.#count > this.#mask) this.#resize((this.#mask + 1) * 2);
    const slot = (this.#first + this.#count) & this.#mask;
    this.#names[slot] = name;
    this.#values[slot] = value;
    this.#count++;
    this.#bytes += size;
  }

  /** A new maximum size (§4.3): evicts until the entries fit. */
  setMaxBytes(maxBytes: number): void {
    this.#maxBytes = maxBytes;
    this.#evictTo(maxBytes);
  }

  /** Called with each entry as it is evicted. */
  protected evicted(_name: string, _value: string): void {}

  #evictTo(bytes: number): void {
    while (this.#bytes > bytes && this.#count > 0) {
      const slot = this.#first;
      const name = this.#names[slot];
      const value = this.#values[slot];
      this.#bytes -= name.length + value.length + ENTRY_OVERHEAD;
      this.#names[slot] = this.#values[slot] = ""; // let the strings go
      this.#first = (slot + 1) & this.#mask;
      this.#count--;
      this.evicted(name, value);
    }
  }

  /**
   * Moves the ring into `size` slots (a power of two). It starts small and
   * doubles when full: an idle connection's tables cost little, and the
   * byte limit caps the entries (32 octets at least each).
   */
  #resize(size: number): void {
    const names: string[] = new Array(size).fill("");
    const values: string[] = new Array(size).fill("");
    for (let i = 0; i < this.#count; i++) {
      names[i] = this.#names[(this.#first + i) & this.#mask];
      values[i] = this.#values[(this.#first + i) & this.#mask];
    }
    this.#names = names;
    this.#values = values;
    this.#mask = size - 1;
    this.#first = 0;
  }
}

/** Slots a dynamic table starts with. */
const MIN_SLOTS = 8;

/** Octets of Huffman strings decode into; grows for a longer string. */
let scratch = new Uint8Array(256);

/** Reads HPACK's primitive types (§5) from `buf[pos..end)`. */
export class HpackReader {
  constructor(
    public buf: Uint8Array,
    public pos: number,
    public end: number,
  ) {}

  /** An integer with an N-bit prefix (§5.1). Throws past 2^31 - 1. */
  integer(prefixBits: number): number {
    const { buf, end } = this;
    if (this.pos >= end) {
      throw new HpackError("Header block ends inside an integer");
    }
    const max = (1 << prefixBits) - 1;
    let value = buf[this.pos++] & max;
    if (value < max) return value;
    for (let shift = 0;; shift += 7) {
      // Five continuation bytes carry 35 bits: more is padding with zeros.
      if (shift > 28) throw new HpackError("Integer too large");
      if (this.pos >= end) {
        throw new HpackError("Header block ends inside an integer");
      }
      const b = buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError("Integer too large");
      if ((b & 0x80) === 0) return value;
    }
  }

  /** A string literal (§5.2) as Latin-1 text, Huffman-decoded if flagged. */
  string(): string {
    if (this.pos >= this.end) {
      throw new HpackError("Header block ends before a string");
    }
    const huffman = (this.buf[this.pos] & 0x80) !== 0;
    const length = this.integer(7);
    const start = this.pos;
    if (length > this.end - start) {
      throw new HpackError("String runs past the header block");
    }
    this.pos = start + length;
    if (!huffman) return latin1(this.buf, start, start + length);
    const room = maxDecodedLength(length);
    if (scratch.length < room) {
      scratch = new Uint8Array(Math.max(room, scratch.length * 2));
    }
    try {
      return latin1(
        scratch,
        0,
        decodeHuffman(this.buf, start, start + length, scratch),
      );
    } catch (err) {
      if (err instanceof HuffmanError) throw new HpackError(err.message);
      throw err;
    }
  }
}

/** A decoded header list: fields in order and their size by §4.1's count. */
export interface HeaderList {
  readonly names: string[];
  readonly values: string[];
  /** Sum of name + value + 32 over every field in the block, kept or not. */
  readonly bytes: number;
  /** The list passed `maxListBytes`: fields from the one that crossed it on are not kept. */
  readonly overflow: boolean;
}

/** Reads request header blocks, keeping the dynamic table in step with the client's. */
export class HpackDecoder {
  readonly #table: DynamicTable;
  /** SETTINGS_HEADER_TABLE_SIZE in effect: no size update may go past it. */
  #limit: number;
  /** The limit shrank below the table's size: the next block must say so first. */
  #mustUpdate = false;

  constructor(limitBytes = 4096) {
    this.#limit = limitBytes;
    this.#table = new DynamicTable(limitBytes);
  }

  /** The dynamic table; only tests read it (RFC 7541 Appendix C states). */
  get table(): DynamicTable {
    return this.#table;
  }

  /**
   * A new SETTINGS_HEADER_TABLE_SIZE took effect (the client acknowledged
   * it). Below the table's current maximum, the client must send a size
   * update at the start of its next block (§4.2).
   */
  setLimit(limitBytes: number): void {
    this.#limit = limitBytes;
    if (this.#table.maxBytes > limitBytes) this.#mustUpdate = true;
  }

  /**
   * Decodes one whole header block `block[start..end)`. Fields past
   * `maxListBytes` are decoded but not kept (an HPACK bomb costs its own
   * length in work, never its decoded size in memory). Throws
   * {@link HpackError} on anything §6 does not allow; the caller must then
   * end the connection, as the table can no longer be trusted.
   */
  decode(
    block: Uint8Array,
    start: number,
    end: number,
    maxListBytes: number,
  ): HeaderList {
    const r = new HpackReader(block, start, end);
    const table = this.#table;
    const names: string[] = [];
    const values: string[] = [];
    let bytes = 0;
    let overflow = false;
    let fieldSeen = false;
    while (r.pos < end) {
      const b = block[r.pos];
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed field (§6.1).
        const index = r.integer(7);
        if (index === 0) throw new HpackError("Index 0 in an indexed field");
        name = this.#name(index);
        value = index <= STATIC_COUNT
          ? STATIC_TABLE[index - 1][1]
          : table.value(index - STATIC_COUNT - 1);
      } else if (b & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        const index = r.integer(6);
        name = index === 0 ? r.string() : this.#name(index);
        value = r.string();
        table.add(name, value);
      } else if (b & 0x20) {
        // Dynamic table size update (§6.3): only before the first field (§4.2).
        if (fieldSeen) throw new HpackError("Table size update after a field");
        const size = r.integer(5);
        if (size > this.#limit) {
          throw new HpackError(
            "Table size update past SETTINGS_HEADER_TABLE_SIZE",
          );
        }
        table.setMaxBytes(size);
        this.#mustUpdate = false;
        continue;
      } else {
        // Literal without indexing or never indexed (§6.2.2, §6.2.3).
        const index = r.integer(4);
        name = index === 0 ? r.string() : this.#name(index);
        value = r.string();
      }
      if (this.#mustUpdate) throw new HpackError("Table size update missing");
      fieldSeen = true;
      bytes += name.length + value.length + ENTRY_OVERHEAD;
      if (overflow) continue;
      if (bytes > maxListBytes) {
        overflow = true;
        continue;
      }
      names.push(name);
      values.push(value);
    }
    if (this.#mustUpdate && end > start) {
      throw new HpackError("Table size update missing");
    }
    return { names, values, bytes, overflow };
  }

  #name(index: number): string {
    if (index <= STATIC_COUNT) return STATIC_TABLE[index - 1][0];
    const i = index - STATIC_COUNT - 1;
    if (i >= this.#table.length) {
      throw new HpackError(`No table entry ${index}`);
    }
    return this.#table.name(i);
  }
}

/** How the encoder may treat a field (RFC 7541 §6.2). */
export const INDEX = 0;
/** Sent as a literal, not added to the table: values that change each time. */
export const NO_INDEX = 1;
/** Never indexed here nor by any intermediary: secrets (§7.1.3). */
export const NEVER_INDEX = 2;
export type IndexPolicy = typeof INDEX | typeof NO_INDEX | typeof NEVER_INDEX;

/** The encoder's table, with maps from a field to the sequence number of its entry. */
class EncoderTable extends DynamicTable {
  /** Entries ever added; the newest has this sequence number. */
  added = 0;
  readonly pairs = new Map<string, Map<string, number>>();
  readonly names = new Map<string, number>();

  put(name: string, value: string): void {
    this.add(name, value);
    if (name.length + value.length + ENTRY_OVERHEAD > this.maxBytes) return;
    const seq = ++this.added;
    let values = this.pairs.get(name);
    if (values === undefined) this.pairs.set(name, values = new Map());
    values.set(value, seq);
    this.names.set(name, seq);
  }

  /** The HPACK index of entry `seq`, or 0 if it is gone. */
  index(seq: number): number {
    const i = this.added - seq;
    return i < this.length ? STATIC_COUNT + 1 + i : 0;
  }

  protected override evicted(name: string, value: string): void {
    // The oldest entry goes first, so its sequence number is known.
    const seq = this.added - this.length;
    const values = this.pairs.get(name);
    if (values?.get(value) === seq) {
      values.delete(value);
      if (values.size === 0) this.pairs.delete(name);
    }
    if (this.names.get(name) === seq) this.names.delete(name);
  }
}

/**
 * Writes reply header blocks. The table never grows past the smaller of
 * our own cap and the client's SETTINGS_HEADER_TABLE_SIZE; every change of
 * its size is announced at the start of the next block (§4.2).
 */
export class HpackEncoder {
  readonly #table: EncoderTable;
  readonly #capBytes: number;
  readonly #huffman: boolean;
  /** Smallest size the table had since the last block, or -1 if unchanged. */
  #smallest = -1;

  /**
   * `capBytes`: most table our side keeps, whatever the client allows.
   * `startBytes`: the size both sides assume before any update (4096 in
   * HTTP/2, RFC 9113 §6.5.2). `huffman: false` sends every string raw.
   */
  constructor(
    capBytes = 4096,
    options: { readonly startBytes?: number; readonly huffman?: boolean } = {},
  ) {
    const start = options.startBytes ?? 4096;
    this.#capBytes = capBytes;
    this.#huffman = options.huffman ?? true;
    this.#table = new EncoderTable(start);
    this.setPeerLimit(start);
  }

  /** The dynamic table; only tests read it (RFC 7541 Appendix C states). */
  get table(): DynamicTable {
    return this.#table;
  }

  /** The client's SETTINGS_HEADER_TABLE_SIZE arrived. */
  setPeerLimit(limitBytes: number): void {
    const size = Math.min(limitBytes, this.#capBytes);
    if (size === this.#table.maxBytes && this.#smallest === -1) return;
    this.#smallest = this.#smallest === -1
      ? size
      : Math.min(this.#smallest, size);
    this.#table.setMaxBytes(size);
  }

  /** Starts a header block: the size updates owed come first. */
  beginBlock(out: OutBuffer): void {
    if (this.#smallest === -1) return;
    const size = this.#table.maxBytes;
    if (this.#smallest < size) writeInteger(out, 0x20, 5, this.#smallest);
    writeInteger(out, 0x20, 5, size);
    this.#smallest = -1;
  }

  /**
   * Writes one field. `name` must be lower case and `value` octets (ASCII,
   * or UTF-8 spelled as Latin-1). With {@link INDEX}, a pair already in a
   * table costs one byte, and a new one small enough goes in.
   */
  writeField(
    out: OutBuffer,
    name: string,
    value: string,
    policy: IndexPolicy,
  ): void {
    const table = this.#table;
    let nameIndex = STATIC_NAMES.get(name) ?? 0;
    if (policy === INDEX) {
      const index = STATIC_PAIRS.get(name)?.get(value) ??
        table.index(table.pairs.get(name)?.get(value) ?? -1);
      if (index !== 0) {
        writeInteger(out, 0x80, 7, index);
        return;
      }
      // Half the table at most, so one big value cannot flush the rest.
      if (
        (name.length + value.length + ENTRY_OVERHEAD) * 2 <= table.maxBytes
      ) {
        if (nameIndex === 0) {
          nameIndex = table.index(table.names.get(name) ?? -1);
        }
        writeInteger(out, 0x40, 6, nameIndex);
        if (nameIndex === 0) writeString(out, name, this.#huffman);
        writeString(out, value, this.#huffman);
        table.put(name, value);
        return;
      }
    }
    if (nameIndex === 0) nameIndex = table.index(table.names.get(name) ?? -1);
    writeInteger(out, policy === NEVER_INDEX ? 0x10 : 0x00, 4, nameIndex);
    if (nameIndex === 0) writeString(out, name, this.#huffman);
    writeString(out, value, this.#huffman);
  }
}

/** Writes an integer with an N-bit prefix (§5.1); `flags` fills the bits above it. */
export function writeInteger(
  out: OutBuffer,
  flags: number,
  prefixBits: number,
  value: number,
): void {
  const buf = out.reserve(6);
  let at = out.len;
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    buf[at++] = flags | value;
  } else {
    buf[at++] = flags | max;
    value -= max;
    while (value >= 0x80) {
      buf[at++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 0x80);
    }
    buf[at++] = value;
  }
  out.len = at;
}

/** Writes a string literal (§5.2), Huffman-coded unless that is longer or `huffman` is false. */
export function writeString(out: OutBuffer, s: string, huffman = true): void {
  const coded = huffman ? huffmanLength(s) : Infinity;
  if (coded <= s.length) {
    writeInteger(out, 0x80, 7, coded);
    const buf = out.reserve(coded);
    out.len = encodeHuffman(s, buf, out.len);
    return;
  }
  writeInteger(out, 0x00, 7, s.length);
  const buf = out.reserve(s.length);
  let at = out.len;
  for (let i = 0; i < s.length; i++) buf[at++] = s.charCodeAt(i);
  out.len = at;
}
