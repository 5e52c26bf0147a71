/** Test-only: fast-check, kept out of deno.json's npm imports so `deno task serve` never downloads it. */
export * from "npm:fast-check@4.10.2";
export { default } from "npm:fast-check@4.10.2";
