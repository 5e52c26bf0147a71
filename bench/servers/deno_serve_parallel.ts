/**
 * Reference for `--workers`: "hello" for `deno serve --parallel`, which runs
 * one copy per worker (DENO_JOBS of them) on a shared port.
 */
export default {
  fetch(): Response {
    return new Response("hello", { headers: { "content-type": "text/plain" } });
  },
} satisfies Deno.ServeDefaultExport;
