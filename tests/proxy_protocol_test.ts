import assert from "node:assert/strict";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import {
  parseProxyHeader,
  type ProxyHeader,
  ProxyHeaderError,
  readIpv6Text,
  V2_SIGNATURE,
} from "../lib/http/proxy_protocol.ts";
import { concat } from "./helpers/bytes.ts";

const encoder = new TextEncoder();
const MAX = 4096;
const HTTP = encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");

/** A version 2 header: command nibble, family/transport byte, address block, TLVs. */
function v2(
  command: number,
  familyTransport: number,
  body: number[] = [],
  version = 2,
): Uint8Array {
  return concat([
    V2_SIGNATURE,
    new Uint8Array([
      (version << 4) | command,
      familyTransport,
      body.length >> 8,
      body.length & 0xff,
    ]),
    new Uint8Array(body),
  ]);
}

function tlv(type: number, value: number[]): number[] {
  return [type, value.length >> 8, value.length & 0xff, ...value];
}

const IPV4_BLOCK = [203, 0, 113, 7, 127, 0, 0, 1, 0xe8, 0x9a, 0x4a, 0x9c];
const IPV6_SRC = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1];
const IPV6_DST = [...new Array(15).fill(0), 1];
const IPV6_BLOCK = [...IPV6_SRC, ...IPV6_DST, 0x01, 0xbb, 0x1f, 0x90];

interface Good {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly source?: string;
  readonly sourcePort?: number;
  readonly destination?: string;
  readonly destinationPort?: number;
}

const v1 = (line: string) => encoder.encode(line);
const ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

const good: Good[] = [
  {
    name: "v1 TCP4 (the spec's example)",
    bytes: v1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
    source: "192.168.0.1",
    sourcePort: 56324,
    destination: "192.168.0.11",
    destinationPort: 443,
  },
  {
    name: "v1 TCP4 with ports 0 and 65535",
    bytes: v1("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
    source: "0.0.0.0",
    sourcePort: 0,
    destination: "255.255.255.255",
    destinationPort: 65535,
  },
  {
    name: "v1 TCP6, compressed",
    bytes: v1("PROXY TCP6 2001:db8::1 ::1 8080 443\r\n"),
    source: "2001:db8::1",
    sourcePort: 8080,
    destination: "::1",
    destinationPort: 443,
  },
  {
    name: "v1 TCP6, full and upper case, read in RFC 5952 form",
    bytes: v1(
      "PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 0:0:0:0:0:0:0:1 1 2\r\n",
    ),
    source: "2001:db8::1",
    sourcePort: 1,
    destination: "::1",
    destinationPort: 2,
  },
  {
    name: "v1 TCP6, IPv4-mapped as inet_ntop writes it",
    bytes: v1("PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n"),
    source: "::ffff:10.0.0.1",
    sourcePort: 1,
    destination: "::ffff:10.0.0.2",
    destinationPort: 2,
  },
  {
    name: "v1 TCP6 of the longest form (104 bytes)",
    bytes: v1(`PROXY TCP6 ${ffff} ${ffff} 65535 65535\r\n`),
    source: ffff,
    sourcePort: 65535,
    destination: ffff,
    destinationPort: 65535,
  },
  { name: "v1 UNKNOWN, short", bytes: v1("PROXY UNKNOWN\r\n") },
  {
    name: "v1 UNKNOWN of 107 bytes, the rest ignored",
    bytes: v1(`PROXY UNKNOWN ${ffff} ${ffff} 65535 65535\r\n`),
  },
  {
    name: "v2 PROXY TCP4, as HAProxy 2.6 sent it",
    bytes: v2(0x1, 0x11, IPV4_BLOCK),
    source: "203.0.113.7",
    sourcePort: 59546,
    destination: "127.0.0.1",
    destinationPort: 19100,
  },
  {
    name: "v2 LOCAL, as HAProxy 2.6 sends health checks",
    bytes: v2(0x0, 0x00),
  },
  {
    name: "v2 LOCAL with an address block, skipped",
    bytes: v2(0x0, 0x11, IPV4_BLOCK),
  },
  {
    name: "v2 LOCAL with an unknown family, ignored",
    bytes: v2(0x0, 0xff, [1, 2, 3]),
  },
  {
    name: "v2 PROXY TCP6 with ALPN and NOOP TLVs",
    bytes: v2(0x1, 0x21, [
      ...IPV6_BLOCK,
      ...tlv(0x01, [0x68, 0x32]),
      ...tlv(0x04, []),
    ]),
    source: "2001:db8::1",
    sourcePort: 443,
    destination: "::1",
    destinationPort: 8080,
  },
  {
    name: "v2 PROXY TCP6, IPv4-mapped",
    bytes: v2(0x1, 0x21, [
      ...new Array(10).fill(0),
      0xff,
      0xff,
      10,
      0,
      0,
      9,
      ...IPV6_DST,
      0,
      1,
      0,
      2,
    ]),
    source: "::ffff:10.0.0.9",
    sourcePort: 1,
    destination: "::1",
    destinationPort: 2,
  },
  {
    name: "v2 PROXY UDP4: the socket's addresses",
    bytes: v2(0x1, 0x12, IPV4_BLOCK),
  },
  {
    name: "v2 PROXY UNIX stream: the socket's addresses",
    bytes: v2(0x1, 0x31, new Array(216).fill(0x61)),
  },
  {
    name: "v2 PROXY UNSPEC with bytes: the socket's addresses",
    bytes: v2(0x1, 0x00, [1, 2, 3, 4]),
  },
];

function check(header: ProxyHeader | undefined, g: Good): void {
  assert.ok(header, g.name);
  assert.equal(header.length, g.bytes.length, g.name);
  assert.equal(header.version, g.bytes[0] === 0x50 ? 1 : 2, g.name);
  assert.equal(header.source?.hostname, g.source, g.name);
  assert.equal(header.source?.port, g.sourcePort, g.name);
  assert.equal(header.destination?.hostname, g.destination, g.name);
  assert.equal(header.destination?.port, g.destinationPort, g.name);
}

for (const g of good) {
  Deno.test(`parseProxyHeader() reads ${g.name}, split at every byte`, () => {
    const buf = concat([g.bytes, HTTP]);
    for (let cut = 0; cut < g.bytes.length; cut++) {
      assert.equal(parseProxyHeader(buf, cut, MAX), undefined, `cut ${cut}`);
    }
    // Whatever follows the header is the client's: never part of it.
    for (let end = g.bytes.length; end <= buf.length; end++) {
      check(parseProxyHeader(buf, end, MAX), g);
    }
  });
}

const bad: [name: string, bytes: Uint8Array][] = [
  ["plain HTTP", HTTP],
  ["a TLS hello", new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])],
  ["lower-case proxy", v1("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 bare LF", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")],
  ["v1 bare CR", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n")],
  ["v1 double space", v1("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 trailing space", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n")],
  ["v1 tab", v1("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 NUL", v1("PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n")],
  ["v1 5 fields", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")],
  ["v1 7 fields", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n")],
  ["v1 no fields", v1("PROXY \r\n")],
  ["v1 protocol TCP5", v1("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 protocol UDP4", v1("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 leading zero in an octet", v1("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n")],
  ["v1 octet 256", v1("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n")],
  ["v1 three octets", v1("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n")],
  ["v1 hex octet", v1("PROXY TCP4 0x7f.0.0.1 5.6.7.8 1 2\r\n")],
  ["v1 TCP4 with IPv6", v1("PROXY TCP4 ::1 ::1 1 2\r\n")],
  ["v1 TCP6 with IPv4", v1("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n")],
  ["v1 two ::", v1("PROXY TCP6 1::2::3 ::1 1 2\r\n")],
  ["v1 nine groups", v1("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n")],
  ["v1 :: for no group", v1("PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n")],
  ["v1 five hex digits", v1("PROXY TCP6 12345::1 ::1 1 2\r\n")],
  ["v1 IPv6 zone", v1("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n")],
  ["v1 IPv6 in brackets", v1("PROXY TCP6 [::1] ::1 1 2\r\n")],
  ["v1 port 65536", v1("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")],
  ["v1 port with a leading zero", v1("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n")],
  ["v1 signed port", v1("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n")],
  ["v1 empty port", v1("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n")],
  ["v1 past 107 bytes", v1(`PROXY UNKNOWN ${"f".repeat(93)}\r\n`)],
  ["v2 signature off at byte 8", v2(0x1, 0x11, IPV4_BLOCK).fill(0x52, 7, 8)],
  ["v2 version 1", v2(0x1, 0x11, IPV4_BLOCK, 1)],
  ["v2 version 3", v2(0x1, 0x11, IPV4_BLOCK, 3)],
  ["v2 command 2", v2(0x2, 0x11, IPV4_BLOCK)],
  ["v2 command 15", v2(0xf, 0x11, IPV4_BLOCK)],
  ["v2 family 4", v2(0x1, 0x41, IPV4_BLOCK)],
  ["v2 transport 3", v2(0x1, 0x13, IPV4_BLOCK)],
  ["v2 IPv4 block of 8 bytes", v2(0x1, 0x11, IPV4_BLOCK.slice(0, 8))],
  ["v2 IPv6 block of 12 bytes", v2(0x1, 0x21, IPV4_BLOCK)],
  ["v2 UNIX block of 108 bytes", v2(0x1, 0x31, new Array(108).fill(0))],
  ["v2 TLV past the end", v2(0x1, 0x11, [...IPV4_BLOCK, 0x01, 0x00, 0x05, 1])],
  ["v2 TLV cut in its head", v2(0x1, 0x11, [...IPV4_BLOCK, 0x01, 0x00])],
  [
    "v2 longer than the limit",
    v2(0x1, 0x11, [...IPV4_BLOCK, ...tlv(0x04, new Array(MAX).fill(0))]),
  ],
];

for (const [name, bytes] of bad) {
  Deno.test(`parseProxyHeader() refuses ${name}, at no byte a header`, () => {
    const buf = concat([bytes, HTTP]);
    for (let end = 0; end < bytes.length; end++) {
      try {
        assert.equal(parseProxyHeader(buf, end, MAX), undefined, `end ${end}`);
      } catch (err) {
        assert.ok(err instanceof ProxyHeaderError, `end ${end}: ${err}`);
      }
    }
    assert.throws(() => parseProxyHeader(buf, buf.length, MAX), {
      name: "ProxyHeaderError",
      message: /^Cannot read PROXY header: /,
    });
  });
}

Deno.test("parseProxyHeader() refuses a wrong start at its first wrong byte", () => {
  const cases: [bytes: Uint8Array, at: number][] = [
    [HTTP, 1], // "G": neither signature
    [v1("PROXX TCP4"), 5],
    [v2(0x1, 0x11, IPV4_BLOCK, 1), 13], // the version, before the length
    [v2(0x2, 0x11, IPV4_BLOCK), 13],
    [v2(0x1, 0x41, IPV4_BLOCK), 16],
    [v1(`PROXY UNKNOWN ${"x".repeat(100)}`), 107],
    [v1("PROXY TCP4 1.2.3.4\n"), 19],
  ];
  for (const [bytes, at] of cases) {
    assert.equal(parseProxyHeader(bytes, at - 1, MAX), undefined, `${at}`);
    assert.throws(() => parseProxyHeader(bytes, at, MAX), ProxyHeaderError);
  }
});

Deno.test("parseProxyHeader() refuses a v2 length over the limit from the fixed part alone", () => {
  const header = v2(0x1, 0x11, [...IPV4_BLOCK, ...tlv(0x04, new Array(60))]);
  assert.equal(parseProxyHeader(header, 16, 128), undefined);
  assert.throws(
    () => parseProxyHeader(header, 16, 64),
    /v2 header of 91 bytes, more than 64/,
  );
});

Deno.test("parseProxyHeader() answers any bytes with a header, undefined or ProxyHeaderError", () => {
  const starts = fc.constantFrom(
    new Uint8Array(0),
    v1("PROXY "),
    v1("PROXY TCP4 "),
    v1("PROXY TCP6 "),
    V2_SIGNATURE,
    concat([V2_SIGNATURE, new Uint8Array([0x21, 0x11])]),
    concat([V2_SIGNATURE, new Uint8Array([0x21, 0x21, 0x00])]),
  );
  fc.assert(
    fc.property(starts, fc.uint8Array({ maxLength: 120 }), (start, tail) => {
      const buf = concat([start, tail]);
      try {
        const header = parseProxyHeader(buf, buf.length, 256);
        if (header !== undefined) {
          assert.ok(header.length >= 15 && header.length <= buf.length);
        }
      } catch (err) {
        assert.ok(err instanceof ProxyHeaderError, String(err));
      }
    }),
    { numRuns: 5000 },
  );
});

Deno.test("parseProxyHeader() writes v2 IPv6 addresses as RFC 5952 does", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 8 }),
      (bytes, zeroFrom) => {
        bytes.fill(0, zeroFrom * 2, Math.min(16, zeroFrom * 2 + 6)); // runs of zeros
        const header = parseProxyHeader(
          v2(0x1, 0x21, [...bytes, ...IPV6_DST, 0, 1, 0, 2]),
          52,
          MAX,
        );
        const addr = ipaddr.fromByteArray([...bytes]) as ipaddr.IPv6;
        const text = header!.source!.hostname;
        if (addr.isIPv4MappedAddress()) {
          assert.equal(text, `::ffff:${addr.toIPv4Address()}`);
        } else {
          assert.equal(text, addr.toRFC5952String());
        }
        assert.equal(readIpv6Text(text), text); // the v1 reader agrees
        assert.equal(readIpv6Text(addr.toNormalizedString()), text);
      },
    ),
    { numRuns: 2000 },
  );
});
