/**
 * Splits a `perf record -g` profile of a server into the parts of a
 * request: the kernel, the runtime with no JavaScript on the stack, the
 * `conn.read`/`conn.write` glue, the engine, the app, the access log and
 * V8's helper threads. A sample belongs to the nearest JavaScript frame on
 * its stack (so a builtin or an op counts for the code that called it);
 * with `--us N` (the server's CPU µs per request, from /proc) each share is
 * printed in µs per request too. Reads `perf script` output:
 *
 *   deno run -A --v8-flags=--perf-basic-prof main.ts &   # JIT frames named
 *   perf record -F 999 -g -p PID -o srv.perf             # during the load
 *   perf script -i srv.perf | deno run bench/perf_groups.ts --us 9.8
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { us: { type: "string" } },
});
const us = values.us === undefined ? undefined : Number(values.us);

/** The part a sample's nearest JavaScript frame (or its leaf) belongs to. */
function partOf(sample: string[]): string {
  if (!sample[0].startsWith("deno ")) {
    return "other threads (V8 GC and compiler helpers)";
  }
  if (sample[1]?.includes("[kernel.kallsyms]")) return "kernel";
  const js = sample.find((line) => line.includes("JS:")) ?? "";
  if (js === "") return "runtime, no JS on the stack (event loop, ops, GC)";
  if (js.includes("access_log")) return "access log";
  if (js.includes("/lib/app/")) return "app (router, chain, middleware)";
  if (js.includes("/lib/http/")) return "engine (connection, parser, reply)";
  if (js.includes("bare_loop")) return "bare loop (its read/write inlined)";
  if (/01_net|00_infra/.test(js)) return "conn.read/write glue and ops";
  if (js.includes("timers")) return "timers";
  return "other JavaScript";
}

const text = await new Response(Deno.stdin.readable).text();
const counts = new Map<string, number>();
let total = 0;
for (const block of text.split("\n\n")) {
  const sample = block.split("\n").filter((line) => line !== "");
  if (sample.length === 0) continue;
  const part = partOf(sample);
  counts.set(part, (counts.get(part) ?? 0) + 1);
  total++;
}
for (const [part, n] of [...counts].sort((a, b) => b[1] - a[1])) {
  const share = n / total;
  const perReq = us === undefined ? "" : `${(share * us).toFixed(2)} µs  `;
  console.log(`${(share * 100).toFixed(1).padStart(5)}%  ${perReq}${part}`);
}
