/**
 * `--tls self-signed`: the certificate made, the names it carries, rustls
 * and curl accepting it, and `--tls-save`'s reuse and renewal.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serve } from "../lib/http/server.ts";
import { parseCertificate } from "../lib/http/tls.ts";
import {
  canonicalIp,
  type CertNames,
  localNames,
  makeSelfSigned,
  selfSigned,
  SelfSignedError,
  staleReason,
} from "../lib/self_signed.ts";
import { certificate } from "./helpers/cert.ts";
import { get, hasTool, ReplyReader, run, send } from "./helpers/socket.ts";

const NAMES: CertNames = { dns: ["localhost"], ips: ["127.0.0.1", "::1"] };
const DAY_MS = 24 * 60 * 60 * 1000;

const ips: [text: string, canonical: string | undefined][] = [
  ["127.0.0.1", "127.0.0.1"],
  ["::1", "::1"],
  ["[::1]", "::1"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["FD00:0:0:0:0:0:0:2", "fd00::2"],
  ["localhost", undefined],
  ["127.1", undefined],
  ["300.1.1.1", undefined],
];
for (const [text, canonical] of ips) {
  Deno.test(`canonicalIp() reads "${text}" as ${canonical}`, () => {
    assert.equal(canonicalIp(text), canonical);
  });
}

Deno.test("localNames() names loopback, the bind address, and the machine's addresses when allowed", () => {
  const { names } = localNames("example.test");
  assert.ok(names.dns.includes("localhost"));
  assert.ok(names.dns.includes("example.test"));
  assert.ok(names.ips.includes("127.0.0.1") && names.ips.includes("::1"));
  for (const nic of Deno.networkInterfaces()) {
    const ip = canonicalIp(nic.address);
    if (ip !== undefined && !ip.startsWith("fe80:")) {
      assert.ok(names.ips.includes(ip), ip);
    }
  }
  assert.deepEqual(localNames("0.0.0.0").names.dns, ["localhost"]);
  assert.ok(localNames("192.0.2.77").names.ips.includes("192.0.2.77"));
});

Deno.test("makeSelfSigned() makes a pair that parses, matches, names every name and lasts a year", async () => {
  const now = new Date();
  const pair = await makeSelfSigned(
    { dns: ["localhost", "box.test"], ips: ["127.0.0.1", "::1"] },
    now,
  );
  const info = parseCertificate(pair.cert, pair.key);
  assert.match(info.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  for (const name of ["DNS:localhost", "DNS:box.test", "127.0.0.1"]) {
    assert.ok(info.altNames.includes(name), info.altNames);
  }
  assert.ok(info.validFrom.getTime() < now.getTime());
  const days = (info.validTo.getTime() - info.validFrom.getTime()) / DAY_MS;
  assert.equal(Math.round(days), 365);
  assert.equal(
    staleReason(pair, { dns: ["box.test"], ips: ["::1"] }, now),
    undefined,
  );
  // Each pair is new: another key, another fingerprint.
  const other = await makeSelfSigned(NAMES, now);
  assert.notEqual(
    parseCertificate(other.cert, other.key).fingerprint,
    info.fingerprint,
  );
});

Deno.test("staleReason() says why a saved pair will not do", async () => {
  const now = new Date();
  const pair = await makeSelfSigned(NAMES, now);
  assert.match(
    staleReason(pair, { dns: ["localhost"], ips: ["192.0.2.9"] }, now)!,
    /does not name 192\.0\.2\.9/,
  );
  assert.match(
    staleReason(pair, NAMES, new Date(now.getTime() + 340 * DAY_MS))!,
    /expires/,
  );
  assert.match(
    staleReason(pair, NAMES, new Date(now.getTime() - 2 * DAY_MS))!,
    /not valid yet/,
  );
});

Deno.test("selfSigned() saves the pair with a private key file, then reuses it", async () => {
  const dir = join(await Deno.makeTempDir(), "tls");
  try {
    const first = await selfSigned(NAMES, dir);
    assert.equal(first.origin, "saved");
    assert.equal((await Deno.stat(join(dir, "key.pem"))).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(join(dir, "cert.pem")), first.cert);
    const again = await selfSigned(NAMES, dir);
    assert.equal(again.origin, "reused");
    assert.equal(again.cert, first.cert);
    assert.equal(again.key, first.key);
    // The machine got another address: a new pair that names it.
    const moved = await selfSigned(
      { dns: ["localhost"], ips: [...NAMES.ips, "192.0.2.9"] },
      dir,
    );
    assert.equal(moved.origin, "saved");
    assert.match(moved.replaced!, /does not name 192\.0\.2\.9/);
    assert.notEqual(moved.cert, first.cert);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(),
      [
        "cert.pem",
        "key.pem",
      ],
    );
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test("selfSigned() never writes over a pair it did not make", async () => {
  const pem = await certificate();
  if (pem === undefined) return;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "cert.pem"), pem.cert);
    await Deno.writeTextFile(join(dir, "key.pem"), pem.key);
    await assert.rejects(selfSigned(NAMES, dir), SelfSignedError);
    assert.equal(await Deno.readTextFile(join(dir, "cert.pem")), pem.cert);
    await Deno.writeTextFile(join(dir, "cert.pem"), "not a certificate");
    await assert.rejects(
      selfSigned(NAMES, dir),
      /not a certificate Spindle made/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a self-signed pair serves HTTPS that rustls and curl --cacert accept for localhost, 127.0.0.1 and ::1", async () => {
  const pair = await makeSelfSigned(NAMES);
  await using server = serve({
    hostname: "::",
    port: 0,
    accessLog: false,
    cert: pair.cert,
    key: pair.key,
  }, (req) => ({ status: 200, body: `secure=${req.secure}` }));
  await server.ready;
  for (const hostname of ["localhost", "127.0.0.1", "::1"]) {
    using conn = await Deno.connectTls({
      hostname,
      port: server.port,
      caCerts: [pair.cert],
    });
    await send(conn, get("/", "Connection: close\r\n"));
    assert.equal(
      (await new ReplyReader(conn).readReply()).text,
      "secure=true",
      hostname,
    );
  }
  if (!(await hasTool("curl"))) return;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "cert.pem"), pair.cert);
    const out = await run("curl", [
      "-s",
      "--cacert",
      join(dir, "cert.pem"),
      `https://[::1]:${server.port}/`,
      `https://localhost:${server.port}/`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, "secure=truesecure=true");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
