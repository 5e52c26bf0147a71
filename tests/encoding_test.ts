import assert from "node:assert/strict";
import { negotiateEncoding } from "../lib/app/encoding.ts";

const BOTH = ["br", "gzip"] as const;

const cases: [
  acceptEncoding: string | undefined,
  available: readonly string[],
  chosen: string | null,
][] = [
  [undefined, BOTH, "identity"],
  ["", BOTH, "identity"],
  ["gzip", BOTH, "gzip"],
  ["gzip, br", BOTH, "br"], // equal weights: server preference
  ["gzip, deflate, br, zstd", BOTH, "br"],
  ["br;q=0.5, gzip", BOTH, "gzip"],
  ["br;q=0.5, gzip;q=0.8", BOTH, "gzip"],
  ["gzip;q=0.001", BOTH, "gzip"], // a named coding beats unnamed identity
  ["GZIP", BOTH, "gzip"],
  ["x-gzip", BOTH, "gzip"],
  ["deflate", BOTH, "identity"],
  ["*", BOTH, "br"],
  ["*;q=0.5, br;q=0.1", BOTH, "gzip"],
  ["br", ["gzip"], "identity"],
  ["gzip;q=0", BOTH, "identity"],
  ["identity;q=0", BOTH, null],
  ["identity;q=0, gzip", BOTH, "gzip"],
  ["*;q=0", BOTH, null],
  ["*;q=0, gzip", BOTH, "gzip"],
  ["*;q=0, identity", BOTH, "identity"],
  ["*;q=0, identity;q=0.5, gzip;q=0.5", BOTH, "gzip"],
  ["identity;q=0, br;q=0, gzip;q=0", BOTH, null],
  ["identity, gzip;q=0.5", BOTH, "identity"],
  ["identity;q=0", [], null],
  ["gzip", [], "identity"],
  ["gzip;q=2", BOTH, "identity"], // malformed weight: entry dropped
  ["gzip;q=abc", BOTH, "identity"],
  ["gzip;q=1.0001", BOTH, "identity"],
  ["gzip;Q=0.7", BOTH, "gzip"],
  ["gzip ; q=0.7 , br ; q=0.8", BOTH, "br"],
  [",, ,gzip,", BOTH, "gzip"],
  ["gzip;level=9", BOTH, "gzip"],
];
for (const [ae, available, chosen] of cases) {
  Deno.test(`negotiateEncoding() picks ${chosen} for ${JSON.stringify(ae)} of [${available}]`, () => {
    assert.equal(negotiateEncoding(ae, available), chosen);
  });
}

Deno.test("negotiateEncoding() answers each value on its own when values take turns", () => {
  // The last value parsed is remembered; asking again, in any order, must
  // give the same answers as asking once.
  for (let round = 0; round < 2; round++) {
    for (const [ae, available, chosen] of [...cases, ...cases.toReversed()]) {
      assert.equal(negotiateEncoding(ae, available), chosen, `${ae}`);
      assert.equal(negotiateEncoding(ae, available), chosen, `${ae} again`);
    }
  }
});
