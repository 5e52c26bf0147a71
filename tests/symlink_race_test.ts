/**
 * Issue #9 point 1: folders and files swapped for symlinks out of the root
 * and back, over and over, while many clients ask for what is under them. A
 * real server (`main.ts`) against a separate process swapping as fast as it
 * can (tests/fixtures/swap_loop.ts): not one byte from outside may come
 * back, whichever way bytes leave the disk. The server may read anything
 * (`--allow-read`), so the app's own checks are what is tested, not Deno's
 * permission wall behind them.
 */
import assert from "node:assert/strict";
import {
  brotliCompressSync,
  brotliDecompressSync,
  gunzipSync,
} from "node:zlib";
import { startMain } from "./fixtures/main_server.ts";
import { tempRoot } from "./fixtures/static_request.ts";
import { connect, ReplyReader, send } from "./helpers/socket.ts";

const SWAP_LOOP = new URL("./fixtures/swap_loop.ts", import.meta.url).pathname;

/**
 * Bursts of swapping, one per way of swapping (see swap_loop.ts). Each
 * lasts BURST_MS and a minimum count of swaps however long that takes on
 * a busy machine: 2 loop bursts of at least 60 cycles, 1 of 2000 exchanges.
 */
const BURSTS = 3;
const BURST_MS = 700;
/**
 * Quiet after each burst: over a second, so files under a folder the burst
 * changed are served again in it (the check waits out a folder's ctime
 * second), and lookups made mid-swap are reused.
 */
const QUIET_MS = 1400;
/** Clients per request, each on its own keep-alive connection. */
const CLIENTS_PER_ASK = 3;

/** In every file outside the root, and in none inside. */
const OUTSIDE = "OUTSIDE-THE-ROOT";

function text(marker: string, bytes: number): string {
  const line = `${marker}: the quick brown fox jumps over the lazy dog\n`;
  return line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes);
}

/** One request the clients make, and how to judge its reply. */
interface Ask {
  readonly name: string;
  readonly server: "site" | "spa";
  readonly target: string;
  readonly headers?: string;
  /** A POST with this body; else a GET. */
  readonly post?: string;
  /** The status that carries the inside bytes (a 404.html page is a 404). */
  readonly status: number;
  /** The (decoded) body inside the root. */
  readonly body: string;
  /** A listing: compared by the names it links to. */
  readonly listing?: boolean;
  /** A HEAD: compared by Content-Length, which differs outside. */
  readonly head?: boolean;
  /** A zip: compared by the names of its entries. */
  readonly archive?: boolean;
}

interface Tally {
  inside: number;
  outside: number;
  other: Record<string, number>;
}

/** Names a listing links to, sorted. */
function listed(body: string): string {
  return [...body.matchAll(/href="\.\/([^"]+)"/g)].map((m) => m[1]).sort()
    .join(" ");
}

/** Names of the entries in a zip's local headers ("PK\3\4"), sorted. */
function zipped(body: Uint8Array): string {
  const names: string[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  for (let at = 0; at + 30 <= body.length;) {
    if (view.getUint32(at, true) !== 0x04034b50) break;
    const nameLength = view.getUint16(at + 26, true);
    const extraLength = view.getUint16(at + 28, true);
    const name = new TextDecoder().decode(
      body.subarray(at + 30, at + 30 + nameLength),
    );
    names.push(name);
    at += 30 + nameLength + extraLength;
    if (name.endsWith("/")) continue;
    // Stored with a data descriptor: the next entry starts after it.
    const next = body.indexOf(0x50, at);
    let found = -1;
    for (
      let i = next;
      i !== -1 && i + 4 <= body.length;
      i = body.indexOf(0x50, i + 1)
    ) {
      if (view.getUint32(i, true) === 0x08074b50) {
        found = i;
        break;
      }
    }
    if (found === -1) break;
    at = found + 16;
  }
  return names.sort().join(" ");
}

/** Each name inside the root has a twin outside with OUTSIDE in it. */
async function makeFolders(base: string) {
  const root = `${base}/root`;
  const out = `${base}/outside`;
  const files = `${base}/files`;
  for (const d of [`${root}/e`, out, files]) {
    await Deno.mkdir(d, { recursive: true });
  }
  const both = async (rel: string, make: (m: string) => string) => {
    await Deno.writeTextFile(`${root}/${rel}`, make("inside"));
    await Deno.writeTextFile(
      `${out}/${rel.replace(/^e\//, "")}`,
      make(OUTSIDE),
    );
  };
  // Outside a little longer: a HEAD showing its size is caught too.
  const small = (m: string) => text(m, m === OUTSIDE ? 300 : 200);
  const page = (m: string) => `<!doctype html><title>${m}</title><p>${m}</p>\n`;
  const appJs = (m: string) => `// ${text(m, 4096)}`;
  await both("e/f.txt", small);
  await both("e/page.txt", (m) => text(m, 8 * 1024)); // compressed on the fly
  await both("e/app.js", appJs);
  for (const [dir, m] of [[`${root}/e`, "inside"], [out, OUTSIDE]]) {
    const br = brotliCompressSync(new TextEncoder().encode(appJs(m)));
    await Deno.writeFile(`${dir}/app.js.br`, br);
  }
  // Over the 1 MiB memory-cache threshold: streamed from an open file.
  await both("e/big.txt", (m) => text(m, 1024 * 1024 + 100));
  await both("e/listed-inside-only.txt", small);
  await Deno.writeTextFile(`${out}/listed-outside-only.txt`, OUTSIDE);
  await both("f.txt", small);
  await both("404.html", page);
  await both("index.html", page);
  await Deno.writeTextFile(`${files}/f.txt`, small("inside"));
  await Deno.writeTextFile(`${files}/p.txt`, "posted");
  await Deno.writeTextFile(`${out}/p.txt`, small(OUTSIDE));
  const insideNames = [...Deno.readDirSync(`${root}/e`)].map((e) => e.name)
    .sort().join(" ");
  const asks: Ask[] = [
    {
      name: "HEAD (size and dates only)",
      target: "/e/f.txt",
      head: true,
      body: "200",
    },
    {
      name: "small file (memory cache)",
      target: "/e/f.txt",
      body: small("inside"),
    },
    {
      name: "large file (streamed range)",
      target: "/e/big.txt",
      headers: "Range: bytes=1000-1999\r\n",
      status: 206,
      body: text("inside", 2000).slice(1000),
    },
    {
      name: "br sidecar",
      target: "/e/app.js",
      headers: "Accept-Encoding: br\r\n",
      body: appJs("inside"),
    },
    {
      name: "gzip made on the fly",
      target: "/e/page.txt",
      headers: "Accept-Encoding: gzip\r\n",
      body: text("inside", 8 * 1024),
    },
    { name: "folder listing", target: "/e/", body: insideNames, listing: true },
    {
      name: "folder zip (every entry opened)",
      target: "/e/?download=zip",
      body: ["e/", ...insideNames.split(" ").map((n) => `e/${n}`)].sort()
        .join(" "),
      archive: true,
    },
    { name: "file swapped itself", target: "/f.txt", body: small("inside") },
    {
      name: "404.html",
      target: "/missing",
      headers: "Accept: text/html\r\n",
      status: 404,
      body: page("inside"),
    },
    {
      name: "--spa index.html",
      server: "spa",
      target: "/some/route",
      headers: "Accept: text/html\r\n",
      body: page("inside"),
    },
    {
      name: "GET /files/{name}",
      target: "/files/f.txt",
      body: small("inside"),
    },
    {
      name: "POST /files/{name}",
      target: "/files/p.txt",
      post: "posted",
      status: 201,
      body: "Stored 6 bytes\n",
    },
  ].map((a) => ({ server: "site", status: 200, ...a }) as Ask);
  const swaps = [
    `${root}/e=${out}`,
    `${root}/f.txt=${out}/f.txt`,
    `${root}/404.html=${out}/404.html`,
    `${root}/index.html=${out}/index.html`,
    `${files}/f.txt=${out}/f.txt`,
    `${files}/p.txt=${out}/p.txt`,
  ];
  return { root, out, files, asks, swaps, outsideP: small(OUTSIDE) };
}

function decode(body: Uint8Array, coding: string | undefined): string {
  const bytes = coding === "br"
    ? brotliDecompressSync(body)
    : coding === "gzip"
    ? gunzipSync(body)
    : body;
  return new TextDecoder().decode(bytes);
}

/** Asks the same thing over and over on one keep-alive connection. */
async function client(
  port: number,
  ask: Ask,
  tally: Tally,
  running: () => boolean,
): Promise<void> {
  let conn: Deno.TcpConn | undefined;
  let reader: ReplyReader | undefined;
  try {
    while (running()) {
      if (conn === undefined || reader === undefined) {
        conn = await connect(port);
        reader = new ReplyReader(conn);
      }
      const head = ask.post === undefined
        ? `${ask.head ? "HEAD" : "GET"} ${ask.target} HTTP/1.1\r\n`
        : `POST ${ask.target} HTTP/1.1\r\nContent-Length: ${ask.post.length}\r\n`;
      await send(
        conn,
        `${head}Host: localhost\r\n${ask.headers ?? ""}\r\n${ask.post ?? ""}`,
      );
      // Generous: under a burst a request may wait out a folder's change.
      const reply = await reader.readReply({
        timeoutMs: 30_000,
        head: ask.head,
      });
      const got = decode(reply.body, reply.headers.get("content-encoding"));
      const length = reply.headers.get("content-length");
      const shown = ask.listing
        ? listed(got)
        : ask.archive
        ? zipped(reply.body)
        : ask.head
        ? length
        : got;
      if (shown === ask.body && reply.status === ask.status) tally.inside++;
      else if (
        got.includes(OUTSIDE) || (ask.head === true && length === "300") ||
        // Any other set of names is another folder's listing, or this one
        // filtered by stats that went through a swapped symlink.
        (ask.listing === true && reply.status === 200) ||
        (ask.archive === true && (shown ?? "").includes("outside-only"))
      ) tally.outside++;
      else {
        const key = `${reply.status} ${got.slice(0, 30)}`;
        tally.other[key] = (tally.other[key] ?? 0) + 1;
      }
      if (/close/i.test(reply.headers.get("connection") ?? "")) {
        conn.close();
        conn = reader = undefined;
      }
    }
  } finally {
    conn?.close();
  }
}

Deno.test({
  name:
    "main.ts never sends a byte from outside the root while folders and files are swapped for symlinks out",
  ignore: Deno.build.os !== "linux", // the swapper calls renameat2
  async fn() {
    await using tmp = await tempRoot();
    const f = await makeFolders(tmp.path);
    // Any file may be read: what is tested is the app, not the permission wall.
    const perms = ["--allow-read", `--allow-write=${f.files}`];
    await using site = await startMain(perms, [
      ...["--root", f.root, "--list-dirs", "--directory", f.files],
    ]);
    await using spa = await startMain(perms, ["--root", f.root, "--spa"]);
    const tallies = new Map<string, Tally>(
      f.asks.map((a) => [a.name, { inside: 0, outside: 0, other: {} }]),
    );
    const swapper = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-ffi",
        SWAP_LOOP,
        ...[BURSTS, BURST_MS, QUIET_MS].map(String),
        ...f.swaps,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    let swapping = true;
    const clients = f.asks.flatMap((ask) =>
      Array.from({ length: CLIENTS_PER_ASK }, () =>
        client(
          ask.server === "site" ? site.port : spa.port,
          ask,
          tallies.get(ask.name)!,
          () => swapping,
        ))
    );
    const swapped = await swapper;
    swapping = false;
    await Promise.all(clients);
    assert.equal(swapped.code, 0);
    const { cycles, flips } = JSON.parse(
      new TextDecoder().decode(swapped.stdout),
    );
    const report = `${cycles} loop cycles, ${flips} exchanges\n` +
      [...tallies].map(([name, t]) =>
        `${name}: ${t.inside} inside, ${t.outside} OUTSIDE, ` +
        `other ${JSON.stringify(t.other)}`
      ).join("\n");
    console.log(report);
    assert.ok(
      cycles > 100 && flips > 1000,
      `the swapper barely ran: ${report}`,
    );
    for (const [name, t] of tallies) {
      assert.equal(t.outside, 0, `${name}: bytes from outside\n${report}`);
      // Served too: the check does not just refuse everything.
      assert.ok(t.inside > 0, `${name}: never served\n${report}`);
    }
    // A POST replaces a symlink at its name; it never writes through it.
    assert.equal(await Deno.readTextFile(`${f.out}/p.txt`), f.outsideP);
  },
});
