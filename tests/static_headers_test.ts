/**
 * `--header`, `--cors` on static files and every file type served, over a
 * real socket on the default app.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { WEB_EXTENSIONS } from "../lib/app/settings.ts";
import { startApp } from "./fixtures/app_server.ts";

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}

Deno.test("--header puts its fields on every static reply: 200, 304, 404 and listings", async () => {
  await using app = await startApp({
    static: {
      listDirs: true,
      headers: [
        ["x-frame-options", "DENY"],
        ["cache-control", "max-age=60"],
        ["vary", "Origin"],
      ],
    },
  });
  await Deno.writeTextFile(join(app.root, "a.txt"), "a".repeat(2000));
  await Deno.mkdir(join(app.root, "dir"));
  const ok = await get(`${app.origin}/a.txt`, { "accept-encoding": "gzip" });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("x-frame-options"), "DENY");
  assert.equal(ok.headers.get("cache-control"), "max-age=60", "replaced");
  assert.equal(ok.headers.get("vary"), "Accept-Encoding, Origin", "merged");
  const etag = ok.headers.get("etag")!;
  const again = await get(`${app.origin}/a.txt`, {
    "if-none-match": etag,
    "accept-encoding": "gzip",
  });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("x-frame-options"), "DENY");
  const lost = await get(`${app.origin}/nope.txt`);
  assert.equal(lost.status, 404);
  assert.equal(lost.headers.get("x-frame-options"), "DENY");
  const listing = await get(`${app.origin}/dir/`);
  assert.equal(listing.status, 200);
  assert.equal(listing.headers.get("x-frame-options"), "DENY");
  // API routes are not static replies.
  const api = await get(`${app.origin}/echo/hi`);
  assert.equal(api.headers.get("x-frame-options"), null);
});

Deno.test("--cors answers a preflight on a static file and grants its GET", async () => {
  await using app = await startApp({ app: { cors: "https://fonts.test" } });
  await Deno.writeFile(join(app.root, "f.woff2"), new Uint8Array(64));
  const preflight = await fetch(`${app.origin}/f.woff2`, {
    method: "OPTIONS",
    headers: {
      origin: "https://fonts.test",
      "access-control-request-method": "GET",
      "access-control-request-headers": "range",
    },
  });
  await preflight.body?.cancel();
  assert.equal(preflight.status, 204);
  assert.equal(
    preflight.headers.get("access-control-allow-origin"),
    "https://fonts.test",
  );
  assert.equal(
    preflight.headers.get("access-control-allow-methods"),
    "GET, HEAD, OPTIONS",
  );
  assert.equal(preflight.headers.get("access-control-allow-headers"), "range");
  const font = await get(`${app.origin}/f.woff2`, {
    origin: "https://fonts.test",
  });
  assert.equal(font.status, 200);
  assert.equal(font.headers.get("content-type"), "font/woff2");
  assert.equal(
    font.headers.get("access-control-allow-origin"),
    "https://fonts.test",
  );
  assert.match(font.headers.get("vary")!, /Origin/);
  const other = await get(`${app.origin}/f.woff2`, {
    origin: "https://evil.test",
  });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const missing = await get(`${app.origin}/gone.woff2`, {
    origin: "https://fonts.test",
  });
  assert.equal(missing.status, 404);
  assert.equal(
    missing.headers.get("access-control-allow-origin"),
    "https://fonts.test",
  );
});

const TYPES: [name: string, type: string][] = [
  ["film.mkv", "video/x-matroska"],
  ["disk.iso", "application/octet-stream"],
  ["setup.exe", "application/octet-stream"],
  ["README", "application/octet-stream"],
  ["photo.heic", "image/heic"],
];

Deno.test("every file type is served by default; --allow-ext web answers 403 and lists none of them", async () => {
  await using app = await startApp({
    static: { listDirs: true },
  });
  await Deno.mkdir(join(app.root, "dl"));
  for (const [name] of TYPES) {
    await Deno.writeTextFile(join(app.root, "dl", name), name);
  }
  // A name no URL can reach is not listed: its link could only be a 400.
  await Deno.writeTextFile(join(app.root, "dl", "back\\slash.txt"), "x");
  const listing = await get(`${app.origin}/dl/?format=json`);
  const listed = (JSON.parse(listing.body).entries as { name: string }[])
    .map((e) => e.name);
  for (const [name, type] of TYPES) {
    const res = await get(`${app.origin}/dl/${name}`);
    assert.equal(res.status, 200, name);
    assert.equal(res.headers.get("content-type"), type, name);
    assert.equal(res.body, name);
    assert.ok(listed.includes(name), `${name} not listed`);
  }
  assert.deepEqual(listed.sort(), TYPES.map(([n]) => n).sort());
  await using web = await startApp({
    static: { listDirs: true, allowExt: WEB_EXTENSIONS },
  });
  await Deno.mkdir(join(web.root, "dl"));
  for (const [name] of TYPES) {
    await Deno.writeTextFile(join(web.root, "dl", name), name);
  }
  await Deno.writeTextFile(join(web.root, "dl", "page.html"), "<p>");
  const webListing = await get(`${web.origin}/dl/?format=json`);
  const webListed = (JSON.parse(webListing.body).entries as { name: string }[])
    .map((e) => e.name);
  for (const [name] of TYPES) {
    assert.equal((await get(`${web.origin}/dl/${name}`)).status, 403, name);
    assert.ok(!webListed.includes(name), `${name} listed but refused`);
  }
  assert.ok(webListed.includes("page.html"));
});
