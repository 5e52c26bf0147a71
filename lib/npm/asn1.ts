// The one place the library names this npm package and its version, so
// importing the library from any project resolves it (this repo's import map
// is not theirs); tests/package_test.ts keeps it equal to deno.json's.
/** ASN.1 and X.509, for self-signed certificates; imported only when made. */
export * as schema from "npm:@peculiar/asn1-schema@2.11.1";
export * as x509 from "npm:@peculiar/asn1-x509@2.11.1";
export * as ecc from "npm:@peculiar/asn1-ecc@2.11.1";
