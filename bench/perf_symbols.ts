/**
 * Names the runtime's own work in a `perf record -g` profile of a server:
 * the samples whose leaf is in the `deno` binary, by symbol. The binary is
 * stripped, but V8's builtins (AsyncFunctionAwait, PromiseResolve,
 * RunMicrotasks, ...) run from a copy of its embedded blob whose addresses
 * `--perf-basic-prof` writes to /tmp/perf-PID.map as `Builtin:Name`; the
 * rest of the binary (Rust: the event loop, ops; V8's C++: GC, runtime
 * functions) is named by the nearest named frame above it, as
 * `native < Builtin:X` or `native < JS:f`. Main thread only. With
 * `--us N` (the server's CPU µs per request, from /proc) each row is
 * also in µs per request.
 *
 *   deno run -A --v8-flags=--perf-basic-prof main.ts &   # JIT and builtins named
 *   perf record -F 1999 -g -p PID -o srv.perf            # during the load
 *   perf script -i srv.perf -F comm,tid,ip,sym,dso --show-mmap-events |
 *     deno run --allow-read bench/perf_symbols.ts --map /tmp/perf-PID.map --us 9.8
 *
 * `--top N` rows (30); `--by js`: group the binary's samples by the
 * nearest JavaScript function on the stack instead (who asked for it);
 * `--by both`: by symbol and that function; `--by part`: by kind of work.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    map: { type: "string" },
    us: { type: "string" },
    top: { type: "string", default: "30" },
    by: { type: "string", default: "symbol" },
    threads: { type: "string", default: "deno,worker-" },
  },
});
if (values.map === undefined) {
  console.error("usage: perf_symbols.ts --map /tmp/perf-PID.map [--us N]");
  Deno.exit(2);
}
const us = values.us === undefined ? undefined : Number(values.us);

interface Named {
  readonly start: number;
  readonly end: number;
  readonly name: string;
}

/**
 * Every entry of the map, in the order written: V8 reuses the memory of
 * code it dropped, so an address may lie in several entries, and the last
 * one written is the code there (perf itself may pick an older one).
 */
const entries: Named[] = [];
for (const line of Deno.readTextFileSync(values.map).split("\n")) {
  const [addr, size, ...rest] = line.split(" ");
  if (rest.length === 0) continue;
  const start = parseInt(addr, 16);
  entries.push({
    start,
    end: start + parseInt(size, 16),
    name: rest.join(" "),
  });
}
const resolved = new Map<number, string | undefined>();

/** The name of the code at `addr`: the last entry written that holds it. */
function codeAt(addr: number): string | undefined {
  if (resolved.has(addr)) return resolved.get(addr);
  let name: string | undefined;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (addr >= e.start && addr < e.end) {
      name = e.name;
      break;
    }
  }
  resolved.set(addr, name);
  return name;
}

const text = await new Response(Deno.stdin.readable).text();
const blocks = text.split("\n\n");

/**
 * The mapping of the binary that holds the builtins: perf prints a stripped
 * binary's addresses as file offsets, so an offset in [pgoff, pgoff + len)
 * is the builtin at start + (offset - pgoff).
 */
let remap: { start: number; len: number; pgoff: number } | undefined;
const MMAP =
  /PERF_RECORD_MMAP2? [^\[]*\[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ 0x([0-9a-f]+) .*\/deno$/;
for (const line of blocks[0].split("\n")) {
  const m = MMAP.exec(line);
  if (m === null) continue;
  const start = parseInt(m[1], 16);
  if (codeAt(start)?.startsWith("Builtin:")) {
    remap = { start, len: parseInt(m[2], 16), pgoff: parseInt(m[3], 16) };
  }
}
if (remap === undefined) {
  console.error("no mapping of the deno binary holds the map's builtins");
  Deno.exit(1);
}

/** A frame's name: a builtin, a JS function, or undefined for unnamed native code. */
function frameName(line: string): string | undefined {
  const m = /^\s*([0-9a-f]+) (.*) \((.*)\)$/.exec(line);
  if (m === null) return undefined;
  const [, ip, sym, dso] = m;
  if (dso.endsWith("/deno")) {
    const off = parseInt(ip, 16);
    if (off >= remap!.pgoff && off < remap!.pgoff + remap!.len) {
      return codeAt(remap!.start + off - remap!.pgoff);
    }
    return undefined;
  }
  if (dso.startsWith("/tmp/perf-") || dso.startsWith("[JIT]")) {
    const name = codeAt(parseInt(ip, 16)) ?? sym;
    return name.replace(/^JS:[*+~^']*/, "JS:");
  }
  return undefined;
}

/**
 * The kind of runtime work a symbol does (`--by part`), given the nearest
 * JavaScript function on its stack.
 */
function partOf(symbol: string, js: string): string {
  if (symbol.startsWith("native < Builtin:CallApiCallback")) {
    if (/deno_net|00_infra|bare_loop/.test(js)) return "ops: conn.read/write";
    if (js.includes("parseHead")) return "op: the head's Latin-1 decode";
    return "ops: other";
  }
  if (symbol === "native < (nothing named)") {
    return "native, no JS (event loop, op results, GC)";
  }
  if (symbol.includes("CEntry")) {
    return "runtime calls (Date.now, string compares, ...)";
  }
  if (/Promise|Microtask|Await|Generator|SetPrototype/.test(symbol)) {
    return "promises, awaits, microtasks (+ read's pending set)";
  }
  if (symbol.includes("RecordWrite")) return "write barriers";
  if (symbol.includes("Megamorphic")) return "megamorphic property access";
  if (symbol.includes("Atomics")) return "Atomics";
  if (symbol.includes("TypedArray")) return "typed arrays (set, subarray, new)";
  if (/String/.test(symbol)) return "string builtins";
  if (/Call/.test(symbol)) return "calls not inlined";
  return "other";
}

/** Threads that run an engine: the main one, and `--workers` threads. */
const engineThreads = values.threads.split(",");
const counts = new Map<string, number>();
let total = 0;
let binary = 0;
for (const block of blocks) {
  const lines = block.split("\n").filter((l) => l.trim() !== "");
  if (lines.length < 2 || !engineThreads.some((t) => lines[0].startsWith(t))) {
    continue;
  }
  if (lines[0].includes("PERF_RECORD")) continue;
  total++;
  const leaf = lines[1];
  if (!leaf.endsWith("/deno)")) continue;
  binary++;
  let label: string | undefined;
  const js = () =>
    lines.slice(1).map(frameName).find((n) => n?.startsWith("JS:")) ??
      "(no JavaScript on the stack)";
  if (values.by === "js") {
    label = js();
  } else {
    label = frameName(leaf);
    if (label === undefined) {
      const above = lines.slice(2).map(frameName).find((n) => n !== undefined);
      label = `native < ${above ?? "(nothing named)"}`;
    }
    if (values.by === "both") label += `  <<  ${js()}`;
    if (values.by === "part") label = partOf(label, js());
  }
  counts.set(label, (counts.get(label) ?? 0) + 1);
}

console.log(
  `engine threads: ${total} samples, ${binary} (${
    (100 * binary / total).toFixed(1)
  }%) in the deno binary${
    us === undefined ? "" : `, ${(us * binary / total).toFixed(2)} µs/req`
  }`,
);
const rows = [...counts].sort((a, b) => b[1] - a[1]);
for (const [label, n] of rows.slice(0, Number(values.top))) {
  const share = n / total;
  const perReq = us === undefined
    ? ""
    : `${(share * us * 1000).toFixed(0)} ns  `;
  console.log(
    `${(share * 100).toFixed(2).padStart(6)}%  ${perReq.padStart(9)}${label}`,
  );
}
