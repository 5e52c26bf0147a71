/**
 * POST /upload and its store: names, quota, full disks and clients that go
 * away, checked on real files and, where the wire matters, real sockets.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  FolderChanged,
  removeDeadTempFiles,
  removeWritten,
  TEMP_PREFIX,
  writeAtomic,
  writePiece,
} from "../lib/app/atomic_write.ts";
import { uploadName, UploadStore } from "../lib/app/upload_route.ts";
import { canMountTmpfs, listDir, startApp } from "./fixtures/app_server.ts";
import {
  connect,
  decoder,
  encoder,
  ReplyReader,
  send,
  sleep,
  waitFor,
} from "./helpers/socket.ts";

const NAME = /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.json$/;

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "spindle-uploads-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** What Deno throws on a full disk (seen writing /dev/full, which tests may not open). */
function diskFull(): Error {
  return Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
}

Deno.test("uploadName() is a sortable UTC time and 8 random hex digits", () => {
  const name = uploadName(new Date("2026-11-21T12:00:00.123Z"));
  assert.match(name, /^20261121T120000\.123Z-[0-9a-f]{8}\.json$/);
  assert.notEqual(uploadName(new Date(0)), uploadName(new Date(0)));
});

Deno.test("UploadStore.save() stores the bytes as sent and leaves no temp file", async () => {
  await using dir = await tempDir();
  const store = new UploadStore({
    dir: join(dir.path, "new"),
    quotaBytes: 1000,
  });
  const data = encoder.encode('{ "a" : 1.0 }'); // stored as sent, not re-serialised
  const saved = await store.save(data);
  assert.match(saved.file, NAME);
  assert.equal(saved.bytes, data.length);
  assert.deepEqual(
    await Deno.readFile(join(dir.path, "new", saved.file)),
    data,
  );
  assert.deepEqual(await listDir(join(dir.path, "new")), [saved.file]);
  assert.equal(store.usedBytes, data.length);
});

Deno.test("UploadStore.save() never gives two concurrent uploads one name", async () => {
  await using dir = await tempDir();
  const fixed = new Date("2026-11-21T12:00:00.000Z"); // same millisecond for all
  const store = new UploadStore({
    dir: dir.path,
    quotaBytes: 1e6,
    now: () => fixed,
  });
  const saves = await Promise.all(
    Array.from(
      { length: 200 },
      (_, i) => store.save(encoder.encode(`{"i":${i}}`)),
    ),
  );
  const names = new Set(saves.map((s) => s.file));
  assert.equal(names.size, 200);
  assert.equal((await listDir(dir.path)).length, 200);
  for (const s of saves) {
    const body = JSON.parse(await Deno.readTextFile(join(dir.path, s.file)));
    assert.equal(
      s.file,
      saves[body.i].file,
      "each name holds its own document",
    );
  }
});

Deno.test("writeAtomic() create-only takes a fresh name when one exists, never overwriting", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "a.json"), "old");
  const names = ["a.json", "b.json"];
  const { name } = await writeAtomic(
    dir.path,
    () => names.shift()!,
    encoder.encode("new"),
    { replace: false },
  );
  assert.equal(name, "b.json");
  assert.equal(await Deno.readTextFile(join(dir.path, "a.json")), "old");
  assert.equal(await Deno.readTextFile(join(dir.path, "b.json")), "new");
  assert.deepEqual(await listDir(dir.path), ["a.json", "b.json"]);
});

Deno.test("writeAtomic() gives up after repeated collisions and removes its temp file", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "same"), "old");
  await assert.rejects(
    writeAtomic(dir.path, () => "same", encoder.encode("new"), {
      replace: false,
    }),
    Deno.errors.AlreadyExists,
  );
  assert.deepEqual(await listDir(dir.path), ["same"]);
});

Deno.test("writeAtomic() removes the temp file when the data source fails mid-way", async () => {
  await using dir = await tempDir();
  async function* broken() {
    yield encoder.encode("half");
    throw new Error("client went away");
  }
  await assert.rejects(
    writeAtomic(dir.path, "x", broken(), { replace: true }),
    /went away/,
  );
  assert.deepEqual(await listDir(dir.path), []);
});

Deno.test("UploadStore.save() answers 507 past the quota, counting what was already there", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "old.json"), "12345678"); // 8 bytes
  const store = new UploadStore({ dir: dir.path, quotaBytes: 12 });
  assert.match((await store.save(encoder.encode("1234"))).file, NAME); // 12: full
  await assert.rejects(store.save(encoder.encode("1")), { status: 507 });
  assert.equal((await listDir(dir.path)).length, 2);
  assert.equal(store.usedBytes, 12);
});

Deno.test("UploadStore reserves bytes of uploads in flight against the quota", async () => {
  await using dir = await tempDir();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const store = new UploadStore({
    dir: dir.path,
    quotaBytes: 10,
    write: async (file, piece) => {
      await gate; // hold the first upload mid-write
      await writePiece(file, piece);
    },
  });
  const first = store.save(encoder.encode("123456"));
  await sleep(20);
  await assert.rejects(store.save(encoder.encode("123456")), { status: 507 });
  release();
  await first;
  assert.equal((await listDir(dir.path)).length, 1);
});

Deno.test("UploadStore.save() answers 507 on ENOSPC and leaves nothing, not even a temp file", async () => {
  await using dir = await tempDir();
  const store = new UploadStore({
    dir: dir.path,
    quotaBytes: 1e6,
    write: async (file, piece) => {
      await writePiece(file, piece.subarray(0, piece.length >> 1)); // half made it
      throw diskFull();
    },
  });
  await assert.rejects(
    store.save(encoder.encode('{"big":true}')),
    (err: { status: number; expose: string }) => {
      assert.equal(err.status, 507);
      assert.equal(err.expose, "Disk is full");
      return true;
    },
  );
  assert.deepEqual(await listDir(dir.path), []);
  assert.equal(store.usedBytes, 0);
});

Deno.test({
  name:
    "UploadStore.save() answers 507 on a really full file system and leaves nothing",
  ignore: !(await canMountTmpfs()),
  async fn() {
    await using dir = await tempDir();
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=16k", "tmpfs", dir.path],
    }).output();
    assert.ok(mounted.success);
    try {
      const store = new UploadStore({ dir: dir.path, quotaBytes: 1e9 }); // the disk, not the quota, is the limit
      const doc = encoder.encode(JSON.stringify({ pad: "x".repeat(6000) }));
      await store.save(doc);
      await store.save(doc);
      await assert.rejects(store.save(doc), { status: 507 });
      assert.equal((await listDir(dir.path)).length, 2);
    } finally {
      await new Deno.Command("umount", { args: [dir.path] }).output();
    }
  },
});

/** A writeAtomic() held mid-write until `release()`: a live writer. */
function heldWrite(dir: string): {
  done: Promise<unknown>;
  writing: Promise<void>;
  release: () => void;
} {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let started!: () => void;
  const writing = new Promise<void>((r) => started = r);
  const done = writeAtomic(dir, "held.json", encoder.encode("{}"), {
    replace: false,
    write: async (file, piece) => {
      started();
      await gate;
      await writePiece(file, piece);
    },
  });
  return { done, writing, release };
}

Deno.test("writeAtomic() names its temp file after its process and holds a lock on it", async () => {
  await using dir = await tempDir();
  const held = heldWrite(dir.path);
  await held.writing;
  const [temp] = await listDir(dir.path);
  assert.match(temp, new RegExp(`^\\${TEMP_PREFIX}${Deno.pid}-[0-9a-f]{16}$`));
  using other = await Deno.open(join(dir.path, temp), { read: true });
  assert.equal(await other.tryLock(true), false, "the writer holds it");
  held.release();
  await held.done;
  assert.deepEqual(await listDir(dir.path), ["held.json"]);
});

Deno.test("writeAtomic() with beneath writes nothing through a folder that is a symlink out", async () => {
  await using dir = await tempDir();
  await using outside = await tempDir();
  await Deno.mkdir(join(dir.path, "in"));
  // The path the caller resolved before: now a symlink out (a swap won the race).
  await Deno.symlink(outside.path, join(dir.path, "swapped"));
  async function* data() {
    yield encoder.encode("never written");
  }
  await assert.rejects(
    writeAtomic(join(dir.path, "swapped"), "x.txt", data(), {
      replace: false,
      beneath: dir.path,
    }),
    FolderChanged,
  );
  assert.deepEqual(await listDir(outside.path), [], "no file, no temp file");
  // A plain folder under it is proved and written.
  const ok = await writeAtomic(join(dir.path, "in"), "x.txt", data(), {
    replace: false,
    beneath: dir.path,
  });
  assert.equal(ok.bytes, 13);
  assert.deepEqual(await listDir(join(dir.path, "in")), ["x.txt"]);
});

Deno.test("removeWritten() removes only the very file written, not another of the same name", async () => {
  await using dir = await tempDir();
  const written = await writeAtomic(dir.path, "a.txt", encoder.encode("a"), {
    replace: false,
  });
  // Someone else's file now has the name (as after a folder swap; ours
  // lives on elsewhere, so its inode cannot be reused).
  await Deno.rename(join(dir.path, "a.txt"), join(dir.path, "moved.txt"));
  await Deno.writeTextFile(join(dir.path, "a.txt"), "theirs");
  assert.equal(
    await removeWritten(join(dir.path, "a.txt"), written.info),
    false,
  );
  assert.equal(await Deno.readTextFile(join(dir.path, "a.txt")), "theirs");
  const mine = await writeAtomic(dir.path, "b.txt", encoder.encode("b"), {
    replace: false,
  });
  assert.equal(await removeWritten(join(dir.path, "b.txt"), mine.info), true);
  assert.deepEqual(await listDir(dir.path), ["a.txt", "moved.txt"]);
});

Deno.test("removeDeadTempFiles() removes temp files nobody holds and keeps a live writer's", async () => {
  await using dir = await tempDir();
  const held = heldWrite(dir.path);
  await held.writing;
  const [live] = await listDir(dir.path);
  // Left by writers that died: nobody holds a lock on them, however young.
  await Deno.writeTextFile(
    join(dir.path, `${TEMP_PREFIX}999999-0badc0de`),
    "{",
  );
  await Deno.writeTextFile(join(dir.path, `${TEMP_PREFIX}old-style`), "[1,");
  await Deno.writeTextFile(join(dir.path, "kept.json"), "[]");
  await Deno.mkdir(join(dir.path, `${TEMP_PREFIX}a-folder`));
  assert.equal(removeDeadTempFiles(dir.path), 2);
  assert.deepEqual(
    await listDir(dir.path),
    [`${TEMP_PREFIX}a-folder`, live, "kept.json"].sort(),
  );
  held.release();
  await held.done;
  assert.equal(removeDeadTempFiles(join(dir.path, "missing")), 0);
});

Deno.test("UploadStore.ready() does not count temp files", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, `${TEMP_PREFIX}1-00`), "partial");
  await Deno.writeTextFile(join(dir.path, "kept.json"), "[]");
  const store = new UploadStore({ dir: dir.path, quotaBytes: 100 });
  await store.ready();
  assert.equal(store.usedBytes, 2);
});

Deno.test("UploadStore counts the folder again when the quota looks full, at most once a second", async () => {
  await using dir = await tempDir();
  let now = Date.UTC(2026, 10, 21);
  const store = new UploadStore({
    dir: dir.path,
    quotaBytes: 10,
    now: () => new Date(now),
  });
  const first = await store.save(encoder.encode("12345678"));
  // Room freed on disk, behind the store's back: the next save counts again.
  await Deno.remove(join(dir.path, first.file));
  const second = await store.save(encoder.encode("12345678"));
  assert.equal(store.usedBytes, 8);
  await assert.rejects(store.save(encoder.encode("12345")), { status: 507 });
  // Still full when counted a moment ago: no count, whatever the disk holds.
  await Deno.remove(join(dir.path, second.file));
  await assert.rejects(store.save(encoder.encode("12345")), { status: 507 });
  now += 1000;
  await store.save(encoder.encode("12345"));
  assert.equal(store.usedBytes, 5);
});

// Over a real socket: the engine, the route contract and the store together.

function uploadHead(headers: string): string {
  return `POST /upload HTTP/1.1\r\nHost: localhost\r\n${headers}\r\n`;
}

Deno.test("POST /upload stores a chunked upload", async () => {
  await using app = await startApp();
  using conn = await connect(app.port);
  const reader = new ReplyReader(conn);
  await send(
    conn,
    uploadHead(
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    ),
  );
  for (const piece of ['{"parts":', "[1,2,", "3]}"]) {
    await send(conn, `${piece.length.toString(16)}\r\n${piece}\r\n`);
    await sleep(5);
  }
  await send(conn, "0\r\n\r\n");
  const reply = await reader.readReply();
  assert.equal(reply.status, 201);
  const { file, bytes } = JSON.parse(reply.text);
  assert.equal(reply.headers.get("location"), `/uploads/${file}`);
  assert.equal(bytes, 17);
  assert.equal(
    await Deno.readTextFile(join(app.uploads, file)),
    '{"parts":[1,2,3]}',
  );
  // The Location serves it back (the uploads folder is under the static root).
  const back = await fetch(app.origin + reply.headers.get("location"));
  assert.deepEqual(await back.json(), { parts: [1, 2, 3] });
});

Deno.test("POST /upload leaves no file when the client sends half the body and closes", async () => {
  await using app = await startApp();
  const body = JSON.stringify({ pad: "x".repeat(2000) });
  for (const chunked of [false, true]) {
    const conn = await connect(app.port);
    const framing = chunked
      ? "Transfer-Encoding: chunked\r\n"
      : `Content-Length: ${body.length}\r\n`;
    await send(
      conn,
      uploadHead(`Content-Type: application/json\r\n${framing}`),
    );
    const half = body.slice(0, body.length >> 1);
    await send(conn, chunked ? `${body.length.toString(16)}\r\n${half}` : half);
    await sleep(20);
    conn.close();
  }
  await waitFor(
    () => app.stats.active === 0,
    "the server to drop both connections",
  );
  assert.deepEqual(await listDir(app.uploads), []);
});

Deno.test("POST /upload answers 413 from the head: no 100 Continue, no file", async () => {
  await using app = await startApp({ app: { uploadMaxBytes: 64 } });
  using conn = await connect(app.port);
  await send(
    conn,
    uploadHead(
      "Content-Type: application/json\r\nContent-Length: 65\r\nExpect: 100-continue\r\n",
    ),
  );
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 413, "the final status comes first, not 100");
  assert.equal(reply.headers.get("content-type"), "application/json");
  assert.equal(reply.headers.get("connection"), "close");
  assert.deepEqual(await listDir(app.uploads), []);
});

Deno.test("POST /upload sends 100 Continue for an acceptable head, then stores", async () => {
  await using app = await startApp();
  using conn = await connect(app.port);
  await send(
    conn,
    uploadHead(
      "Content-Type: application/json\r\nContent-Length: 7\r\nExpect: 100-continue\r\n",
    ),
  );
  const buf = new Uint8Array(64);
  const n = await conn.read(buf);
  assert.match(
    decoder.decode(buf.subarray(0, n ?? 0)),
    /^HTTP\/1\.1 100 Continue\r\n\r\n/,
  );
  await send(conn, '{"a":1}');
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 201);
});

const refusals: [
  name: string,
  headers: Record<string, string>,
  body: string,
  status: number,
][] = [
  ["text/plain", { "content-type": "text/plain" }, "{}", 415],
  ["no Content-Type", {}, "{}", 415],
  ["malformed JSON", { "content-type": "application/json" }, '{"a":', 400],
  ["an empty body", { "content-type": "application/json" }, "", 400],
  [
    "a body past the limit",
    { "content-type": "application/json" },
    JSON.stringify({ p: "x".repeat(100) }),
    413,
  ],
];
for (const [name, headers, body, status] of refusals) {
  Deno.test(`POST /upload answers ${status} with a JSON error for ${name}, writing nothing`, async () => {
    await using app = await startApp({ app: { uploadMaxBytes: 64 } });
    const res = await fetch(`${app.origin}/upload`, {
      method: "POST",
      headers,
      body,
    });
    assert.equal(res.status, status);
    assert.equal(res.headers.get("content-type"), "application/json");
    const error = await res.json();
    assert.equal(error.status, status);
    assert.equal(typeof error.error, "string");
    assert.deepEqual(await listDir(app.uploads), []);
  });
}

Deno.test("POST /upload answers 507 past the quota from the declared length, before the body", async () => {
  await using app = await startApp({ app: { uploadQuotaBytes: 10 } });
  using conn = await connect(app.port);
  await send(
    conn,
    uploadHead(
      "Content-Type: application/json\r\nContent-Length: 11\r\nExpect: 100-continue\r\n",
    ),
  );
  const reply = await new ReplyReader(conn).readReply();
  assert.equal(reply.status, 507);
  assert.deepEqual(await listDir(app.uploads), []);
});

Deno.test("POST /upload answers 507 past the quota for a chunked body, keeping what fit", async () => {
  await using app = await startApp({ app: { uploadQuotaBytes: 12 } });
  const post = (body: string) =>
    fetch(`${app.origin}/upload`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: ReadableStream.from([encoder.encode(body)]), // sent chunked
    });
  const first = await post('{"a":12345}'); // 11 bytes
  assert.equal(first.status, 201);
  await first.body?.cancel();
  const second = await post("[1]");
  assert.equal(second.status, 507);
  assert.deepEqual(await second.json(), {
    error: "Upload quota is full",
    status: 507,
  });
  assert.equal((await listDir(app.uploads)).length, 1);
});

Deno.test("POST /upload stores again once files are deleted from a full folder, without a restart", async () => {
  await using app = await startApp({ app: { uploadQuotaBytes: 24 } });
  const post = (body: string) =>
    fetch(`${app.origin}/upload`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
  for (const body of ['{"a":12345}', '{"b":12345}']) { // 11 bytes each
    const res = await post(body);
    assert.equal(res.status, 201);
    await res.body?.cancel();
  }
  for (const name of await listDir(app.uploads)) {
    await Deno.remove(join(app.uploads, name)); // an operator clears the folder
  }
  const again = await post('{"d":12345}');
  assert.equal(again.status, 201);
  await again.body?.cancel();
  assert.equal((await listDir(app.uploads)).length, 1);
});

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** main.ts in its own process, with the serve task's narrow permissions. */
interface MainProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly port: number;
  /** Every stdout line so far. */
  readonly lines: string[];
}

async function startMain(root: string, uploads: string): Promise<MainProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net=127.0.0.1",
      `--allow-read=${root}`,
      `--allow-write=${uploads}`,
      MAIN,
      ...["--port", "0", "--root", root, "--quiet"],
      // POST /files streams its body into a temp file there: a slow client
      // holds one open for as long as the test needs.
      ...["--uploads", uploads, "--directory", uploads],
    ],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  let listening!: (port: number) => void;
  const port = new Promise<number>((r) => listening = r);
  const read = (async () => {
    let rest = "";
    for await (
      const text of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      rest += text;
      for (
        let nl;
        (nl = rest.indexOf("\n")) !== -1;
        rest = rest.slice(nl + 1)
      ) {
        lines.push(rest.slice(0, nl));
        const m = /Listening on http:\/\/[^:]+:(\d+)\//.exec(rest.slice(0, nl));
        if (m) listening(Number(m[1]));
      }
    }
    listening(0);
  })();
  return {
    child,
    port: await port,
    lines,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await read;
    },
  };
}

/** Resolves once `dir` holds a name matching `pattern`; fails after WAIT_MS. */
async function waitForName(dir: string, pattern: RegExp): Promise<string> {
  let found: string | undefined;
  const until = Date.now() + 5000;
  while (
    (found = (await listDir(dir)).find((n) => pattern.test(n))) === undefined
  ) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${pattern}`);
    await sleep(10);
  }
  return found;
}

Deno.test("a server killed mid-upload leaves a temp file that the next start removes, and a live writer's stays", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "site");
  const uploads = join(root, "uploads");
  await Deno.mkdir(uploads, { recursive: true });
  let dead: string;
  {
    await using killed = await startMain(root, uploads);
    assert.ok(killed.port > 0, killed.lines.join("\n"));
    using conn = await connect(killed.port);
    await send(
      conn,
      "POST /files/big.json HTTP/1.1\r\nHost: localhost\r\n" +
        'Content-Length: 1000\r\n\r\n{"a":',
    );
    dead = await waitForName(
      uploads,
      new RegExp(`^\\.tmp-${killed.child.pid}-`),
    );
    killed.child.kill("SIGKILL");
    assert.equal((await killed.child.status).signal, "SIGKILL");
  }
  // A writer still at work in another process (this one) shares the folder.
  const held = heldWrite(uploads);
  await held.writing;
  const live = await waitForName(uploads, new RegExp(`^\\.tmp-${Deno.pid}-`));
  assert.deepEqual(await listDir(uploads), [dead, live].sort());
  {
    await using next = await startMain(root, uploads);
    assert.ok(next.port > 0, next.lines.join("\n"));
    assert.deepEqual(await listDir(uploads), [live]);
    assert.ok(
      next.lines.some((l) => /Removed 1 temp files/.test(l)),
      next.lines.join("\n"),
    );
  }
  held.release();
  await held.done;
  assert.deepEqual(await listDir(uploads), ["held.json"]);
});
