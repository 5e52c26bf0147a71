/** Test-only: Hono's streaming helpers (see hono.ts). */
export * from "npm:hono@4.13.19/streaming";
