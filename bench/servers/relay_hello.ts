/**
 * The floor of a launcher: a Deno process that imports nothing and starts
 * a second one, `deno_serve_hello.ts` on the port given as the first
 * argument, as launch.ts starts main.ts. Two bare `deno run` start-ups
 * before the first answer; its exit code is the child's.
 */
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-net",
    new URL("./deno_serve_hello.ts", import.meta.url).pathname,
    Deno.args[0] ?? "0",
  ],
  stdin: "null",
}).spawn();
Deno.addSignalListener("SIGTERM", () => child.kill("SIGTERM"));
Deno.exit((await child.status).code);
