/** lib/startup.ts: the URLs and lines a person reads when the server starts. */
import assert from "node:assert/strict";
import { renderUnicodeCompact } from "uqr";
import {
  type Address,
  networkUrl,
  qrLines,
  serverUrls,
  startLines,
} from "../lib/startup.ts";

const INTERFACES: Address[] = [
  { family: "IPv4", address: "127.0.0.1" },
  { family: "IPv4", address: "192.168.1.20" },
  { family: "IPv6", address: "::1" },
  { family: "IPv6", address: "fd00::2" },
  { family: "IPv6", address: "fe80::1" },
  { family: "IPv4", address: "10.0.0.7" },
];

const cases: [string, string, Address[] | undefined, string[]][] = [
  ["one address", "127.0.0.1", INTERFACES, ["http://127.0.0.1:8080/"]],
  ["an IPv6 address", "::1", INTERFACES, ["http://[::1]:8080/"]],
  ["0.0.0.0: loopback, then every IPv4 address", "0.0.0.0", INTERFACES, [
    "http://127.0.0.1:8080/",
    "http://192.168.1.20:8080/",
    "http://10.0.0.7:8080/",
  ]],
  ["::, with IPv6 but no link-local address", "::", INTERFACES, [
    "http://[::1]:8080/",
    "http://192.168.1.20:8080/",
    "http://[fd00::2]:8080/",
    "http://10.0.0.7:8080/",
  ]],
  ["0.0.0.0 with no interface list", "0.0.0.0", undefined, [
    "http://127.0.0.1:8080/",
  ]],
];
for (const [name, host, interfaces, urls] of cases) {
  Deno.test(`serverUrls() lists ${name}`, () => {
    assert.deepEqual(serverUrls("http", host, 8080, interfaces), urls);
  });
}

Deno.test("networkUrl() picks the first URL another machine can open", () => {
  assert.equal(
    networkUrl(serverUrls("http", "0.0.0.0", 80, INTERFACES)),
    "http://192.168.1.20:80/",
  );
  assert.equal(
    networkUrl(["http://127.0.0.1:80/", "http://[::1]:80/"]),
    undefined,
  );
  assert.equal(networkUrl(["http://localhost:80/"]), undefined);
});

Deno.test("startLines() says where, what, what it may touch and how to stop", () => {
  assert.deepEqual(
    startLines({
      root: "/srv/site",
      urls: ["http://127.0.0.1:8080/", "http://10.0.0.7:8080/"],
      reads: "/srv/site",
      writes: "nothing",
    }),
    [
      "Serving /srv/site on",
      "  http://127.0.0.1:8080/",
      "  http://10.0.0.7:8080/",
      "May read /srv/site",
      "May write nothing",
      "Ctrl-C to stop",
    ],
  );
  const unlisted = startLines({
    root: "/srv",
    urls: ["http://127.0.0.1:80/"],
    unlisted: true,
    reads: "",
    writes: "",
  });
  assert.match(
    unlisted[2],
    /every other address .*--allow-sys=networkInterfaces/,
  );
});

Deno.test("qrLines() draws the URL, or says why a phone could not open it", async () => {
  const url = "http://192.168.1.20:8080/";
  assert.deepEqual(await qrLines(url), [
    `Scan to open ${url}`,
    ...renderUnicodeCompact(url, { border: 1 }).split("\n"),
  ]);
  assert.match((await qrLines(undefined))[0], /add --host 0\.0\.0\.0/);
});
