/**
 * Reads a zip back with programs other than ours: Python's zipfile (which
 * checks every CRC in testzip()) and Info-ZIP's unzip.
 */

/** One entry as Python's zipfile sees it. */
export interface ZipEntryReport {
  readonly name: string;
  readonly size: number;
  /** [year, month, day, hour, minute, second] from the DOS fields. */
  readonly date: number[];
  /** Unix mode from the external attributes. */
  readonly mode: number;
  /** The central directory entry has a Zip64 extra field. */
  readonly zip64: boolean;
  /** Contents as text, for entries up to 64 bytes. */
  readonly text?: string;
}

export interface ZipReport {
  /** Entries, unless `entriesOnly` asked for the count alone. */
  readonly entries: ZipEntryReport[];
  readonly count: number;
  /** First entry whose CRC or size is wrong, or null. */
  readonly bad: string | null;
  /** The archive ends with Zip64 end records. */
  readonly zip64: boolean;
}

const SCRIPT = `
import json, struct, sys, zipfile
path, entries_only = sys.argv[1], sys.argv[2] == "1"
z = zipfile.ZipFile(path)
out = []
for i in z.infolist():
    if entries_only:
        continue
    extra, zip64, at = i.extra, False, 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[at:at + 4])
        zip64 = zip64 or tag == 1
        at += 4 + size
    e = {"name": i.filename, "size": i.file_size, "date": list(i.date_time),
         "mode": i.external_attr >> 16, "zip64": zip64}
    if i.file_size <= 64 and not i.is_dir():
        e["text"] = z.read(i).decode("utf-8", "replace")
    out.append(e)
print(json.dumps({"entries": out, "count": len(z.infolist()), "bad": z.testzip()}))
`;

/** A reason Python cannot check zips here, or undefined. */
export function pythonMissing(): string | undefined {
  try {
    const out = new Deno.Command("python3", { args: ["-c", "import zipfile"] })
      .outputSync();
    return out.success ? undefined : "python3 cannot import zipfile";
  } catch {
    return "python3 not found";
  }
}

/** A reason Info-ZIP's unzip cannot run here, or undefined. */
export function unzipMissing(): string | undefined {
  try {
    new Deno.Command("unzip", { args: ["-v"], stdout: "null" }).outputSync();
    return undefined;
  } catch {
    return "unzip not found";
  }
}

/** What Python's zipfile reads in `zip` (bytes, or the path of a file). */
export async function zipReport(
  zip: Uint8Array | string,
  opts: { entriesOnly?: boolean } = {},
): Promise<ZipReport> {
  let path = typeof zip === "string" ? zip : undefined;
  if (path === undefined) {
    path = await Deno.makeTempFile({ suffix: ".zip" });
    await Deno.writeFile(path, zip as Uint8Array);
  }
  try {
    const out = await new Deno.Command("python3", {
      args: ["-c", SCRIPT, path, opts.entriesOnly ? "1" : "0"],
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    if (!out.success) throw new Error(`python3 could not read the zip: ${err}`);
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    return { ...report, zip64: await endsWithZip64(path) };
  } finally {
    if (typeof zip !== "string") await Deno.remove(path);
  }
}

/** True when the Zip64 end-of-central-directory locator sits before the end record. */
async function endsWithZip64(path: string): Promise<boolean> {
  using file = await Deno.open(path);
  const size = (await file.stat()).size;
  const tail = new Uint8Array(Math.min(size, 22 + 20));
  await file.seek(size - tail.length, Deno.SeekMode.Start);
  for (let at = 0; at < tail.length;) {
    const n = await file.read(tail.subarray(at));
    if (n === null) break;
    at += n;
  }
  // The locator ("PK\x06\x07") is 20 bytes, right before the 22-byte end record.
  return tail.length === 42 && tail[0] === 0x50 && tail[1] === 0x4b &&
    tail[2] === 6 && tail[3] === 7;
}
