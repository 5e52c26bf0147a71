/**
 * `?download=zip` on a folder over real sockets: what goes in (what the site
 * would serve, nothing else), the limits, and memory while 10,000 files and
 * half a gigabyte stream out of a real server process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { staticFiles } from "../lib/app/static_files.ts";
import { DEFAULT_STATIC, type StaticConfig } from "../lib/app/settings.ts";
import { serve } from "../lib/http/server.ts";
import { startMain } from "./fixtures/main_server.ts";
import { pythonMissing, zipReport } from "./helpers/zip_check.ts";

const noPython = pythonMissing();
if (noPython !== undefined) console.log(`zip checks skipped: ${noPython}`);

/** A root with a folder to archive, the awkward entries included. */
async function makeTree(): Promise<{ base: string; root: string }> {
  const base = await Deno.makeTempDir({ prefix: "spindle-zip-" });
  const root = join(base, "root");
  const w = (path: string, text: string) =>
    Deno.writeTextFile(join(root, path), text);
  for (
    const dir of ["share/sub/deeper", "share/.git", "share/empty", "other"]
  ) {
    await Deno.mkdir(join(root, dir), { recursive: true });
  }
  await Deno.writeTextFile(join(base, "secret.txt"), "SECRET");
  await w("share/a.txt", "alpha\n");
  await w("share/film.mkv", "not really a film\n");
  await w("share/sub/b.md", "# b\n");
  await w("share/sub/deeper/c.bin", "c");
  await w("share/.env", "PASSWORD=x\n");
  await w("share/.git/config", "[core]\n");
  await w("other/linked.txt", "linked from elsewhere in the root\n");
  await Deno.symlink(
    join(root, "other/linked.txt"),
    join(root, "share/in.txt"),
  );
  await Deno.symlink(join(root, "other"), join(root, "share/other-dir"));
  await Deno.symlink(join(base, "secret.txt"), join(root, "share/out.txt"));
  await Deno.symlink(base, join(root, "share/out-dir"));
  await Deno.symlink(join(root, "share"), join(root, "share/sub/loop"));
  await Deno.symlink(join(root, "share/.env"), join(root, "share/env.txt"));
  await Deno.symlink(join(root, "nowhere"), join(root, "share/dangling.txt"));
  await w("share/back\\slash.txt", "no URL names this\n");
  return { base, root };
}

function startStatic(
  root: string,
  config: Partial<StaticConfig> = {},
  tuning = {},
) {
  const handler = staticFiles(
    { ...DEFAULT_STATIC, root, listDirs: true, ...config },
    { revalidateMs: 0, ...tuning },
  );
  return serve({ port: 0, accessLog: false }, handler);
}

Deno.test({
  name:
    "?download=zip sends the folder as the site serves it: no dotfiles, no links out, each folder once",
  ignore: noPython !== undefined,
  async fn() {
    const { base, root } = await makeTree();
    try {
      await using server = startStatic(root);
      const res = await fetch(
        `http://127.0.0.1:${server.port}/share/?download=zip`,
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/zip");
      assert.match(
        res.headers.get("content-disposition")!,
        /filename="share\.zip"/,
      );
      const report = await zipReport(await res.bytes());
      assert.equal(report.bad, null);
      const byName = new Map(report.entries.map((e) => [e.name, e]));
      assert.deepEqual([...byName.keys()].sort(), [
        "share/",
        "share/a.txt",
        "share/empty/",
        "share/film.mkv",
        "share/in.txt",
        "share/other-dir/",
        "share/other-dir/linked.txt",
        "share/sub/",
        "share/sub/b.md",
        "share/sub/deeper/",
        "share/sub/deeper/c.bin",
      ]);
      assert.equal(
        byName.get("share/in.txt")!.text,
        "linked from elsewhere in the root\n",
      );
      assert.equal(byName.get("share/a.txt")!.text, "alpha\n");
      for (const e of report.entries) assert.ok(e.text !== "SECRET", e.name);

      // HEAD: the same status and headers, no body, nothing read.
      const head = await fetch(
        `http://127.0.0.1:${server.port}/share/?download=zip`,
        {
          method: "HEAD",
        },
      );
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-type"), "application/zip");
      assert.equal((await head.bytes()).length, 0);

      // Outside the extension policy: left out, as the listing leaves it out.
      await using web = startStatic(root, { allowExt: ["txt", "md"] });
      const only = await zipReport(
        await (await fetch(`http://127.0.0.1:${web.port}/share/?download=zip`))
          .bytes(),
      );
      const names = only.entries.map((e) => e.name);
      assert.ok(
        !names.includes("share/film.mkv") &&
          !names.includes("share/sub/deeper/c.bin"),
      );
      assert.ok(names.includes("share/sub/b.md"));

      // The root's archive is named after the root folder.
      const top = await fetch(`http://127.0.0.1:${server.port}/?download=zip`);
      assert.match(
        top.headers.get("content-disposition")!,
        /filename="root\.zip"/,
      );
      await top.body?.cancel();
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test("?download=zip answers 413 over --archive-max or the entry limit, before a byte of the zip", async () => {
  const { base, root } = await makeTree();
  try {
    await using small = startStatic(root, { archiveMaxBytes: 10 });
    const over = await fetch(
      `http://127.0.0.1:${small.port}/share/?download=zip`,
      {
        headers: { accept: "text/html" },
      },
    );
    assert.equal(over.status, 413);
    assert.match(
      await over.text(),
      /too large to download as one archive: more than 10 B \(--archive-max\)/,
    );
    await using few = startStatic(root, {}, { maxArchiveEntries: 3 });
    const many = await fetch(
      `http://127.0.0.1:${few.port}/share/?download=zip`,
    );
    assert.equal(many.status, 413);
    assert.match(await many.text(), /more than 3 files and folders/);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("?download=zip is 404 without listings or with --archive-max 0, 400 for another format", async () => {
  const { base, root } = await makeTree();
  try {
    await using off = startStatic(root, { archiveMaxBytes: 0 });
    const a = await fetch(`http://127.0.0.1:${off.port}/share/?download=zip`);
    assert.equal(a.status, 404);
    assert.match(await a.text(), /not enabled/);
    const page = await (await fetch(`http://127.0.0.1:${off.port}/share/`))
      .text();
    assert.ok(!page.includes("download=zip"), "no button for what is off");
    await using unlisted = startStatic(root, { listDirs: false });
    const b = await fetch(
      `http://127.0.0.1:${unlisted.port}/share/?download=zip`,
    );
    assert.equal(b.status, 404);
    await b.body?.cancel();
    await using on = startStatic(root);
    const c = await fetch(`http://127.0.0.1:${on.port}/share/?download=tar`);
    assert.equal(c.status, 400);
    assert.match(await c.text(), /Unknown download format "tar": use zip/);
    const d = await fetch(
      `http://127.0.0.1:${on.port}/share/a.txt?download=zip`,
    );
    assert.equal(await d.text(), "alpha\n", "a file ignores the parameter");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test({
  name:
    "?download=zip writes Zip64 records for big files, and Python reads them",
  ignore: noPython !== undefined,
  async fn() {
    const { base, root } = await makeTree();
    try {
      await Deno.writeFile(
        join(root, "share/big.bin"),
        new Uint8Array(300_000).fill(7),
      );
      await using server = startStatic(root, {}, {
        zip64FromBytes: 100_000,
        readChunkBytes: 4096,
      });
      const res = await fetch(
        `http://127.0.0.1:${server.port}/share/?download=zip`,
      );
      const report = await zipReport(await res.bytes());
      assert.equal(report.bad, null);
      const big = report.entries.find((e) => e.name === "share/big.bin")!;
      assert.equal(big.size, 300_000);
      assert.equal(big.zip64, true);
      assert.equal(
        report.entries.find((e) => e.name === "share/a.txt")!.zip64,
        false,
      );
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

/** VmHWM (peak resident memory) of a process, in bytes. */
async function peakRss(pid: number): Promise<number> {
  // Deno reads /proc/<pid>/ only with --allow-all; cat needs just --allow-run.
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] })
    .output();
  const status = new TextDecoder().decode(out.stdout);
  const kib = /VmHWM:\s+(\d+) kB/.exec(status);
  if (kib === null) throw new Error("no VmHWM in /proc status");
  return Number(kib[1]) * 1024;
}

const FILES = 10_000;
const SPARSE_BYTES = 256 * 1024 * 1024;
/** Growth of the server's peak memory the archive may cause, far under what it sends. */
const MEMORY_BOUND_BYTES = 96 * 1024 * 1024; // measured: 47-51 MiB, busy machine

Deno.test({
  name:
    `a zip of ${FILES} files and 512 MiB streams from a real server with its peak memory up by under 96 MiB`,
  ignore: Deno.build.os !== "linux",
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "spindle-zipmem-" });
    try {
      const dir = join(base, "many");
      await Deno.mkdir(dir);
      const small = new Uint8Array(4096).fill(0x61);
      for (let i = 0; i < FILES; i++) {
        await Deno.writeFile(
          join(dir, `f${String(i).padStart(5, "0")}.txt`),
          small,
        );
      }
      // Sparse: half a gigabyte to send, none of it on disk.
      for (const name of ["big-1.bin", "big-2.bin"]) {
        using f = await Deno.open(join(dir, name), {
          write: true,
          create: true,
        });
        await f.truncate(SPARSE_BYTES);
      }
      await Deno.writeTextFile(join(base, "index.html"), "<p>home</p>");
      await using main = await startMain([`--allow-read=${base}`], [
        "--root",
        base,
        "--list-dirs",
      ]);
      // Warm up: one small archive, so the code paths and buffers exist.
      const warm = await fetch(`${main.origin}/many/?download=zip&sort=name`);
      assert.equal(warm.status, 200);
      await warm.body?.cancel();
      const before = await peakRss(main.pid);

      const res = await fetch(`${main.origin}/many/?download=zip`);
      assert.equal(res.status, 200);
      let total = 0;
      let tail = new Uint8Array(0);
      for await (const chunk of res.body!) {
        total += chunk.length;
        const joined = new Uint8Array(
          Math.min(tail.length + chunk.length, 4096),
        );
        const keep = joined.length - Math.min(chunk.length, joined.length);
        joined.set(tail.subarray(tail.length - keep), 0);
        joined.set(chunk.subarray(chunk.length - (joined.length - keep)), keep);
        tail = joined;
      }
      const after = await peakRss(main.pid);
      const expected = FILES * 4096 + 2 * SPARSE_BYTES;
      assert.ok(total > expected, `sent ${total} bytes, want over ${expected}`);
      // The end record counts every entry: the folder, the files, the two big ones.
      const end = tail.subarray(tail.length - 22);
      const view = new DataView(end.buffer, end.byteOffset);
      assert.equal(
        view.getUint32(0, true),
        0x06054b50,
        "ends with the end record",
      );
      assert.equal(view.getUint16(10, true), FILES + 3);
      const grew = after - before;
      console.log(
        `peak RSS ${(before / 2 ** 20).toFixed(0)} MiB -> ${
          (after / 2 ** 20).toFixed(0)
        } MiB ` +
          `while sending ${(total / 2 ** 20).toFixed(0)} MiB`,
      );
      assert.ok(
        grew < MEMORY_BOUND_BYTES,
        `peak memory grew ${(grew / 2 ** 20).toFixed(1)} MiB sending ${
          (total / 2 ** 20).toFixed(0)
        } MiB`,
      );
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});
