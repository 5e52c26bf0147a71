/**
 * `--watch` in a real browser: headless Chromium shows a page, the test
 * edits the file, and the page reloads itself; a stylesheet edit restyles
 * the page without a reload. Each step waits for the browser's own event.
 * The listing's filter box is typed into as well.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LIVE_RELOAD_PATH } from "../lib/app/live_reload.ts";
import { staticFiles } from "../lib/app/static_files.ts";
import { DEFAULT_STATIC } from "../lib/app/settings.ts";
import type { Handler } from "../lib/http/handler.ts";
import { serve } from "../lib/http/server.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";

const skip = chromiumMissing();
if (skip !== undefined) {
  console.log(`live_reload_browser_test skipped: ${skip}`);
}

const WAIT_MS = 60_000; // a busy machine; each wait ends on an event well before

/** Counts event-stream connections; `connected(n)` resolves once n were answered. */
function counting(inner: Handler) {
  let count = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const handler: Handler = async (req) => {
    const reply = await inner(req);
    if (req.path === LIVE_RELOAD_PATH && reply.status === 200) {
      count++;
      for (const w of waiters.filter((w) => w.n <= count)) w.resolve();
    }
    return reply;
  };
  const connected = (n: number) =>
    new Promise<void>((resolve) => {
      if (count >= n) resolve();
      else waiters.push({ n, resolve });
    });
  return { handler, connected };
}

const page = (title: string) =>
  `<!doctype html><html><head><title>${title}</title><link rel="stylesheet" href="/style.css"></head><body><p>${title}</p></body></html>\n`;

Deno.test({
  name:
    "--watch: Chromium reloads a page when its file changes, and restyles it in place for a stylesheet",
  ignore: skip !== undefined,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "spindle-watch-browser-" });
    // As the app does: the engine's drain signal ends the event streams.
    const stats = new EngineStats();
    try {
      await Deno.writeTextFile(join(root, "index.html"), page("v1"));
      await Deno.writeTextFile(
        join(root, "style.css"),
        "body{color:rgb(200, 0, 0)}\n",
      );
      await Deno.mkdir(join(root, "dir"));
      for (const name of ["apple.txt", "banana.txt", "cherry.md"]) {
        await Deno.writeTextFile(join(root, "dir", name), name);
      }
      const { handler, connected } = counting(
        staticFiles(
          { ...DEFAULT_STATIC, root, watch: true, listDirs: true },
          { revalidateMs: 0 },
          { signal: stats.drainSignal },
        ),
      );
      await using server = serve({ port: 0, accessLog: false, stats }, handler);
      const base = `http://127.0.0.1:${server.port}`;
      await using browser = await Browser.launch();

      await within(browser.goto(`${base}/`), WAIT_MS, "the page loads");
      await within(connected(1), WAIT_MS, "the page listens for changes");
      assert.equal(await browser.eval("document.title"), "v1");
      await browser.eval("window.marker = 'before'");

      // Edit the page: the browser reloads it by itself.
      const reloaded = browser.event("Page.loadEventFired");
      await Deno.writeTextFile(join(root, "index.html"), page("v2"));
      await within(reloaded, WAIT_MS, "the page reloads after the edit");
      assert.equal(await browser.eval("document.title"), "v2");
      assert.equal(
        await browser.eval("window.marker"),
        undefined,
        "a new page",
      );
      await within(connected(2), WAIT_MS, "the reloaded page listens again");

      // Edit the stylesheet: new styles, same page (the marker survives).
      await browser.eval(`window.marker = 'kept';
        window.restyled = new Promise((resolve) => new MutationObserver((_, o) => {
          if (getComputedStyle(document.body).color === "rgb(1, 2, 3)") { o.disconnect(); resolve(true); }
        }).observe(document.head, { childList: true })); true`);
      await Deno.writeTextFile(
        join(root, "style.css"),
        "body{color:rgb(1, 2, 3)}\n",
      );
      assert.equal(
        await within(
          browser.eval("window.restyled"),
          WAIT_MS,
          "the stylesheet is swapped",
        ),
        true,
      );
      assert.equal(await browser.eval("window.marker"), "kept", "not reloaded");
      assert.equal(
        await browser.eval(
          `document.querySelectorAll('link[rel="stylesheet"]').length`,
        ),
        1,
        "the old stylesheet is gone",
      );

      // The listing's filter box hides rows as one types, and keeps ?q= in the URL.
      await within(browser.goto(`${base}/dir/`), WAIT_MS, "the listing loads");
      const shown = await browser.eval(`(() => {
        const f = document.querySelector("#filter");
        f.value = "AN";
        f.dispatchEvent(new Event("input"));
        return [...document.querySelectorAll("tbody tr[data-name]")]
          .filter((r) => !r.hidden).map((r) => r.dataset.name)
          .concat(location.search, document.querySelector("#shown").textContent);
      })()`);
      assert.deepEqual(shown, ["banana.txt", "?q=AN", "1"]);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
