/**
 * `--tls self-signed`: a certificate made at start for this machine's own
 * names, and `--tls-save DIR`, which keeps it so that a browser's exception
 * survives restarts. ECDSA P-256 keys from WebCrypto; the X.509 structure
 * from @peculiar/asn1-x509, loaded only when a certificate is made (~80 ms):
 * reusing a saved one reads it with node's X509Certificate alone.
 */
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { parseCertificate } from "./http/tls.ts";

/**
 * The names a certificate is made for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CertNames, makeSelfSigned } from "@spindle/server";
 *
 * const names: CertNames = { dns: ["localhost"], ips: ["127.0.0.1", "::1"] };
 * const { cert } = await makeSelfSigned(names);
 * assert.match(cert, /^-----BEGIN CERTIFICATE-----/);
 * ```
 */
export interface CertNames {
  /** DNS names, such as `localhost`. */
  readonly dns: readonly string[];
  /** IP addresses in canonical form (`::1`, never `0:0:...:1`). */
  readonly ips: readonly string[];
}

/**
 * A PEM certificate and its PEM (PKCS #8) private key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSelfSigned, type PemPair } from "@spindle/server";
 *
 * const pair: PemPair = await makeSelfSigned({ dns: ["localhost"], ips: [] });
 * assert.match(pair.key, /^-----BEGIN PRIVATE KEY-----/);
 * ```
 */
export interface PemPair {
  /** The certificate, PEM. */
  readonly cert: string;
  /** Its private key, PEM (PKCS #8). */
  readonly key: string;
}

/** A `--tls-save` folder that holds something we will not overwrite. */
export class SelfSignedError extends Error {
  override name = "SelfSignedError";
}

/** How long a certificate we make is valid: under Apple's 398-day cap. */
const VALID_DAYS = 365;
/** A saved certificate with less left than this is made anew. */
const RENEW_DAYS = 30;
/** Backdated so a client whose clock runs a little slow accepts it. */
const BACKDATE_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Our mark in the subject: a saved pair without it is not ours to replace. */
const ORGANIZATION = "Spindle self-signed";
const OID_COMMON_NAME = "2.5.4.3";
const OID_ORGANIZATION = "2.5.4.10";
const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/** `::0001` -> `::1`, `127.000.0.1` stays invalid; undefined if not an IP. */
export function canonicalIp(text: string): string | undefined {
  const bare = text.replace(/^\[|\]$/g, "");
  try {
    if (bare.includes(":")) {
      return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    }
    if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bare)) {
      return new URL(`http://${bare}/`).hostname === bare ? bare : undefined;
    }
  } catch { /* not an address */ }
  return undefined;
}

/**
 * `localhost`, `127.0.0.1`, `::1`, the machine's own addresses (when
 * `--allow-sys=networkInterfaces` lets us see them) and the address the
 * server binds, unless it binds all. `note` says what could not be seen.
 */
export function localNames(bindHost: string): {
  names: CertNames;
  note?: string;
} {
  const dns = new Set(["localhost"]);
  const ips = new Set(["127.0.0.1", "::1"]);
  let note: string | undefined;
  try {
    for (const nic of Deno.networkInterfaces()) {
      const ip = canonicalIp(nic.address);
      // A link-local address needs its zone (%eth0), which no URL carries.
      if (ip !== undefined && !ip.toLowerCase().startsWith("fe80:")) {
        ips.add(ip);
      }
    }
  } catch {
    note =
      "without --allow-sys=networkInterfaces the certificate names only this machine's loopback addresses";
  }
  const bound = canonicalIp(bindHost);
  if (bound === undefined) dns.add(bindHost.toLowerCase());
  else if (bound !== "0.0.0.0" && bound !== "::") ips.add(bound);
  return { names: { dns: [...dns], ips: [...ips] }, note };
}

/** A DER INTEGER's content for unsigned big-endian bytes: no leading zeros, positive. */
function positiveInteger(bytes: Uint8Array): ArrayBuffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const body = bytes.subarray(i);
  const out = new Uint8Array(body.length + (body[0] & 0x80 ? 1 : 0));
  out.set(body, out.length - body.length);
  return out.buffer;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${
    lines.join("\n")
  }\n-----END ${label}-----\n`;
}

/**
 * Makes a self-signed server certificate for `names`: ECDSA P-256 with
 * SHA-256, valid for a year from an hour before `now`, not a CA (rustls
 * refuses a CA as a server's own certificate), for server authentication.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSelfSigned, serve } from "@spindle/server";
 *
 * const { cert, key } = await makeSelfSigned({ dns: ["localhost"], ips: [] });
 * await using server = serve(
 *   { port: 0, accessLog: false, cert, key },
 *   (req) => ({ status: 200, body: `secure: ${req.secure}` }),
 * );
 * await server.ready; // over TLS the port may be known a turn later
 * const client = Deno.createHttpClient({ caCerts: [cert] });
 * const res = await fetch(`https://localhost:${server.port}/`, { client });
 * assert.equal(await res.text(), "secure: true");
 * client.close();
 * ```
 */
export async function makeSelfSigned(
  names: CertNames,
  now: Date = new Date(),
): Promise<PemPair> {
  const { schema: { AsnConvert, OctetString }, x509, ecc: { ECDSASigValue } } =
    await import("./npm/asn1.ts");
  const extension = (id: string, critical: boolean, value: unknown) =>
    new x509.Extension({
      extnID: id,
      critical,
      extnValue: new OctetString(AsnConvert.serialize(value)),
    });
  const rdn = (type: string, value: string) =>
    new x509.RelativeDistinguishedName([
      new x509.AttributeTypeAndValue({
        type,
        value: new x509.AttributeValue({ utf8String: value }),
      }),
    ]);
  const name = () =>
    new x509.Name([
      rdn(OID_ORGANIZATION, ORGANIZATION),
      rdn(OID_COMMON_NAME, "localhost"),
    ]);
  const keys = await crypto.subtle.generateKey(EC_P256, true, [
    "sign",
    "verify",
  ]);
  const spki = await crypto.subtle.exportKey("spki", keys.publicKey);
  const algorithm = new x509.AlgorithmIdentifier({
    algorithm: OID_ECDSA_SHA256,
  });
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive and not zero
  const start = now.getTime() - BACKDATE_MS;
  const keyUsage = new x509.KeyUsage(x509.KeyUsageFlags.digitalSignature);
  const tbs = new x509.TBSCertificate({
    version: x509.Version.v3,
    serialNumber: serial.buffer,
    signature: algorithm,
    issuer: name(),
    subject: name(),
    validity: new x509.Validity({
      notBefore: new Date(start),
      notAfter: new Date(start + VALID_DAYS * DAY_MS),
    }),
    subjectPublicKeyInfo: AsnConvert.parse(spki, x509.SubjectPublicKeyInfo),
    extensions: new x509.Extensions([
      extension(
        x509.id_ce_basicConstraints,
        true,
        new x509.BasicConstraints({ cA: false }),
      ),
      extension(x509.id_ce_keyUsage, true, keyUsage),
      extension(
        x509.id_ce_extKeyUsage,
        false,
        new x509.ExtendedKeyUsage([x509.id_kp_serverAuth]),
      ),
      extension(
        x509.id_ce_subjectAltName,
        false,
        new x509.SubjectAlternativeName([
          ...names.dns.map((dNSName) => new x509.GeneralName({ dNSName })),
          ...names.ips.map((iPAddress) => new x509.GeneralName({ iPAddress })),
        ]),
      ),
    ]),
  });
  const tbsDer = AsnConvert.serialize(tbs);
  // WebCrypto signs as r || s; X.509 wants the DER ECDSA-Sig-Value.
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      keys.privateKey,
      tbsDer,
    ),
  );
  const signature = AsnConvert.serialize(
    new ECDSASigValue({
      r: positiveInteger(raw.subarray(0, 32)),
      s: positiveInteger(raw.subarray(32)),
    }),
  );
  const cert = new x509.Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: signature,
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    cert: pem("CERTIFICATE", AsnConvert.serialize(cert)),
    key: pem("PRIVATE KEY", pkcs8),
  };
}

/** Why a saved pair cannot be used for `names` at `now`; undefined if it can. */
export function staleReason(
  pair: PemPair,
  names: CertNames,
  now = new Date(),
): string | undefined {
  const info = parseCertificate(pair.cert, pair.key);
  if (info.validFrom.getTime() > now.getTime()) return "it is not valid yet";
  if (info.validTo.getTime() - now.getTime() < RENEW_DAYS * DAY_MS) {
    return `it expires ${info.validTo.toISOString().slice(0, 10)}`;
  }
  // node writes them "DNS:localhost, IP Address:::1".
  const has = new Set<string>();
  for (const entry of info.altNames.split(", ")) {
    if (entry.startsWith("DNS:")) has.add(entry.slice(4).toLowerCase());
    const ip = entry.startsWith("IP Address:")
      ? canonicalIp(entry.slice(11))
      : undefined;
    if (ip !== undefined) has.add(ip);
  }
  const missing = [...names.dns, ...names.ips].filter((n) => !has.has(n));
  return missing.length > 0
    ? `it does not name ${missing.join(", ")}`
    : undefined;
}

/** True when the certificate's subject carries our mark. */
function madeByUs(certPem: string): boolean {
  return new X509Certificate(certPem).subject.split("\n")
    .includes(`O=${ORGANIZATION}`);
}

/** What {@link selfSigned} did. */
export interface SelfSigned extends PemPair {
  /** "made" (in memory), "saved" (made and written) or "reused" (read back). */
  readonly origin: "made" | "saved" | "reused";
  /** Why a saved pair was replaced, if it was. */
  readonly replaced?: string;
}

async function readPair(dir: string): Promise<PemPair | undefined> {
  try {
    return {
      cert: await Deno.readTextFile(join(dir, "cert.pem")),
      key: await Deno.readTextFile(join(dir, "key.pem")),
    };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Writes `text` to `path` through a temporary file: never half a file. */
async function writeWhole(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * A self-signed pair for `names`. With `saveDir`: reuses `cert.pem` and
 * `key.pem` there while they are valid for 30 more days and name all of
 * `names`, else makes a new pair and writes it there (key mode 0600). A
 * saved pair that is not one we made is never overwritten:
 * {@link SelfSignedError}.
 */
export async function selfSigned(
  names: CertNames,
  saveDir?: string,
  now = new Date(),
): Promise<SelfSigned> {
  if (saveDir === undefined) {
    return { ...(await makeSelfSigned(names, now)), origin: "made" };
  }
  const saved = await readPair(saveDir);
  let replaced: string | undefined;
  if (saved !== undefined) {
    let why: string | undefined;
    try {
      if (!madeByUs(saved.cert)) throw new Error("not ours");
      why = staleReason(saved, names, now);
    } catch {
      throw new SelfSignedError(
        `${
          join(saveDir, "cert.pem")
        } is not a certificate Spindle made; remove it, or give --tls-save another folder`,
      );
    }
    if (why === undefined) return { ...saved, origin: "reused" };
    replaced = why;
  }
  const pair = await makeSelfSigned(names, now);
  await Deno.mkdir(saveDir, { recursive: true, mode: 0o700 });
  await writeWhole(join(saveDir, "key.pem"), pair.key);
  await writeWhole(join(saveDir, "cert.pem"), pair.cert);
  return { ...pair, origin: "saved", replaced };
}
