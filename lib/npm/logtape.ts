// The one place the library names this npm package and its version, so
// importing the library from any project resolves it (this repo's import map
// is not theirs); tests/package_test.ts keeps it equal to deno.json's.
/** LogTape, the logging library. */
export * from "npm:@logtape/logtape@2.4.2";
