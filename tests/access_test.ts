/**
 * lib/access.ts: the permission plan the flags need, the Deno flags that
 * grant exactly it, and the engine's start-up check, which runs in child
 * processes here because Deno's permissions belong to a whole process.
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import {
  absolutePath,
  type AccessPlan,
  bracketHost,
  permissionFlags,
  planAccess,
  shellQuote,
  storeAddress,
  UngrantablePath,
} from "../lib/access.ts";
import { parseFlags } from "../lib/cli.ts";
import { ROOT, runToEnd, spawnServer } from "./fixtures/serve_process.ts";

const MAIN = join(ROOT, "main.ts");
const same = (p: string) => p;

Deno.test("planAccess() names each flag's path, absolute, with what it needs", () => {
  const plan = planAccess(
    parseFlags([
      "site",
      "--directory",
      "/srv/files",
      "--cert",
      "c.pem",
      "--key",
      "k.pem",
    ]),
    "/app",
  );
  assert.deepEqual(plan.needs, [
    {
      path: resolve("site"),
      flag: "--root",
      kind: "folder",
      write: false,
      create: false,
    },
    {
      path: resolve("resources/uploads"),
      flag: "--uploads",
      kind: "folder",
      write: true,
      create: true,
    },
    {
      path: "/srv/files",
      flag: "--directory",
      kind: "folder",
      write: true,
      create: false,
    },
    {
      path: resolve("c.pem"),
      flag: "--cert",
      kind: "file",
      write: false,
      create: false,
    },
    {
      path: resolve("k.pem"),
      flag: "--key",
      kind: "file",
      write: false,
      create: false,
    },
  ]);
  assert.equal(plan.net, "127.0.0.1:8080");
  assert.equal(plan.networkInterfaces, false);
  assert.deepEqual(plan.program, []);
});

Deno.test("planAccess() grants the host alone for port 0, and the code for --workers", () => {
  const plan = planAccess(
    parseFlags(["--host", "::", "--port", "0", "--workers", "2"]),
    "/app",
  );
  assert.equal(plan.net, "[::]");
  assert.equal(plan.networkInterfaces, true);
  assert.deepEqual(plan.program, ["/app/main.ts", "/app/lib"]);
  assert.equal(
    planAccess(parseFlags(["--qr"]), "/app").networkInterfaces,
    true,
  );
});

Deno.test("planAccess() grants HTTPS its needs: --tls-save read and write, the addresses a self-signed certificate names, both ports", () => {
  const plan = planAccess(
    parseFlags([
      "--tls",
      "self-signed",
      "--tls-save",
      ".tls",
      "--port",
      "8443",
      "--redirect-http",
      "8080",
    ]),
    "/app",
  );
  assert.deepEqual(plan.needs.find((n) => n.flag === "--tls-save"), {
    path: resolve(".tls"),
    flag: "--tls-save",
    kind: "folder",
    write: true,
    create: true,
  });
  assert.equal(plan.net, "127.0.0.1:8443,127.0.0.1:8080");
  assert.equal(plan.networkInterfaces, true);
  const files = planAccess(
    parseFlags(["--cert", "c.pem", "--key", "k.pem", "--redirect-http", "0"]),
    "/app",
  );
  assert.equal(files.net, "127.0.0.1");
  assert.equal(files.networkInterfaces, false);
});

Deno.test("planAccess() lets the engine reach the --rate-limit-store, and nothing else", () => {
  const plan = planAccess(
    parseFlags([
      "--rate-limit",
      "10/1s",
      "--rate-limit-store",
      "redis://:pw@10.0.0.5/2",
    ]),
    "/app",
  );
  assert.deepEqual(plan.connect, ["10.0.0.5:6379"]);
  assert.deepEqual(permissionFlags(plan, same).slice(0, 1), [
    "--allow-net=127.0.0.1:8080,10.0.0.5:6379",
  ]);
  assert.deepEqual(planAccess(parseFlags([]), "/app").connect, []);
  assert.equal(storeAddress("redis://[::1]:6380"), "[::1]:6380");
});

Deno.test("planAccess() grants read access to --auth-file, so the engine can load it", () => {
  const plan = planAccess(parseFlags(["--auth-file", "users.txt"]), "/app");
  assert.deepEqual(plan.needs.find((n) => n.flag === "--auth-file"), {
    path: resolve("users.txt"),
    flag: "--auth-file",
    kind: "file",
    write: false,
    create: false,
  });
});

Deno.test("permissionFlags() grants exactly the plan, links' targets included", () => {
  const plan: AccessPlan = {
    needs: [
      {
        path: "/w/link",
        flag: "--root",
        kind: "folder",
        write: false,
        create: false,
      },
      {
        path: "/w/up",
        flag: "--uploads",
        kind: "folder",
        write: true,
        create: true,
      },
    ],
    net: "0.0.0.0:80",
    networkInterfaces: true,
    program: ["/app/main.ts", "/app/lib"],
  };
  const real = (p: string) => p === "/w/link" ? "/srv/site" : p;
  assert.deepEqual(permissionFlags(plan, real), [
    "--allow-net=0.0.0.0:80",
    "--allow-read=/w/link,/srv/site,/w/up,/app/main.ts,/app/lib",
    "--allow-write=/w/up",
    "--allow-sys=networkInterfaces",
  ]);
  // A missing path (no real path yet) is granted as it is named.
  assert.deepEqual(
    permissionFlags({
      ...plan,
      needs: plan.needs.slice(0, 1),
      networkInterfaces: false,
      program: [],
    }, () => undefined),
    ["--allow-net=0.0.0.0:80", "--allow-read=/w/link"],
  );
});

Deno.test("permissionFlags() refuses a path with a comma: Deno would split it", () => {
  const plan = planAccess(parseFlags(["--root", "/tmp/a,b"]), "/app");
  assert.throws(() => permissionFlags(plan, same), UngrantablePath);
});

Deno.test("absolutePath() resolves as node:path's resolve() does", () => {
  for (
    const path of ["site", "./a/../b/", "/srv//www/.", "../..", "/", "a/./b"]
  ) {
    assert.equal(absolutePath(path), resolve(path), path);
  }
  assert.equal(absolutePath("x", "/"), "/x");
});

Deno.test("shellQuote() and bracketHost() write what a shell and a URL read back", () => {
  assert.equal(shellQuote("/srv/site-1"), "/srv/site-1");
  assert.equal(shellQuote("my site"), "'my site'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(bracketHost("::1"), "[::1]");
  assert.equal(bracketHost("127.0.0.1"), "127.0.0.1");
});

/** main.ts run by hand with `perms`, as the README's older commands did. */
function engine(perms: string[], args: string[], cwd = ROOT) {
  return runToEnd(
    [Deno.execPath(), "run", "--no-prompt", ...perms, MAIN, ...args],
    { cwd },
  );
}

async function tempDir(): Promise<AsyncDisposable & { dir: string }> {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("main.ts without read permission for --root exits 2, naming the folder, the permission and deno task serve", async () => {
  await using site = await tempDir();
  const { code, stdout, stderr } = await engine(
    [
      "--allow-net",
      "--allow-read=resources",
      "--allow-write=resources/uploads",
    ],
    ["--root", site.dir, "--port", "0"],
  );
  assert.equal(code, 2);
  assert.equal(
    stderr.trim(),
    `spindle: no read permission for ${site.dir} (--root): Deno was started without it; run: deno task serve --root ${site.dir} --port 0 (it grants exactly the folders the flags name)`,
  );
  assert.equal(stdout, "");
});

Deno.test("main.ts without write permission for --directory exits 2 at start, not 500 at the first POST", async () => {
  await using site = await tempDir();
  const { code, stderr } = await engine(
    [
      "--allow-net",
      `--allow-read=resources,${site.dir}`,
      "--allow-write=resources/uploads",
    ],
    ["--directory", site.dir, "--port", "0"],
  );
  assert.equal(code, 2);
  assert.match(
    stderr,
    new RegExp(
      `^spindle: no write permission for ${site.dir} \\(--directory\\)`,
    ),
  );
});

Deno.test("main.ts with a root link but not its target exits 2 naming the target", async () => {
  await using site = await tempDir();
  const link = `${site.dir}-link`;
  await Deno.symlink(site.dir, link);
  try {
    const { code, stderr } = await engine(
      [
        "--allow-net",
        `--allow-read=${link},resources/uploads`,
        "--allow-write=resources/uploads",
      ],
      ["--root", link, "--port", "0"],
    );
    assert.equal(code, 2);
    assert.match(
      stderr,
      new RegExp(
        `^spindle: no read permission for ${site.dir} \\(--root ${link} links there\\)`,
      ),
    );
  } finally {
    await Deno.remove(link);
  }
});

Deno.test("main.ts without net permission for its address exits 2", async () => {
  const { code, stderr } = await engine(
    [
      "--allow-net=127.0.0.1:1",
      "--allow-read=resources",
      "--allow-write=resources/uploads",
    ],
    ["--port", "8080"],
  );
  assert.equal(code, 2);
  assert.match(
    stderr,
    /^spindle: no net permission to listen on 127\.0\.0\.1:8080: /,
  );
});

Deno.test("main.ts without net permission for its --redirect-http port exits 2, naming it", async () => {
  const { code, stderr } = await engine(
    [
      "--allow-net=127.0.0.1:8443",
      "--allow-sys=networkInterfaces",
      "--allow-read=resources",
      "--allow-write=resources/uploads",
    ],
    ["--tls", "self-signed", "--port", "8443", "--redirect-http", "8081"],
  );
  assert.equal(code, 2);
  assert.match(
    stderr,
    /^spindle: no net permission to listen on 127\.0\.0\.1:8081: /,
  );
});

Deno.test("main.ts --workers 2 without read permission for its own code exits 2, naming it", async () => {
  const { code, stderr } = await engine(
    [
      "--unstable-net",
      "--allow-net",
      "--allow-read=resources",
      "--allow-write=resources/uploads",
    ],
    ["--workers", "2", "--port", "0"],
  );
  assert.equal(code, 2);
  assert.match(
    stderr,
    new RegExp(
      `^spindle: no read permission for ${MAIN}, Spindle's own code, which --workers threads load`,
    ),
  );
});

Deno.test("the compile task's permissions serve ./resources and refuse another folder at start", async () => {
  // What `deno task compile` bakes into dist/spindle, run with deno run (the
  // binary itself needs denort, which cannot be downloaded here).
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const perms = (config.tasks.compile as string).split(/\s+/).filter((a) =>
    a.startsWith("--allow-")
  );
  assert.deepEqual(perms, [
    "--allow-net",
    "--allow-read=resources",
    "--allow-write=resources/uploads",
  ]);
  await using site = await tempDir();
  await Deno.mkdir(join(site.dir, "resources"));
  await Deno.writeTextFile(join(site.dir, "resources", "index.html"), "hi");
  {
    await using server = await spawnServer(
      [Deno.execPath(), "run", ...perms, MAIN, "--port", "0"],
      { cwd: site.dir },
    );
    assert.ok(server.port > 0, server.lines.join("\n"));
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(await res.text(), "hi");
  }
  const outside = await engine(perms, ["/etc", "--port", "0"], site.dir);
  assert.equal(outside.code, 2);
  assert.match(
    outside.stderr,
    /^spindle: no read permission for \/etc \(--root\)/,
  );
  // In a folder without resources/, it says so instead of answering 404s.
  const bare = await engine(
    perms,
    ["--port", "0"],
    join(site.dir, "resources"),
  );
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /resources \(--root\) does not exist/);
});
