/**
 * Runs a module's source in a child Deno with `gc()` exposed (read access
 * only), for tests that ask whether something survives a full collection.
 */
import assert from "node:assert/strict";

/** Runs `source` with `gc()` exposed; returns its stdout, trimmed. Fails the test if the child fails. */
export async function runWithGc(source: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--v8-flags=--expose-gc", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(source));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  assert.ok(success, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout).trim();
}
