/**
 * What proving an open under the root costs, against the open it replaced
 * (stat, open, fstat). Run with
 * `deno bench --allow-read --allow-write tests/open_beneath_bench.ts`.
 * Memory-cache hits never open, so this is paid only by streamed files and
 * cache misses.
 */
import { lookBeneath, openBeneath } from "../lib/app/open_beneath.ts";

const root = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "spindle_" }));
globalThis.addEventListener(
  "unload",
  () => Deno.removeSync(root, { recursive: true }),
);
const SHALLOW = `${root}/f.txt`;
const DEEP = `${root}/a/b/c/f.txt`;
Deno.mkdirSync(`${root}/a/b/c`, { recursive: true });
for (const path of [SHALLOW, DEEP]) {
  Deno.writeTextFileSync(path, "x".repeat(512));
}
// Folders changed this second are not trusted yet (ctime has whole seconds).
await new Promise((r) => setTimeout(r, 1100));

for (const [depth, path] of [["/f.txt", SHALLOW], ["/a/b/c/f.txt", DEEP]]) {
  Deno.bench(`stat, open, fstat ${depth} (before)`, {
    group: depth,
    baseline: true,
  }, async () => {
    Deno.statSync(path);
    using file = await Deno.open(path);
    await file.stat();
  });

  Deno.bench(`openBeneath() ${depth}`, { group: depth }, async () => {
    const opened = await openBeneath(root, path);
    if (opened === null) throw new Error("not opened");
    opened.file.close();
  });

  Deno.bench(`lookBeneath() ${depth} alone`, { group: depth }, () => {
    const look = lookBeneath(root, path, Date.now(), true);
    if (look.kind !== "ok") throw new Error(`not ok: ${look.kind}`);
  });
}
