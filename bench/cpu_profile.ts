/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`) as the
 * functions with the most self time, so the bench report can say where a
 * server spends its CPU.
 *
 * CLI: `deno run --allow-read bench/cpu_profile.ts <file.cpuprofile> [top]`
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

/** The parts of the V8 CPU profile format this summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One function's share of the sampled time. */
export interface HotSpot {
  /** `name file:line`, or V8's `(garbage collector)` and friends. */
  readonly where: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time, 0..1. */
  readonly share: number;
}

const IDLE = "(idle)";

function describe(frame: CallFrame): string {
  if (!frame.url) return frame.functionName || "(anonymous)";
  const file = frame.url.replace(/^.*\/(lib|bench|ext|deno)\//, "$1/");
  return `${frame.functionName || "(anonymous)"} ${file}:${
    frame.lineNumber + 1
  }`;
}

/** Self time per function, busiest first; idle time is left out. */
export function hotSpots(profile: CpuProfile, top: number): HotSpot[] {
  const whereById = new Map<number, string>();
  for (const node of profile.nodes) {
    whereById.set(node.id, describe(node.callFrame));
  }
  const selfUs = new Map<string, number>();
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const where = whereById.get(profile.samples[i]) ?? "(unknown)";
    // The delta before sample i+1 is the time sample i stood for.
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (where === IDLE) continue;
    busyUs += us;
    selfUs.set(where, (selfUs.get(where) ?? 0) + us);
  }
  return [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([where, us]) => ({
      where,
      selfMs: us / 1000,
      share: busyUs > 0 ? us / busyUs : 0,
    }));
}

/** Reads the newest `.cpuprofile` in `dir`, or null when there is none. */
export async function newestProfile(dir: string): Promise<CpuProfile | null> {
  let newest: { path: string; mtime: number } | null = null;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".cpuprofile")) continue;
    const path = `${dir}/${entry.name}`;
    const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    if (!newest || mtime > newest.mtime) newest = { path, mtime };
  }
  if (!newest) return null;
  return JSON.parse(await Deno.readTextFile(newest.path)) as CpuProfile;
}

if (import.meta.main) {
  const [file, top = "20"] = Deno.args;
  if (!file) {
    console.error("Usage: cpu_profile.ts <file.cpuprofile> [top]");
    Deno.exit(2);
  }
  const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
  for (const spot of hotSpots(profile, Number(top))) {
    console.log(
      `${(spot.share * 100).toFixed(1).padStart(5)}%  ${
        spot.selfMs.toFixed(0).padStart(6)
      } ms  ${spot.where}`,
    );
  }
}
