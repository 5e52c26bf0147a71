import assert from "node:assert/strict";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { contentDisposition } from "../lib/app/replies.ts";
import { ByteLru } from "../lib/app/static_cache.ts";
import { staticFiles, type StaticTuning } from "../lib/app/static_files.ts";
import { WEB_EXTENSIONS } from "../lib/app/settings.ts";
import { HttpError } from "../lib/http/errors.ts";
import { FileBody } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { ask, fakeRequest } from "./fixtures/static_request.ts";
import {
  APP_JS,
  BIG_TEXT,
  gzipBytes,
  HELLO,
  makeSite,
  SECRET,
  TEST_TUNING,
} from "./fixtures/static_site.ts";

// One read-only site for most tests; tests that change files make their own.
const site = await makeSite();
globalThis.addEventListener(
  "unload",
  () => Deno.removeSync(site.base, { recursive: true }),
);
const handler = staticFiles(site.config, TEST_TUNING);
const decoder = new TextDecoder();

// ---------------------------------------------------------------- traversal

const LONG_SEGMENT = "a".repeat(300); // over NAME_MAX: ENAMETOOLONG, not a 500
const traversal: [name: string, target: string][] = [
  ["../", "/../secret.txt"],
  ["../ deeper", "/sub/../../secret.txt"],
  ["%2e%2e/", "/%2e%2e/secret.txt"],
  ["%2E%2E/ upper case", "/%2E%2E/secret.txt"],
  [".%2e/", "/.%2e/secret.txt"],
  ["..%2f", "/..%2fsecret.txt"],
  ["%2e%2e%2f", "/%2e%2e%2fsecret.txt"],
  ["%252e%252e (double-encoded)", "/%252e%252e/secret.txt"],
  ["%252e%252e%252f", "/%252e%252e%252fsecret.txt"],
  ["..\\", "/..\\secret.txt"],
  ["%5c", "/..%5csecret.txt"],
  ["%5C", "/..%5Csecret.txt"],
  ["overlong %c0%ae", "/%c0%ae%c0%ae/secret.txt"],
  ["overlong %c0%af", "/..%c0%afsecret.txt"],
  ["overlong %e0%80%ae", "/%e0%80%ae%e0%80%ae/secret.txt"],
  ["%00 truncation", "/hello.txt%00.png"],
  ["%00 before dots", "/%00/../secret.txt"],
  ["//etc/passwd", "//etc/passwd"],
  ["absolute path inside the target", "/etc/passwd"],
  ["the base folder by name", "/../root/../secret.txt"],
  ["a sibling with the root's prefix", "/../rootsibling.txt"],
  ["trailing dot", "/hello.txt."],
  ["trailing space", "/hello.txt%20"],
  ["device name", "/con.txt"],
  ["a very long segment", `/${LONG_SEGMENT}`],
  ["a very long path", `/${"sub/".repeat(2000)}x`],
  ["many dot-dots", `/${"../".repeat(50)}secret.txt`],
  ["symlink out (absolute)", "/links/out.txt"],
  ["symlink out (relative)", "/links/relative-out.txt"],
  ["symlinked folder out", "/links/outdir/secret.txt"],
  ["symlinked folder out, listed", "/links/outdir/"],
  ["dangling symlink", "/links/dangling.txt"],
  ["symlink loop", "/links/loop-a.txt"],
  ["file used as a folder", "/hello.txt/secret.txt"],
];
for (const [name, target] of traversal) {
  Deno.test(`staticFiles() refuses ${name} with 400 or 404`, async () => {
    for (const method of ["GET", "HEAD"]) {
      const a = await ask(handler, method, target, { accept: "*/*" });
      assert.ok(
        a.status === 400 || a.status === 404,
        `${method} ${target}: ${a.status}`,
      );
      assert.ok(!a.text.includes(SECRET));
    }
    // Same refusal when a listing or the SPA fallback could kick in.
    const loose = staticFiles({
      ...site.config,
      listDirs: true,
      spa: true,
      dotfiles: "allow",
    }, TEST_TUNING);
    const a = await ask(loose, "GET", target, { accept: "text/html" });
    assert.ok(!a.text.includes(SECRET), target);
    assert.ok(!a.text.includes("secret.txt"), `${target} listed the outside`);
  });
}

Deno.test("staticFiles() serves a symlink that stays inside the root", async () => {
  const a = await ask(handler, "GET", "/links/in.txt");
  assert.equal(a.status, 200);
  assert.equal(a.text, HELLO);
  const b = await ask(handler, "GET", "/links/subdir/page.html");
  assert.equal(b.status, 200);
  assert.equal(b.text, "<p>sub page</p>\n");
});

Deno.test("staticFiles() refuses a symlink re-pointed out of the root after it was served", async () => {
  const link = `${site.root}/swap.txt`;
  await Deno.symlink(`${site.root}/hello.txt`, link);
  try {
    const h = staticFiles(site.config, TEST_TUNING);
    assert.equal((await ask(h, "GET", "/swap.txt")).text, HELLO);
    // Same path, now naming a file outside: the remembered real path must not be reused.
    await Deno.remove(link);
    await Deno.symlink(`${site.base}/secret.txt`, link);
    const after = await ask(h, "GET", "/swap.txt");
    assert.equal(after.status, 404);
    assert.ok(!after.text.includes(SECRET));
  } finally {
    await Deno.remove(link);
  }
});

Deno.test("staticFiles() serves a hard link to a file outside the root, but 404 under strictLinks", async () => {
  await using own = await makeSite();
  await Deno.link(`${own.base}/secret.txt`, `${own.root}/twin.txt`);
  await Deno.link(`${own.base}/secret.txt`, `${own.root}/nolist/twin.txt`);
  // A second name is a name like any other to a path check (issue #9 point
  // 13); the README's security model says so.
  const loose = staticFiles(own.config, TEST_TUNING);
  assert.equal((await ask(loose, "GET", "/twin.txt")).text, SECRET);
  const strict = staticFiles(
    { ...own.config, strictLinks: true, listDirs: true },
    TEST_TUNING,
  );
  for (const target of ["/twin.txt", "/nolist/twin.txt"]) {
    const a = await ask(strict, "GET", target);
    assert.equal(a.status, 404, target);
    assert.ok(!a.text.includes(SECRET), target);
  }
  const listing = await ask(strict, "GET", "/nolist/");
  assert.equal(listing.status, 200);
  assert.ok(
    !listing.text.includes("twin.txt"),
    "listed a file it would not serve",
  );
  assert.ok(listing.text.includes(">file2.txt</span></a>"));
  assert.equal((await ask(strict, "GET", "/hello.txt")).text, HELLO);
});

Deno.test("staticFiles() trusts a lookup for revalidateMs, then sees the edit", async () => {
  const file = `${site.root}/window.txt`;
  await Deno.writeTextFile(file, "first version\n");
  try {
    // A window no stall between two requests of a busy machine outlasts.
    const h = staticFiles(site.config, { ...TEST_TUNING, revalidateMs: 1000 });
    assert.equal((await ask(h, "GET", "/window.txt")).text, "first version\n");
    // A different size and mtime: a stat would see it at once.
    await Deno.writeTextFile(file, "second, longer version\n");
    await Deno.utime(file, new Date(), new Date(Date.now() + 5000));
    assert.equal(
      (await ask(h, "GET", "/window.txt")).text,
      "first version\n",
      "within the window",
    );
    await new Promise((r) => setTimeout(r, 1050));
    assert.equal(
      (await ask(h, "GET", "/window.txt")).text,
      "second, longer version\n",
      "after it",
    );
    // A missing path is never remembered: a new file shows at once.
    assert.equal((await ask(h, "GET", "/fresh.txt")).status, 404);
    await Deno.writeTextFile(`${site.root}/fresh.txt`, "new\n");
    assert.equal((await ask(h, "GET", "/fresh.txt")).text, "new\n");
  } finally {
    await Deno.remove(file);
    await Deno.remove(`${site.root}/fresh.txt`).catch(() => {});
  }
});

Deno.test("staticFiles() looks a file up afresh once a read finds it changed, within revalidateMs too", async () => {
  await using own = await makeSite();
  const file = `${own.root}/edited.txt`;
  // Streamed (over maxCachedFileBytes), so every request opens the file.
  await Deno.writeTextFile(file, "a".repeat(3000));
  const h = staticFiles(own.config, { ...TEST_TUNING, revalidateMs: 60_000 });
  assert.equal((await ask(h, "GET", "/edited.txt")).text, "a".repeat(3000));
  await Deno.writeTextFile(file, "b".repeat(4000));
  const edited = await ask(h, "GET", "/edited.txt");
  assert.equal(edited.status, 200);
  assert.equal(edited.text, "b".repeat(4000));
  await Deno.remove(file);
  assert.equal((await ask(h, "GET", "/edited.txt")).status, 404);
});

// Within revalidateMs a found file is opened without a new stat: the open
// itself must prove it is the file that was checked, not a twin swapped in.
const swaps: [
  name: string,
  tuning: Partial<StaticTuning>,
  headers: Record<string, string>,
][] = [
  ["streamed whole", { maxCachedFileBytes: 4 }, {}],
  ["streamed in parts", { maxCachedFileBytes: 4 }, { range: "bytes=0-1,4-5" }],
  ["read into memory", { fileCacheBytes: 0 }, {}],
];
for (const [name, tuning, headers] of swaps) {
  Deno.test(`staticFiles() never reads a twin swapped in under a found path (${name})`, async () => {
    await using own = await makeSite();
    const file = `${own.root}/twin.txt`;
    const secret = `${own.base}/secret.txt`;
    // Same size and mtime as the secret: only device and inode tell them apart.
    await Deno.writeTextFile(file, "x".repeat(SECRET.length));
    const { mtime } = await Deno.stat(secret);
    await Deno.utime(file, mtime!, mtime!);
    const h = staticFiles(own.config, {
      ...TEST_TUNING,
      revalidateMs: 60_000,
      ...tuning,
    });
    const before = await ask(h, "GET", "/twin.txt", headers);
    assert.ok(before.text.includes("xx"), `${before.status}`);
    await Deno.remove(file);
    await Deno.symlink(secret, file);
    const after = await ask(h, "GET", "/twin.txt", headers).catch((
      err: Error,
    ) => err);
    if (after instanceof Error) {
      // Parts stream after the head went out: cut short is all that is left.
      assert.ok(headers.range !== undefined, String(after));
      assert.equal(after.name, "FileChanged");
    } else {
      assert.equal(after.status, 404);
      assert.ok(!after.text.includes(SECRET));
    }
  });
}

// Within revalidateMs the path is opened as found; whatever it became since,
// the fresh lookup that follows answers, never a 500.
const breaks: [name: string, target: string, wreck: (root: string) => void][] =
  [
    ["a symlink loop", "/gone/page.txt", (root) => {
      Deno.removeSync(`${root}/gone/page.txt`);
      Deno.symlinkSync(`${root}/gone/page.txt`, `${root}/gone/page.txt`);
    }],
    ["a file in place of its folder", "/gone/page.txt", (root) => {
      Deno.removeSync(`${root}/gone`, { recursive: true });
      Deno.writeTextFileSync(`${root}/gone`, "now a file\n");
    }],
  ];
for (const [name, target, wreck] of breaks) {
  Deno.test(`staticFiles() answers 404 for a found file turned into ${name}`, async () => {
    await using own = await makeSite();
    await Deno.mkdir(`${own.root}/gone`);
    await Deno.writeTextFile(`${own.root}/gone/page.txt`, "c".repeat(3000));
    // Streamed, and read into memory (nothing kept): both open the path.
    const handlers = [{ maxCachedFileBytes: 4 }, { fileCacheBytes: 0 }].map(
      (tuning) =>
        staticFiles(own.config, {
          ...TEST_TUNING,
          revalidateMs: 60_000,
          ...tuning,
        }),
    );
    for (const h of handlers) {
      assert.equal((await ask(h, "GET", target)).status, 200);
    }
    wreck(own.root);
    for (const h of handlers) {
      assert.equal((await ask(h, "GET", target)).status, 404);
    }
  });
}

Deno.test("staticFiles() answers 404 for a FIFO, also one put where a found file was", async () => {
  await using own = await makeSite();
  const mkfifo = async (path: string) =>
    assert.ok(
      (await new Deno.Command("mkfifo", { args: [path] }).output())
        .success,
    );
  await mkfifo(`${own.root}/pipe.txt`);
  const file = `${own.root}/was-a-file.txt`;
  await Deno.writeTextFile(file, "f".repeat(3000)); // streamed: opened per request
  const h = staticFiles(own.config, { ...TEST_TUNING, revalidateMs: 60_000 });
  assert.equal((await ask(h, "GET", "/was-a-file.txt")).status, 200);
  await Deno.remove(file);
  await mkfifo(file);
  for (const fifo of [`${own.root}/pipe.txt`, file]) {
    const target = fifo.slice(own.root.length);
    const hung = Promise.withResolvers<"hung">();
    const timer = setTimeout(() => hung.resolve("hung"), 10_000);
    const a = await Promise.race([ask(h, "GET", target), hung.promise]);
    clearTimeout(timer);
    if (a === "hung") {
      // Unblock the handler's open() so the test can end, then fail.
      (await Deno.open(fifo, { write: true })).close();
      assert.fail(`${target}: opened a FIFO and waited for a writer`);
    }
    assert.equal(a.status, 404, target);
  }
});

Deno.test("staticFiles() serves a root that is itself a symlink", async () => {
  const link = `${site.base}/root-link`;
  await Deno.symlink(site.root, link);
  try {
    const h = staticFiles({ ...site.config, root: link }, TEST_TUNING);
    assert.equal((await ask(h, "GET", "/hello.txt")).text, HELLO);
    assert.equal((await ask(h, "GET", "/links/out.txt")).status, 404);
  } finally {
    await Deno.remove(link);
  }
});

Deno.test("staticFiles() follows a root symlink re-pointed at another folder", async () => {
  await using own = await makeSite();
  const next = `${own.base}/next`;
  await Deno.mkdir(next);
  await Deno.writeTextFile(`${next}/hello.txt`, "next release\n");
  await Deno.symlink(`${own.root}/hello.txt`, `${next}/old.txt`);
  const link = `${own.base}/current`;
  await Deno.symlink(own.root, link);
  const h = staticFiles({ ...own.config, root: link }, TEST_TUNING);
  assert.equal((await ask(h, "GET", "/hello.txt")).text, HELLO);
  // A deploy: a new link renamed over the old one.
  await Deno.symlink(next, `${link}.new`);
  await Deno.rename(`${link}.new`, link);
  assert.equal((await ask(h, "GET", "/hello.txt")).text, "next release\n");
  // The old root is outside now, like any other folder.
  assert.equal((await ask(h, "GET", "/old.txt")).status, 404);
});

Deno.test("staticFiles() answers 404 for everything when the root is missing", async () => {
  const h = staticFiles({ ...site.config, root: `${site.base}/no-such-root` });
  assert.equal((await ask(h, "GET", "/")).status, 404);
  assert.equal((await ask(h, "GET", "/hello.txt")).status, 404);
});

// ---------------------------------------------------------------- dotfiles

const dotfiles: [target: string, deny: number, allow: number][] = [
  ["/.env", 404, 200],
  ["/.git/config", 404, 200],
  ["/.git/", 404, 404],
  ["/.well-known/security.txt", 404, 200],
  ["/nolist/.hidden.txt", 404, 200],
  ["/links/env.txt", 404, 200], // a symlink to a dotfile is a dotfile
];
for (const [target, deny, allow] of dotfiles) {
  Deno.test(`staticFiles() answers ${deny} (deny) / ${allow} (allow) for ${target}`, async () => {
    assert.equal((await ask(handler, "GET", target)).status, deny);
    const h = staticFiles({ ...site.config, dotfiles: "allow" }, TEST_TUNING);
    assert.equal((await ask(h, "GET", target)).status, allow);
  });
}

// ---------------------------------------------------------------- index, redirect, methods

Deno.test("staticFiles() serves index.html for / and /dir/", async () => {
  const home = await ask(handler, "GET", "/");
  assert.equal(home.status, 200);
  assert.match(home.text, /<p>home<\/p>/);
  assert.equal(home.headers.get("content-type"), "text/html; charset=utf-8");
  const sub = await ask(handler, "GET", "/sub/");
  assert.equal(sub.text, "<p>sub index</p>\n");
});

const redirects: [target: string, location: string][] = [
  ["/sub", "/sub/"],
  ["/sub?x=1&y", "/sub/?x=1&y"],
  ["/links/subdir", "/links/subdir/"],
  ["/evil.com", "/evil.com/"],
  ["/evil.com?next=//evil.com/", "/evil.com/?next=//evil.com/"],
  ["/%65vil.com", "/%65vil.com/"], // the raw path is kept, still one leading slash
];
for (const [target, location] of redirects) {
  Deno.test(`staticFiles() redirects ${target} to ${location} with 301`, async () => {
    const a = await ask(handler, "GET", target);
    assert.equal(a.status, 301);
    assert.equal(a.headers.get("location"), location);
    assert.ok(!a.headers.get("location")!.startsWith("//"));
  });
}

const openRedirects = [
  "//evil.com",
  "//evil.com/",
  "/%2fevil.com",
  "/%2Fevil.com/",
  "/\\evil.com",
  "/%5cevil.com",
  "/./evil.com",
  "/sub/..//evil.com",
];
for (const target of openRedirects) {
  Deno.test(`staticFiles() never redirects ${target} off-site`, async () => {
    const a = await ask(handler, "GET", target);
    assert.equal(a.status, 400);
    assert.equal(a.headers.get("location"), undefined);
  });
}

const methods: [method: string, status: number][] = [
  ["POST", 405],
  ["PUT", 405],
  ["DELETE", 405],
  ["PATCH", 405],
  ["TRACE", 405],
  ["OPTIONS", 204],
];
for (const [method, status] of methods) {
  Deno.test(`staticFiles() answers ${method} with ${status} and Allow`, async () => {
    const a = await ask(handler, method, "/hello.txt");
    assert.equal(a.status, status);
    assert.equal(a.headers.get("allow"), "GET, HEAD, OPTIONS");
  });
}

Deno.test("staticFiles() answers HEAD with GET's headers and no body", async () => {
  for (
    const [target, headers] of [
      ["/hello.txt", {}],
      ["/large.bin", {}],
      ["/big.txt", { "accept-encoding": "gzip" }],
      ["/app.js", { "accept-encoding": "br" }],
      ["/", {}],
    ] as const
  ) {
    const get = await ask(handler, "GET", target, headers);
    const head = await ask(handler, "HEAD", target, headers);
    assert.equal(head.status, 200, target);
    assert.equal(head.body, null, target);
    assert.deepEqual(head.headers, get.headers, target);
    assert.equal(
      Number(head.headers.get("content-length")),
      get.body!.length,
      target,
    );
  }
});

// ---------------------------------------------------------------- types and policy

const types: [target: string, type: string][] = [
  ["/hello.txt", "text/plain; charset=utf-8"],
  ["/style.css", "text/css; charset=utf-8"],
  ["/app.js", "text/javascript; charset=utf-8"],
  ["/data.json", "application/json; charset=utf-8"],
  ["/icon.svg", "image/svg+xml; charset=utf-8"],
  ["/logo.png", "image/png"],
  ["/large.bin", "application/octet-stream"],
  ["/sub/page.html", "text/html; charset=utf-8"],
];
for (const [target, type] of types) {
  Deno.test(`staticFiles() sends ${target} as ${type}`, async () => {
    const a = await ask(handler, "GET", target);
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-type"), type);
    assert.equal(a.headers.get("cache-control"), "no-cache");
    assert.equal(a.headers.get("accept-ranges"), "bytes");
  });
}

Deno.test("staticFiles() serves every file by default, octet-stream when the type is unknown", async () => {
  const key = await ask(handler, "GET", "/secret.key");
  assert.equal(key.status, 200);
  const noext = await ask(handler, "GET", "/noext");
  assert.equal(noext.status, 200);
  assert.equal(noext.headers.get("content-type"), "application/octet-stream");
});

Deno.test("staticFiles() answers 403 for extensions outside the list", async () => {
  const web = staticFiles({ ...site.config, allowExt: WEB_EXTENSIONS });
  assert.equal((await ask(web, "GET", "/secret.key")).status, 403);
  assert.equal((await ask(web, "GET", "/noext")).status, 403);
  assert.equal((await ask(web, "GET", "/style.css")).status, 200);
  const seeds = staticFiles({
    ...site.config,
    allowExt: ["html", "txt", "png", "jpg", "jpeg"],
  });
  assert.equal((await ask(seeds, "GET", "/style.css")).status, 403);
  assert.equal((await ask(seeds, "GET", "/app.js")).status, 403);
  assert.equal((await ask(seeds, "GET", "/hello.txt")).status, 200);
  assert.equal((await ask(seeds, "GET", "/logo.png")).status, 200);
  assert.equal((await ask(seeds, "GET", "/")).status, 200);
});

Deno.test("staticFiles() uses the configured Cache-Control", async () => {
  const h = staticFiles({ ...site.config, cacheControl: "public, max-age=60" });
  assert.equal(
    (await ask(h, "GET", "/hello.txt")).headers.get("cache-control"),
    "public, max-age=60",
  );
});

Deno.test("staticFiles() sends non-HTML files as attachments when asked", async () => {
  const h = staticFiles({ ...site.config, attachment: true });
  assert.equal(
    (await ask(h, "GET", "/hello.txt")).headers.get("content-disposition"),
    `attachment; filename="hello.txt"; filename*=UTF-8''hello.txt`,
  );
  assert.equal(
    (await ask(h, "GET", "/caf%C3%A9.txt")).headers.get("content-disposition"),
    `attachment; filename="caf_.txt"; filename*=UTF-8''caf%C3%A9.txt`,
  );
  assert.equal(
    (await ask(h, "GET", "/")).headers.get("content-disposition"),
    undefined,
  );
  assert.equal(
    (await ask(handler, "GET", "/hello.txt")).headers.get(
      "content-disposition",
    ),
    undefined,
  );
});

const dispositions: [name: string, header: string][] = [
  ["plain.pdf", `attachment; filename="plain.pdf"; filename*=UTF-8''plain.pdf`],
  [
    'say "hi".txt',
    `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`,
  ],
  [
    "back\\slash 100%.txt",
    `attachment; filename="back_slash 100_.txt"; filename*=UTF-8''back%5Cslash%20100%25.txt`,
  ],
  [
    "€ rates (2024)*.csv",
    `attachment; filename="_ rates (2024)*.csv"; filename*=UTF-8''%E2%82%AC%20rates%20%282024%29%2A.csv`,
  ],
  ["it's.txt", `attachment; filename="it's.txt"; filename*=UTF-8''it%27s.txt`],
];
for (const [name, header] of dispositions) {
  Deno.test(`contentDisposition() encodes ${name} per RFC 6266`, () => {
    assert.equal(contentDisposition(name), header);
  });
}

// ---------------------------------------------------------------- conditional requests

Deno.test("staticFiles() sends a strong size-mtime ETag and Last-Modified", async () => {
  const a = await ask(handler, "GET", "/hello.txt");
  const info = await Deno.stat(`${site.root}/hello.txt`);
  const mtime = Math.floor(info.mtime!.getTime());
  assert.equal(
    a.headers.get("etag"),
    `"${info.size.toString(16)}-${mtime.toString(16)}"`,
  );
  assert.equal(a.headers.get("last-modified"), info.mtime!.toUTCString());
});

Deno.test("staticFiles() answers conditional requests per RFC 9110 §13.2.2", async () => {
  const first = await ask(handler, "GET", "/hello.txt");
  const etag = first.headers.get("etag")!;
  const lm = first.headers.get("last-modified")!;
  const old = new Date(Date.parse(lm) - 3600_000).toUTCString();
  const cases: [string, Record<string, string>, number][] = [
    ["If-None-Match", { "if-none-match": etag }, 304],
    ["If-None-Match weak", { "if-none-match": `W/${etag}` }, 304],
    ["If-None-Match list", { "if-none-match": `"x", ${etag}` }, 304],
    ["If-None-Match *", { "if-none-match": "*" }, 304],
    ["If-None-Match other", { "if-none-match": '"x"' }, 200],
    ["If-Modified-Since", { "if-modified-since": lm }, 304],
    ["If-Modified-Since old", { "if-modified-since": old }, 200],
    ["If-None-Match other with If-Modified-Since", {
      "if-none-match": '"x"',
      "if-modified-since": lm,
    }, 200],
    ["If-Match", { "if-match": etag }, 200],
    ["If-Match other", { "if-match": '"x"' }, 412],
    ["If-Match weak", { "if-match": `W/${etag}` }, 412],
    ["If-Unmodified-Since", { "if-unmodified-since": lm }, 200],
    ["If-Unmodified-Since old", { "if-unmodified-since": old }, 412],
    ["If-Match other with If-None-Match", {
      "if-match": '"x"',
      "if-none-match": etag,
    }, 412],
  ];
  for (const method of ["GET", "HEAD"]) {
    for (const [name, headers, status] of cases) {
      const a = await ask(handler, method, "/hello.txt", headers);
      assert.equal(a.status, status, `${method} ${name}`);
      if (status === 304) {
        assert.equal(a.body, null);
        assert.equal(a.headers.get("etag"), etag);
        assert.equal(a.headers.get("cache-control"), "no-cache");
        assert.equal(a.headers.get("content-length"), undefined);
        assert.equal(a.headers.get("content-type"), undefined);
      }
    }
  }
});

Deno.test("staticFiles() revalidates against the ETag of the coding sent", async () => {
  const gz = await ask(handler, "GET", "/big.txt", {
    "accept-encoding": "gzip",
  });
  const plain = await ask(handler, "GET", "/big.txt");
  const gzTag = gz.headers.get("etag")!;
  assert.notEqual(gzTag, plain.headers.get("etag"));
  const again = await ask(handler, "GET", "/big.txt", {
    "accept-encoding": "gzip",
    "if-none-match": gzTag,
  });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("vary"), "Accept-Encoding");
  // The gzip tag does not validate the identity form.
  const other = await ask(handler, "GET", "/big.txt", {
    "if-none-match": gzTag,
  });
  assert.equal(other.status, 200);
});

// ---------------------------------------------------------------- ranges

/** Splits a multipart/byteranges body into parts. */
function parseMultipart(
  contentType: string,
  body: Uint8Array,
): { headers: string; data: string }[] {
  const boundary = contentType.match(/boundary=(\S+)$/)![1];
  const text = decoder.decode(body);
  assert.ok(text.startsWith(`--${boundary}\r\n`));
  assert.ok(text.endsWith(`\r\n--${boundary}--\r\n`));
  const inner = text.slice(0, -`\r\n--${boundary}--\r\n`.length);
  return inner.split(new RegExp(`(?:^|\\r\\n)--${boundary}\\r\\n`)).slice(1)
    .map((part) => {
      const sep = part.indexOf("\r\n\r\n");
      return { headers: part.slice(0, sep), data: part.slice(sep + 4) };
    });
}

const singleRanges: [range: string, start: number, end: number][] = [
  ["bytes=0-4", 0, 4],
  ["bytes=6-", 6, 11],
  ["bytes=-6", 6, 11],
  ["bytes=-100", 0, 11],
  ["bytes=3-3", 3, 3],
  ["bytes=10-99", 10, 11],
  ["bytes=0-1,1-4", 0, 4], // overlapping: merged into one range
];
for (const [range, start, end] of singleRanges) {
  Deno.test(`staticFiles() answers 206 for ${range}`, async () => {
    const a = await ask(handler, "GET", "/hello.txt", { range });
    assert.equal(a.status, 206);
    assert.equal(a.text, HELLO.slice(start, end + 1));
    assert.equal(
      a.headers.get("content-range"),
      `bytes ${start}-${end}/${HELLO.length}`,
    );
    assert.equal(a.headers.get("content-length"), String(end - start + 1));
  });
}

Deno.test("staticFiles() answers several ranges with multipart/byteranges", async () => {
  const a = await ask(handler, "GET", "/hello.txt", {
    range: "bytes=-1, 0-1, 6-7",
  });
  assert.equal(a.status, 206);
  const type = a.headers.get("content-type")!;
  assert.match(type, /^multipart\/byteranges; boundary=\w+$/);
  assert.equal(Number(a.headers.get("content-length")), a.body!.length);
  assert.equal(a.headers.get("content-range"), undefined);
  const parts = parseMultipart(type, a.body!);
  assert.deepEqual(parts.map((p) => p.data), ["he", "wo", "\n"]);
  assert.deepEqual(parts.map((p) => p.headers), [
    "Content-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/12",
    "Content-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 6-7/12",
    "Content-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 11-11/12",
  ]);
});

Deno.test("staticFiles() streams several ranges of a large file", async () => {
  const h = staticFiles(site.config, { ...TEST_TUNING, readChunkBytes: 700 });
  const a = await ask(h, "GET", "/large.bin", { range: "bytes=0-999,5000-" });
  assert.equal(a.status, 206);
  assert.equal(Number(a.headers.get("content-length")), a.body!.length);
  const boundary = a.headers.get("content-type")!.match(/boundary=(\w+)/)![1];
  const head0 =
    `--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-999/6000\r\n\r\n`;
  const body = a.body!;
  assert.equal(decoder.decode(body.subarray(0, head0.length)), head0);
  assert.deepEqual(
    body.subarray(head0.length, head0.length + 1000),
    site.large.subarray(0, 1000),
  );
  const tail = `\r\n--${boundary}--\r\n`;
  assert.deepEqual(
    body.subarray(body.length - tail.length - 1000, body.length - tail.length),
    site.large.subarray(5000),
  );
});

Deno.test("staticFiles() answers 416 with bytes */size when no range fits", async () => {
  for (
    const range of ["bytes=12-", "bytes=100-200", "bytes=-0", "bytes=50-60,70-"]
  ) {
    const a = await ask(handler, "GET", "/hello.txt", { range });
    assert.equal(a.status, 416, range);
    assert.equal(a.headers.get("content-range"), "bytes */12");
  }
});

Deno.test("staticFiles() ignores an invalid or oversized Range with 200", async () => {
  const many = Array.from({ length: 17 }, (_, i) => `${i}-${i}`).join(",");
  for (
    const range of [
      "bytes=5-1",
      "bytes=x",
      "lines=1-2",
      "bytes 0-1",
      `bytes=${many}`,
    ]
  ) {
    const a = await ask(handler, "GET", "/hello.txt", { range });
    assert.equal(a.status, 200, range);
    assert.equal(a.text, HELLO);
  }
});

Deno.test("staticFiles() sends an empty file whole for any Range", async () => {
  for (const range of ["bytes=0-0", "bytes=-1", "bytes=0-"]) {
    const a = await ask(handler, "GET", "/empty.txt", { range });
    assert.equal(a.status, 200, range);
    assert.equal(a.headers.get("content-length"), "0");
  }
});

Deno.test("staticFiles() honours Range only when If-Range matches", async () => {
  const { headers } = await ask(handler, "GET", "/hello.txt");
  const etag = headers.get("etag")!;
  const lm = headers.get("last-modified")!;
  const cases: [string, number][] = [
    [etag, 206],
    [lm, 206],
    [`W/${etag}`, 200],
    ['"stale"', 200],
    [new Date(Date.parse(lm) - 1000).toUTCString(), 200],
  ];
  for (const [ifRange, status] of cases) {
    const a = await ask(handler, "GET", "/hello.txt", {
      range: "bytes=0-4",
      "if-range": ifRange,
    });
    assert.equal(a.status, status, ifRange);
    assert.equal(a.text, status === 206 ? "hello" : HELLO);
  }
});

Deno.test("staticFiles() ignores Range on HEAD and answers 304 before ranges", async () => {
  const head = await ask(handler, "HEAD", "/hello.txt", { range: "bytes=0-4" });
  assert.equal(head.status, 200);
  const { headers } = await ask(handler, "GET", "/hello.txt");
  const a = await ask(handler, "GET", "/hello.txt", {
    range: "bytes=0-4",
    "if-none-match": headers.get("etag")!,
  });
  assert.equal(a.status, 304);
});

Deno.test("staticFiles() serves ranges of a large file from a FileBody", async () => {
  const reply = await handler(
    fakeRequest("GET", "/large.bin", { range: "bytes=100-4099" }),
  );
  assert.ok(reply.body instanceof FileBody);
  assert.equal(reply.body.start, 100);
  assert.equal(reply.body.length, 4000);
  reply.body.file.close();
  const a = await ask(handler, "GET", "/large.bin", { range: "bytes=-10" });
  assert.deepEqual(a.body, site.large.subarray(5990));
  const whole = await ask(handler, "GET", "/large.bin");
  assert.deepEqual(whole.body, site.large);
});

Deno.test("staticFiles() sends identity ranges even when compression is accepted", async () => {
  const a = await ask(handler, "GET", "/big.txt", {
    range: "bytes=0-9",
    "accept-encoding": "br, gzip",
  });
  assert.equal(a.status, 206);
  assert.equal(a.headers.get("content-encoding"), undefined);
  assert.equal(a.text, BIG_TEXT.slice(0, 10));
  // If-Range mismatch: the whole file, now compressed.
  const b = await ask(handler, "GET", "/big.txt", {
    range: "bytes=0-9",
    "if-range": '"x"',
    "accept-encoding": "gzip",
  });
  assert.equal(b.status, 200);
  assert.equal(b.headers.get("content-encoding"), "gzip");
});

// ---------------------------------------------------------------- compression

const negotiation: [
  acceptEncoding: string | undefined,
  coding: string | undefined | 406,
][] = [
  [undefined, undefined],
  ["gzip", "gzip"],
  ["br", "br"],
  ["gzip, br", "br"],
  ["br;q=0.5, gzip", "gzip"],
  ["deflate", undefined],
  ["gzip;q=0, br;q=0", undefined],
  ["identity;q=0, gzip", "gzip"],
  ["identity;q=0", 406],
  ["*;q=0", 406],
  ["*;q=0, identity", undefined],
];
for (const [ae, coding] of negotiation) {
  Deno.test(`staticFiles() compresses big.txt as ${coding} for Accept-Encoding ${ae}`, async () => {
    const a = await ask(
      handler,
      "GET",
      "/big.txt",
      ae === undefined ? {} : { "accept-encoding": ae },
    );
    if (coding === 406) {
      assert.equal(a.status, 406);
      return;
    }
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-encoding"), coding);
    assert.equal(a.headers.get("vary"), "Accept-Encoding");
    assert.equal(Number(a.headers.get("content-length")), a.body!.length);
    const plain = coding === "gzip"
      ? gunzipSync(a.body!)
      : coding === "br"
      ? brotliDecompressSync(a.body!)
      : a.body!;
    assert.equal(decoder.decode(plain), BIG_TEXT);
    if (coding !== undefined) assert.ok(a.body!.length < BIG_TEXT.length);
  });
}

Deno.test("staticFiles() compresses a file once and reuses it", async () => {
  const h = staticFiles(site.config, TEST_TUNING);
  const a = await h(
    fakeRequest("GET", "/big.txt", { "accept-encoding": "gzip" }),
  );
  const b = await h(
    fakeRequest("GET", "/big.txt", { "accept-encoding": "gzip" }),
  );
  assert.ok(a.body instanceof Uint8Array && b.body instanceof Uint8Array);
  assert.equal(
    a.body.buffer,
    b.body.buffer,
    "the same bytes, not a second compression",
  );
  // Concurrent first requests share one compression too.
  const h2 = staticFiles(site.config, TEST_TUNING);
  const [c, d] = await Promise.all([
    h2(fakeRequest("GET", "/big.txt", { "accept-encoding": "br" })),
    h2(fakeRequest("GET", "/big.txt", { "accept-encoding": "br" })),
  ]);
  assert.ok(c.body instanceof Uint8Array && d.body instanceof Uint8Array);
  assert.equal(c.body.buffer, d.body.buffer);
});

Deno.test("staticFiles() compresses a file renamed over with the same size and mtime afresh", async () => {
  await using own = await makeSite();
  const h = staticFiles(own.config, TEST_TUNING);
  const ae = { "accept-encoding": "gzip" };
  const first = await ask(h, "GET", "/big.txt", ae);
  assert.equal(decoder.decode(gunzipSync(first.body!)), BIG_TEXT);
  // New contents, same size and mtime: only the inode tells.
  const next = BIG_TEXT.replaceAll("fox", "cat");
  const { mtime } = await Deno.stat(`${own.root}/big.txt`);
  await Deno.writeTextFile(`${own.root}/tmp.txt`, next);
  await Deno.utime(`${own.root}/tmp.txt`, mtime!, mtime!);
  await Deno.rename(`${own.root}/tmp.txt`, `${own.root}/big.txt`);
  assert.equal((await ask(h, "GET", "/big.txt")).text, next, "identity");
  const again = await ask(h, "GET", "/big.txt", ae);
  assert.equal(decoder.decode(gunzipSync(again.body!)), next, "gzip");
});

Deno.test("staticFiles() does not compress small or incompressible files", async () => {
  for (const target of ["/hello.txt", "/logo.png", "/large.bin"]) {
    const a = await ask(handler, "GET", target, {
      "accept-encoding": "gzip, br",
    });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-encoding"), undefined, target);
  }
  // Text below the threshold may still vary by coding (a sidecar could appear).
  assert.equal(
    (await ask(handler, "GET", "/hello.txt")).headers.get("vary"),
    "Accept-Encoding",
  );
  assert.equal(
    (await ask(handler, "GET", "/logo.png")).headers.get("vary"),
    undefined,
  );
  // Nothing acceptable at all: 406 even for a file that is never compressed.
  assert.equal(
    (await ask(handler, "GET", "/logo.png", {
      "accept-encoding": "identity;q=0",
    })).status,
    406,
  );
});

Deno.test("staticFiles() serves precompressed sidecars beside the file", async () => {
  const br = await Deno.readFile(`${site.root}/app.js.br`);
  const gz = await Deno.readFile(`${site.root}/app.js.gz`);
  const a = await ask(handler, "GET", "/app.js", { "accept-encoding": "br" });
  assert.equal(a.headers.get("content-encoding"), "br");
  assert.deepEqual(a.body, br);
  assert.equal(a.headers.get("content-type"), "text/javascript; charset=utf-8");
  const b = await ask(handler, "GET", "/app.js", { "accept-encoding": "gzip" });
  assert.deepEqual(b.body, gz);
  assert.notEqual(a.headers.get("etag"), b.headers.get("etag"));
  const c = await ask(handler, "GET", "/app.js");
  assert.equal(c.text, APP_JS);
  assert.equal(c.headers.get("content-encoding"), undefined);
  // The sidecar itself is a file like any other.
  assert.equal(
    (await ask(handler, "GET", "/app.js.gz")).headers.get("content-type"),
    "application/gzip",
  );
});

Deno.test("staticFiles() ignores a sidecar older than its file, or a symlinked one", async () => {
  await using own = await makeSite();
  const stale = await gzipBytes("stale content");
  await Deno.writeFile(`${own.root}/app.js.gz`, stale);
  await Deno.utime(`${own.root}/app.js.gz`, 1_000_000, 1_000_000);
  await Deno.remove(`${own.root}/app.js.br`);
  await Deno.symlink(`${own.base}/secret.txt`, `${own.root}/app.js.br`);
  const h = staticFiles(own.config, TEST_TUNING);
  const a = await ask(h, "GET", "/app.js", { "accept-encoding": "gzip" });
  assert.equal(a.headers.get("content-encoding"), "gzip");
  assert.equal(decoder.decode(gunzipSync(a.body!)), APP_JS);
  const b = await ask(h, "GET", "/app.js", { "accept-encoding": "br" });
  assert.equal(decoder.decode(brotliDecompressSync(b.body!)), APP_JS);
});

Deno.test("staticFiles() recovers when a sidecar vanishes between look and read", async () => {
  await using own = await makeSite();
  // Nothing from memory: the read must meet the missing file.
  const h = staticFiles(own.config, {
    ...TEST_TUNING,
    maxCachedFileBytes: 16,
    sidecarTtlMs: 60_000,
  });
  assert.equal(
    (await ask(h, "GET", "/app.js", { "accept-encoding": "br" })).headers.get(
      "content-encoding",
    ),
    "br",
  );
  await Deno.remove(`${own.root}/app.js.br`);
  const a = await ask(h, "GET", "/app.js", { "accept-encoding": "br" });
  assert.equal(a.status, 200);
  assert.equal(decoder.decode(brotliDecompressSync(a.body!)), APP_JS);
});

// ---------------------------------------------------------------- caching

Deno.test("ByteLru evicts the least recently used entries past its byte budget", () => {
  const lru = new ByteLru<string>(10);
  lru.set("a", "A", 4);
  lru.set("b", "B", 4);
  assert.equal(lru.get("a"), "A"); // "a" is now the newest
  lru.set("c", "C", 4); // 12 > 10: evicts "b", the oldest
  assert.equal(lru.get("b"), undefined);
  assert.equal(lru.get("a"), "A");
  assert.equal(lru.get("c"), "C");
  assert.equal(lru.bytes, 8);
  lru.set("huge", "H", 11); // bigger than the whole budget: not stored
  assert.equal(lru.get("huge"), undefined);
  assert.equal(lru.size, 2);
  lru.set("a", "A2", 2); // replacing frees the old size
  assert.equal(lru.bytes, 6);
  lru.delete("c");
  assert.equal(lru.bytes, 2);
});

Deno.test("ByteLru stays within its budget under any mix of reads and writes", () => {
  const lru = new ByteLru<number>(100);
  const held = new Map<string, number>();
  let seed = 7;
  const random = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
  for (let i = 0; i < 5000; i++) {
    const key = `k${random(40)}`;
    if (random(3) === 0) {
      const bytes = random(30) + 1;
      lru.set(key, bytes, bytes);
      held.set(key, bytes);
    } else {
      lru.get(key);
    }
    let sum = 0;
    for (const [k, bytes] of held) {
      if (lru.get(k) === undefined) held.delete(k);
      else sum += bytes;
    }
    assert.ok(lru.bytes <= 100, `over budget: ${lru.bytes}`);
    assert.equal(lru.bytes, sum, "bytes is the sum of what is held");
    assert.equal(lru.size, held.size);
  }
});

Deno.test("staticFiles() serves small files from memory, revalidated by stat", async () => {
  await using own = await makeSite();
  const h = staticFiles(own.config, TEST_TUNING);
  const a = await h(fakeRequest("GET", "/hello.txt"));
  const b = await h(fakeRequest("GET", "/hello.txt"));
  assert.ok(a.body instanceof Uint8Array && b.body instanceof Uint8Array);
  assert.equal(
    a.body.buffer,
    b.body.buffer,
    "second reply reuses the cached bytes",
  );
  // Same size, new mtime: read again.
  await Deno.writeTextFile(`${own.root}/hello.txt`, "HELLO WORLD\n");
  await Deno.utime(
    `${own.root}/hello.txt`,
    new Date(),
    new Date(Date.now() + 5000),
  );
  assert.equal((await ask(h, "GET", "/hello.txt")).text, "HELLO WORLD\n");
  // Replaced by rename (new inode), same size and mtime as before.
  const info = await Deno.stat(`${own.root}/hello.txt`);
  await Deno.writeTextFile(`${own.root}/tmp.txt`, "hello again\n");
  await Deno.utime(`${own.root}/tmp.txt`, info.atime!, info.mtime!);
  await Deno.rename(`${own.root}/tmp.txt`, `${own.root}/hello.txt`);
  assert.equal((await ask(h, "GET", "/hello.txt")).text, "hello again\n");
});

Deno.test("staticFiles() answers a file in memory without a promise", async () => {
  await using own = await makeSite();
  const h = staticFiles(own.config, {
    ...TEST_TUNING,
    revalidateMs: 60_000,
    sidecarTtlMs: 60_000,
  });
  // The first request reads the file: a promise. So does the first look
  // for a precompressed copy beside it.
  const first = h(fakeRequest("GET", "/hello.txt"));
  assert.ok(first instanceof Promise);
  const read = await first;
  assert.ok(read.body instanceof Uint8Array);
  const look = h(fakeRequest("GET", "/hello.txt", { "accept-encoding": "br" }));
  assert.ok(look instanceof Promise);
  await look;
  const etag = (read.headers as Record<string, string>)["etag"];
  // From then on the reply is at hand: the router and the engine need no await.
  const cases: [string, Record<string, string>, number, string | null][] = [
    ["GET", {}, 200, "hello world\n"],
    ["HEAD", {}, 200, null],
    ["GET", { "if-none-match": etag }, 304, null],
    ["GET", { "accept-encoding": "gzip, br" }, 200, "hello world\n"],
  ];
  for (const [method, fields, status, text] of cases) {
    const reply = h(fakeRequest(method, "/hello.txt", fields));
    assert.ok(
      !(reply instanceof Promise),
      `${method} ${JSON.stringify(fields)}`,
    );
    assert.equal(reply.status, status);
    assert.equal(
      reply.body instanceof Uint8Array ? decoder.decode(reply.body) : null,
      text,
    );
  }
  // Compressed forms in memory too: a sidecar read once, a form made once.
  const forms: [string, string, string][] = [
    ["/app.js", "br", "br"],
    ["/app.js", "gzip", "gzip"],
    ["/big.txt", "gzip", "gzip"],
  ];
  for (const [path, asked, coding] of forms) {
    const fields = { "accept-encoding": asked };
    const made = await h(fakeRequest("GET", path, fields));
    assert.equal(
      (made.headers as Record<string, string>)["content-encoding"],
      coding,
    );
    const reply = h(fakeRequest("GET", path, fields));
    assert.ok(!(reply instanceof Promise), `${path} in ${asked}`);
    assert.equal(
      (reply.headers as Record<string, string>)["content-encoding"],
      coding,
    );
    assert.equal(reply.body, made.body, "the same bytes");
  }
  // What is not at hand still waits: a file past the memory cache.
  const big = h(fakeRequest("GET", "/large.bin"));
  assert.ok(big instanceof Promise);
  const streamed = await big;
  assert.ok(streamed.body instanceof FileBody);
  streamed.body.file.close();
});

Deno.test("staticFiles() with --header fields answers a file in memory without a promise", async () => {
  await using own = await makeSite();
  const h = staticFiles(
    { ...own.config, headers: [["x-frame-options", "DENY"]] },
    { ...TEST_TUNING, revalidateMs: 60_000 },
  );
  await h(fakeRequest("GET", "/hello.txt")); // read into memory
  const reply = h(fakeRequest("GET", "/hello.txt"));
  assert.ok(!(reply instanceof Promise));
  assert.equal(
    (reply.headers as Record<string, string>)["x-frame-options"],
    "DENY",
  );
  // A refusal made at once carries the fields too.
  assert.throws(
    () => h(fakeRequest("POST", "/hello.txt")),
    (err: unknown) =>
      err instanceof HttpError && err.status === 405 &&
      err.headers?.["x-frame-options"] === "DENY" &&
      err.headers?.["allow"] === "GET, HEAD, OPTIONS",
  );
});

Deno.test("staticFiles() streams files above the cache threshold", async () => {
  const reply = await handler(fakeRequest("GET", "/large.bin"));
  assert.ok(reply.body instanceof FileBody);
  assert.equal(reply.body.length, 6000);
  reply.body.file.close();
});

// ---------------------------------------------------------------- listing, 404 page, SPA

Deno.test("staticFiles() lists a folder without index.html only when asked", async () => {
  assert.equal((await ask(handler, "GET", "/nolist/")).status, 404);
  const h = staticFiles(
    { ...site.config, listDirs: true, allowExt: WEB_EXTENSIONS },
    TEST_TUNING,
  );
  const a = await ask(h, "GET", "/nolist/");
  assert.equal(a.status, 200);
  assert.equal(a.headers.get("content-type"), "text/html; charset=utf-8");
  const html = a.text;
  assert.ok(!html.includes("<script>.txt"), "names are escaped");
  assert.match(
    html,
    /<a href="\.\/%3Cscript%3E\.txt">.*<span>&lt;script&gt;\.txt<\/span><\/a>/,
  );
  assert.match(
    html,
    /<a href="\.\/a%26b\.txt">.*<span>a&amp;b\.txt<\/span><\/a>/,
  );
  assert.ok(!html.includes(".hidden.txt"), "dotfiles hidden");
  assert.ok(!html.includes("secret.key"), "files that would be 403 are hidden");
  const order = [
    "folder-a/",
    "folder-b/",
    "&lt;script&gt;.txt",
    "a&amp;b.txt",
    "file2.txt",
    "file10.txt",
  ]
    .map((name) => html.indexOf(`>${name}</span></a>`));
  assert.ok(order.every((i) => i > 0), String(order));
  assert.deepEqual(
    order,
    [...order].sort((x, y) => x - y),
    "folders first, natural order",
  );
  assert.match(html, /<a href="\.\.\/">.*<span>\.\.\/<\/span><\/a>/);
  assert.ok(html.includes("2 B"));
  const allow = staticFiles({
    ...site.config,
    listDirs: true,
    dotfiles: "allow",
  }, TEST_TUNING);
  assert.ok((await ask(allow, "GET", "/nolist/")).text.includes(".hidden.txt"));
  const head = await ask(h, "HEAD", "/nolist/");
  assert.equal(head.body, null);
  assert.equal(Number(head.headers.get("content-length")), a.body!.length);
});

Deno.test("staticFiles() lists only the symlinks it would serve", async () => {
  const h = staticFiles({ ...site.config, listDirs: true }, TEST_TUNING);
  const a = await ask(h, "GET", "/links/");
  assert.equal(a.status, 200);
  for (const name of ["in.txt", "subdir/"]) {
    assert.ok(a.text.includes(`>${name}</span></a>`), `${name} missing`);
  }
  const refused = [
    "out.txt", // out of the root: its size and date are not ours to show
    "relative-out.txt",
    "outdir/",
    "env.txt", // a dotfile under another name
    "dangling.txt",
    "loop-a.txt",
  ];
  for (const name of refused) {
    assert.ok(!a.text.includes(`>${name}</span></a>`), `${name} listed`);
  }
});

Deno.test("staticFiles() never lists a folder swapped for a symlink out, within revalidateMs too", async () => {
  await using own = await makeSite();
  await Deno.mkdir(`${own.root}/docs`);
  await Deno.writeTextFile(`${own.root}/docs/guide.txt`, "guide\n");
  const h = staticFiles(
    { ...own.config, listDirs: true },
    { ...TEST_TUNING, revalidateMs: 60_000 },
  );
  assert.ok(
    (await ask(h, "GET", "/docs/")).text.includes(">guide.txt</span></a>"),
  );
  await Deno.rename(`${own.root}/docs`, `${own.root}/docs-old`);
  await Deno.symlink(`${own.base}/outside`, `${own.root}/docs`);
  const a = await ask(h, "GET", "/docs/");
  assert.equal(a.status, 404);
  assert.ok(!a.text.includes("secret.txt"), "listed a folder outside the root");
});

Deno.test("staticFiles() uses 404.html for browsers, keeping status 404", async () => {
  const a = await ask(handler, "GET", "/missing", {
    accept: "text/html,application/xhtml+xml,*/*;q=0.8",
  });
  assert.equal(a.status, 404);
  assert.match(a.text, /custom not found page/);
  assert.equal(a.headers.get("content-type"), "text/html; charset=utf-8");
  const head = await ask(handler, "HEAD", "/missing", { accept: "text/html" });
  assert.equal(head.status, 404);
  assert.equal(head.body, null);
  const api = await ask(handler, "GET", "/missing", {
    accept: "application/json",
  });
  assert.equal(api.status, 404);
  assert.ok(
    api.error !== undefined,
    "non-browsers get the engine's error reply",
  );
  assert.equal(
    (await ask(handler, "GET", "/.env", { accept: "text/html" })).text.includes(
      "custom not found",
    ),
    true,
  );
});

Deno.test("staticFiles() falls back to index.html for SPA routes", async () => {
  const h = staticFiles(
    { ...site.config, spa: true, allowExt: WEB_EXTENSIONS },
    TEST_TUNING,
  );
  const a = await ask(h, "GET", "/app/users/42", { accept: "text/html" });
  assert.equal(a.status, 200);
  assert.match(a.text, /<p>home<\/p>/);
  assert.equal(
    (await ask(h, "GET", "/app/users/42", { accept: "application/json" }))
      .status,
    404,
  );
  assert.equal(
    (await ask(h, "GET", "/hello.txt", { accept: "text/html" })).text,
    HELLO,
  );
  assert.equal(
    (await ask(h, "GET", "/secret.key", { accept: "text/html" })).status,
    403,
  );
  assert.equal(
    (await ask(h, "POST", "/app", { accept: "text/html" })).status,
    405,
  );
  assert.equal(
    (await ask(handler, "GET", "/app/users/42", { accept: "text/html" }))
      .status,
    404,
  );
});

// ---------------------------------------------------------------- over a socket

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

Deno.test("staticFiles() sends 8 MiB of random bytes intact over a socket", async () => {
  await using own = await makeSite();
  const data = new Uint8Array(8 * 1024 * 1024);
  for (let off = 0; off < data.length; off += 65536) {
    crypto.getRandomValues(data.subarray(off, off + 65536));
  }
  await Deno.writeFile(`${own.root}/random.bin`, data);
  await using server = serve(
    { port: 0, accessLog: false },
    staticFiles(own.config),
  );
  const res = await fetch(`http://127.0.0.1:${server.port}/random.bin`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-length"), String(data.length));
  const got = new Uint8Array(await res.arrayBuffer());
  assert.equal(got.length, data.length);
  assert.equal(await sha256(got), await sha256(data));
  // And a range from the middle.
  const part = await fetch(`http://127.0.0.1:${server.port}/random.bin`, {
    headers: { range: "bytes=4000000-4999999" },
  });
  assert.equal(part.status, 206);
  assert.equal(
    await sha256(new Uint8Array(await part.arrayBuffer())),
    await sha256(data.subarray(4_000_000, 5_000_000)),
  );
});

/** Sends raw request bytes and reads until the server closes. */
async function rawExchange(port: number, request: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = new TextEncoder().encode(request);
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return decoder.decode(
    await new Blob(chunks as Uint8Array<ArrayBuffer>[]).bytes(),
  );
}

Deno.test("staticFiles() over a socket refuses traversal and answers HEAD and ranges", async () => {
  await using server = serve({ port: 0, accessLog: false }, handler);
  const cases: [request: string, status: RegExp][] = [
    [
      "GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      /^HTTP\/1\.1 (400|404) /,
    ],
    [
      "GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      /^HTTP\/1\.1 (400|404) /,
    ],
    [
      "GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      /^HTTP\/1\.1 (400|404) /,
    ],
    [
      "GET //evil.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      /^HTTP\/1\.1 (400|404) /,
    ],
    [
      "GET /links/out.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      /^HTTP\/1\.1 404 /,
    ],
  ];
  for (const [request, status] of cases) {
    const reply = await rawExchange(server.port, request);
    assert.match(reply, status, request);
    assert.ok(!reply.includes(SECRET));
    assert.ok(!/^location:/im.test(reply));
  }
  const head = await rawExchange(
    server.port,
    "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(head, /\r\ncontent-length: 12\r\n/i);
  assert.ok(head.endsWith("\r\n\r\n"), "no body after HEAD");
  const multi = await rawExchange(
    server.port,
    "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,6-7\r\nConnection: close\r\n\r\n",
  );
  assert.match(multi, /^HTTP\/1\.1 206 /);
  const [head2, body] = [
    multi.slice(0, multi.indexOf("\r\n\r\n")),
    multi.slice(multi.indexOf("\r\n\r\n") + 4),
  ];
  assert.equal(
    Number(head2.match(/content-length: (\d+)/i)![1]),
    new TextEncoder().encode(body).length,
  );
  const redirect = await rawExchange(
    server.port,
    "GET /sub?a=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(redirect, /^HTTP\/1\.1 301 /);
  assert.match(redirect, /\r\nlocation: \/sub\/\?a=1\r\n/i);
});
