/**
 * The bytes of a `.zip` written front to back, for streaming: each entry is
 * stored (not compressed) with its CRC-32 and sizes in a data descriptor
 * after its contents (general purpose flag bit 3), so nothing is known
 * before the contents go out, and Zip64 records where a size, an offset or
 * the entry count outgrows 32 or 16 bits (APPNOTE.TXT 6.3.10, §4.3-4.5).
 * No I/O: the caller feeds it what it sends and sends what it returns.
 */

const LOCAL_HEADER = 0x04034b50;
const DATA_DESCRIPTOR = 0x08074b50;
const CENTRAL_HEADER = 0x02014b50;
const ZIP64_END = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const END = 0x06054b50;

/** Bit 3: CRC and sizes follow the data; bit 11: names are UTF-8. */
const FLAGS_FILE = 0x0008 | 0x0800;
const FLAGS_DIR = 0x0800;
/** 2.0: stored files and folders; 4.5: Zip64. */
const VERSION = 20;
const VERSION_ZIP64 = 45;
/** "Made by" Unix (3), so readers take the mode from the external attributes. */
const MADE_BY_UNIX = 3 << 8;
/** A 32-bit field that says "see the Zip64 extra field". */
const MAX_32 = 0xffffffff;
const MAX_16 = 0xffff;
/** Extra field tags: Zip64 sizes and offset; extended timestamp (Info-ZIP "UT"). */
const TAG_ZIP64 = 0x0001;
const TAG_TIME = 0x5455;
/** MS-DOS directory attribute, beside the Unix mode in the high 16 bits. */
const DOS_DIRECTORY = 0x10;

const encoder = new TextEncoder();

/** Little-endian writes into one buffer. */
class Out {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.#view = new DataView(this.bytes.buffer);
  }
  u16(n: number): this {
    this.#view.setUint16(this.#at, n, true);
    this.#at += 2;
    return this;
  }
  u32(n: number): this {
    this.#view.setUint32(this.#at, n, true);
    this.#at += 4;
    return this;
  }
  u64(n: number): this {
    this.#view.setBigUint64(this.#at, BigInt(n), true);
    this.#at += 8;
    return this;
  }
  raw(b: Uint8Array): this {
    this.bytes.set(b, this.#at);
    this.#at += b.length;
    return this;
  }
}

/** MS-DOS time and date fields (2-second steps, 1980 to 2107) of a UTC time. */
function dosDateTime(ms: number): [time: number, date: number] {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  if (year < 1980) return [0, (1 << 5) | 1]; // 1980-01-01, the format's first day
  if (year > 2107) return [0xbf7d, 0xff9f]; // 2107-12-31 23:59:58
  return [
    (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) |
    (d.getUTCSeconds() >> 1),
    ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  ];
}

/** The extended timestamp extra field: modification time, seconds since the epoch. */
function timeExtra(ms: number): Uint8Array {
  const seconds = Math.max(0, Math.min(0x7fffffff, Math.floor(ms / 1000)));
  const out = new Out(9).u16(TAG_TIME).u16(5);
  out.bytes[4] = 1; // flags: modification time present
  new DataView(out.bytes.buffer).setUint32(5, seconds, true);
  return out.bytes;
}

/** What the central directory needs of one entry. */
interface Entry {
  readonly name: Uint8Array;
  readonly directory: boolean;
  readonly time: number;
  readonly date: number;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly offset: number;
  readonly zip64: boolean;
  crc: number;
  size: number;
}

/** Options for {@link ZipWriter}; tests lower the threshold to reach Zip64 with small files. */
export interface ZipOptions {
  /** Files this big or bigger get Zip64 records (the format's own limit is 4 GiB - 1). */
  readonly zip64FromBytes?: number;
}

/**
 * Writes a zip one piece at a time: {@link ZipWriter.directory}, or
 * {@link ZipWriter.beginFile}, the file's bytes (the caller sends them),
 * {@link ZipWriter.endFile}; then {@link ZipWriter.finish}. It keeps about
 * 100 bytes per entry for the central directory, never the contents.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32 } from "node:zlib";
 * import { ZipWriter } from "./zip_stream.ts";
 *
 * const zip = new ZipWriter();
 * const data = new TextEncoder().encode("hi\n");
 * const parts = [
 *   zip.beginFile("a.txt", 0, 0o644, data.length),
 *   data,
 *   zip.endFile(crc32(data), data.length),
 *   zip.finish(),
 * ];
 * assert.equal(zip.entries, 1);
 * assert.deepEqual([...parts[0].subarray(0, 4)], [0x50, 0x4b, 3, 4]); // "PK\3\4"
 * ```
 */
export class ZipWriter {
  readonly #central: Entry[] = [];
  readonly #zip64From: number;
  #offset = 0;
  #open: Entry | undefined;

  constructor(opts: ZipOptions = {}) {
    this.#zip64From = opts.zip64FromBytes ?? MAX_32;
  }

  /** Entries written so far. */
  get entries(): number {
    return this.#central.length;
  }

  /** Bytes of the archive written so far. */
  get offset(): number {
    return this.#offset;
  }

  /** The local header of a folder entry (`name` without the trailing "/"). */
  directory(name: string, mtimeMs: number, mode = 0o755): Uint8Array {
    this.#checkClosed();
    const entry = this.#entry(`${name}/`, true, mtimeMs, 0o040000 | mode, 0);
    this.#central.push(entry);
    return this.#local(entry, FLAGS_DIR);
  }

  /**
   * The local header of a file. `sizeBound` is the most bytes the caller
   * will send for it: from it alone comes the choice of Zip64 records.
   */
  beginFile(
    name: string,
    mtimeMs: number,
    mode: number,
    sizeBound: number,
  ): Uint8Array {
    this.#checkClosed();
    const entry = this.#entry(
      name,
      false,
      mtimeMs,
      0o100000 | mode,
      sizeBound,
    );
    this.#open = entry;
    return this.#local(entry, FLAGS_FILE);
  }

  /** The data descriptor after a file's `size` bytes whose CRC-32 is `crc`. */
  endFile(crc: number, size: number): Uint8Array {
    const entry = this.#open;
    if (entry === undefined) throw new Error("No file entry is open");
    this.#open = undefined;
    entry.crc = crc >>> 0;
    entry.size = size;
    this.#central.push(entry);
    this.#offset += size;
    const out = new Out(entry.zip64 ? 24 : 16).u32(DATA_DESCRIPTOR).u32(
      entry.crc,
    );
    if (entry.zip64) out.u64(size).u64(size);
    else out.u32(size).u32(size);
    this.#offset += out.bytes.length;
    return out.bytes;
  }

  /** The central directory and the end records: the archive's last bytes. */
  finish(): Uint8Array {
    this.#checkClosed();
    const start = this.#offset;
    const parts: Uint8Array[] = [];
    let length = 0;
    for (const e of this.#central) {
      const part = this.#centralHeader(e);
      parts.push(part);
      length += part.length;
    }
    const count = this.#central.length;
    const zip64 = count >= MAX_16 || start >= MAX_32 || length >= MAX_32;
    const endAt = start + length;
    if (zip64) {
      parts.push(
        new Out(56).u32(ZIP64_END).u64(44).u16(MADE_BY_UNIX | VERSION_ZIP64)
          .u16(VERSION_ZIP64).u32(0).u32(0).u64(count).u64(count).u64(length)
          .u64(start).bytes,
        new Out(20).u32(ZIP64_LOCATOR).u32(0).u64(endAt).u32(1).bytes,
      );
    }
    parts.push(
      new Out(22).u32(END).u16(0).u16(0).u16(Math.min(count, MAX_16)).u16(
        Math.min(count, MAX_16),
      ).u32(Math.min(length, MAX_32)).u32(Math.min(start, MAX_32)).u16(0)
        .bytes,
    );
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    this.#offset += all.length;
    return all;
  }

  #checkClosed(): void {
    if (this.#open !== undefined) {
      throw new Error("The open file entry has not ended");
    }
  }

  #entry(
    name: string,
    directory: boolean,
    mtimeMs: number,
    mode: number,
    sizeBound: number,
  ): Entry {
    const [time, date] = dosDateTime(mtimeMs);
    return {
      name: encoder.encode(name),
      directory,
      time,
      date,
      mtimeMs,
      mode,
      offset: this.#offset,
      zip64: !directory && sizeBound >= this.#zip64From,
      crc: 0,
      size: 0,
    };
  }

  #local(e: Entry, flags: number): Uint8Array {
    const time = timeExtra(e.mtimeMs);
    // Zip64 in a local header: both sizes "see extra", and the extra holds
    // zeros, as they follow in the (64-bit) descriptor (APPNOTE §4.3.9.2).
    const extraLength = time.length + (e.zip64 ? 20 : 0);
    const out = new Out(30 + e.name.length + extraLength)
      .u32(LOCAL_HEADER).u16(e.zip64 ? VERSION_ZIP64 : VERSION).u16(flags)
      .u16(0).u16(e.time).u16(e.date).u32(0)
      .u32(e.zip64 ? MAX_32 : 0).u32(e.zip64 ? MAX_32 : 0)
      .u16(e.name.length).u16(extraLength).raw(e.name).raw(time);
    if (e.zip64) out.u16(TAG_ZIP64).u16(16).u64(0).u64(0);
    this.#offset += out.bytes.length;
    return out.bytes;
  }

  #centralHeader(e: Entry): Uint8Array {
    const time = timeExtra(e.mtimeMs);
    // Only the fields that overflow go in the Zip64 extra, in this order.
    const big: number[] = [];
    const sizeBig = e.zip64 || e.size >= MAX_32;
    if (sizeBig) big.push(e.size, e.size);
    const offsetBig = e.offset >= MAX_32;
    if (offsetBig) big.push(e.offset);
    const zip64Length = big.length === 0 ? 0 : 4 + 8 * big.length;
    const needs = big.length > 0 ? VERSION_ZIP64 : VERSION;
    const out = new Out(46 + e.name.length + time.length + zip64Length)
      .u32(CENTRAL_HEADER).u16(MADE_BY_UNIX | needs).u16(needs)
      .u16(e.directory ? FLAGS_DIR : FLAGS_FILE).u16(0).u16(e.time).u16(
        e.date,
      ).u32(e.crc).u32(sizeBig ? MAX_32 : e.size).u32(
        sizeBig ? MAX_32 : e.size,
      ).u16(e.name.length).u16(time.length + zip64Length).u16(0).u16(0)
      .u16(0).u32(((e.mode << 16) | (e.directory ? DOS_DIRECTORY : 0)) >>> 0)
      .u32(offsetBig ? MAX_32 : e.offset).raw(e.name).raw(time);
    if (big.length > 0) {
      out.u16(TAG_ZIP64).u16(8 * big.length);
      for (const n of big) out.u64(n);
    }
    return out.bytes;
  }
}
