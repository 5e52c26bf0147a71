/**
 * Runs a fixture that uses V8's natives syntax (tests/fixtures/natives.ts)
 * with it on; returns what the fixture prints, as JSON.
 */
export async function runNatives<T>(fixture: URL): Promise<T> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--allow-natives-syntax", fixture.pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`${fixture.pathname} exited ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * Runs a fixture that holds a hot function to staying optimized; returns
 * the optimization statuses it prints.
 */
export function runWithNatives<T>(
  fixture: URL,
): Promise<{ before: T; after: T }> {
  return runNatives(fixture);
}
