/**
 * FolderQuota on real folders: a tree counted once, temp files and what
 * symlinks point at left out, room reserved while bytes arrive, and a
 * recount when the quota looks full.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TEMP_PREFIX } from "../lib/app/atomic_write.ts";
import { FolderQuota } from "../lib/app/folder_quota.ts";

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "spindle-quota-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

Deno.test("FolderQuota counts files in subfolders, not temp files, and not what symlinks lead to", async () => {
  await using dir = await tempDir();
  await using outside = await tempDir();
  await Deno.mkdir(join(dir.path, "a", "b"), { recursive: true });
  await Deno.writeFile(join(dir.path, "top.bin"), new Uint8Array(10));
  await Deno.writeFile(
    join(dir.path, "a", "b", "deep.bin"),
    new Uint8Array(20),
  );
  await Deno.writeFile(
    join(dir.path, "a", `${TEMP_PREFIX}1-00`),
    new Uint8Array(40),
  );
  await Deno.writeFile(join(outside.path, "big.bin"), new Uint8Array(1000));
  await Deno.symlink(outside.path, join(dir.path, "link"));
  await Deno.symlink(join(outside.path, "big.bin"), join(dir.path, "big-link"));
  const quota = new FolderQuota({ dir: dir.path, quotaBytes: 100 });
  await quota.ready();
  assert.equal(quota.usedBytes, 30);
});

Deno.test("FolderQuota reserves bytes in flight, and stored, released and freed bytes move the count", async () => {
  await using dir = await tempDir();
  const quota = new FolderQuota({ dir: dir.path, quotaBytes: 100 });
  await quota.reserve(60); // the first reserve counts the folder: a promise
  assert.equal(quota.reserve(30), undefined, "room known: no promise");
  await assert.rejects(async () => await quota.reserve(20), { status: 507 });
  quota.release(30);
  quota.stored(60);
  assert.equal(quota.usedBytes, 60);
  await quota.reserve(40);
  quota.stored(40);
  quota.freed(50); // a file of 50 bytes replaced or removed
  assert.equal(quota.usedBytes, 50);
  await quota.check(50);
  await assert.rejects(quota.check(51), { status: 507 });
});

Deno.test("FolderQuota counts again when full, at most once a second", async () => {
  await using dir = await tempDir();
  let now = 1_000_000;
  const quota = new FolderQuota({
    dir: dir.path,
    quotaBytes: 100,
    now: () => now,
  });
  await Deno.writeFile(join(dir.path, "a.bin"), new Uint8Array(90));
  await assert.rejects(quota.check(20), { status: 507 });
  await Deno.remove(join(dir.path, "a.bin"));
  // Found full a moment ago: no count, whatever the disk holds.
  await assert.rejects(quota.check(20), { status: 507 });
  now += 1000;
  await quota.check(20);
  assert.equal(quota.usedBytes, 0);
});
