/**
 * Runs a fixture that holds a hot function to staying optimized (it uses
 * tests/fixtures/natives.ts) with V8's natives syntax on; returns the
 * optimization statuses it prints.
 */
export async function runWithNatives<T>(
  fixture: URL,
): Promise<{ before: T; after: T }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--allow-natives-syntax", fixture.pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`${fixture.pathname} exited ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
