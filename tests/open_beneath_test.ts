/**
 * isBeneath(), lookBeneath() and openBeneath() on real folders. The race
 * they close is run against a real server in tests/symlink_race_test.ts.
 */
import assert from "node:assert/strict";
import {
  isBeneath,
  lookBeneath,
  openBeneath,
} from "../lib/app/open_beneath.ts";
import { tempRoot } from "./fixtures/static_request.ts";

const beneath: [real: string, root: string, denyDots: boolean, ok: boolean][] =
  [
    ["/srv/site/a/b.txt", "/srv/site", true, true],
    ["/srv/site", "/srv/site", true, true],
    ["/srv/site-2/b.txt", "/srv/site", true, false], // same prefix, not inside
    ["/srv/b.txt", "/srv/site", true, false],
    ["/srv/site/.env", "/srv/site", true, false],
    ["/srv/site/a/.git/config", "/srv/site", true, false],
    ["/srv/site/.env", "/srv/site", false, true],
    ["/srv/.hidden/site/a.txt", "/srv/.hidden/site", true, true], // above the root
    ["/a.txt", "/", true, true],
  ];
for (const [real, root, denyDots, ok] of beneath) {
  Deno.test(`isBeneath() is ${ok} for ${real} under ${root}${denyDots ? "" : " (dots allowed)"}`, () => {
    assert.equal(isBeneath(real, root, denyDots), ok);
  });
}

/** root/a/b/f.txt, and outside/f.txt beside the root. */
async function makeTree() {
  const tmp = await tempRoot();
  const root = `${tmp.path}/root`;
  await Deno.mkdir(`${root}/a/b`, { recursive: true });
  await Deno.mkdir(`${tmp.path}/outside/b`, { recursive: true });
  await Deno.writeTextFile(`${root}/a/b/f.txt`, "inside");
  await Deno.writeTextFile(`${tmp.path}/outside/b/f.txt`, "outside");
  return {
    tmp,
    root,
    file: `${root}/a/b/f.txt`,
    outside: `${tmp.path}/outside`,
  };
}

// A `sinceMs` ahead of every change made by the test: "settled" at once.
const LATER = () => Date.now() + 5000;

Deno.test("lookBeneath() sees a plain path as ok, with the lstat of the file", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  const look = lookBeneath(t.root, t.file, LATER(), true);
  assert.equal(look.kind, "ok");
  assert.equal(look.kind === "ok" && look.info.size, "inside".length);
});

Deno.test("lookBeneath() answers changed for a folder on the path turned into a symlink", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  await Deno.rename(`${t.root}/a`, `${t.root}/a.bak`);
  await Deno.symlink(t.outside, `${t.root}/a`); // a/b/f.txt now reads outside
  assert.equal(lookBeneath(t.root, t.file, LATER(), true).kind, "changed");
  await Deno.remove(`${t.root}/a`);
  await Deno.symlink(`${t.root}/a.bak`, `${t.root}/a`); // inside, still a symlink
  assert.equal(lookBeneath(t.root, t.file, LATER(), true).kind, "changed");
});

Deno.test("lookBeneath() answers changed for the file turned into a symlink", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  await Deno.remove(t.file);
  await Deno.symlink(`${t.outside}/b/f.txt`, t.file);
  assert.equal(lookBeneath(t.root, t.file, LATER(), true).kind, "changed");
});

Deno.test("lookBeneath() answers unsettled while a folder above the file's own changed since", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  const since = Date.now();
  await Deno.writeTextFile(`${t.root}/a/new.txt`, "x"); // a/ changes: it holds b/
  const look = lookBeneath(t.root, t.file, since, true);
  assert.equal(look.kind, "unsettled");
  const ctime = Deno.statSync(`${t.root}/a`).ctime!.getTime();
  if (look.kind === "unsettled") {
    assert.ok(look.untilMs > since, "a later look can tell");
    assert.ok(
      look.untilMs <= ctime + 1100,
      "within its ctime second and a tick",
    );
  }
});

Deno.test("lookBeneath() lets the folder holding the file change, unless asked not to", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  // Deno gives ctime in whole seconds: start in a second after the tree's.
  await new Promise((r) => setTimeout(r, 1030 - Date.now() % 1000));
  const since = Date.now();
  await Deno.writeTextFile(`${t.root}/a/b/other.txt`, "x"); // only b/ changes
  assert.equal(lookBeneath(t.root, t.file, since, true).kind, "ok");
  // A folder read by path (a listing) must not change while it is read.
  assert.equal(lookBeneath(t.root, t.file, since, false).kind, "unsettled");
  await Deno.writeTextFile(`${t.root}/a/other.txt`, "x"); // a/ holds b/
  assert.equal(lookBeneath(t.root, t.file, since, true).kind, "unsettled");
});

Deno.test("openBeneath() opens a file under the root, waiting out a folder changed just before", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  // The tree was made this very second: its folders have not settled yet.
  const opened = await openBeneath(t.root, t.file);
  assert.ok(opened !== null);
  using file = opened.file;
  assert.equal(opened.info.size, "inside".length);
  const buf = new Uint8Array(6);
  assert.equal(await file.read(buf), 6);
  assert.equal(new TextDecoder().decode(buf), "inside");
});

Deno.test("openBeneath() refuses a symlink, a FIFO, and a file accept() turns down", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  await Deno.symlink(t.file, `${t.root}/link.txt`);
  assert.equal(await openBeneath(t.root, `${t.root}/link.txt`), null);
  const fifo = `${t.root}/pipe`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(made.success, "mkfifo");
  assert.equal(await openBeneath(t.root, fifo), null); // never opened: no hang
  const refused = await openBeneath(t.root, `${t.root}/a/b/f.txt`, {
    accept: (info) => info.size === 0,
  });
  assert.equal(refused, null);
});

Deno.test("openBeneath() refuses a file with two names under strictLinks only", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  const twin = `${t.root}/twin.txt`;
  await Deno.link(`${t.outside}/b/f.txt`, twin); // a hard link to a file outside
  const loose = await openBeneath(t.root, twin);
  assert.ok(loose !== null, "a path check cannot tell a hard link");
  loose.file.close();
  assert.equal(await openBeneath(t.root, twin, { strictLinks: true }), null);
});

Deno.test("openBeneath() throws NotFound for a missing file", async () => {
  const t = await makeTree();
  await using _ = t.tmp;
  await assert.rejects(
    openBeneath(t.root, `${t.root}/a/nope.txt`),
    Deno.errors.NotFound,
  );
});
