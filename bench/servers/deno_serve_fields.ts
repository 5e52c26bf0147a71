/**
 * Not a bench case's reference: `deno serve --parallel` hello with the header
 * fields the default app's `/echo/hello` reply carries (nosniff, Vary,
 * Keep-Alive besides the type), to see what those fields cost `Deno.serve`
 * and the client. Run as `DENO_JOBS=2 deno serve --parallel --allow-net
 * --port 8000 bench/servers/deno_serve_fields.ts`.
 */
export default {
  fetch(): Response {
    return new Response("hello", {
      headers: {
        "x-content-type-options": "nosniff",
        "content-type": "text/plain",
        vary: "Accept-Encoding",
        "keep-alive": "timeout=5",
      },
    });
  },
} satisfies Deno.ServeDefaultExport;
