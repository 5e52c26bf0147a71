import assert from "node:assert/strict";
import {
  DynamicTable,
  HpackDecoder,
  HpackEncoder,
  HpackReader,
  INDEX,
  type IndexPolicy,
  NEVER_INDEX,
  NO_INDEX,
  writeInteger,
} from "../lib/http/h2/hpack.ts";
import { OutBuffer } from "../lib/http/response.ts";
import { hex, unhex } from "./helpers/bytes.ts";

type Field = [name: string, value: string];

function tableOf(t: DynamicTable): [string, string, number][] {
  const rows: [string, string, number][] = [];
  for (let i = 0; i < t.length; i++) {
    rows.push([
      t.name(i),
      t.value(i),
      t.name(i).length + t.value(i).length + 32,
    ]);
  }
  return rows;
}

function decodeAll(d: HpackDecoder, bytes: string, max = Infinity): Field[] {
  const block = unhex(bytes);
  const list = d.decode(block, 0, block.length, max);
  return list.names.map((n, i) => [n, list.values[i]]);
}

function encodeAll(
  e: HpackEncoder,
  fields: readonly Field[],
  policy: IndexPolicy = INDEX,
): string {
  const out = new OutBuffer();
  e.beginBlock(out);
  for (const [name, value] of fields) e.writeField(out, name, value, policy);
  return hex(out.buf.subarray(0, out.len));
}

// C.1: integers.
const INTEGERS: [value: number, prefix: number, bytes: string][] = [
  [10, 5, "0a"], // C.1.1
  [1337, 5, "1f9a0a"], // C.1.2
  [42, 8, "2a"], // C.1.3
  [31, 5, "1f00"], // exactly 2^N - 1 needs a zero octet
  [2 ** 31 - 1, 5, "1fe0ffffff07"],
];
for (const [value, prefix, bytes] of INTEGERS) {
  Deno.test(`HPACK integer ${value} with a ${prefix}-bit prefix is ${bytes}`, () => {
    const out = new OutBuffer();
    writeInteger(out, 0, prefix, value);
    assert.equal(hex(out.buf.subarray(0, out.len)), bytes);
    const buf = unhex(bytes);
    const r = new HpackReader(buf, 0, buf.length);
    assert.equal(r.integer(prefix), value);
    assert.equal(r.pos, buf.length);
  });
}

Deno.test("HpackReader.integer() refuses overflow, padding and truncation", () => {
  for (const bytes of ["1fffffffff0f", "1f8080808080808000", "1f", "1f80"]) {
    const buf = unhex(bytes);
    assert.throws(() => new HpackReader(buf, 0, buf.length).integer(5), {
      name: "HpackError",
    }, bytes);
  }
});

// C.2: one field each, on a fresh table.
const SINGLE: [
  what: string,
  field: Field,
  policy: IndexPolicy,
  bytes: string,
  table: number,
][] = [
  [
    "C.2.1 literal with indexing",
    ["custom-key", "custom-header"],
    INDEX,
    "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    55,
  ],
  [
    "C.2.2 literal without indexing",
    [":path", "/sample/path"],
    NO_INDEX,
    "040c 2f73 616d 706c 652f 7061 7468",
    0,
  ],
  [
    "C.2.3 literal never indexed",
    ["password", "secret"],
    NEVER_INDEX,
    "1008 7061 7373 776f 7264 0673 6563 7265 74",
    0,
  ],
  ["C.2.4 indexed", [":method", "GET"], INDEX, "82", 0],
];
for (const [what, field, policy, bytes, table] of SINGLE) {
  Deno.test(`HPACK ${what}, both ways`, () => {
    const d = new HpackDecoder();
    assert.deepEqual(decodeAll(d, bytes), [field]);
    assert.equal(d.table.bytes, table);
    const e = new HpackEncoder(4096, { huffman: false });
    assert.equal(encodeAll(e, [field], policy), hex(unhex(bytes)));
    assert.equal(e.table.bytes, table);
  });
}

/** A sequence of header lists on one connection, as in C.3 to C.6. */
interface Exchange {
  readonly fields: Field[];
  readonly bytes: string;
  readonly table: [string, string, number][];
  readonly size: number;
}

const REQUESTS: Field[][] = [
  [[":method", "GET"], [":scheme", "http"], [":path", "/"], [
    ":authority",
    "www.example.com",
  ]],
  [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ],
  [
    [":method", "GET"],
    [":scheme", "https"],
    [":path", "/index.html"],
    [":authority", "www.example.com"],
    ["custom-key", "custom-value"],
  ],
];
const REQUEST_TABLES: [string, string, number][][] = [
  [[":authority", "www.example.com", 57]],
  [["cache-control", "no-cache", 53], [":authority", "www.example.com", 57]],
  [
    ["custom-key", "custom-value", 54],
    ["cache-control", "no-cache", 53],
    [":authority", "www.example.com", 57],
  ],
];
const RESPONSES: Field[][] = [
  [
    [":status", "302"],
    ["cache-control", "private"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["location", "https://www.example.com"],
  ],
  [
    [":status", "307"],
    ["cache-control", "private"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["location", "https://www.example.com"],
  ],
  [
    [":status", "200"],
    ["cache-control", "private"],
    ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
    ["location", "https://www.example.com"],
    ["content-encoding", "gzip"],
    ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
  ],
];
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESPONSE_TABLES: [string, string, number][][] = [
  [
    ["location", "https://www.example.com", 63],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT", 65],
    ["cache-control", "private", 52],
    [":status", "302", 42],
  ],
  [
    [":status", "307", 42],
    ["location", "https://www.example.com", 63],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT", 65],
    ["cache-control", "private", 52],
  ],
  [
    ["set-cookie", COOKIE, 98],
    ["content-encoding", "gzip", 52],
    ["date", "Mon, 21 Oct 2013 20:13:22 GMT", 65],
  ],
];

const SEQUENCES: [
  what: string,
  tableBytes: number,
  huffman: boolean,
  exchanges: Exchange[],
][] = [
  [
    "C.3 requests without Huffman",
    4096,
    false,
    [
      "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8286 84be 5808 6e6f 2d63 6163 6865",
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ].map((bytes, i) => ({
      fields: REQUESTS[i],
      bytes,
      table: REQUEST_TABLES[i],
      size: [57, 110, 164][i],
    })),
  ],
  [
    "C.4 requests with Huffman",
    4096,
    true,
    [
      "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      "8286 84be 5886 a8eb 1064 9cbf",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ].map((bytes, i) => ({
      fields: REQUESTS[i],
      bytes,
      table: REQUEST_TABLES[i],
      size: [57, 110, 164][i],
    })),
  ],
  [
    "C.5 responses without Huffman",
    256,
    false,
    [
      `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
     6c65 2e63 6f6d`,
      "4803 3330 37c1 c0bf",
      `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
     3d31`,
    ].map((bytes, i) => ({
      fields: RESPONSES[i],
      bytes,
      table: RESPONSE_TABLES[i],
      size: [222, 222, 215][i],
    })),
  ],
  [
    "C.6 responses with Huffman",
    256,
    true,
    [
      `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      "4883 640e ffc1 c0bf",
      `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
     9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
    ].map((bytes, i) => ({
      fields: RESPONSES[i],
      bytes,
      table: RESPONSE_TABLES[i],
      size: [222, 222, 215][i],
    })),
  ],
];

for (const [what, tableBytes, huffman, exchanges] of SEQUENCES) {
  Deno.test(`HpackDecoder decodes RFC 7541 ${what} byte by byte`, () => {
    const d = new HpackDecoder(tableBytes);
    for (const [i, x] of exchanges.entries()) {
      assert.deepEqual(decodeAll(d, x.bytes), x.fields, `list ${i + 1}`);
      assert.deepEqual(tableOf(d.table), x.table, `table ${i + 1}`);
      assert.equal(d.table.bytes, x.size, `size ${i + 1}`);
    }
  });

  Deno.test(`HpackEncoder writes RFC 7541 ${what} byte by byte`, () => {
    const e = new HpackEncoder(tableBytes, { startBytes: tableBytes, huffman });
    for (const [i, x] of exchanges.entries()) {
      assert.equal(
        encodeAll(e, x.fields),
        hex(unhex(x.bytes)),
        `list ${i + 1}`,
      );
      assert.deepEqual(tableOf(e.table), x.table, `table ${i + 1}`);
    }
  });
}

Deno.test("DynamicTable evicts oldest first and empties for an entry larger than itself", () => {
  const t = new DynamicTable(100);
  t.add("a", "1"); // 34
  t.add("b", "2"); // 34
  t.add("c", "3"); // 34: evicts a
  assert.deepEqual(tableOf(t).map((r) => r[0]), ["c", "b"]);
  assert.equal(t.bytes, 68);
  t.add("big", "x".repeat(100)); // 135 > 100: table emptied, not added (§4.4)
  assert.equal(t.length, 0);
  assert.equal(t.bytes, 0);
  t.add("d", "4");
  t.setMaxBytes(33);
  assert.equal(t.length, 0);
});

Deno.test("DynamicTable keeps order across many wraps of its ring", () => {
  const t = new DynamicTable(34 * 5);
  for (let i = 0; i < 1000; i++) t.add("n", String(i % 10));
  assert.deepEqual(tableOf(t).map((r) => r[1]), ["9", "8", "7", "6", "5"]);
  t.setMaxBytes(4096); // grows the ring, keeps entries
  t.add("m", "x");
  assert.deepEqual(tableOf(t).map((r) => r[1]), ["x", "9", "8", "7", "6", "5"]);
});

Deno.test("DynamicTable starts small and grows its ring as entries come, order kept", () => {
  const t = new DynamicTable(4096);
  for (let i = 0; i < 300; i++) t.add("n", String(i).padStart(3, "0")); // 36 each
  assert.equal(t.length, Math.floor(4096 / 36));
  const values = tableOf(t).map((r) => r[1]);
  assert.equal(values[0], "299");
  assert.equal(values.at(-1), String(300 - t.length).padStart(3, "0"));
});

Deno.test("HpackDecoder applies a size update at the start of a block", () => {
  const d = new HpackDecoder(4096);
  decodeAll(
    d,
    "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
  );
  assert.equal(d.table.length, 1);
  // 0x20: size 0 evicts all; then 0x3f e1 1f: 4096 again.
  assert.deepEqual(decodeAll(d, "20 3fe11f 82"), [[":method", "GET"]]);
  assert.equal(d.table.length, 0);
  assert.equal(d.table.maxBytes, 4096);
});

const MALFORMED: [what: string, bytes: string][] = [
  ["index 0", "80"],
  ["an index past both tables", "be"],
  ["a name index past both tables", "7e 01 61"],
  ["a size update after a field", "82 20"],
  ["a size update past the limit", "3fe21f"],
  ["a string longer than the block", "400a 6375 7374"],
  ["a block ending inside an integer", "ff"],
  ["a block ending before a value", "400161"],
  ["a Huffman string padded with zeros", "4081 00 00"],
  ["a Huffman string holding EOS", "4084 ffff ffff 00"],
];
for (const [what, bytes] of MALFORMED) {
  Deno.test(`HpackDecoder refuses ${what}`, () => {
    assert.throws(() => decodeAll(new HpackDecoder(4096), bytes), {
      name: "HpackError",
    });
  });
}

Deno.test("HpackDecoder wants a size update once its limit shrank below the table", () => {
  const d = new HpackDecoder(4096);
  d.setLimit(1024);
  assert.throws(() => decodeAll(d, "82"), { name: "HpackError" });
  const ok = new HpackDecoder(4096);
  ok.setLimit(1024);
  assert.deepEqual(decodeAll(ok, "3fe107 82"), [[":method", "GET"]]); // 1024
  assert.deepEqual(decodeAll(ok, "82"), [[":method", "GET"]]);
});

Deno.test("HpackDecoder stops keeping fields past the list limit but stays in step", () => {
  // An HPACK bomb: one 4000-byte entry, then 4000 one-byte references to it.
  const e = new HpackEncoder(4096, { huffman: false });
  const out = new OutBuffer();
  e.beginBlock(out);
  e.writeField(out, "x-bomb", "a".repeat(1900), INDEX);
  for (let i = 0; i < 4000; i++) {
    e.writeField(out, "x-bomb", "a".repeat(1900), INDEX);
  }
  e.writeField(out, "x-after", "1", INDEX); // goes into both tables all the same
  const block = out.buf.slice(0, out.len);
  assert.ok(block.length < 2000 + 4000 + 20, `block is ${block.length} bytes`);

  const d = new HpackDecoder(4096);
  const list = d.decode(block, 0, block.length, 16 * 1024);
  assert.equal(list.overflow, true);
  assert.ok(list.names.length <= 9, `kept ${list.names.length} fields`);
  assert.equal(list.bytes, 4001 * (6 + 1900 + 32) + 7 + 1 + 32);
  // The table saw every insertion: the next block refers to x-after by index.
  const next = new OutBuffer();
  e.beginBlock(next);
  e.writeField(next, "x-after", "1", INDEX);
  assert.equal(next.len, 1);
  const second = d.decode(next.buf, 0, next.len, 16 * 1024);
  assert.deepEqual(second.names, ["x-after"]);
});

Deno.test("HpackEncoder announces a smaller table, then the size it settles on", () => {
  const e = new HpackEncoder(4096);
  assert.equal(encodeAll(e, [["x-a", "1"]]).slice(0, 2), "40");
  e.setPeerLimit(0);
  e.setPeerLimit(1024);
  // 0 first (so the decoder evicts all), then 1024 (§4.2).
  assert.equal(encodeAll(e, [[":method", "GET"]]), "20" + "3fe107" + "82");
  assert.equal(encodeAll(e, [[":method", "GET"]]), "82");
  assert.equal(e.table.maxBytes, 1024);
});

Deno.test("HpackEncoder with a cap under 4096 says so in its first block", () => {
  const e = new HpackEncoder(256);
  assert.equal(encodeAll(e, [[":method", "GET"]]), "3fe101" + "82");
  const d = new HpackDecoder(4096);
  const block = unhex("3fe101 82");
  d.decode(block, 0, block.length, Infinity);
  assert.equal(d.table.maxBytes, 256);
});

Deno.test("HpackEncoder indexes a repeated field once, never a secret, nor a value over half the table", () => {
  const e = new HpackEncoder(4096);
  const d = new HpackDecoder(4096);
  const fields: [Field, IndexPolicy][] = [
    [["content-type", "text/plain;charset=utf-8"], INDEX],
    [["set-cookie", "id=1"], NEVER_INDEX],
    [["content-length", "5"], NO_INDEX],
    [["x-big", "b".repeat(3000)], INDEX],
  ];
  const sizes: number[] = [];
  for (let round = 0; round < 2; round++) {
    const out = new OutBuffer();
    e.beginBlock(out);
    for (const [[n, v], p] of fields) e.writeField(out, n, v, p);
    sizes.push(out.len);
    const list = d.decode(out.buf, 0, out.len, Infinity);
    assert.deepEqual(list.names, fields.map(([[n]]) => n));
    assert.deepEqual(list.values, fields.map(([[, v]]) => v));
  }
  assert.deepEqual(tableOf(e.table).map((r) => r[0]), ["content-type"]);
  assert.deepEqual(tableOf(d.table), tableOf(e.table));
  assert.ok(
    sizes[1] < sizes[0],
    `second block ${sizes[1]} < first ${sizes[0]}`,
  );
  // The never-indexed field is sent with the 0x10 pattern (§6.2.3).
  const out = new OutBuffer();
  e.writeField(out, "set-cookie", "id=1", NEVER_INDEX);
  assert.equal(out.buf[0], 0x1f); // 0001 1111: never indexed, name index 55 follows
});

Deno.test("HpackEncoder and HpackDecoder agree over many random lists", () => {
  let seed = 7;
  const rand = (n: number) =>
    (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const e = new HpackEncoder(512);
  const d = new HpackDecoder(4096);
  for (let round = 0; round < 300; round++) {
    const fields: Field[] = [];
    for (let k = rand(8); k >= 0; k--) {
      const name = ["x-a", "x-b", "content-type", ":path", "etag"][rand(5)];
      let value = "";
      for (let j = rand(40); j > 0; j--) {
        value += String.fromCharCode(rand(256));
      }
      fields.push([name, value]);
    }
    const out = new OutBuffer();
    e.beginBlock(out);
    for (const [n, v] of fields) {
      e.writeField(
        out,
        n,
        v,
        [INDEX, NO_INDEX, NEVER_INDEX][rand(3)] as IndexPolicy,
      );
    }
    const list = d.decode(out.buf, 0, out.len, Infinity);
    assert.deepEqual(
      list.names.map((n, i) => [n, list.values[i]]),
      fields,
      `round ${round}`,
    );
    assert.deepEqual(tableOf(d.table), tableOf(e.table), `table ${round}`);
  }
});
