/**
 * bench/app_layers.ts for two trees in one process, their rounds
 * interleaved: this clone against another (a clone of the base commit), so
 * that a before/after comparison sees the same machine load on both sides.
 *
 *   deno run --allow-read --allow-write --allow-env --unstable-net \
 *     bench/app_layers_ab.ts --base ../base-clone --rounds 300 --rows "access log"
 *
 * `--rows WORD[,WORD]` picks rows whose name includes a word (all rows
 * unless given). `--log-file`: the access log rows write to a file (a
 * regular file, as stdout redirected to one), not to a sink that drops the
 * bytes, so their system calls count too. Prints CPU ns per request, the
 * median of the rounds, for each tree and the change, then heap bytes
 * allocated per request (the lowest of the rounds, as app_layers.ts counts
 * them) for each tree. Each tree's modules
 * are its own (its parser, its access log), imported by path.
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { getHeapStatistics } from "node:v8";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    base: { type: "string" },
    rounds: { type: "string", default: "100" },
    rows: { type: "string", default: "" },
    "log-file": { type: "boolean", default: false },
  },
});
if (values.base === undefined) {
  console.error(
    "usage: app_layers_ab.ts --base DIR [--rounds N] [--rows WORD,...]",
  );
  Deno.exit(2);
}

interface Row {
  readonly name: string;
  readonly request: Uint8Array;
  readonly handler: unknown;
  readonly accessLog?: boolean;
  readonly bare?: boolean;
  readonly minimal?: "parse" | "reply";
  readonly perRead?: number;
}

const logPath = values["log-file"]
  ? await Deno.makeTempFile({ prefix: "spindle_ab_" })
  : undefined;
const logFile = logPath === undefined
  ? undefined
  : Deno.openSync(logPath, { write: true });
/** Where access lines go: the file, emptied each round, or nowhere. */
function logOutput() {
  if (logFile === undefined) return { writeSync: (b: Uint8Array) => b.length };
  logFile.truncateSync(0);
  logFile.seekSync(0, Deno.SeekMode.Start);
  return logFile;
}

/** One tree's bench and access log module. */
async function load(dir: string) {
  const url = (path: string) => pathToFileURL(resolve(dir, path)).href;
  const layers = await import(url("bench/app_layers.ts"));
  const log = await import(url("lib/http/access_log.ts"));
  const rows = layers.cases as readonly Row[];
  /** Serves one round of `row`; returns the requests served. */
  const serve = async (name: string): Promise<number> => {
    const row = rows.find((r) => r.name === name)!;
    const per = row.perRead ?? 1;
    const count = Math.ceil(1000 / per);
    if (row.minimal !== undefined) {
      await layers.serveMinimal(row.request, count, row.minimal === "reply");
    } else if (row.bare) await layers.serveBare(row.request, count);
    else {
      // A fresh access log each round; to a file, a batch a write as to
      // stdout redirected to one (a tree without that option cuts its writes).
      if (row.accessLog) {
        log.setAccessLog(
          new log.AccessLog({
            format: "text",
            output: logOutput(),
            writeBytes: Infinity,
          }),
        );
      }
      await layers.serveFake(row.handler, row.request, count, row.accessLog);
      if (row.accessLog) log.setAccessLog(undefined);
    }
    return count * per;
  };
  /** Whether this tree's bench has the row (an older base may not). */
  const has = (name: string) => rows.some((r) => r.name === name);
  return Object.assign(serve, { has });
}

const here = new URL("..", import.meta.url).pathname;
const sides = [await load(values.base), await load(here)];
const words = values.rows.split(",").filter((w) => w !== "");
const { cases } = await import("./app_layers.ts");
const names = (cases as readonly Row[]).map((r) => r.name).filter((n) =>
  (words.length === 0 || words.some((w) => n.includes(w))) &&
  sides.every((side) => side.has(n))
);
const rounds = Number(values.rounds);
const times = names.map(() => [[], []] as number[][]);
/** Heap bytes per request, the lowest of the rounds, per side. */
const heap = names.map(() => [Infinity, Infinity]);
/** Heap bytes V8 has allocated so far (Deno's node:v8 has it; its types do not). */
function allocatedBytes(): number {
  return Number(Reflect.get(getHeapStatistics(), "total_allocated_bytes"));
}
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < names.length; i++) {
    for (let k = 0; k < 2; k++) {
      const side = (r + k) % 2; // each side goes first every other round
      const bytes = allocatedBytes();
      const t = cpuUsage();
      const served = await sides[side](names[i]);
      const used = cpuUsage(t);
      heap[i][side] = Math.min(
        heap[i][side],
        (allocatedBytes() - bytes) / served,
      );
      times[i][side].push((used.user + used.system) * 1e3 / served);
    }
  }
}
const median = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
console.log(
  "| Handler | base: ns/req (median) | this tree | change | heap B/req: base | this tree |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (let i = 0; i < names.length; i++) {
  const [base, ours] = times[i].map(median);
  console.log(
    `| ${names[i]} | ${Math.round(base)} | ${Math.round(ours)} | ${
      Math.round(ours - base)
    } | ${Math.round(heap[i][0])} | ${Math.round(heap[i][1])} |`,
  );
}
if (logPath !== undefined) {
  logFile!.close();
  Deno.removeSync(logPath);
}
