/** Test-only: Hono, kept out of deno.json's npm imports so `deno task serve` never downloads it. */
export * from "npm:hono@4.13.19";
