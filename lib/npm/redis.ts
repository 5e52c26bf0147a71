// The one place the library names this npm package and its version, so
// importing the library from any project resolves it (this repo's import map
// is not theirs); tests/package_test.ts keeps it equal to deno.json's.
/** The Redis client, for the shared rate limit; imported only when used. */
export * from "npm:@redis/client@5.12.4";
