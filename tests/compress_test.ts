/**
 * On-the-fly compression off the event loop: the worker pool's cap, its
 * idle workers, and the static handler under clients that cycle codings over
 * many large files (issue #9: each miss used to hold the event loop ~30 ms).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { type Coding, Compressor } from "../lib/app/compress.ts";
import { staticFiles } from "../lib/app/static_files.ts";
import { DEFAULT_STATIC } from "../lib/app/settings.ts";
import { serve } from "../lib/http/server.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import { ask } from "./fixtures/static_request.ts";
import { BIG_TEXT, makeSite } from "./fixtures/static_site.ts";
import {
  connect,
  decoder,
  ReplyReader,
  send,
  waitFor,
} from "./helpers/socket.ts";

const encoder = new TextEncoder();

/** `bytes` of words in a repeatable random order: compresses ~3x, slowly. */
function wordText(bytes: number, seed: number): string {
  const words = ["spindle", "socket", "parser", "header", "quick", "fox"];
  const parts: string[] = [];
  let length = 0;
  for (let x = seed; length < bytes;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const word = `${words[x % words.length]}${x % 997} `;
    parts.push(word);
    length += word.length;
  }
  return parts.join("").slice(0, bytes);
}

function decode(coding: string | undefined, body: Uint8Array): string {
  const plain = coding === "gzip"
    ? gunzipSync(body)
    : coding === "br"
    ? brotliDecompressSync(body)
    : body;
  return decoder.decode(plain);
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  return { opened, open };
}

Deno.test("Compressor.tryRun() runs at most maxJobs at once and refuses the next at once", async () => {
  const compressor = new Compressor(2);
  const first = gate();
  const second = gate();
  const a = compressor.tryRun("gzip", async () => {
    await first.opened;
    return encoder.encode(BIG_TEXT);
  });
  const b = compressor.tryRun("br", async () => {
    await second.opened;
    return encoder.encode(BIG_TEXT);
  });
  assert.ok(a !== undefined && b !== undefined);
  assert.equal(compressor.running, 2);
  let loaded = false;
  const c = compressor.tryRun("gzip", () => {
    loaded = true;
    return encoder.encode(BIG_TEXT);
  });
  assert.equal(c, undefined, "a third job is refused, not queued");
  assert.equal(loaded, false, "and its input is never read");
  assert.equal(compressor.refused, 1);
  first.open();
  second.open();
  assert.equal(decode("gzip", await a), BIG_TEXT);
  assert.equal(decode("br", await b), BIG_TEXT);
  assert.equal(compressor.running, 0);
  assert.equal(compressor.peak, 2);
  const d = compressor.tryRun("gzip", () => encoder.encode("again"));
  assert.equal(decode("gzip", await d!), "again", "a freed slot is used");
});

Deno.test("Compressor.tryRun() leaves the event loop free while it compresses", async () => {
  const compressor = new Compressor(1);
  const input = encoder.encode(wordText(4 * 1024 * 1024, 7)); // ~100 ms of gzip
  let done = false;
  const job = compressor.tryRun("gzip", () => input)!.then((out) => {
    done = true;
    return out;
  });
  // In the same thread, gzip of 4 MiB would let no timer fire until it ends.
  let turns = 0;
  while (!done) {
    await new Promise((r) => setTimeout(r, 0));
    if (!done) turns++;
  }
  assert.ok(turns > 0, "the event loop turned while the job ran");
  assert.equal(gunzipSync(await job).length, input.length);
});

Deno.test("Compressor lets an idle worker go and starts one again on demand", async () => {
  const compressor = new Compressor(1, 20);
  const run = () => compressor.tryRun("gzip", () => encoder.encode(BIG_TEXT))!;
  assert.equal(decode("gzip", await run()), BIG_TEXT);
  assert.equal(compressor.workers, 1);
  await waitFor(() => compressor.workers === 0, "the idle worker to go");
  assert.equal(decode("gzip", await run()), BIG_TEXT);
  assert.equal(compressor.workers, 1);
});

Deno.test("staticFiles() sends identity with Vary while every compression slot is busy, then the compressed form", async () => {
  await using site = await makeSite();
  const compressor = new Compressor(1);
  const h = staticFiles(site.config, { revalidateMs: 0 }, { compressor });
  const busy = gate();
  const other = compressor.tryRun("gzip", async () => {
    await busy.opened;
    return encoder.encode("another file");
  });
  const ae = { "accept-encoding": "gzip" };
  const now = await ask(h, "GET", "/big.txt", ae);
  assert.equal(now.status, 200);
  assert.equal(now.headers.get("content-encoding"), undefined);
  assert.equal(now.headers.get("vary"), "Accept-Encoding");
  assert.equal(now.text, BIG_TEXT);
  const plain = await ask(h, "GET", "/big.txt");
  assert.equal(now.headers.get("etag"), plain.headers.get("etag"));
  busy.open();
  await other;
  const later = await ask(h, "GET", "/big.txt", ae);
  assert.equal(later.headers.get("content-encoding"), "gzip");
  assert.equal(decode("gzip", later.body!), BIG_TEXT);
  assert.notEqual(later.headers.get("etag"), plain.headers.get("etag"));
});

const broken: [name: string, source: string][] = [
  [
    "fails a job",
    "onmessage = () => postMessage({ type: 'failed', message: 'no' });",
  ],
  ["dies", "onmessage = () => { throw new Error('worker died'); };"],
];
for (const [name, source] of broken) {
  Deno.test(`staticFiles() sends identity, not a 500, when a compression worker ${name}`, async () => {
    await using logs = await captureLogs();
    await using site = await makeSite();
    const compressor = new Compressor(1, 5000, source);
    const h = staticFiles(site.config, {}, { compressor });
    const a = await ask(h, "GET", "/big.txt", { "accept-encoding": "br" });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-encoding"), undefined);
    assert.equal(a.text, BIG_TEXT);
    assert.ok(
      logs.records.some((r) => /Compression/.test(String(r.message.join("")))),
      "the failure is logged",
    );
  });
}

Deno.test("staticFiles() answers other clients while clients cycle codings over large files", async () => {
  const FILES = 8;
  const ATTACKERS = 4;
  const base = await Deno.makeTempDir({ prefix: "spindle-compress-" });
  try {
    const texts: string[] = [];
    for (let i = 0; i < FILES; i++) {
      texts.push(wordText(1024 * 1024, i + 1));
      await Deno.writeTextFile(join(base, `doc${i}.txt`), texts[i]);
    }
    await Deno.writeTextFile(join(base, "small.txt"), "small\n");
    const compressor = new Compressor(2);
    await using server = serve(
      { port: 0, accessLog: false },
      staticFiles({ ...DEFAULT_STATIC, root: base }, {}, { compressor }),
    );

    let attacking = ATTACKERS;
    const attack = async (offset: number) => {
      using conn = await connect(server.port);
      const reader = new ReplyReader(conn);
      for (let n = 0; n < FILES * 2; n++) {
        const i = (n + offset) % FILES;
        const coding: Coding = n % 2 === 0 ? "br" : "gzip";
        await send(
          conn,
          `GET /doc${i}.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: ${coding}\r\n\r\n`,
        );
        const reply = await reader.readReply({ timeoutMs: 30_000 });
        assert.equal(reply.status, 200);
        const sent = reply.headers.get("content-encoding");
        assert.ok(sent === undefined || sent === coding, sent);
        assert.equal(reply.headers.get("vary"), "Accept-Encoding");
      }
    };
    const attackers = Array.from(
      { length: ATTACKERS },
      (_, k) => attack(k * 2).finally(() => attacking--),
    );

    // A normal client, one request at a time, for as long as the attack runs.
    let answered = 0;
    let answeredWhileCompressing = 0;
    {
      using conn = await connect(server.port);
      const reader = new ReplyReader(conn);
      while (attacking > 0) {
        await send(conn, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        const reply = await reader.readReply();
        assert.equal(reply.text, "small\n");
        answered++;
        if (compressor.running > 0) answeredWhileCompressing++;
      }
    }
    await Promise.all(attackers);
    assert.ok(answered > 0);
    // Compressing on the event loop, no reply could go out during a job.
    assert.ok(
      answeredWhileCompressing > 0,
      `${answered} answered, none while a compression ran`,
    );
    assert.ok(compressor.peak <= 2, `${compressor.peak} compressions at once`);

    // And every compressed form is made once the rush is over.
    using conn = await connect(server.port);
    const reader = new ReplyReader(conn);
    for (let i = 0; i < FILES; i++) {
      for (const coding of ["br", "gzip"] as const) {
        let sent: string | undefined;
        for (let tries = 0; sent !== coding; tries++) {
          assert.ok(tries < 5, `doc${i}.txt never came as ${coding}`);
          await waitFor(() => compressor.running === 0, "the jobs to end");
          await send(
            conn,
            `GET /doc${i}.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: ${coding}\r\n\r\n`,
          );
          const reply = await reader.readReply({ timeoutMs: 30_000 });
          sent = reply.headers.get("content-encoding");
          assert.equal(decode(sent, reply.body), texts[i]);
        }
      }
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
