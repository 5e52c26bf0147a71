/**
 * `deno task compile` builds a standalone binary with narrow permissions
 * baked in. Building needs Deno's runtime (denort); it cannot be downloaded
 * here, so this runs only when DENORT_BIN names a denort file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const denort = Deno.env.get("DENORT_BIN");
const why = denort === undefined
  ? "DENORT_BIN is not set (deno compile cannot download denort here)"
  : undefined;
if (why !== undefined) console.log(`compile_test: skipped: ${why}`);

Deno.test({
  name:
    "deno task compile builds a binary that serves resources/, cannot read outside it, and says so at start",
  ignore: why !== undefined,
  async fn() {
    const root = new URL("..", import.meta.url).pathname;
    const tmp = await Deno.makeTempDir({ prefix: "spindle-compile-" });
    try {
      const out = join(tmp, "spindle");
      const task = JSON.parse(await Deno.readTextFile(join(root, "deno.json")))
        .tasks.compile as string;
      const args = task.split(/\s+/).slice(1).map((a) =>
        a === "dist/spindle" ? out : a
      );
      const build = await new Deno.Command(Deno.execPath(), {
        args,
        cwd: root,
        env: { DENORT_BIN: denort! },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));

      // A working folder with resources/ and a secret beside it.
      const site = join(tmp, "site");
      await Deno.mkdir(join(site, "resources", "uploads"), { recursive: true });
      await Deno.writeTextFile(
        join(site, "resources", "index.html"),
        "<h1>compiled</h1>",
      );
      await Deno.writeTextFile(join(site, "secret.txt"), "top secret");
      const child = new Deno.Command(out, {
        args: ["--port", "0", "--log-format", "json"],
        cwd: site,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      try {
        const reader = child.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        let text = "";
        let port = 0;
        while (port === 0) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`binary exited early: ${text}`);
          text += value;
          const m = /"port":(\d+)/.exec(text);
          if (m) port = Number(m[1]);
        }
        reader.releaseLock();
        const res = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(res.status, 200);
        assert.match(await res.text(), /compiled/);
        const up = await fetch(`http://127.0.0.1:${port}/..%2fsecret.txt`);
        assert.ok(up.status === 400 || up.status === 404, `got ${up.status}`);
        await up.body?.cancel();
      } finally {
        child.kill("SIGTERM");
        const status = await child.status;
        assert.equal(status.code, 0);
        await child.stdout.cancel().catch(() => {});
        await child.stderr.cancel();
      }
      // Its permissions are baked in: another folder is refused at start.
      const outside = await new Deno.Command(out, {
        args: ["/etc", "--port", "0"],
        cwd: site,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(outside.code, 2);
      assert.match(
        new TextDecoder().decode(outside.stderr),
        /^spindle: no read permission for \/etc \(--root\): this binary's permissions were fixed when it was built/,
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
