/**
 * What a plain start loads. Start-up time is mostly module loading (about
 * 0.2 ms a module, several ms for each npm package), so code only some
 * flags need is imported where they are handled. These tests read the
 * static import graph with `deno info --json`, as Deno itself builds it
 * before main.ts runs; they time nothing.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const ROOT = fromFileUrl(new URL("..", import.meta.url)).replace(/\/$/, "");

interface InfoModule {
  readonly specifier: string;
  readonly dependencies?: readonly {
    readonly isDynamic?: boolean;
    readonly code?: { readonly specifier?: string };
  }[];
}

/** `deno info --json` of `entry`: every module, dynamic imports' too. */
async function graphOf(entry: string): Promise<Map<string, InfoModule>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return new Map(
    (info.modules as InfoModule[]).map((m) => [m.specifier, m]),
  );
}

/** Modules `entry` loads before it runs (static imports only), as repo paths or bare specifiers. */
function staticClosure(
  graph: Map<string, InfoModule>,
  entry: string,
): Set<string> {
  const root = new URL(entry, `file://${ROOT}/`).href;
  assert.ok(graph.has(root), `${root} is in the graph`);
  const seen = new Set<string>();
  const todo = [root];
  while (todo.length > 0) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const dep of graph.get(s)?.dependencies ?? []) {
      const next = dep.code?.specifier;
      if (!dep.isDynamic && next !== undefined) todo.push(next);
    }
  }
  return new Set(
    [...seen].map((s) =>
      s.startsWith("file://") ? relative(ROOT, fromFileUrl(s)) : s
    ),
  );
}

/** Whether `closure` holds `name`: a repo path, or an npm package by name. */
function holds(closure: Set<string>, name: string): boolean {
  if (!name.startsWith("npm:")) return closure.has(name);
  return [...closure].some((s) =>
    s.replace(/^npm:\/?/, "npm:").startsWith(`${name}@`)
  );
}

/** Loaded by main.ts only when a flag or command needs them. */
const ON_DEMAND = [
  "lib/https.ts", // --cert/--key, --tls
  "lib/self_signed.ts", // --tls self-signed
  "npm:@peculiar/asn1-x509",
  "lib/hash_password.ts", // spindle hash-password
  "lib/app/redis_rate_limit.ts", // --rate-limit-store redis://
  "npm:@redis/client",
  "npm:uqr", // --qr
  "lib/http/ws_connection.ts", // the first WebSocket upgrade
  "lib/http/ws/handshake.ts",
];

Deno.test("a plain start does not load the code of HTTPS, WebSocket, Redis, QR codes or hash-password", async () => {
  const graph = await graphOf("main.ts");
  const loaded = staticClosure(graph, "main.ts");
  assert.ok(loaded.has("lib/http/server.ts"), "the walk reached the engine");
  assert.ok(holds(loaded, "npm:@logtape/logtape"), "the walk reached npm");
  const eager = ON_DEMAND.filter((name) => holds(loaded, name));
  assert.deepEqual(eager, [], "imported statically from main.ts");
  // Still reachable where the flags need them: each dynamic import resolves.
  const all = new Set(
    [...graph.keys()].map((s) =>
      s.startsWith("file://") ? relative(ROOT, fromFileUrl(s)) : s
    ),
  );
  const missing = ON_DEMAND.filter((name) => !holds(all, name));
  assert.deepEqual(missing, [], "not reachable from main.ts at all");
});

Deno.test("the launcher loads no npm package and no node: module", async () => {
  const loaded = staticClosure(await graphOf("launch.ts"), "launch.ts");
  assert.ok(loaded.has("lib/cli.ts"), "the walk reached the flags");
  assert.deepEqual(
    [...loaded].filter((s) => !s.startsWith("lib/") && s !== "launch.ts"),
    [],
  );
});

Deno.test("listing code makes its collator at the first listing, not on import", async () => {
  // A fresh process, so no other test has imported dir_listing.ts yet.
  const script = `
    let made = 0;
    const Real = Intl.Collator;
    Intl.Collator = function (...args) { made++; return new Real(...args); };
    const { sortEntries } = await import(${
    JSON.stringify(join(ROOT, "lib/app/dir_listing.ts"))
  });
    const before = made;
    const names = sortEntries([{ name: "a10" }, { name: "a2" }].map((e) => ({
      ...e, isDirectory: false, size: 0, mtimeMs: null,
    }))).map((e) => e.name);
    console.log(JSON.stringify({ before, after: made, names }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", join(ROOT, "deno.json"), script],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    before: 0,
    after: 1,
    names: ["a2", "a10"],
  });
});
