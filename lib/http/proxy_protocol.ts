/**
 * The PROXY protocol header a load balancer (HAProxy, AWS NLB, nginx's
 * stream module) puts before the first byte of a connection to say whose
 * connection it is: version 1 is one line of text, version 2 a binary block
 * (HAProxy's proxy-protocol.txt, 2020-03-05). No I/O here: the engine reads
 * bytes and asks {@link parseProxyHeader} whether they hold a whole header.
 */
import { CR, LF, SP } from "./parser.ts";

/** What a PROXY header says about the connection it starts. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** Bytes the header took; the client's own bytes start right after. */
  readonly length: number;
  /**
   * The client, as the proxy saw it; undefined when the header says to use
   * the socket's own addresses (v2 LOCAL, such as a health check, v1
   * UNKNOWN, or a family other than TCP over IPv4 or IPv6).
   */
  readonly source?: Deno.NetAddr;
  /** The address the client connected to, when `source` is set. */
  readonly destination?: Deno.NetAddr;
}

/** Bytes that prove a connection does not start with a valid PROXY header. */
export class ProxyHeaderError extends Error {
  override name = "ProxyHeaderError";
}

/** Longest version 1 line with its CRLF (spec §2.1: the UNKNOWN worst case). */
export const V1_MAX_BYTES = 107;
/** The fixed part of a version 2 header: signature, command, family, length. */
export const V2_FIXED_BYTES = 16;
/** Version 2's signature: it cannot start a valid HTTP, TLS or SSH stream. */
export const V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
const V1_PREFIX = new TextEncoder().encode("PROXY ");

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const FAMILY_UNSPEC = 0x0;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;
const FAMILY_UNIX = 0x3;
const TRANSPORT_STREAM = 0x1;
const TRANSPORT_DGRAM = 0x2;
/** Address block sizes by family: two addresses and, for IP, two ports. */
const ADDRESS_BYTES = [0, 12, 36, 216];
/** A TLV's type byte and two length bytes. */
const TLV_HEAD_BYTES = 3;

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

function invalid(why: string): ProxyHeaderError {
  return new ProxyHeaderError(`Cannot read PROXY header: ${why}`);
}

/**
 * Reads the PROXY header at the start of `buf`, up to `end`. Returns
 * undefined while the bytes so far could still begin a valid header, and
 * throws {@link ProxyHeaderError} as soon as they cannot: a prefix that is
 * neither signature, a v1 line past 107 bytes or without its CRLF, a field
 * out of grammar, a v2 header longer than `maxBytes`. Address fields are
 * read only once the whole header is in (the spec asks for that).
 */
export function parseProxyHeader(
  buf: Uint8Array,
  end: number,
  maxBytes: number,
): ProxyHeader | undefined {
  if (end === 0) return undefined;
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf, end);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf, end, maxBytes);
  throw invalid("no PROXY signature");
}

function parseV1(buf: Uint8Array, end: number): ProxyHeader | undefined {
  const prefix = Math.min(end, V1_PREFIX.length);
  for (let i = 0; i < prefix; i++) {
    if (buf[i] !== V1_PREFIX[i]) throw invalid("no PROXY signature");
  }
  // The line is US-ASCII text: refuse a stray byte at once, not at 107.
  let lineEnd = -1;
  const scan = Math.min(end, V1_MAX_BYTES);
  for (let i = V1_PREFIX.length; i < scan; i++) {
    const c = buf[i];
    if (c === LF) {
      if (buf[i - 1] !== CR) throw invalid("bare LF in the v1 line");
      lineEnd = i - 1;
      break;
    }
    if (c === CR) {
      if (i + 1 < end && buf[i + 1] !== LF) {
        throw invalid("bare CR in the v1 line");
      }
      continue;
    }
    if (c < SP || c > 0x7e) throw invalid("a control byte in the v1 line");
  }
  if (lineEnd === -1) {
    if (end >= V1_MAX_BYTES) throw invalid("v1 line longer than 107 bytes");
    return undefined;
  }
  const line = String.fromCharCode(...buf.subarray(0, lineEnd));
  const fields = line.split(" ");
  const length = lineEnd + 2;
  // "UNKNOWN": the receiver ignores the rest of the line (§2.1).
  if (fields[1] === "UNKNOWN") return { version: 1, length };
  if (fields.length !== 6) {
    throw invalid("a v1 line needs 6 fields separated by single spaces");
  }
  const [, family, src, dst, srcPort, dstPort] = fields;
  let source: string | undefined;
  let destination: string | undefined;
  if (family === "TCP4") {
    source = readIpv4Text(src);
    destination = readIpv4Text(dst);
  } else if (family === "TCP6") {
    source = readIpv6Text(src);
    destination = readIpv6Text(dst);
  } else {
    throw invalid(`unknown v1 protocol "${family}"`);
  }
  if (source === undefined || destination === undefined) {
    throw invalid(`a v1 address is not ${family === "TCP4" ? "IPv4" : "IPv6"}`);
  }
  return {
    version: 1,
    length,
    source: netAddr(source, readPort(srcPort)),
    destination: netAddr(destination, readPort(dstPort)),
  };
}

function parseV2(
  buf: Uint8Array,
  end: number,
  maxBytes: number,
): ProxyHeader | undefined {
  const prefix = Math.min(end, V2_SIGNATURE.length);
  for (let i = 0; i < prefix; i++) {
    if (buf[i] !== V2_SIGNATURE[i]) throw invalid("no PROXY signature");
  }
  if (end < V2_FIXED_BYTES) {
    // Version and command can be judged as soon as they arrive.
    if (end > 12) checkVersionAndCommand(buf[12]);
    return undefined;
  }
  const command = checkVersionAndCommand(buf[12]);
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  const addressLength = (buf[14] << 8) | buf[15];
  const length = V2_FIXED_BYTES + addressLength;
  if (length > maxBytes) {
    throw invalid(`v2 header of ${length} bytes, more than ${maxBytes}`);
  }
  // LOCAL: a connection of the proxy's own; the family is ignored (§2.2).
  if (command === COMMAND_PROXY) {
    if (family > FAMILY_UNIX || transport > TRANSPORT_DGRAM) {
      throw invalid("unknown v2 address family or transport");
    }
    if (addressLength < ADDRESS_BYTES[family]) {
      throw invalid("v2 address block shorter than its family needs");
    }
  }
  if (end < length) return undefined;
  const body = V2_FIXED_BYTES;
  // Only TCP over IP names a client we can use. UDP and UNIX sockets fall
  // back to the socket's own addresses, as the spec allows (§2.2).
  const named = command === COMMAND_PROXY && transport === TRANSPORT_STREAM &&
    (family === FAMILY_INET || family === FAMILY_INET6);
  // Past a known address block, TLVs; LOCAL and UNSPEC blocks are skipped whole.
  if (command === COMMAND_PROXY && family !== FAMILY_UNSPEC) {
    checkTlvs(buf, body + ADDRESS_BYTES[family], length);
  }
  if (!named) return { version: 2, length };
  const size = family === FAMILY_INET ? 4 : 16;
  const format = family === FAMILY_INET ? formatIpv4 : formatIpv6;
  const ports = body + 2 * size;
  return {
    version: 2,
    length,
    source: netAddr(
      format(buf.subarray(body, body + size)),
      (buf[ports] << 8) | buf[ports + 1],
    ),
    destination: netAddr(
      format(buf.subarray(body + size, ports)),
      (buf[ports + 2] << 8) | buf[ports + 3],
    ),
  };
}

/** The command nibble; throws for a version other than 2 or an unknown command. */
function checkVersionAndCommand(byte: number): number {
  if (byte >> 4 !== 2) throw invalid(`v2 header of version ${byte >> 4}`);
  const command = byte & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) {
    throw invalid(`unknown v2 command ${command}`);
  }
  return command;
}

/**
 * TLVs (ALPN, authority, SSL details...) are skipped, but they must tile
 * the rest of the header exactly: a length that runs past it is a
 * malformed header, as HAProxy's own receiver judges it.
 */
function checkTlvs(buf: Uint8Array, from: number, end: number): void {
  let at = from;
  while (at < end) {
    if (end - at < TLV_HEAD_BYTES) throw invalid("v2 TLV cut short");
    at += TLV_HEAD_BYTES + ((buf[at + 1] << 8) | buf[at + 2]);
    if (at > end) throw invalid("v2 TLV longer than the header");
  }
}

function netAddr(hostname: string, port: number): Deno.NetAddr {
  return { transport: "tcp", hostname, port };
}

/** A port: 0-65535, decimal, no leading zero (the spec forbids them). */
function readPort(text: string): number {
  if (!isDecimal(text, 5) || Number(text) > 65535) {
    throw invalid(`"${text}" is not a port`);
  }
  return Number(text);
}

/** Digits only, 1 to `maxDigits` of them, and "0" alone may start with 0. */
function isDecimal(text: string, maxDigits: number): boolean {
  if (text.length === 0 || text.length > maxDigits) return false;
  if (text.length > 1 && text.charCodeAt(0) === DIGIT_0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return false;
  }
  return true;
}

/** Four decimal octets without leading zeros (`010` could be read as octal), or undefined. */
export function readIpv4Text(text: string): string | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  for (const part of parts) {
    if (!isDecimal(part, 3) || Number(part) > 255) return undefined;
  }
  return text;
}

/**
 * An IPv6 address in RFC 4291 §2.2 text (groups of 1-4 hex digits, one
 * `::` at most, a dotted IPv4 tail allowed as inet_ntop writes
 * `::ffff:1.2.3.4`), returned in RFC 5952 form as sockets report it; or
 * undefined.
 */
export function readIpv6Text(text: string): string | undefined {
  const groups = ipv6Groups(text);
  return groups === undefined ? undefined : formatGroups(groups);
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function ipv6Groups(text: string): number[] | undefined {
  if (text.length > 45) return undefined; // 39, or 45 with a dotted tail
  const gap = text.indexOf("::");
  if (gap !== -1 && text.indexOf("::", gap + 1) !== -1) return undefined;
  const readPart = (part: string, last: boolean): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (last && i === pieces.length - 1 && piece.includes(".")) {
        if (readIpv4Text(piece) === undefined) return undefined;
        const [a, b, c, d] = piece.split(".").map(Number);
        out.push((a << 8) | b, (c << 8) | d);
      } else if (HEX_GROUP.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  if (gap === -1) {
    const all = readPart(text, true);
    return all?.length === 8 ? all : undefined;
  }
  const head = readPart(text.slice(0, gap), false);
  const tail = readPart(text.slice(gap + 2), true);
  if (head === undefined || tail === undefined) return undefined;
  // "::" stands for at least one group of zeros.
  const zeros = 8 - head.length - tail.length;
  if (zeros < 1) return undefined;
  return [...head, ...new Array<number>(zeros).fill(0), ...tail];
}

function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  return formatGroups(groups);
}

/**
 * RFC 5952: lower-case hex without leading zeros, the longest run of two
 * or more zero groups (the first of equals) as `::`, and an IPv4-mapped
 * address as `::ffff:1.2.3.4`, the form a socket reports.
 */
function formatGroups(groups: readonly number[]): string {
  if (
    groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)
  ) {
    const [c, d] = [groups[6], groups[7]];
    return `::ffff:${c >> 8}.${c & 0xff}.${d >> 8}.${d & 0xff}`;
  }
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt === -1) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${
    hex.slice(bestAt + bestLength).join(":")
  }`;
}
