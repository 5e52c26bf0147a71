/**
 * The default site in a real browser: headless Chromium (one for the file,
 * driven over DevTools) loads each page from our server, and every asset
 * the pages reference must answer 200.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { staticFiles } from "../lib/app/static_files.ts";
import { DEFAULT_STATIC } from "../lib/app/settings.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";

const RESOURCES = fileURLToPath(new URL("../resources", import.meta.url));
const PAGES = ["/", "/about.html", "/contact.html"];
const WAIT_MS = 60_000; // a busy machine; each wait ends on an event well before

const skipReason = chromiumMissing();
if (skipReason !== undefined) {
  console.log(`browser_test skipped: ${skipReason}`);
}

/** The server's answers, as [method, path, status]. */
type Seen = [string, string, number][];

function recording(inner: Handler, seen: Seen): Handler {
  return async (req) => {
    try {
      const reply = await inner(req);
      seen.push([req.method, req.path, reply.status]);
      return reply;
    } catch (err) {
      seen.push([
        req.method,
        req.path,
        (err as { status?: number }).status ?? 500,
      ]);
      throw err;
    }
  };
}

/** Loads `url` and returns its DOM once the load event has fired. */
async function loadDom(browser: Browser, url: string): Promise<string> {
  await within(browser.goto(url), WAIT_MS, `${url} loads`);
  return await browser.eval("document.documentElement.outerHTML") as string;
}

/** Local links (href/src starting with "/") in a page. */
function localLinks(html: string): string[] {
  return [...html.matchAll(/\b(?:href|src)="(\/[^"]*)"/g)].map((m) => m[1]);
}

Deno.test({
  name: "default site loads in Chromium and every referenced asset answers 200",
  ignore: skipReason !== undefined,
  async fn() {
    const seen: Seen = [];
    const handler = recording(
      staticFiles({ ...DEFAULT_STATIC, root: RESOURCES }),
      seen,
    );
    await using server = serve({ port: 0, accessLog: false }, handler);
    const base = `http://127.0.0.1:${server.port}`;
    await using browser = await Browser.launch();

    for (const page of PAGES) {
      const dom = await loadDom(browser, `${base}${page}`);
      assert.match(dom, /Spindle/, page);
      assert.match(dom, /<nav/, page);
    }
    // The browser itself fetched the stylesheet and the logo, and got them.
    for (const asset of ["/style.css", "/logo.png"]) {
      assert.ok(
        seen.some(([m, p, s]) => m === "GET" && p === asset && s === 200),
        `${asset}: ${JSON.stringify(seen)}`,
      );
    }
    const failures = seen.filter(([, , s]) => s !== 200 && s !== 304);
    assert.deepEqual(
      failures,
      [],
      "every request the browser made succeeded",
    );

    // Every local link and source on every page answers 200.
    const links = new Set<string>();
    for (const page of [...PAGES, "/404.html"]) {
      const res = await fetch(`${base}${page}`);
      assert.equal(res.status, 200, page);
      for (const link of localLinks(await res.text())) links.add(link);
    }
    assert.ok(
      links.has("/hello.txt") && links.has("/favicon.ico"),
      [...links].join(" "),
    );
    for (const link of links) {
      const res = await fetch(`${base}${link}`);
      await res.body?.cancel();
      assert.equal(res.status, 200, link);
    }

    // An unknown page shows the site's own 404 page in the browser.
    const lost = await loadDom(browser, `${base}/no/such/page`);
    assert.match(lost, /This thread leads nowhere/);
    assert.ok(seen.some(([, p, s]) => p === "/no/such/page" && s === 404));

    // A screenshot of the home page, kept when SPINDLE_SCREENSHOT names a
    // file to look at.
    await browser.send("Emulation.setDeviceMetricsOverride", {
      width: 1200,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    });
    await loadDom(browser, `${base}/`);
    const { data } = await browser.send("Page.captureScreenshot", {
      format: "png",
    }) as { data: string };
    const png = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    const shot = Deno.env.get("SPINDLE_SCREENSHOT");
    if (shot !== undefined) await Deno.writeFile(shot, png);
  },
});
