/** Test-only: Hono's Deno adapter (its WebSocket helper; see hono.ts). */
export * from "npm:hono@4.13.19/deno";
