/**
 * ZipWriter's bytes, read back by other programs: Python's zipfile (CRCs,
 * sizes, Zip64) and Info-ZIP's unzip where installed.
 */
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { ZipWriter } from "../lib/app/zip_stream.ts";
import { pythonMissing, unzipMissing, zipReport } from "./helpers/zip_check.ts";

const noPython = pythonMissing();
if (noPython !== undefined) console.log(`zip checks skipped: ${noPython}`);
const noUnzip = unzipMissing();
if (noUnzip !== undefined) console.log(`unzip check skipped: ${noUnzip}`);

const encoder = new TextEncoder();

/** A zip of `files` (name -> text) and folders, in one buffer. */
function build(
  files: [name: string, text: string][],
  opts: { zip64FromBytes?: number; folders?: string[] } = {},
): Uint8Array {
  const zip = new ZipWriter({ zip64FromBytes: opts.zip64FromBytes });
  const parts: Uint8Array[] = [];
  for (const folder of opts.folders ?? []) {
    parts.push(zip.directory(folder, Date.UTC(2024, 0, 2, 3, 4, 6)));
  }
  for (const [name, text] of files) {
    const data = encoder.encode(text);
    parts.push(
      zip.beginFile(name, Date.UTC(2024, 0, 2, 3, 4, 6), 0o644, data.length),
      data,
      zip.endFile(crc32(data), data.length),
    );
  }
  parts.push(zip.finish());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  assert.equal(zip.offset, out.length, "offset counts every byte");
  return out;
}

Deno.test({
  name:
    "ZipWriter writes a zip that Python reads back: names, sizes, CRCs, dates, modes",
  ignore: noPython !== undefined,
  fn: async () => {
    const bytes = build([
      ["top/a.txt", "alpha\n"],
      ["top/sub/ünïcode ✓.txt", "b".repeat(70_000)],
      ["top/empty.txt", ""],
    ], { folders: ["top", "top/sub"] });
    const report = await zipReport(bytes);
    assert.equal(report.bad, null, "every CRC checks");
    assert.deepEqual(report.entries.map((e) => [e.name, e.size]), [
      ["top/", 0],
      ["top/sub/", 0],
      ["top/a.txt", 6],
      ["top/sub/ünïcode ✓.txt", 70_000],
      ["top/empty.txt", 0],
    ]);
    const a = report.entries[2];
    assert.deepEqual(a.date, [2024, 1, 2, 3, 4, 6]);
    assert.equal(a.mode, 0o100644);
    assert.equal(report.entries[0].mode, 0o040755);
    assert.equal(a.text, "alpha\n");
    assert.equal(report.zip64, false);
  },
});

Deno.test({
  name:
    "ZipWriter writes Zip64 records for files at the threshold, and readers follow them",
  ignore: noPython !== undefined,
  fn: async () => {
    const bytes = build([["big.bin", "x".repeat(5000)], ["small.txt", "s"]], {
      zip64FromBytes: 4096,
    });
    const report = await zipReport(bytes);
    assert.equal(report.bad, null);
    assert.deepEqual(report.entries.map((e) => [e.name, e.size]), [
      ["big.bin", 5000],
      ["small.txt", 1],
    ]);
    assert.equal(
      report.entries[0].zip64,
      true,
      "the big file's extra is Zip64",
    );
    assert.equal(report.entries[1].zip64, false);
  },
});

Deno.test({
  name: "ZipWriter writes the Zip64 end records past 65,535 entries",
  ignore: noPython !== undefined,
  fn: async () => {
    const files: [string, string][] = [];
    for (let i = 0; i < 70_000; i++) files.push([`f${i}`, ""]);
    const bytes = build(files);
    const report = await zipReport(bytes, { entriesOnly: true });
    assert.equal(report.bad, null);
    assert.equal(report.count, 70_000);
    assert.equal(report.zip64, true);
  },
});

Deno.test({
  name: "Info-ZIP's unzip tests a ZipWriter zip, Zip64 included",
  ignore: noUnzip !== undefined,
  async fn() {
    const bytes = build([["a/x.txt", "x".repeat(9000)], ["a/y.txt", "y"]], {
      folders: ["a"],
      zip64FromBytes: 8192,
    });
    const path = await Deno.makeTempFile({ suffix: ".zip" });
    try {
      await Deno.writeFile(path, bytes);
      const out = await new Deno.Command("unzip", { args: ["-t", path] })
        .output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, text);
      assert.match(text, /No errors detected/);
      assert.match(text, /testing: a\/x\.txt +OK/);
    } finally {
      await Deno.remove(path);
    }
  },
});

Deno.test("ZipWriter refuses an entry while a file is open, and an end with none", () => {
  const zip = new ZipWriter();
  assert.throws(() => zip.endFile(0, 0), /No file entry is open/);
  zip.beginFile("a", 0, 0o644, 1);
  assert.throws(() => zip.directory("b", 0), /has not ended/);
  assert.throws(() => zip.finish(), /has not ended/);
});

Deno.test({
  name: "ZipWriter clamps dates before 1980 to the format's first day",
  ignore: noPython !== undefined,
  fn: async () => {
    const zip = new ZipWriter();
    const parts = [
      zip.beginFile("old.txt", Date.UTC(1970, 0, 1), 0o644, 0),
      zip.endFile(0, 0),
      zip.finish(),
    ];
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    const report = await zipReport(bytes);
    assert.deepEqual(report.entries[0].date, [1980, 1, 1, 0, 0, 0]);
  },
});
