/**
 * GET /files/{name} reads only files under `--directory` (issue #9 point 9):
 * a symlink is followed only to a file under the folder, as for static files.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { DEFAULT_STATIC } from "../lib/app/settings.ts";
import { startApp } from "./fixtures/app_server.ts";
import { startMain } from "./fixtures/main_server.ts";
import { tempRoot } from "./fixtures/static_request.ts";

const SECRET = "TOP-SECRET-outside-the-folder";

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

Deno.test("GET /files/{name} answers 404 for a symlink out of the folder, and follows one that stays inside", async () => {
  await using app = await startApp();
  const base = dirname(app.directory);
  await Deno.writeTextFile(join(base, "secret.txt"), SECRET);
  await Deno.writeTextFile(join(app.directory, "real.txt"), "inside\n");
  await Deno.writeTextFile(join(app.directory, ".private"), SECRET);
  const links: [name: string, target: string, status: number][] = [
    ["out.txt", join(base, "secret.txt"), 404],
    ["relative-out.txt", "../secret.txt", 404],
    ["dot.txt", join(app.directory, ".private"), 404], // temp files stay private
    ["in.txt", join(app.directory, "real.txt"), 200],
  ];
  for (const [name, target] of links) {
    await Deno.symlink(target, join(app.directory, name));
  }
  for (const [name, , status] of links) {
    const reply = await get(`${app.origin}/files/${name}`);
    assert.equal(reply.status, status, name);
    assert.ok(!reply.text.includes(SECRET), `${name} sent the secret`);
    if (status === 200) assert.equal(reply.text, "inside\n");
  }
});

Deno.test("GET /files/{name} answers 404, not 500, for a symlink out of what the process may read", async () => {
  await using tmp = await tempRoot();
  const [site, files] = [join(tmp.path, "site"), join(tmp.path, "files")];
  await Deno.mkdir(site);
  await Deno.mkdir(files);
  await Deno.writeTextFile(join(tmp.path, "secret.txt"), SECRET);
  await Deno.symlink(join(tmp.path, "secret.txt"), join(files, "out.txt"));
  await Deno.writeTextFile(join(files, "ok.txt"), "fine\n");
  // As `deno task serve` runs: read access to the served folders only.
  await using main = await startMain(
    [`--allow-read=${site},${files}`, `--allow-write=${files}`],
    ["--root", site, "--directory", files],
  );
  const out = await get(`${main.origin}/files/out.txt`);
  assert.equal(out.status, 404);
  assert.ok(!out.text.includes(SECRET));
  assert.equal((await get(`${main.origin}/files/ok.txt`)).text, "fine\n");
});

Deno.test("GET /files/{name} answers 404 for a file with two names under --strict-links", async () => {
  await using app = await startApp({
    app: { static: { ...DEFAULT_STATIC, strictLinks: true } },
  });
  const base = dirname(app.directory);
  await Deno.writeTextFile(join(base, "secret.txt"), SECRET);
  await Deno.link(join(base, "secret.txt"), join(app.directory, "twin.txt"));
  await Deno.writeTextFile(join(app.directory, "one.txt"), "one name\n");
  const twin = await get(`${app.origin}/files/twin.txt`);
  assert.equal(twin.status, 404);
  assert.ok(!twin.text.includes(SECRET));
  assert.equal((await get(`${app.origin}/files/one.txt`)).text, "one name\n");
});

Deno.test("POST /files/{name} replaces a symlink at its name, never writing through it", async () => {
  await using app = await startApp();
  const secret = join(dirname(app.directory), "secret.txt");
  await Deno.writeTextFile(secret, SECRET);
  await Deno.symlink(secret, join(app.directory, "note.txt"));
  const res = await fetch(`${app.origin}/files/note.txt`, {
    method: "POST",
    body: "posted",
  });
  assert.equal(res.status, 201);
  await res.body?.cancel();
  assert.equal(await Deno.readTextFile(secret), SECRET);
  const info = await Deno.lstat(join(app.directory, "note.txt"));
  assert.ok(info.isFile && !info.isSymlink, "the link itself was replaced");
  assert.equal(
    await Deno.readTextFile(join(app.directory, "note.txt")),
    "posted",
  );
});
