/**
 * Resolves when stdin reaches end of file. Bench servers exit then, so a
 * runner that dies (even by SIGKILL) never leaves a server behind.
 */
export async function stdinClosed(): Promise<void> {
  const buf = new Uint8Array(256);
  try {
    while ((await Deno.stdin.read(buf)) !== null) {
      // The runner never writes; anything sent is ignored.
    }
  } catch {
    // A broken stdin means the runner is gone as well.
  }
}

/** Prints the port as the one JSON line the runner waits for. */
export function announcePort(port: number): void {
  console.log(JSON.stringify({ port }));
}
