/**
 * A self-signed certificate for localhost and 127.0.0.1, made by openssl
 * once per test file, for tests of the TLS engine.
 */
import assert from "node:assert/strict";
import { hasTool, run } from "./socket.ts";

export interface Pem {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A fresh self-signed certificate in `dir`; undefined without openssl. */
export async function makeCert(dir: string): Promise<Pem | undefined> {
  if (!(await hasTool("openssl", "version"))) return undefined;
  const out = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${dir}/k.pem`,
    "-out",
    `${dir}/c.pem`,
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    // rustls checks names against subjectAltName, never the CN, and will
    // not take a CA certificate (openssl's default) as the server's own.
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
  ], 20_000);
  assert.equal(out.code, 0, out.stderr);
  return {
    cert: await Deno.readTextFile(`${dir}/c.pem`),
    key: await Deno.readTextFile(`${dir}/k.pem`),
    certFile: `${dir}/c.pem`,
    keyFile: `${dir}/k.pem`,
  };
}

let pem: Pem | undefined;
let pemDir: string | undefined;

/** The test certificate, made once per file; undefined (and a note) without openssl. */
export async function certificate(): Promise<Pem | undefined> {
  if (pemDir === undefined) {
    pemDir = await Deno.makeTempDir();
    pem = await makeCert(pemDir);
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(pemDir!, { recursive: true });
    });
  }
  if (pem === undefined) console.log("skipped: openssl is not installed");
  return pem;
}

/** A TLS connection to localhost:`port` that trusts `cert` (PEM) alone. */
export function tlsConnect(port: number, cert: string): Promise<Deno.TlsConn> {
  return Deno.connectTls({ hostname: "localhost", port, caCerts: [cert] });
}
