/**
 * The second wall: the server runs with read access to its root only, as
 * `deno task serve` does (`--allow-read=resources`). Even a traversal bug in
 * the handler could then read nothing outside the root, except through a
 * symlink inside it, which Deno allows and staticFiles() refuses.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeSite, SECRET } from "./fixtures/static_site.ts";

const FIXTURE = fileURLToPath(
  new URL("./fixtures/static_serve.ts", import.meta.url),
);

const TRAVERSALS = [
  "/../secret.txt",
  "/%2e%2e/secret.txt",
  "/..%2fsecret.txt",
  "/%252e%252e/secret.txt",
  "/..%5csecret.txt",
  "/%c0%ae%c0%ae/secret.txt",
  "//secret.txt",
  "/links/out.txt",
  "/links/relative-out.txt",
  "/links/outdir/secret.txt",
];

/** Sends one request on a fresh connection and returns the whole reply. */
async function rawGet(port: number, target: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ),
  );
  return await new Response(conn.readable).text();
}

for (
  const [name, cwd, allowRead, root] of [
    ["an absolute --allow-read", undefined, "ROOT", "ROOT"],
    ["a relative --allow-read, as deno task serve", "BASE", "root", "root"],
  ] as const
) {
  Deno.test(`staticFiles() under ${name} refuses traversal, and the process cannot read outside`, async () => {
    await using site = await makeSite();
    const sub = (s: string) =>
      s === "ROOT" ? site.root : s === "BASE" ? site.base : s;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        `--allow-read=${sub(allowRead)}`,
        FIXTURE,
        sub(root),
        `${site.base}/secret.txt`,
        `${site.root}/links/out.txt`,
      ],
      cwd: cwd === undefined ? undefined : sub(cwd),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const { value } = await lines.read();
      const report = JSON.parse(value!) as {
        port: number;
        outside: string;
        link: string;
      };
      // The permission wall: a direct read outside the root fails...
      assert.ok(
        ["NotCapable", "PermissionDenied"].includes(report.outside),
        report.outside,
      );
      // ...but Deno follows a symlink inside the root: only our realPath() check stops that.
      assert.equal(report.link, "read");
      for (const target of TRAVERSALS) {
        const reply = await rawGet(report.port, target);
        assert.match(reply, /^HTTP\/1\.1 (400|404) /, target);
        assert.ok(!reply.includes(SECRET), target);
      }
      const ok = await rawGet(report.port, "/hello.txt");
      assert.match(ok, /^HTTP\/1\.1 200 /);
      assert.ok(ok.endsWith("hello world\n"));
    } finally {
      await child.stdin.close();
      await lines.cancel();
      const status = await child.status;
      assert.equal(status.code, 0);
    }
  });
}
