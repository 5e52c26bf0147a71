/**
 * A real browser gets the default site over HTTP/2: `deno task serve` with
 * a certificate (ALPN offers h2), headless Chromium loading each page over
 * DevTools. Every response the page caused must have come over h2 with 200.
 * The certificate is the tests' self-signed one, so Chromium is told to
 * accept it (`--ignore-certificate-errors`); the protocol is what is tested.
 */
import assert from "node:assert/strict";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";
import { certificate } from "./helpers/cert.ts";
import { spawnServer } from "./fixtures/serve_process.ts";

const skip = chromiumMissing();
const pem = skip === undefined ? await certificate() : undefined;
if (skip !== undefined) console.log(`h2_browser_test skipped: ${skip}`);

const PAGES = ["/", "/about.html", "/contact.html"];

interface Seen {
  readonly url: string;
  readonly status: number;
  readonly protocol: string;
}

Deno.test({
  name:
    "Chromium loads the default site from deno task serve over h2: every response h2 and 200",
  ignore: skip !== undefined || pem === undefined,
  async fn() {
    const uploads = await Deno.makeTempDir({ prefix: "spindle_h2_uploads_" });
    try {
      await using server = await spawnServer([
        Deno.execPath(),
        "task",
        "serve",
        "--port",
        "0",
        "--cert",
        pem!.certFile,
        "--key",
        pem!.keyFile,
        "--uploads",
        uploads,
      ]);
      assert.notEqual(server.port, 0, "the server did not start");
      await using browser = await Browser.launch([
        "--ignore-certificate-errors",
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
      const base = `https://localhost:${server.port}`;
      for (const page of PAGES) {
        await within(browser.goto(`${base}${page}`), 30_000, `load ${page}`);
        const title = await browser.eval("document.title");
        assert.match(String(title), /Spindle/, page);
      }
      const paths = seen.map((s) => new URL(s.url).pathname);
      for (const asset of [...PAGES, "/style.css", "/logo.png"]) {
        assert.ok(paths.includes(asset), `${asset} not loaded: ${paths}`);
      }
      const wrong = seen.filter((s) => s.protocol !== "h2" || s.status !== 200);
      assert.deepEqual(wrong, [], "every response came over h2 with 200");
    } finally {
      await Deno.remove(uploads, { recursive: true });
    }
  },
});
