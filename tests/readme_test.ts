/** Every ```ts block in README.md runs as written: the documented API is the real one. */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const readme = await Deno.readTextFile(join(ROOT, "README.md"));
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

Deno.test("README.md has at least one runnable ts example", () => {
  assert.ok(blocks.length >= 1);
});

blocks.forEach((code, i) => {
  Deno.test(`README.md example ${i + 1} runs and exits 0`, async () => {
    // Beside README.md, so its "./lib/..." imports resolve as a reader's would.
    const file = join(
      ROOT,
      `.readme_example_${i + 1}_${crypto.randomUUID().slice(0, 8)}.ts`,
    );
    await Deno.writeTextFile(file, code);
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net", "--allow-read", "--allow-write", file],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      assert.equal(
        out.code,
        0,
        `${dec.decode(out.stdout)}\n${dec.decode(out.stderr)}`,
      );
    } finally {
      await Deno.remove(file);
    }
  });
});
