import assert from "node:assert/strict";
import { join } from "node:path";
import {
  FileChanged,
  type OnDisk,
  openChecked,
  readPieces,
  readWhole,
  sameNode,
  sameVersion,
  versionOf,
} from "../lib/app/file_version.ts";
import { tempRoot } from "./fixtures/static_request.ts";

async function onDisk(root: string, name: string): Promise<OnDisk> {
  const path = join(root, name);
  return {
    path,
    root,
    strictLinks: false,
    ...versionOf(await Deno.stat(path)),
  };
}

Deno.test("sameVersion() and sameNode() tell an edit from a new file", async () => {
  await using tmp = await tempRoot();
  const path = join(tmp.path, "f.txt");
  await Deno.writeTextFile(path, "one");
  const before = versionOf(await Deno.stat(path));
  assert.ok(sameVersion(before, versionOf(await Deno.stat(path))));
  await Deno.writeTextFile(path, "three");
  const edited = versionOf(await Deno.stat(path));
  assert.ok(!sameVersion(before, edited), "size changed");
  assert.ok(sameNode(before, edited), "still the same inode");
  // Another file, both there at once: another inode.
  await Deno.writeTextFile(join(tmp.path, "other"), "three");
  const other = versionOf(await Deno.stat(join(tmp.path, "other")));
  assert.ok(!sameNode(edited, other));
  assert.ok(!sameVersion(edited, other));
});

Deno.test("openChecked() and readWhole() read the version found, else FileChanged", async () => {
  await using tmp = await tempRoot();
  await Deno.writeTextFile(join(tmp.path, "f.txt"), "hello");
  const file = await onDisk(tmp.path, "f.txt");
  assert.equal(new TextDecoder().decode(await readWhole(file)), "hello");
  await Deno.writeTextFile(join(tmp.path, "f.txt"), "hello, world");
  await assert.rejects(openChecked(file), FileChanged);
  await Deno.remove(join(tmp.path, "f.txt"));
  await assert.rejects(readWhole(file), FileChanged);
});

Deno.test("readPieces() reads in pieces, returns the count, and stops short at the end", async () => {
  await using tmp = await tempRoot();
  const path = join(tmp.path, "f.bin");
  await Deno.writeFile(path, new Uint8Array(10).map((_, i) => i));
  using file = await Deno.open(path);
  const pieces: number[][] = [];
  const gen = readPieces(file, 25, 4);
  let step = await gen.next();
  for (; !step.done; step = await gen.next()) pieces.push([...step.value]);
  assert.equal(step.value, 10, "the file held 10 bytes of the 25 asked");
  assert.deepEqual(pieces, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  // With a buffer to reuse, each piece is a view of it.
  await file.seek(0, Deno.SeekMode.Start);
  const reuse = new Uint8Array(4);
  for await (const piece of readPieces(file, 6, 4, reuse)) {
    assert.equal(piece.buffer, reuse.buffer);
  }
});
