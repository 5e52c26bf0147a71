/**
 * The test certificate for localhost and 127.0.0.1, committed under
 * tests/fixtures/ so TLS tests run everywhere, openssl or not. Self-signed,
 * valid 2000 to 2100, subjectAltName for both names (rustls checks names
 * against it, never the CN) and CA:FALSE (rustls will not take a CA
 * certificate as a server's own). The key is public: for tests only.
 */

export interface Pem {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

const CERT_FILE = new URL("../fixtures/test_cert.pem", import.meta.url)
  .pathname;
const KEY_FILE = new URL("../fixtures/test_key.pem", import.meta.url).pathname;

let pem: Pem | undefined;

/** The test certificate and key, as text and as the files they are read from. */
export async function certificate(): Promise<Pem> {
  pem ??= {
    cert: await Deno.readTextFile(CERT_FILE),
    key: await Deno.readTextFile(KEY_FILE),
    certFile: CERT_FILE,
    keyFile: KEY_FILE,
  };
  return pem;
}

/** A TLS connection to localhost:`port` that trusts `cert` (PEM) alone. */
export function tlsConnect(port: number, cert: string): Promise<Deno.TlsConn> {
  return Deno.connectTls({ hostname: "localhost", port, caCerts: [cert] });
}
