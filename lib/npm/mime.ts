// The one place the library names this npm package and its version, so
// importing the library from any project resolves it (this repo's import map
// is not theirs); tests/package_test.ts keeps it equal to deno.json's.
/** Media types by file extension. */
export { default } from "npm:mime@4.1.2";
