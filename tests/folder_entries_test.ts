import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type FolderPolicy,
  isServableName,
  readFolder,
} from "../lib/app/folder_entries.ts";
import { tempRoot } from "./fixtures/static_request.ts";

/** A site with what a folder read must show and leave out. */
async function site(root: string): Promise<string> {
  const dir = join(root, "site");
  await Deno.mkdir(join(dir, "sub"), { recursive: true });
  await Deno.mkdir(join(dir, ".git"));
  await Deno.mkdir(join(root, "outside"));
  await Deno.writeTextFile(join(root, "outside", "secret.txt"), "no");
  for (const name of ["a.txt", "b.html", "c.exe", ".env", "back\\slash.txt"]) {
    await Deno.writeTextFile(join(dir, name), name);
  }
  await Deno.symlink(join(dir, "b.html"), join(dir, "link.txt"));
  await Deno.symlink(join(root, "outside"), join(dir, "out"));
  await Deno.symlink(join(dir, "nowhere"), join(dir, "dangling"));
  await Deno.link(join(dir, "a.txt"), join(dir, "hard.txt"));
  return dir;
}

function policy(root: string, over: Partial<FolderPolicy> = {}): FolderPolicy {
  return {
    root,
    denyDots: true,
    strictLinks: false,
    serves: (name) => !name.endsWith(".exe"),
    ...over,
  };
}

function names(read: Awaited<ReturnType<typeof readFolder>>): string[] {
  assert.ok(read !== null);
  return read.entries.map((e) => e.name).sort();
}

Deno.test("readFolder() shows what the static handler would serve, and nothing else", async () => {
  await using tmp = await tempRoot();
  const dir = await site(tmp.path);
  const read = await readFolder(dir, policy(dir));
  // Not .env, .git, c.exe, the backslash name, the link out, the dangling link.
  assert.deepEqual(names(read), [
    "a.txt",
    "b.html",
    "hard.txt",
    "link.txt",
    "sub",
  ]);
  // A link is shown by its own name, checked by what it points at.
  const link = read!.entries.find((e) => e.name === "link.txt")!;
  assert.equal(link.real, join(dir, "b.html"));
  assert.equal(read!.truncated, false);
});

Deno.test("readFolder() follows the policy: dotfiles, hard links, extensions", async () => {
  await using tmp = await tempRoot();
  const dir = await site(tmp.path);
  const open = await readFolder(dir, policy(dir, { denyDots: false }));
  assert.ok(names(open).includes(".env") && names(open).includes(".git"));
  const strict = await readFolder(dir, policy(dir, { strictLinks: true }));
  assert.ok(
    !names(strict).includes("a.txt") && !names(strict).includes("hard.txt"),
  );
  // The link's target decides: link.txt points at an .html file.
  const noHtml = await readFolder(
    dir,
    policy(dir, { serves: (n) => !n.endsWith(".html") && !n.endsWith(".exe") }),
  );
  assert.ok(!names(noHtml).includes("link.txt"));
});

Deno.test("readFolder() stops at maxEntries and says so", async () => {
  await using tmp = await tempRoot();
  const dir = await site(tmp.path);
  const read = await readFolder(dir, policy(dir), { maxEntries: 2 });
  assert.ok(read !== null);
  assert.equal(read.truncated, true);
  assert.ok(read.entries.length <= 2);
});

Deno.test("readFolder() is null when another folder stands where the one found was", async () => {
  await using tmp = await tempRoot();
  const dir = await site(tmp.path);
  const found = await Deno.stat(dir);
  assert.ok(await readFolder(dir, policy(dir), { node: found }) !== null);
  await Deno.rename(dir, join(tmp.path, "old"));
  await Deno.mkdir(dir);
  // The same path, another inode: not the folder found.
  assert.equal(await readFolder(dir, policy(dir), { node: found }), null);
});

Deno.test("readFolder() throws what reading a missing folder throws", async () => {
  await using tmp = await tempRoot();
  const gone = join(tmp.path, "gone");
  await assert.rejects(
    readFolder(gone, policy(tmp.path)),
    Deno.errors.NotFound,
  );
});

Deno.test("isServableName() refuses names no URL can reach", () => {
  assert.ok(isServableName("a b.txt"));
  assert.ok(isServableName("über.txt"));
  for (const name of ["back\\slash", "ends.", "nul.txt", "a\u0001b"]) {
    assert.ok(!isServableName(name), name);
  }
});
