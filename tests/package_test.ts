/**
 * The package as another project sees it: deno.json's name and exports,
 * imports that resolve outside this repo, and mod.ts used from a project in a
 * temp folder with no access to this repo's import map.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = new URL("..", import.meta.url).pathname;
const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* tsFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** Every module specifier in `source`: static, re-export and dynamic. */
function specifiers(source: string): string[] {
  const found = source.matchAll(
    /(?:^|\n)\s*(?:import|export)\b[^;"']*?from\s*"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/g,
  );
  return [...found].map((m) => m[1] ?? m[2]);
}

/** Runs `deno ...args` in the repo; its exit code and all it printed. */
async function deno(
  ...args: string[]
): Promise<{ code: number; stdout: string; text: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  return { code: out.code, stdout, text: stdout + dec.decode(out.stderr) };
}

Deno.test("deno.json names the package, its version and its entry point", () => {
  assert.equal(config.name, "@spindle/server");
  assert.match(config.version, /^\d+\.\d+\.\d+$/);
  assert.deepEqual(config.exports, { ".": "./mod.ts" });
});

Deno.test("lib/ imports only relative, node: and (in lib/npm/) pinned npm: specifiers", async () => {
  const imports: Record<string, string> = config.imports;
  const bad: string[] = [];
  let npm = 0;
  for await (const file of tsFiles(join(ROOT, "lib"))) {
    const name = relative(ROOT, file);
    for (const spec of specifiers(await Deno.readTextFile(file))) {
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      const pinned = spec.match(/^npm:((?:@[^/]+\/)?[^@/]+)@[^/]+$/);
      // Same version as the import map, which tests and main.ts use: one
      // copy of each package in a process, and deno.lock pins that one.
      if (
        name.startsWith("lib/npm/") && pinned && imports[pinned[1]] === spec
      ) {
        npm++;
        continue;
      }
      bad.push(`${name}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
  assert.ok(npm >= 5, `only ${npm} npm: imports found in lib/npm/`);
});

/** A project in a temp folder, outside this repo, that serves with mod.ts. */
const APP = (spindle: string) => `
import { Router, serve, text } from "${spindle}";

const app = new Router().get("/hi/{name}", (req) => text(\`hi \${req.params.name}\`));
await using server = serve({ port: 0, accessLog: false }, app.handler());
console.log(server.port);
// Serves until the test closes stdin.
for await (const _ of Deno.stdin.readable) { /* drain */ }
`;

// As README's "From another project" says: a path in the project's own
// import map, or the file URL with no deno.json.
const projects: [
  how: string,
  spec: string,
  deno: ((dir: string) => object) | undefined,
][] = [
  [
    "by file URL, no deno.json",
    pathToFileURL(join(ROOT, "mod.ts")).href,
    undefined,
  ],
  ["by name through its own import map", "@spindle/server", (dir) => ({
    imports: { "@spindle/server": relative(dir, join(ROOT, "mod.ts")) },
  })],
];
for (const [how, spec, deno] of projects) {
  Deno.test(`mod.ts serves from a project outside the repo, imported ${how}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "spindle-user-" });
    try {
      assert.ok(!dir.startsWith(ROOT));
      await Deno.writeTextFile(join(dir, "main.ts"), APP(spec));
      if (deno) {
        await Deno.writeTextFile(
          join(dir, "deno.json"),
          JSON.stringify(deno(dir)),
        );
      }
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net", "main.ts"],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const lines = child.stdout.pipeThrough(new TextDecoderStream())
        .values();
      const first = await lines.next();
      try {
        const port = Number(first.value);
        if (!(port > 0)) assert.fail(`no port; stderr: ${await stderr}`);
        const res = await fetch(`http://127.0.0.1:${port}/hi/there`);
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "hi there");
      } finally {
        await child.stdin.close();
        for await (const _ of lines) { /* until exit */ }
        const status = await child.status;
        assert.equal(status.code, 0, await stderr);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** mod.ts's exports, with where each is declared and its JSDoc tags. */
async function publicSymbols(): Promise<
  { name: string; file: string; examples: number }[]
> {
  const { code, stdout, text } = await deno("doc", "--json", "mod.ts");
  assert.equal(code, 0, text);
  const doc = JSON.parse(stdout);
  const mod = doc.nodes[pathToFileURL(join(ROOT, "mod.ts")).href];
  return mod.symbols.map((s: {
    name: string;
    declarations: {
      location: { filename: string };
      jsDoc?: { tags?: { kind: string }[] };
    }[];
  }) => ({
    name: s.name,
    file: relative(ROOT, new URL(s.declarations[0].location.filename).pathname),
    examples: (s.declarations[0].jsDoc?.tags ?? [])
      .filter((t) => t.kind === "example").length,
  }));
}

Deno.test("deno doc --lint mod.ts finds nothing to fix", async () => {
  const { code, text } = await deno("doc", "--lint", "mod.ts");
  assert.equal(code, 0, text);
});

Deno.test("every export of mod.ts has an @example, and deno test --doc runs them all", async () => {
  const symbols = await publicSymbols();
  assert.ok(symbols.length >= 50, `only ${symbols.length} exports`);
  assert.deepEqual(
    symbols.filter((s) => s.examples === 0).map((s) => s.name),
    [],
  );
  const files = [...new Set(symbols.map((s) => s.file))].sort();
  const { code, text } = await deno(
    "test",
    "--doc",
    "--sanitize-ops",
    "--sanitize-resources",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    "mod.ts",
    ...files,
  );
  assert.equal(code, 0, text);
  const passed = Number(text.match(/ok \| (\d+) passed \| 0 failed/)?.[1]);
  // Each example is a test; mod.ts's module example is one more.
  const examples = symbols.reduce((n, s) => n + s.examples, 0);
  assert.ok(passed >= examples + 1, `${passed} ran, ${examples} examples`);
});

Deno.test({
  name:
    "deno publish --dry-run passes and would publish only mod.ts, lib/, README.md, LICENSE and deno.json",
  async fn() {
    const { code, text } = await deno("publish", "--dry-run", "--allow-dirty");
    assert.equal(code, 0, text);
    const files = [...text.matchAll(/file:\/\/\S+/g)].map((m) =>
      relative(ROOT, new URL(m[0]).pathname)
    );
    assert.ok(
      ["mod.ts", "README.md", "LICENSE"].every((f) => files.includes(f)),
      files.join(" "),
    );
    assert.deepEqual(
      files.filter((f) =>
        !f.startsWith("lib/") &&
        !["mod.ts", "README.md", "LICENSE", "deno.json"].includes(f)
      ),
      [],
    );
  },
});
