/**
 * Passwords from the command line, as a user runs them: `spindle
 * hash-password` in a real process, a server started with the file it made,
 * and the start-up refusals (plain HTTP off loopback, bad files).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePasswordHash, pbkdf2Sha256 } from "../lib/app/credentials.ts";
import { decoder, encoder, hasTool } from "./helpers/socket.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PERMS = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
];

/** Runs main.ts to its end with `stdin` piped in. */
async function spindle(
  args: string[],
  stdin = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMS, MAIN, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(stdin));
  await writer.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

Deno.test("spindle hash-password USER reads stdin and prints a user:hash line with 600,000 iterations", async () => {
  const { code, stdout, stderr } = await spindle(
    ["hash-password", "alice"],
    "correct horse\r\nignored second line\n",
  );
  assert.equal(code, 0, stderr);
  const line = stdout.trim();
  assert.match(line, /^alice:pbkdf2-sha256\$600000\$/);
  assert.ok(!stdout.includes("correct horse"));
  assert.equal(
    parsePasswordHash(line.slice("alice:".length)).iterations,
    600_000,
  );
  const bare = await spindle(["hash-password"], "pw");
  assert.equal(bare.code, 0);
  assert.match(bare.stdout, /^pbkdf2-sha256\$600000\$\S+\n$/);
});

Deno.test("spindle hash-password refuses an empty password, a bad user name, or a password as an argument", async () => {
  const empty = await spindle(["hash-password", "alice"], "\n");
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /the password is empty/);
  const colon = await spindle(["hash-password", "al:ice"], "pw\n");
  assert.equal(colon.code, 2);
  assert.match(colon.stderr, /no colon/);
  const argv = await spindle(["hash-password", "alice", "hunter2"], "");
  assert.equal(argv.code, 2);
  assert.match(argv.stderr, /usage: spindle hash-password \[USER\]/);
});

Deno.test("main with an --auth-file from hash-password asks for the password and logs the user", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const made = await spindle(["hash-password", "alice"], "s3cret\n");
    // Outside the served folder, or main refuses to start.
    const file = join(dir, "users");
    await Deno.writeTextFile(file, `# made by hash-password\n${made.stdout}`);
    const root = join(dir, "site");
    await Deno.mkdir(root);
    await Deno.writeTextFile(join(root, "index.html"), "<h1>private</h1>");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...PERMS,
        MAIN,
        "--port",
        "0",
        "--root",
        root,
        "--auth-file",
        file,
      ],
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    const lines: string[] = [];
    let port = 0;
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let rest = "";
    const nextLine = async (): Promise<string> => {
      for (;;) {
        const nl = rest.indexOf("\n");
        if (nl !== -1) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          lines.push(line);
          return line;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`main ended:\n${lines.join("\n")}`);
        rest += value;
      }
    };
    try {
      while (port === 0) {
        const m = /Listening on http:\/\/[^:]+:(\d+)\//.exec(await nextLine());
        if (m) port = Number(m[1]);
      }
      const url = `http://127.0.0.1:${port}/`;
      const none = await fetch(url);
      assert.equal(none.status, 401);
      await none.body?.cancel();
      const ok = await fetch(url, {
        headers: { authorization: `Basic ${btoa("alice:s3cret")}` },
      });
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), "<h1>private</h1>");
      let line = "";
      while (!/" 200 /.test(line)) line = await nextLine();
      assert.match(
        line,
        /spindle\.access: 127\.0\.0\.1 alice "GET \/ HTTP\/1\.1" 200 /,
      );
    } finally {
      try {
        child.kill("SIGTERM");
      } catch {
        // ended already: the assertion that failed says why
      }
      await child.status;
      await reader.cancel();
    }
    assert.ok(!lines.join("\n").includes("s3cret"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main refuses --auth on a public address over plain HTTP, with exit 2 and the reason", async () => {
  const { code, stderr } = await spindle([
    "--port",
    "0",
    "--host",
    "0.0.0.0",
    "--auth",
    "a:pw",
  ]);
  assert.equal(code, 2);
  assert.match(
    stderr,
    /^spindle: --auth on 0\.0\.0\.0 over plain HTTP would send passwords across the network in clear text/,
  );
  assert.ok(!stderr.includes("a:pw"));
});

Deno.test("main exits 2 for an auth file with a plain password (naming the line) inside the served folder, or missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "users");
    await Deno.writeTextFile(file, "# users\nalice:hunter2\n");
    const plain = await spindle(["--port", "0", "--auth-file", file]);
    assert.equal(plain.code, 2);
    assert.match(
      plain.stderr,
      /users line 2: not a pbkdf2-sha256 hash \(make one with: spindle hash-password USER\)/,
    );
    assert.ok(!plain.stderr.includes("hunter2"));
    await Deno.writeTextFile(file, "# nobody yet\n");
    const served = await spindle([
      "--port",
      "0",
      "--root",
      dir,
      "--auth-file",
      file,
    ]);
    assert.equal(served.code, 2);
    assert.match(
      served.stderr,
      /users is inside the served folder .*: clients could download it/,
    );
    const missing = await spindle([
      "--port",
      "0",
      "--auth-file",
      join(dir, "nope"),
    ]);
    // Found by the start-up check of every path the flags name.
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope \(--auth-file\) does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const noPty = await hasTool("script", "-V")
  ? undefined
  : "script(1) from util-linux is missing: no terminal to type into";
if (noPty !== undefined) console.log(`hash_password_test: skipped: ${noPty}`);

Deno.test({
  name:
    "spindle hash-password on a terminal asks twice and echoes nothing typed",
  ignore: noPty !== undefined,
  async fn() {
    const child = new Deno.Command("script", {
      args: [
        "-qefc",
        `${Deno.execPath()} run --allow-read ${MAIN} hash-password bob`,
        "/dev/null",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    const writer = child.stdin.getWriter();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let out = "";
    const waitFor = async (text: string) => {
      while (!out.includes(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`ended before ${text}:\n${out}`);
        out += value;
      }
    };
    try {
      await waitFor("Password: ");
      await writer.write(encoder.encode("p\u00e4x\x7fsswd\r"));
      await waitFor("Again: ");
      await writer.write(encoder.encode("p\u00e4sswd\r"));
      await waitFor("bob:pbkdf2-sha256$600000$");
      await waitFor("\n");
      assert.ok(!out.includes("sswd") && !out.includes("p\u00e4"), out);
      const line = /bob:(\S+)/.exec(out)![1];
      const hash = parsePasswordHash(line);
      const again = await pbkdf2Sha256(
        encoder.encode("p\u00e4sswd"),
        hash.salt,
        hash.iterations,
      );
      assert.deepEqual(again, hash.hash, "backspace removed one character");
    } finally {
      await writer.close().catch(() => {});
      await reader.cancel();
      assert.equal((await child.status).code, 0, out);
    }
  },
});
