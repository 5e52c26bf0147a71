import assert from "node:assert/strict";
import { join } from "node:path";
import {
  filterEntries,
  formatSize,
  type ListingEntry,
  type ListingView,
  parseView,
  renderListing,
  renderListingJson,
  sortEntries,
} from "../lib/app/dir_listing.ts";
import { startApp } from "./fixtures/app_server.ts";

const DAY = 86_400_000;
const ENTRIES: ListingEntry[] = [
  { name: "b.txt", isDirectory: false, size: 10, mtimeMs: 3 * DAY },
  { name: "a10.txt", isDirectory: false, size: 3000, mtimeMs: 1 * DAY },
  { name: "a2.txt", isDirectory: false, size: 200, mtimeMs: 2 * DAY },
  { name: "zeta", isDirectory: true, size: null, mtimeMs: 5 * DAY },
  { name: "Alpha", isDirectory: true, size: null, mtimeMs: 4 * DAY },
];
const names = (entries: ListingEntry[]) => entries.map((e) => e.name);
const HTML_VIEW: ListingView = {
  sort: "name",
  order: "asc",
  filter: "",
  format: "html",
};
const OPTS = { archive: true, truncated: false };

const orders: [query: string, expected: string[]][] = [
  ["", ["Alpha", "zeta", "a2.txt", "a10.txt", "b.txt"]],
  ["sort=name&order=desc", ["zeta", "Alpha", "b.txt", "a10.txt", "a2.txt"]],
  ["sort=size", ["Alpha", "zeta", "a10.txt", "a2.txt", "b.txt"]],
  ["sort=size&order=asc", ["Alpha", "zeta", "b.txt", "a2.txt", "a10.txt"]],
  ["sort=date", ["zeta", "Alpha", "b.txt", "a2.txt", "a10.txt"]],
  ["sort=date&order=asc", ["Alpha", "zeta", "a10.txt", "a2.txt", "b.txt"]],
];
for (const [query, expected] of orders) {
  Deno.test(`sortEntries() orders folders first, then by ?${query || "(default)"}`, () => {
    const view = parseView(query, undefined);
    assert.deepEqual(names(sortEntries([...ENTRIES], view)), expected);
  });
}

const refused: [query: string, message: RegExp][] = [
  ["sort=colour", /Unknown sort "colour"/],
  ["order=sideways", /Unknown order "sideways"/],
  ["format=xml", /Unknown format "xml"/],
  [`q=${"x".repeat(300)}`, /Filter longer than 255/],
];
for (const [query, message] of refused) {
  Deno.test(`parseView() answers 400 for ?${query.slice(0, 30)}`, () => {
    assert.throws(() => parseView(query, undefined), (err: unknown) => {
      assert.equal((err as { status?: number }).status, 400);
      assert.match((err as { expose: string }).expose, message);
      return true;
    });
  });
}

Deno.test("parseView() picks JSON from ?format=json or an Accept without text/html", () => {
  assert.equal(parseView("format=json", "text/html").format, "json");
  assert.equal(parseView("", "application/json").format, "json");
  assert.equal(
    parseView("", "text/html,application/json;q=0.9").format,
    "html",
  );
  assert.equal(parseView("", "*/*").format, "html");
  assert.equal(parseView("format=html", "application/json").format, "html");
});

Deno.test("filterEntries() keeps names holding the text, ignoring case", () => {
  assert.deepEqual(names(filterEntries([...ENTRIES], "A")), [
    "a10.txt",
    "a2.txt",
    "zeta",
    "Alpha",
  ]);
  assert.deepEqual(names(filterEntries([...ENTRIES], "")), names(ENTRIES));
});

Deno.test("formatSize() reads as people do", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(1023), "1023 B");
  assert.equal(formatSize(1536), "1.5 KiB");
  assert.equal(formatSize(5 * 1024 ** 3), "5.0 GiB");
  assert.equal(formatSize(300 * 1024 ** 2), "300 MiB");
});

Deno.test("renderListing() escapes every name and links each breadcrumb relatively", () => {
  const evil: ListingEntry = {
    name: `"><img src=x onerror=alert(1)>`,
    isDirectory: false,
    size: 1,
    mtimeMs: 0,
  };
  const html = renderListing("/a <b>/c/", [evil], HTML_VIEW, OPTS);
  assert.ok(!html.includes("<img"), "a name became markup");
  assert.ok(html.includes("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
  assert.ok(
    html.includes(
      'href="./%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"',
    ),
  );
  // Breadcrumbs: / and "a <b>" link up; the current folder is plain text.
  assert.ok(html.includes('<a href="../../">/</a>'));
  assert.ok(html.includes('<a href="../">a &lt;b&gt;</a>'));
  assert.ok(html.includes("<span>c</span></h1>"));
  assert.ok(html.includes('href="?download=zip"'));
  const off = renderListing("/", [], HTML_VIEW, {
    archive: false,
    truncated: true,
  });
  assert.ok(!off.includes("download=zip"));
  assert.match(off, /Only the first entries are shown/);
});

Deno.test("renderListing() keeps the order in folder links and offers the other order", () => {
  const view = parseView("sort=size&order=asc&q=a", undefined);
  const html = renderListing(
    "/x/",
    sortEntries([...ENTRIES], view),
    view,
    OPTS,
  );
  // Into a folder, up a level and the breadcrumbs keep the order.
  assert.ok(html.includes('href="./zeta/?sort=size&amp;order=asc"'));
  assert.ok(html.includes('href="../?sort=size&amp;order=asc"'));
  // The current column flips its order; the others start at their default.
  assert.ok(html.includes('href="?sort=size&amp;order=desc&amp;q=a"'));
  assert.ok(html.includes('href="?sort=name&amp;order=asc&amp;q=a"'));
  assert.ok(html.includes('href="?sort=date&amp;order=desc&amp;q=a"'));
  assert.ok(html.includes('aria-sort="ascending"'));
  // The filter form carries the order along, without JavaScript.
  assert.ok(html.includes('<input type="hidden" name="sort" value="size">'));
  assert.ok(html.includes('<input type="hidden" name="order" value="asc">'));
  assert.ok(html.includes('value="a"'));
});

Deno.test("renderListingJson() gives names, types, sizes, dates and encoded links", () => {
  const body = JSON.parse(
    renderListingJson("/d ir/", sortEntries([...ENTRIES]), false),
  );
  assert.equal(body.path, "/d ir/");
  assert.equal(body.truncated, false);
  assert.deepEqual(body.entries[0], {
    name: "Alpha",
    type: "directory",
    size: null,
    modified: new Date(4 * DAY).toISOString(),
    href: "/d%20ir/Alpha/",
  });
  assert.deepEqual(body.entries[2], {
    name: "a2.txt",
    type: "file",
    size: 200,
    modified: new Date(2 * DAY).toISOString(),
    href: "/d%20ir/a2.txt",
  });
});

Deno.test("a listing over a socket: order and filter from the URL, JSON by Accept, 400 for a bad sort", async () => {
  await using app = await startApp({ static: { listDirs: true } });
  const dir = join(app.root, "docs");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(join(dir, "small.txt"), "1");
  await Deno.writeTextFile(join(dir, "big.txt"), "1".repeat(5000));
  await Deno.writeTextFile(join(dir, "other.md"), "12");
  const page = await fetch(`${app.origin}/docs/?sort=size`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("vary"), "Accept");
  const html = await page.text();
  assert.ok(html.indexOf(">big.txt<") < html.indexOf(">other.md<"));
  assert.ok(html.indexOf(">other.md<") < html.indexOf(">small.txt<"));
  // The filter box works without JavaScript: the form sends ?q=.
  const filtered = await (await fetch(`${app.origin}/docs/?q=TXT`)).text();
  assert.ok(filtered.includes(">big.txt<") && filtered.includes(">small.txt<"));
  assert.ok(!filtered.includes(">other.md<"));
  const json = await fetch(`${app.origin}/docs/?sort=size&order=asc`, {
    headers: { accept: "application/json" },
  });
  assert.equal(json.headers.get("content-type"), "application/json");
  assert.deepEqual(
    (await json.json()).entries.map((e: { name: string }) => e.name),
    ["small.txt", "other.md", "big.txt"],
  );
  const bad = await fetch(`${app.origin}/docs/?sort=colour`, {
    headers: { accept: "application/json" },
  });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /Unknown sort/);
  const head = await fetch(`${app.origin}/docs/?format=json`, {
    method: "HEAD",
  });
  const get = await fetch(`${app.origin}/docs/?format=json`);
  assert.equal(
    head.headers.get("content-length"),
    String((await get.bytes()).length),
  );
});
