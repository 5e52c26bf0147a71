/**
 * `--watch` over real sockets: which replies carry the script and which do
 * not, validators and lengths, the event stream and its end on shutdown.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LIVE_RELOAD_PATH } from "../lib/app/live_reload.ts";
import { staticFiles } from "../lib/app/static_files.ts";
import { DEFAULT_STATIC } from "../lib/app/settings.ts";
import { serve } from "../lib/http/server.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { startApp } from "./fixtures/app_server.ts";

const PAGE =
  "<!doctype html><title>v1</title><link rel=stylesheet href=style.css><p>page</p>\n";
const MARK = "spindle --watch";

async function makeRoot(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "spindle-watch-" });
  await Deno.writeTextFile(join(root, "index.html"), PAGE);
  await Deno.writeTextFile(join(root, "notes.txt"), "plain text\n");
  await Deno.writeTextFile(join(root, "style.css"), "body{color:red}\n");
  await Deno.writeTextFile(join(root, "404.html"), "<p>lost</p>\n");
  await Deno.mkdir(join(root, "dir"));
  await Deno.mkdir(join(root, ".git"));
  // A sidecar as a deploy would leave it: the page without the script.
  const gz = new Blob([PAGE]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  await Deno.writeFile(
    join(root, "index.html.gz"),
    await new Response(gz).bytes(),
  );
  return root;
}

function startWatching(root: string, watch = true) {
  // As the app does: the engine's drain signal stops the watcher.
  const stats = new EngineStats();
  const handler = staticFiles(
    { ...DEFAULT_STATIC, root, watch, listDirs: true },
    { revalidateMs: 0, maxCachedFileBytes: 64 },
    { signal: stats.drainSignal, liveReload: { debounceMs: 50 } },
  );
  const server = serve({ port: 0, accessLog: false, stats }, handler);
  return {
    base: `http://127.0.0.1:${server.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("--watch adds the script to HTML replies only, with their own ETag, never compressed or ranged", async () => {
  const root = await makeRoot();
  try {
    await using site = startWatching(root);
    const page = await fetch(`${site.base}/`, {
      headers: { "accept-encoding": "gzip, br" },
    });
    const body = await page.text();
    assert.ok(body.startsWith(PAGE) && body.includes(MARK), body);
    assert.equal(page.headers.get("content-encoding"), null, "not the sidecar");
    assert.match(page.headers.get("etag")!, /-live"$/);
    assert.equal(page.headers.get("accept-ranges"), null);
    const etag = page.headers.get("etag")!;

    // HEAD says the length GET sends.
    const head = await fetch(`${site.base}/`, { method: "HEAD" });
    assert.equal(
      Number(head.headers.get("content-length")),
      new TextEncoder().encode(body).length,
    );

    // Revalidation by the live tag: 304.
    const again = await fetch(`${site.base}/`, {
      headers: { "if-none-match": etag },
    });
    assert.equal(again.status, 304);
    await again.body?.cancel();

    // A range of the page is not a range of the file: the whole page, 200.
    const ranged = await fetch(`${site.base}/`, {
      headers: { range: "bytes=0-9" },
    });
    assert.equal(ranged.status, 200);
    assert.ok((await ranged.text()).includes(MARK));

    // Not HTML: untouched, and still ranged.
    const text = await fetch(`${site.base}/notes.txt`, {
      headers: { range: "bytes=0-4" },
    });
    assert.equal(text.status, 206);
    assert.equal(await text.text(), "plain");
    const css = await (await fetch(`${site.base}/style.css`)).text();
    assert.ok(!css.includes(MARK));

    // The 404 page and a listing are pages too.
    const lost = await fetch(`${site.base}/nope`, {
      headers: { accept: "text/html" },
    });
    assert.equal(lost.status, 404);
    assert.ok((await lost.text()).includes(MARK));
    const listing = await (await fetch(`${site.base}/dir/`)).text();
    assert.ok(listing.includes(MARK));
    const json = await (await fetch(`${site.base}/dir/?format=json`)).text();
    assert.ok(!json.includes(MARK));

    // A page bigger than the memory cache streams, with the script after it.
    const big = `<!doctype html><p>${"x".repeat(5000)}</p>\n`;
    await Deno.writeTextFile(join(root, "big.html"), big);
    const streamed = await fetch(`${site.base}/big.html`);
    const streamedBody = await streamed.text();
    assert.ok(
      streamedBody.startsWith(big) && streamedBody.endsWith("</script>\n"),
    );
    assert.equal(
      Number(streamed.headers.get("content-length")),
      new TextEncoder().encode(streamedBody).length,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("without --watch no script, the sidecar is served and the event path is a missing file", async () => {
  const root = await makeRoot();
  try {
    await using site = startWatching(root, false);
    const page = await fetch(`${site.base}/`, {
      headers: { "accept-encoding": "gzip" },
    });
    assert.equal(page.headers.get("content-encoding"), "gzip");
    assert.doesNotMatch(page.headers.get("etag")!, /live/);
    assert.equal(await page.text(), PAGE);
    const events = await fetch(`${site.base}${LIVE_RELOAD_PATH}`);
    assert.equal(events.status, 404);
    await events.body?.cancel();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Reads server-sent events from a stream, one at a time. */
class EventReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event with a name, as [name, data]; undefined once the stream ends. */
  async next(): Promise<[string, string] | undefined> {
    for (;;) {
      const end = this.#buffer.indexOf("\n\n");
      if (end !== -1) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        if (name !== undefined) {
          return [name, /^data: (.*)$/m.exec(block)?.[1] ?? ""];
        }
        continue; // a comment or retry line
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

Deno.test("the event stream says reload for a page, css for a stylesheet alone, nothing for a dot-folder", async () => {
  const root = await makeRoot();
  try {
    await using site = startWatching(root);
    const res = await fetch(`${site.base}${LIVE_RELOAD_PATH}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(res.headers.get("cache-control"), "no-store");
    const events = new EventReader(res.body!);
    try {
      await Deno.writeTextFile(
        join(root, "index.html"),
        PAGE.replace("v1", "v2"),
      );
      assert.deepEqual(await events.next(), ["reload", '["/index.html"]']);
      // The dot-folder's change comes first; only the stylesheet is told.
      await Deno.writeTextFile(join(root, ".git", "HEAD"), "ref: main\n");
      await Deno.writeTextFile(join(root, "style.css"), "body{color:blue}\n");
      assert.deepEqual(await events.next(), ["css", '["/style.css"]']);
    } finally {
      await events.cancel();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("shutdown ends the event streams at once instead of waiting out shutdownTimeoutMs", async () => {
  await using app = await startApp({
    static: { watch: true },
    serve: { limits: { shutdownTimeoutMs: 60_000 } },
  });
  const res = await fetch(`${app.origin}${LIVE_RELOAD_PATH}`);
  assert.equal(res.status, 200);
  const events = new EventReader(res.body!);
  const started = Date.now();
  await app.server.shutdown();
  assert.equal(await events.next(), undefined, "the stream ended");
  const took = Date.now() - started;
  assert.ok(took < 30_000, `shutdown took ${took} ms`);
});
