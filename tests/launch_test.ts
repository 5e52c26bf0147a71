/**
 * `deno task serve` as a new user runs it: any folder, one command, no
 * hand-written --allow-* flags. Real processes throughout: the task, the
 * launcher (launch.ts) and the engine it starts (main.ts), whose permission
 * set is read back from /proc/PID/cmdline.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  engineTunables,
  MALLOC_TUNABLES,
  openFileLimit,
  withFileLimit,
} from "../launch.ts";
import { parseFlags } from "../lib/cli.ts";
import { COLLECTOR_GLOBAL } from "../lib/http/ws/collect.ts";
import {
  cachedPackages,
  childrenOf,
  cmdlineOf,
  environOf,
  findEngine,
  launcherCommand,
  lockedPackages,
  permissionsOf,
  ROOT,
  type Running,
  runToEnd,
  seedDenoDir,
  spawnServer,
} from "./fixtures/serve_process.ts";
import { certificate } from "./helpers/cert.ts";

const DENO = Deno.execPath();
const TASK = [DENO, "task", "serve"];
const UPLOADS = join(ROOT, "resources", "uploads");

/** A temp folder with an index.html, outside resources/. */
async function makeSite(): Promise<AsyncDisposable & { dir: string }> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "site-" }));
  await Deno.writeTextFile(join(dir, "index.html"), "<h1>my site</h1>");
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function get(
  port: number,
  path: string,
  tls?: Deno.HttpClient,
): Promise<[number, string]> {
  const res = tls === undefined
    ? await fetch(`http://127.0.0.1:${port}${path}`)
    : await fetch(`https://localhost:${port}${path}`, { client: tls });
  return [res.status, await res.text()];
}

/** GET over HTTPS trusting `ca` (a PEM certificate), or any certificate. */
async function getTls(
  port: number,
  path: string,
  ca?: string,
): Promise<[number, string]> {
  if (ca !== undefined) {
    using client = Deno.createHttpClient({ caCerts: [ca] });
    return await get(port, path, client);
  }
  // A certificate made in memory: nothing to trust it by; see it answer.
  const { default: tls } = await import("node:tls");
  return await new Promise((resolve, reject) => {
    const s = tls.connect(
      { host: "127.0.0.1", port, rejectUnauthorized: false },
      () =>
        s.end(
          `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
        ),
    );
    let text = "";
    s.on("data", (d) => text += d);
    s.on("end", () => {
      resolve([Number(text.split(" ")[1]), text.split("\r\n\r\n")[1]]);
    });
    s.on("error", reject);
  });
}

/** Fails with what the process printed when it ended before listening. */
async function assertListening(server: Running): Promise<void> {
  if (server.port === 0) {
    const { code, stdout, stderr } = await server.done;
    assert.fail(`exited ${code} before listening:\n${stdout}\n${stderr}`);
  }
}

/** The one `spindle: ...` line of a failed start. */
function spindleLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.startsWith("spindle: "));
  assert.equal(lines.length, 1, stderr);
  return lines[0];
}

Deno.test("deno task serve --root DIR serves a folder outside resources/ and says so at start", async () => {
  await using site = await makeSite();
  let code: number;
  {
    await using server = await spawnServer([
      ...TASK,
      "--root",
      site.dir,
      "--port",
      "0",
    ]);
    await assertListening(server);
    assert.deepEqual(await get(server.port, "/"), [200, "<h1>my site</h1>"]);
    assert.deepEqual(server.lines.slice(0, 5), [
      `Serving ${site.dir} on`,
      `  http://127.0.0.1:${server.port}/`,
      `May read ${site.dir}, ${UPLOADS}`,
      `May write ${UPLOADS}`,
      "Ctrl-C to stop",
    ]);
    server.child.kill("SIGTERM");
    code = (await server.done).code;
  }
  assert.equal(code, 0);
});

Deno.test("deno task serve -- --port 0 skips the --, as deno task passes it on", async () => {
  await using site = await makeSite();
  await using server = await spawnServer([
    ...TASK,
    "--",
    "--port",
    "0",
    "--root",
    site.dir,
  ]);
  await assertListening(server);
  assert.deepEqual(await get(server.port, "/"), [200, "<h1>my site</h1>"]);
});

Deno.test("deno task serve DIR serves DIR, as http-server DIR does", async () => {
  await using site = await makeSite();
  await using server = await spawnServer([...TASK, site.dir, "--port", "0"]);
  await assertListening(server);
  assert.deepEqual(await get(server.port, "/"), [200, "<h1>my site</h1>"]);
});

Deno.test("the engine may read only the flags' folders and write only uploads and --directory", async () => {
  await using site = await makeSite();
  const files = join(site.dir, "files");
  const uploads = join(site.dir, "up");
  await Deno.mkdir(files);
  await using server = await spawnServer([
    ...launcherCommand(),
    "--root",
    site.dir,
    "--directory",
    files,
    "--uploads",
    uploads, // missing: made at start
    "--port",
    "0",
  ]);
  await assertListening(server);
  const engine = await findEngine(server.child.pid);
  assert.notEqual(engine, server.child.pid);
  const perms = permissionsOf(await cmdlineOf(engine));
  assert.deepEqual(Object.fromEntries(perms), {
    net: "127.0.0.1", // port 0: the kernel picks it once the engine runs
    read: [site.dir, uploads, files].join(","),
    write: [uploads, files].join(","),
  });
  // The launcher runs Deno, reads paths and the malloc settings the user
  // may have set; it never gets the network.
  const own = permissionsOf(await cmdlineOf(server.child.pid));
  assert.deepEqual(Object.fromEntries(own), {
    read: "",
    run: "",
    env:
      "GLIBC_TUNABLES,MALLOC_MMAP_THRESHOLD_,MALLOC_TRIM_THRESHOLD_,MALLOC_TOP_PAD_",
  });

  // The README's --directory example and an upload, on these folders.
  const base = `http://127.0.0.1:${server.port}`;
  const put = await fetch(`${base}/files/notes.txt`, {
    method: "POST",
    body: "hello",
  });
  assert.equal(put.status, 201);
  await put.body?.cancel();
  assert.deepEqual(await get(server.port, "/files/notes.txt"), [200, "hello"]);
  const up = await fetch(`${base}/upload`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"name":"pen"}',
  });
  assert.equal(up.status, 201);
  await up.body?.cancel();
  assert.equal([...Deno.readDirSync(uploads)].length, 1);
});

Deno.test("a root that is a link is served: the engine may read the link and its target", async () => {
  await using site = await makeSite();
  const link = `${site.dir}-link`;
  await Deno.symlink(site.dir, link);
  try {
    await using server = await spawnServer([
      ...launcherCommand(),
      link,
      "--port",
      "0",
    ]);
    await assertListening(server);
    assert.deepEqual(await get(server.port, "/"), [200, "<h1>my site</h1>"]);
    const engine = await findEngine(server.child.pid);
    const read = permissionsOf(await cmdlineOf(engine)).get("read")!.split(",");
    assert.deepEqual(read.slice(0, 2), [link, site.dir]);
  } finally {
    await Deno.remove(link);
  }
});

Deno.test("deno task serve --workers 2 serves from two engines, which may read Spindle's own code", async () => {
  const server = await spawnServer([
    ...launcherCommand(),
    "--workers",
    "2",
    "--port",
    "0",
  ]);
  try {
    await assertListening(server);
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`http://127.0.0.1:${server.port}/health`, {
        headers: { connection: "close" },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const engine = await findEngine(server.child.pid);
    const read = permissionsOf(await cmdlineOf(engine)).get("read")!.split(",");
    assert.deepEqual(read.slice(-2), [
      join(ROOT, "main.ts"),
      join(ROOT, "lib"),
    ]);
  } finally {
    server.child.kill("SIGTERM");
  }
  const { code, stdout } = await server.done;
  assert.equal(code, 0);
  assert.equal(stdout.match(/\] spindle\.server: Stopped/g)?.length, 2, stdout);
});

Deno.test("bound to 0.0.0.0, the start lines list every address and --qr draws the network URL", async () => {
  const { renderUnicodeCompact } = await import("uqr");
  await using server = await spawnServer([
    ...launcherCommand(),
    "--host",
    "0.0.0.0",
    "--port",
    "0",
    "--qr",
  ]);
  await assertListening(server);
  const engine = await findEngine(server.child.pid);
  const perms = permissionsOf(await cmdlineOf(engine));
  assert.equal(perms.get("sys"), "networkInterfaces");
  assert.equal(perms.get("net"), "0.0.0.0");
  const addresses = Deno.networkInterfaces()
    .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    .map((i) => `http://${i.address}:${server.port}/`);
  const urls = [`http://127.0.0.1:${server.port}/`, ...addresses];
  assert.deepEqual(
    server.lines.slice(1, 1 + urls.length),
    urls.map((u) => `  ${u}`),
  );
  const text = server.lines.join("\n");
  if (addresses.length === 0) {
    assert.match(text, /--qr: no network address to show/);
  } else {
    assert.ok(text.includes(`Scan to open ${addresses[0]}`), text);
    assert.ok(
      text.includes(renderUnicodeCompact(addresses[0], { border: 1 })),
      text,
    );
  }
});

for (
  const [name, args, message] of [
    [
      "a missing root",
      ["--root", "/nonexistent/spindle-site"],
      /^spindle: \/nonexistent\/spindle-site \(--root\) does not exist; check the path, or create it: mkdir -p \/nonexistent\/spindle-site$/,
    ],
    [
      "a root that is a file",
      ["--root", join(ROOT, "deno.json")],
      /^spindle: \S+\/deno\.json \(--root\) is a file, not a folder; serve the folder that holds it: deno task serve --root \S+$/,
    ],
    [
      "a missing --directory",
      ["--directory", "/nonexistent/spindle-files"],
      /^spindle: \/nonexistent\/spindle-files \(--directory\) does not exist/,
    ],
    [
      "a missing certificate",
      ["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"],
      /^spindle: \/nonexistent\/c\.pem \(--cert\) does not exist; check the path$/,
    ],
    [
      "a path with a comma",
      ["--root", "/tmp/a,b"],
      /^spindle: \/tmp\/a,b \(--root\): Deno cannot grant access to a path with a comma/,
    ],
    [
      "a bad flag",
      ["--port", "eighty"],
      /^spindle: --port: "eighty" is not a whole number/,
    ],
  ] as const
) {
  Deno.test(`deno task serve exits 2 with one line for ${name}`, async () => {
    const { code, stdout, stderr } = await runToEnd([...TASK, ...args]);
    assert.equal(code, 2, stderr);
    assert.match(spindleLine(stderr), message);
    assert.doesNotMatch(stdout, /Listening/);
  });
}

Deno.test("deno task serve --help prints the flags and exits 0", async () => {
  const { code, stdout } = await runToEnd([...TASK, "--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /Usage: spindle \[options\] \[DIR\]/);
  assert.match(stdout, /--qr /);
});

Deno.test("SIGTERM to the launcher alone reaches the engine; the launcher exits with its code", async () => {
  const server = await spawnServer([...launcherCommand(), "--port", "0"]);
  await assertListening(server);
  const engine = await findEngine(server.child.pid);
  Deno.kill(server.child.pid, "SIGTERM");
  const { code, stdout } = await server.done;
  assert.equal(code, 0);
  assert.match(stdout, /spindle\.server: Stopped/);
  await assert.rejects(cmdlineOf(engine), Deno.errors.NotFound);
});

Deno.test("the launcher exits with the engine's code: 1 for a taken port, 137 when it is killed", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = await runToEnd([
    ...launcherCommand(),
    "--port",
    String(taken.addr.port),
  ]);
  assert.equal(busy.code, 1);
  assert.match(busy.stdout, /Cannot start: port \d+ is already in use/);

  const server = await spawnServer([...launcherCommand(), "--port", "0"]);
  await assertListening(server);
  Deno.kill(await findEngine(server.child.pid), "SIGKILL");
  assert.equal((await server.done).code, 137);
});

Deno.test("deno task killed alone: the launcher sees its parent gone and stops the engine", async () => {
  const server = await spawnServer([...TASK, "--port", "0"]);
  await assertListening(server);
  const launcher = (await childrenOf(server.child.pid))[0];
  const engine = await findEngine(launcher);
  Deno.kill(server.child.pid, "SIGKILL"); // nothing is forwarded
  assert.equal((await server.child.status).code, 137);
  // Its stdout closes once the launcher and the engine have exited; the
  // launcher looks twice a second, so 10 s is generous on a busy machine.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((r) =>
    timer = setTimeout(() => r(undefined), 10_000)
  );
  const finished = await Promise.race([server.done, late]);
  clearTimeout(timer);
  if (finished === undefined) {
    for (const pid of [engine, launcher]) Deno.kill(pid, "SIGKILL");
    await server.done;
    assert.fail("the engine still ran 10 s after deno task was killed");
  }
  assert.match(finished.stdout, /spindle\.server: Stopped/);
  await assert.rejects(cmdlineOf(engine), Deno.errors.NotFound);
});

Deno.test("Ctrl-C arriving again and again while the engine stops still ends in exit code 0", async () => {
  // A terminal's Ctrl-C reaches each process, and deno task and the launcher
  // pass it on: copies land while the engine and the launcher shut down.
  const server = await spawnServer([...launcherCommand(), "--port", "0"]);
  await assertListening(server);
  const engine = await findEngine(server.child.pid);
  let exited = false;
  const status = server.child.status.finally(() => exited = true);
  let sent = 0;
  while (!exited) {
    for (const pid of [engine, server.child.pid]) {
      try {
        Deno.kill(pid, "SIGINT");
        sent++;
      } catch {
        // that one is gone already
      }
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.ok(sent > 2);
  assert.equal((await status).code, 0);
  assert.match((await server.done).stdout, /spindle\.server: Stopped/);
});

const setsid = await runToEnd(["sh", "-c", "command -v setsid"]).catch(() =>
  undefined
);
if (setsid?.code !== 0) console.log("skipped: setsid is not installed");
Deno.test({
  name:
    "Ctrl-C (SIGINT to the whole process group) stops deno task serve cleanly, exit 0",
  ignore: setsid?.code !== 0,
  async fn() {
    // setsid makes deno task lead its own group, as a shell's foreground job.
    const server = await spawnServer(["setsid", ...TASK, "--port", "0"]);
    await assertListening(server);
    Deno.kill(-server.child.pid, "SIGINT");
    const { code, stdout } = await server.done;
    assert.equal(code, 0);
    assert.equal(stdout.match(/spindle\.server: Stopped/g)?.length, 1, stdout);
  },
});

Deno.test("the engine's malloc keeps freed memory: GLIBC_TUNABLES ours, then the user's; none over MALLOC_*_", async () => {
  const cases: [Record<string, string>, string | undefined][] = [
    [{}, MALLOC_TUNABLES],
    [
      { GLIBC_TUNABLES: "glibc.malloc.arena_max=2" },
      `${MALLOC_TUNABLES}:glibc.malloc.arena_max=2`,
    ],
    [{ MALLOC_TRIM_THRESHOLD_: "1000000" }, undefined],
  ];
  for (const [env, want] of cases) {
    await using server = await spawnServer([
      ...launcherCommand(),
      "--port",
      "0",
    ], { env });
    await assertListening(server);
    const engine = await findEngine(server.child.pid);
    const seen = await environOf(engine);
    // glibc cuts the value it parsed in place (/proc shows the first
    // tunable only): the first says whose list it is.
    const first = (tunables: string | undefined) => tunables?.split(":")[0];
    assert.equal(
      first(seen.get("GLIBC_TUNABLES")),
      first(want),
      JSON.stringify(env),
    );
    if (want === undefined) {
      assert.equal(seen.get("MALLOC_TRIM_THRESHOLD_"), "1000000");
    }
  }
});

Deno.test("engineTunables() puts the user's GLIBC_TUNABLES last, so theirs win, and leaves malloc alone under its older variables", () => {
  const from = (env: Record<string, string>) => (name: string) => env[name];
  assert.equal(engineTunables(from({})), MALLOC_TUNABLES);
  assert.equal(
    engineTunables(from({ GLIBC_TUNABLES: "glibc.malloc.trim_threshold=0" })),
    `${MALLOC_TUNABLES}:glibc.malloc.trim_threshold=0`,
  );
  for (
    const name of [
      "MALLOC_MMAP_THRESHOLD_",
      "MALLOC_TRIM_THRESHOLD_",
      "MALLOC_TOP_PAD_",
    ]
  ) {
    assert.equal(engineTunables(from({ [name]: "1" })), undefined, name);
  }
});

Deno.test("the engine runs with V8's gc under our name, and the launcher with the same V8 flags", async () => {
  await using server = await spawnServer([
    ...launcherCommand(),
    "--port",
    "0",
  ]);
  await assertListening(server);
  // Deno flags: before the script, not among the script's arguments.
  const v8Flags = (argv: string[]) => {
    const script = argv.findIndex((a) => /(^|\/)(launch|main)\.ts$/.test(a));
    assert.ok(script > 0, argv.join(" "));
    return argv.slice(0, script).filter((a) => a.startsWith("--v8-flags"));
  };
  const engine = await cmdlineOf(await findEngine(server.child.pid));
  // gc under our name: big WebSocket messages ask for minor collections.
  assert.deepEqual(
    v8Flags(engine),
    [`--v8-flags=--expose-gc-as=${COLLECTOR_GLOBAL}`],
    engine.join(" "),
  );
  // V8 rejects cached code made under other flags: the launcher and the
  // engine load some of the same modules, and with different flags each
  // start rewrote the other's cache (start to first answer ~150 -> ~250 ms).
  const launcher = await cmdlineOf(server.child.pid);
  assert.deepEqual(v8Flags(launcher), v8Flags(engine), launcher.join(" "));
});

/**
 * A child Deno under `GLIBC_TUNABLES=tunables` fills 80 MiB with 256 KiB
 * buffers, lets them die, collects (freeing them at once, as V8 does about
 * every 64 MiB of dead buffers), then fills 80 MiB again: the minor page
 * faults of that second fill. Kept memory is reused (tens of faults);
 * memory given back is faulted in again (~20,000).
 */
async function refillFaults(tunables: string): Promise<number> {
  const code = `
    const faults = () => {
      const stat = Deno.readTextFileSync("/proc/self/stat");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
    };
    const fill = () => Array.from({ length: 320 }, () => new Uint8Array(262144).fill(1));
    let kept = fill();
    kept = undefined;
    globalThis.gc();
    const before = faults();
    kept = fill();
    console.log(faults() - before, kept.length);
  `;
  const out = await new Deno.Command(DENO, {
    // Sweeping on the main thread: the buffers are freed inside gc().
    args: [
      "eval",
      "--v8-flags=--expose-gc,--no-concurrent-array-buffer-sweeping",
      code,
    ],
    env: { GLIBC_TUNABLES: tunables },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /^\d+ 320$/);
  return Number(text.split(" ")[0]);
}

Deno.test("the engine's malloc keeps what a collection frees at once: 80 MiB of dead 256 KiB buffers are reused, not faulted in again", async () => {
  // Twice V8's 64 MiB: at 64 MiB about half the processes (by where their
  // heap's live chunks lie) gave it all back at every collection.
  const trim = Number(/trim_threshold=(\d+)/.exec(MALLOC_TUNABLES)?.[1]);
  assert.ok(trim >= 128 * 1024 * 1024, MALLOC_TUNABLES);
  // Six processes, three at a time: each has its own heap layout.
  for (let round = 0; round < 2; round++) {
    const faults = await Promise.all(
      [0, 1, 2].map(() => refillFaults(MALLOC_TUNABLES)),
    );
    for (const n of faults) assert.ok(n < 2000, `${faults} minor faults`);
  }
});

Deno.test("withFileLimit() puts --max-fds first, after a leading --, so the user's own wins", () => {
  assert.deepEqual(withFileLimit(["--port", "0"], 1024), [
    "--max-fds=1024",
    "--port",
    "0",
  ]);
  assert.deepEqual(withFileLimit(["--", "--port", "0"], 1024), [
    "--",
    "--max-fds=1024",
    "--port",
    "0",
  ]);
  assert.deepEqual(withFileLimit(["8080"], undefined), ["8080"]);
  const mine = parseFlags(withFileLimit(["--max-fds", "300"], 1024));
  assert.equal(mine.server.limits.maxOpenFiles, 300);
  assert.equal(
    parseFlags(withFileLimit(["--", "8081"], 1024)).server.port,
    8081,
  );
});

const fileLimit = await openFileLimit();
if (fileLimit === undefined) {
  console.log("skipped: ulimit -n is unlimited or unknown here");
}

Deno.test({
  name:
    "deno task serve tells the engine the descriptor limit it inherits (ulimit -n)",
  ignore: fileLimit === undefined,
}, async () => {
  const limit = fileLimit;
  await using server = await spawnServer([...TASK, "--port", "0"]);
  await assertListening(server);
  const cmdline = await cmdlineOf(await findEngine(server.child.pid));
  assert.ok(cmdline.includes(`--max-fds=${limit}`), cmdline.join(" "));
});

/** Every `deno task serve ...` command in README.md's sh blocks and comments. */
function readmeServeCommands(): string[] {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  const commands: string[] = [];
  for (const line of blocks.join("\n").split("\n")) {
    const m = /(?:^|# after: )((?:mkdir -p \S+ && )?deno task serve\b[^#]*)/
      .exec(
        line,
      );
    if (m) commands.push(m[1].trim());
  }
  return commands;
}

Deno.test("the README's deno task serve commands work as written", async () => {
  const commands = readmeServeCommands();
  assert.ok(commands.length >= 3, commands.join("\n"));
  await using home = await makeSite(); // stands for ~, and for /tmp/files
  await Deno.mkdir(join(home.dir, "site"));
  await Deno.writeTextFile(join(home.dir, "site", "index.html"), "<h1>~</h1>");
  // The Passwords section's file, made as it says: hash-password from stdin.
  const hash = new Deno.Command(Deno.execPath(), {
    args: ["run", join(ROOT, "main.ts"), "hash-password", "alice"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = hash.stdin.getWriter();
  await writer.write(new TextEncoder().encode("s3cret\n"));
  await writer.close();
  const hashed = await hash.output();
  assert.ok(hashed.success);
  await Deno.writeFile(join(home.dir, "users.txt"), hashed.stdout);
  // The HTTPS section's ~/cert.pem and ~/key.pem.
  const pem = await certificate();
  await Deno.writeTextFile(join(home.dir, "cert.pem"), pem.cert);
  await Deno.writeTextFile(join(home.dir, "key.pem"), pem.key);
  using tls = Deno.createHttpClient({ caCerts: [pem.cert] });
  for (const command of commands) {
    // Port 0: other servers may hold 8080 on a shared machine. `exec`, so
    // the SIGTERM that ends the test reaches deno task, not just sh.
    const line = `${
      command.replaceAll("/tmp/files", join(home.dir, "files"))
        .replace("deno task", "exec deno task")
        .replace(/--redirect-http \d+/, "--redirect-http 0")
    } --port 0`;
    await using server = await spawnServer(["sh", "-c", line], {
      env: { HOME: home.dir },
    });
    await assertListening(server);
    if (command.includes("--auth")) {
      // A password is asked for, and the README's user gets in.
      assert.equal((await get(server.port, "/"))[0], 401, line);
      const res = await fetch(`http://127.0.0.1:${server.port}/`, {
        headers: { authorization: `Basic ${btoa("alice:s3cret")}` },
      });
      await res.body?.cancel();
      assert.equal(res.status, 200, line);
      continue;
    }
    if (command.includes("--tls")) {
      // HTTPS; with --tls-save, trusted by the saved certificate, as the README's curl does.
      const saved = /--tls-save ~\/(\S+)/.exec(command)?.[1];
      const ca = saved === undefined
        ? undefined
        : await Deno.readTextFile(join(home.dir, saved, "cert.pem"));
      assert.equal((await getTls(server.port, "/", ca))[0], 200, line);
      continue;
    }
    const [status, body] = await get(
      server.port,
      "/",
      command.includes("--cert") ? tls : undefined,
    );
    assert.equal(status, 200, line);
    // The README's own site; the others serve resources/, checked elsewhere.
    if (command.includes("~/site")) assert.equal(body, "<h1>~</h1>", line);
    if (command.includes("--directory")) {
      const res = await fetch(
        `http://127.0.0.1:${server.port}/files/notes.txt`,
        {
          method: "POST",
          body: "notes",
        },
      );
      assert.equal(res.status, 201, line);
      await res.body?.cancel();
      assert.deepEqual(await get(server.port, "/files/notes.txt"), [
        200,
        "notes",
      ]);
    }
  }
});

const TEST_ONLY = ["fast-check", "hono", "pure-rand"];

Deno.test("deno.json's npm imports are exact versions, each in deno.lock, none test-only", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const lock = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.lock")));
  // deno task installs every npm package of the import map and the lockfile
  // before any task runs: test-only ones must be in neither.
  assert.equal(config.lock, false, "tests must not write deno.lock");
  const npm = Object.values(config.imports as Record<string, string>)
    .filter((v) => v.startsWith("npm:"));
  for (const spec of npm) {
    const m = /^npm:(@?[^@]+)@(\d+\.\d+\.\d+)$/.exec(spec);
    assert.ok(m, `${spec} is not an exact version`);
    assert.equal(lock.specifiers[spec], m[2], `${spec} is not in deno.lock`);
    assert.ok(!TEST_ONLY.includes(m[1]), spec);
  }
  assert.deepEqual(lock.workspace.dependencies, npm.toSorted());
  for (const name of lockedPackages()) assert.ok(!TEST_ONLY.includes(name));
});

Deno.test("the first deno task serve downloads only deno.lock's packages: none test-only", async () => {
  await using cache = await seedDenoDir();
  {
    await using server = await spawnServer([...TASK, "--port", "0", "--qr"], {
      env: { DENO_DIR: cache.denoDir },
    });
    await assertListening(server);
  }
  // Anything else deno task or the engine wanted would be here now.
  assert.deepEqual(cachedPackages(cache.denoDir), lockedPackages().toSorted());
});

/** Why the tests as user `nobody` cannot run here, or undefined. */
async function nobodyUnavailable(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "not root: cannot switch to nobody";
  const probe = await runToEnd([
    "sh",
    "-c",
    'command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$0" -a -x "$1"',
    join(ROOT, "launch.ts"),
    DENO,
  ]).catch(() => undefined);
  if (probe?.code !== 0) {
    return "setpriv is missing, or nobody cannot read this clone or run deno";
  }
  return undefined;
}
const nobodyWhy = await nobodyUnavailable();
if (nobodyWhy !== undefined) console.log(`launch_test: skipped: ${nobodyWhy}`);

/** `deno task serve` as user nobody (uid 65534), with its own DENO_DIR. */
function asNobody(base: string, denoDir: string, args: string[]): string[] {
  return [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "env",
    `HOME=${base}`,
    `DENO_DIR=${denoDir}`,
    ...TASK,
    ...args,
  ];
}

Deno.test({
  name:
    "run as a user the file system refuses, an unreadable root and an unwritable uploads folder exit 2 at start",
  ignore: nobodyWhy !== undefined,
  async fn() {
    await using cache = await seedDenoDir(65534);
    const site = join(cache.base, "site"); // nobody's, like the cache
    const secret = await Deno.makeTempDir({ prefix: "secret-" }); // root's, 0700
    const locked = await Deno.makeTempDir({ prefix: "locked-" }); // root's
    try {
      await Deno.chmod(locked, 0o755);
      await runToEnd([
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "mkdir",
        site,
      ]);
      await runToEnd([
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "sh",
        "-c",
        `echo '<h1>ok</h1>' > ${site}/index.html`,
      ]);
      const run = (args: string[]) =>
        asNobody(cache.base, cache.denoDir, [...args, "--port", "0"]);

      // The control: as nobody, its own folders are served.
      {
        await using server = await spawnServer(
          run(["--root", site, "--uploads", join(site, "up")]),
        );
        await assertListening(server);
        assert.deepEqual(await get(server.port, "/"), [200, "<h1>ok</h1>\n"]);
      }
      const unreadable = await runToEnd(run(["--root", secret]));
      assert.equal(unreadable.code, 2, unreadable.stderr);
      assert.equal(
        spindleLine(unreadable.stderr),
        `spindle: cannot read ${secret} (--root): the file system denies read access to this user; run as a user who may, or allow it: chmod -R o+rX ${secret}`,
      );
      const unwritable = await runToEnd(
        run(["--root", site, "--uploads", locked]),
      );
      assert.equal(unwritable.code, 2, unwritable.stderr);
      assert.match(
        spindleLine(unwritable.stderr),
        /^spindle: cannot write \S+ \(--uploads\): the file system denies write access to this user/,
      );
    } finally {
      await Deno.remove(secret, { recursive: true });
      await Deno.remove(locked, { recursive: true });
    }
  },
});
