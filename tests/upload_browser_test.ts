/**
 * The listing's upload form in headless Chromium: a file set on the input
 * and sent with the button (XMLHttpRequest with a progress bar, then the
 * listing reloads and shows it), the same form with JavaScript off (a
 * plain multipart POST, 303 back to the listing), and a file dropped on
 * the page. Each step waits for the browser's own event.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startApp } from "./fixtures/app_server.ts";
import { Browser, chromiumMissing, within } from "./helpers/cdp.ts";

const skip = chromiumMissing();
if (skip !== undefined) console.log(`upload_browser_test skipped: ${skip}`);

const WAIT_MS = 60_000; // a busy machine; each wait ends on an event well before

/** Names in the listing's rows, as the page shows them. */
const ROWS =
  `[...document.querySelectorAll("tbody td.name a > span")].map((s) => s.textContent)`;

/** Sets `paths` on the page's file input, as a user choosing them would. */
async function chooseFiles(browser: Browser, paths: string[]): Promise<void> {
  const { root } = await browser.send("DOM.getDocument") as {
    root: { nodeId: number };
  };
  const { nodeId } = await browser.send("DOM.querySelector", {
    nodeId: root.nodeId,
    selector: "#files",
  });
  await browser.send("DOM.setFileInputFiles", { nodeId, files: paths });
}

Deno.test({
  name:
    "Chromium uploads through the listing's form: with a progress bar, without JavaScript, and by drop",
  ignore: skip !== undefined,
  async fn() {
    const src = await Deno.makeTempDir({ prefix: "spindle-upload-src-" });
    try {
      await Deno.writeFile(
        join(src, "holiday photo.jpg"),
        new Uint8Array(2 * 1024 * 1024).fill(7),
      );
      await Deno.writeTextFile(join(src, "plain.txt"), "no script\n");
      await Deno.writeTextFile(join(src, "dropped.txt"), "dropped\n");
      await using app = await startApp({
        app: {
          uploadFiles: { path: "/", quotaBytes: 0, overwrite: false },
        },
        static: { listDirs: true },
        beforeStart: (root) => Deno.mkdir(join(root, "photos")),
      });
      const listing = `${app.origin}/photos/`;
      await using browser = await Browser.launch();
      await within(browser.goto(listing), WAIT_MS, "the listing loads");
      assert.deepEqual(await browser.eval(ROWS), ["../"]);

      // With JavaScript: the button sends the file by XMLHttpRequest; the
      // status line's texts are kept in sessionStorage across the reload.
      await browser.eval(`new MutationObserver(() => {
          const seen = JSON.parse(sessionStorage.seen ?? "[]");
          seen.push(document.querySelector("#upload output").textContent);
          sessionStorage.seen = JSON.stringify(seen);
        }).observe(document.querySelector("#upload output"), { childList: true }); true`);
      await chooseFiles(browser, [join(src, "holiday photo.jpg")]);
      let loaded = browser.event("Page.loadEventFired");
      await browser.eval(
        `document.querySelector("#upload button").click(); true`,
      );
      await within(loaded, WAIT_MS, "the listing reloads after the upload");
      assert.deepEqual(await browser.eval(ROWS), ["../", "holiday photo.jpg"]);
      const seen = JSON.parse(
        await browser.eval("sessionStorage.seen") as string,
      ) as string[];
      assert.ok(
        seen.some((t) => /^Uploading 1 file: .* of 2\.0 MiB$/.test(t)),
        `progress shown: ${seen.join(" | ")}`,
      );
      assert.ok(seen.includes("Stored holiday photo.jpg"), seen.join(" | "));
      assert.equal(
        (await Deno.stat(join(app.root, "photos", "holiday photo.jpg"))).size,
        2 * 1024 * 1024,
      );

      // A taken name: the page says why, and stays.
      await chooseFiles(browser, [join(src, "holiday photo.jpg")]);
      await browser.eval(`window.marker = "same page";
        window.refused = new Promise((resolve) => new MutationObserver((_, o) => {
          const out = document.querySelector("#upload output");
          if (out.classList.contains("error")) { o.disconnect(); resolve(out.textContent); }
        }).observe(document.querySelector("#upload output"), { childList: true, attributes: true }));
        document.querySelector("#upload button").click(); true`);
      assert.equal(
        await within(
          browser.eval("window.refused") as Promise<unknown>,
          WAIT_MS,
          "the refusal is shown",
        ),
        "A file named holiday photo.jpg exists already",
      );
      assert.equal(await browser.eval("window.marker"), "same page");

      // Dropped on the page: the same upload.
      loaded = browser.event("Page.loadEventFired");
      await browser.eval(`(() => {
        const data = new DataTransfer();
        data.items.add(new File(["dropped\\n"], "dropped.txt", { type: "text/plain" }));
        for (const type of ["dragenter", "dragover", "drop"]) {
          document.body.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
        }
        return true;
      })()`);
      await within(loaded, WAIT_MS, "the listing reloads after the drop");
      assert.deepEqual(await browser.eval(ROWS), [
        "../",
        "dropped.txt",
        "holiday photo.jpg",
      ]);

      // Without JavaScript: the form posts itself, and the 303 brings the listing back.
      await browser.send("Emulation.setScriptExecutionDisabled", {
        value: true,
      });
      await within(browser.goto(listing), WAIT_MS, "the listing loads");
      await chooseFiles(browser, [join(src, "plain.txt")]);
      loaded = browser.event("Page.loadEventFired");
      const { root } = await browser.send("DOM.getDocument") as {
        root: { nodeId: number };
      };
      const { nodeId } = await browser.send("DOM.querySelector", {
        nodeId: root.nodeId,
        selector: "#upload button",
      });
      const { model } = await browser.send("DOM.getBoxModel", { nodeId }) as {
        model: { content: number[] };
      };
      const [x1, y1, , , x3, y3] = model.content;
      for (const type of ["mousePressed", "mouseReleased"]) {
        await browser.send("Input.dispatchMouseEvent", {
          type,
          x: (x1 + x3) / 2,
          y: (y1 + y3) / 2,
          button: "left",
          clickCount: 1,
        });
      }
      await within(loaded, WAIT_MS, "the 303 brings the listing back");
      // The form itself posted (a browser's Accept: 303), not the script (201s).
      assert.equal(app.metrics.requests("upload-files", "3xx"), 1);
      assert.equal(app.metrics.requests("upload-files", "2xx"), 2);
      await browser.send("Emulation.setScriptExecutionDisabled", {
        value: false,
      });
      assert.deepEqual(await browser.eval(ROWS), [
        "../",
        "dropped.txt",
        "holiday photo.jpg",
        "plain.txt",
      ]);
      assert.equal(
        await browser.eval("location.pathname"),
        "/photos/",
        "back on the listing",
      );
      assert.equal(
        await Deno.readTextFile(join(app.root, "photos", "plain.txt")),
        "no script\n",
      );
    } finally {
      await Deno.remove(src, { recursive: true });
    }
  },
});
