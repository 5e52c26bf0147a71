/**
 * A real browser gets the default site over HTTP/2: `deno task serve` with
 * a certificate (ALPN offers h2), headless Chromium loading each page over
 * DevTools. Every response the page caused must have come over h2 with 200.
 * Once with the tests' certificate (--cert, --key), once as the issue puts
 * it, `deno task serve --tls self-signed`: one Chromium for both, trusting
 * exactly those two keys (their SPKI hashes), nothing else.
 */
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";
import { certificate } from "./helpers/cert.ts";
import { spawnServer } from "./fixtures/serve_process.ts";

const skip = chromiumMissing();
const pem = await certificate();
if (skip !== undefined) console.log(`h2_browser_test skipped: ${skip}`);

const PAGES = ["/", "/about.html", "/contact.html"];

interface Seen {
  readonly url: string;
  readonly status: number;
  readonly protocol: string;
}

/**
 * The base64 SHA-256 of a certificate's SubjectPublicKeyInfo: how Chromium
 * names a key to trust. A wrong one fails the first page (checked by hand
 * when this test was written).
 */
function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({
    type: "spki",
    format: "der",
  });
  return createHash("sha256").update(spki).digest("base64");
}

Deno.test({
  name:
    "Chromium loads the default site from deno task serve over h2, with the tests' certificate and with --tls self-signed: every response h2 and 200",
  ignore: skip !== undefined,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "spindle_h2_browser_" });
    try {
      const [uploads, selfUploads, saved] = ["uploads", "self", "tls"].map(
        (name) => join(dir, name),
      );
      await Deno.mkdir(uploads);
      await Deno.mkdir(selfUploads);
      await using given = await spawnServer([
        Deno.execPath(),
        "task",
        "serve",
        "--port",
        "0",
        "--cert",
        pem.certFile,
        "--key",
        pem.keyFile,
        "--uploads",
        uploads,
      ]);
      assert.notEqual(given.port, 0, "the --cert server did not start");
      await using made = await spawnServer([
        Deno.execPath(),
        "task",
        "serve",
        "--port",
        "0",
        "--tls",
        "self-signed",
        "--tls-save",
        saved,
        "--uploads",
        selfUploads,
      ]);
      assert.notEqual(made.port, 0, "the self-signed server did not start");
      const keys = [
        spkiHash(pem.cert),
        spkiHash(await Deno.readTextFile(join(saved, "cert.pem"))),
      ];
      await using browser = await Browser.launch([
        `--ignore-certificate-errors-spki-list=${keys.join(",")}`,
      ]);
      const seen: Seen[] = [];
      browser.on("Network.responseReceived", (params) => {
        const r = params.response as {
          url: string;
          status: number;
          protocol: string;
        };
        seen.push({ url: r.url, status: r.status, protocol: r.protocol });
      });
      await browser.send("Network.enable");
      // No cache: each page load asks for every asset again.
      await browser.send("Network.setCacheDisabled", { cacheDisabled: true });
      await t.step("--cert and --key", async () => {
        await loadOverH2(browser, seen, given.port);
      });
      await t.step("--tls self-signed", async () => {
        await loadOverH2(browser, seen, made.port);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Loads every page from localhost:`port`; each response must be h2 and 200. */
async function loadOverH2(
  browser: Browser,
  seen: Seen[],
  port: number,
): Promise<void> {
  const base = `https://localhost:${port}`;
  const from = seen.length;
  for (const page of PAGES) {
    await within(browser.goto(`${base}${page}`), 30_000, `load ${page}`);
    const title = await browser.eval("document.title");
    assert.match(String(title), /Spindle/, page);
  }
  // Only this server's responses: a late one from the previous step's
  // server (the browser's own favicon.ico fetch) may arrive in between.
  const mine = seen.slice(from).filter((s) => s.url.startsWith(`${base}/`));
  const paths = mine.map((s) => new URL(s.url).pathname);
  for (const asset of [...PAGES, "/style.css", "/logo.png"]) {
    assert.ok(paths.includes(asset), `${asset} not loaded: ${paths}`);
  }
  const wrong = mine.filter((s) => s.protocol !== "h2" || s.status !== 200);
  assert.deepEqual(wrong, [], "every response came over h2 with 200");
}
