/**
 * Form uploads streamed to disk: files stored under checked names, a form
 * stored whole or not at all (bad names, taken names, limits, full disks,
 * bodies cut short, clients gone), and real clients over a real server
 * through a test route: curl -F, Python requests, Node's and Deno's fetch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type FormUploadOptions,
  saveForm,
  type UploadQuota,
} from "../lib/app/save_form.ts";
import { TEMP_PREFIX, writePiece } from "../lib/app/atomic_write.ts";
import { json } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import { HttpError, STATUS } from "../lib/http/errors.ts";
import { serve } from "../lib/http/server.ts";
import { listDir } from "./fixtures/app_server.ts";
import { PYTHON } from "./fixtures/ws_python.ts";
import { concat } from "./helpers/bytes.ts";
import {
  connect,
  encoder,
  lacks,
  readReply,
  run,
  send,
  waitFor,
} from "./helpers/socket.ts";

const BOUNDARY = "----spindleTestBoundary42";
const TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

function options(
  dir: string,
  extra: Partial<FormUploadOptions> = {},
): FormUploadOptions {
  return {
    dir,
    limits: {
      maxParts: 100,
      maxPartHeadBytes: 8192,
      maxPartBytes: 1 << 20,
      maxBytes: 4 << 20,
    },
    maxFieldBytes: 1024,
    overwrite: false,
    ...extra,
  };
}

interface FormPart {
  name: string;
  filename?: string;
  data: string | Uint8Array;
}

function formBody(parts: FormPart[], close = true): Uint8Array {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    out.push(encoder.encode(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"` +
        (p.filename === undefined ? "" : `; filename="${p.filename}"`) +
        "\r\nContent-Type: application/octet-stream\r\n\r\n",
    ));
    out.push(typeof p.data === "string" ? encoder.encode(p.data) : p.data);
    out.push(encoder.encode("\r\n"));
  }
  if (close) out.push(encoder.encode(`--${BOUNDARY}--\r\n`));
  return concat(out);
}

/** The body in pieces of `size` bytes, as the engine would hand them out. */
async function* piecesOf(
  bytes: Uint8Array,
  size = 7,
): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) {
    yield bytes.slice(at, at + size); // owned, as the engine's pieces are
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spindle-form-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(
  promise: Promise<unknown>,
  status: number,
  message: RegExp,
) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HttpError, String(err));
    assert.equal(err.status, status);
    assert.match(err.expose ?? err.message, message);
    return true;
  });
}

Deno.test("saveForm() stores each file under its checked name and returns the fields", async () => {
  await withDir(async (dir) => {
    const big = crypto.getRandomValues(new Uint8Array(50_000));
    const body = formBody([
      { name: "note", data: "caf\u00e9" },
      { name: "a", filename: "report.pdf", data: big },
      {
        name: "b",
        filename: "e\u0301te\u0301.txt",
        data: `--${BOUNDARY} inside\r\n`,
      },
      { name: "c", filename: "", data: "" }, // a file input left empty
    ]);
    const saved = await saveForm(piecesOf(body, 1000), TYPE, options(dir));
    assert.deepEqual(saved.fields, [["note", "caf\u00e9"]]);
    assert.deepEqual(saved.files, [
      {
        field: "a",
        name: "report.pdf",
        bytes: 50_000,
        contentType: "application/octet-stream",
        replaced: false,
      },
      {
        field: "b",
        name: "\u00e9t\u00e9.txt",
        bytes: BOUNDARY.length + 11,
        contentType: "application/octet-stream",
        replaced: false,
      },
    ]);
    assert.deepEqual(await Deno.readFile(join(dir, "report.pdf")), big);
    assert.equal(
      await Deno.readTextFile(join(dir, "\u00e9t\u00e9.txt")),
      `--${BOUNDARY} inside\r\n`,
    );
    assert.deepEqual(await listDir(dir), ["report.pdf", "\u00e9t\u00e9.txt"]);
  });
});

Deno.test("saveForm() refuses a taken name with 409 and stores nothing of the form; --overwrite replaces", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "taken.txt"), "old");
    const body = formBody([
      { name: "a", filename: "new.txt", data: "fresh" },
      { name: "b", filename: "taken.txt", data: "new" },
    ]);
    await rejectsWith(
      saveForm(piecesOf(body), TYPE, options(dir)),
      409,
      /taken\.txt exists already/,
    );
    assert.deepEqual(await listDir(dir), ["taken.txt"]);
    assert.equal(await Deno.readTextFile(join(dir, "taken.txt")), "old");
    await saveForm(piecesOf(body), TYPE, options(dir, { overwrite: true }));
    assert.equal(await Deno.readTextFile(join(dir, "taken.txt")), "new");
    assert.deepEqual(await listDir(dir), ["new.txt", "taken.txt"]);
    // A folder or a symlink by that name is never replaced, even with overwrite.
    await Deno.mkdir(join(dir, "folder"));
    await Deno.symlink("/etc/passwd", join(dir, "link"));
    for (const filename of ["folder", "link"]) {
      const onto = formBody([{ name: "a", filename, data: "x" }]);
      await rejectsWith(
        saveForm(piecesOf(onto), TYPE, options(dir, { overwrite: true })),
        409,
        new RegExp(`Something other than a file is named ${filename}`),
      );
    }
    assert.equal((await Deno.lstat(join(dir, "link"))).isSymlink, true);
  });
});

Deno.test("saveForm() refuses two files of one name in a form with 409, even with overwrite", async () => {
  await withDir(async (dir) => {
    const body = formBody([
      { name: "a", filename: "x.txt", data: "1" },
      { name: "b", filename: "x.txt", data: "2" },
    ]);
    for (const overwrite of [false, true]) {
      await rejectsWith(
        saveForm(piecesOf(body), TYPE, options(dir, { overwrite })),
        409,
        /Two files named x\.txt/,
      );
      assert.deepEqual(await listDir(dir), []);
    }
  });
});

const badNames: [string, RegExp][] = [
  ["../escape.txt", /path separator/],
  ["..%2Fescape.txt", /encoded separator/],
  ["a\\\\..\\\\b.txt", /path separator/], // a quoted-pair backslash: a\..\b.txt
  ["nul.txt", /reserved device name/],
  ["CON", /reserved device name/],
  [".htaccess", /starts with a dot/],
  ["a.php%00.jpg", /encoded separator/],
  ["two%0Alines.txt", /control character/], // a browser's escaped LF
];
for (const [filename, message] of badNames) {
  Deno.test(`saveForm() answers 400 for the file name ${JSON.stringify(filename)} and keeps nothing`, async () => {
    await withDir(async (dir) => {
      const body = formBody([
        { name: "ok", filename: "fine.txt", data: "fine" },
        { name: "bad", filename, data: "evil" },
      ]);
      await rejectsWith(
        saveForm(piecesOf(body), TYPE, options(dir)),
        400,
        message,
      );
      assert.deepEqual(await listDir(dir), []);
      assert.deepEqual(
        await listDir(join(dir, "..")).then((names) =>
          names.filter((n) => n === "escape.txt")
        ),
        [],
      );
    });
  });
}

Deno.test("saveForm() answers 400 for a NUL byte in a file name", async () => {
  await withDir(async (dir) => {
    const body = formBody([{ name: "bad", filename: "a\0b.txt", data: "x" }]);
    await rejectsWith(
      saveForm(piecesOf(body), TYPE, options(dir)),
      400,
      /control character/,
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("saveForm() answers 400 for a body without its final boundary, leaving no file or temp file", async () => {
  await withDir(async (dir) => {
    const body = formBody([
      { name: "a", filename: "one.txt", data: "complete" },
      { name: "b", filename: "two.txt", data: "cut short" },
    ], false);
    await rejectsWith(
      saveForm(piecesOf(body), TYPE, options(dir)),
      400,
      /ended before the final boundary/,
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("saveForm() answers 413 past the part, field and body limits, leaving nothing", async () => {
  await withDir(async (dir) => {
    const tooBig = formBody([
      { name: "a", filename: "small.txt", data: "x" },
      { name: "b", filename: "big.bin", data: new Uint8Array(2000) },
    ]);
    const limits = {
      maxParts: 100,
      maxPartHeadBytes: 8192,
      maxPartBytes: 1999,
      maxBytes: 1 << 20,
    };
    await rejectsWith(
      saveForm(piecesOf(tooBig, 512), TYPE, options(dir, { limits })),
      413,
      /part of more than 1999 bytes/,
    );
    const fields = formBody([{ name: "a", data: "x".repeat(600) }, {
      name: "b",
      data: "y".repeat(600),
    }]);
    await rejectsWith(
      saveForm(piecesOf(fields), TYPE, options(dir)),
      413,
      /fields of more than 1024 bytes/,
    );
    const parts = formBody(
      Array.from(
        { length: 101 },
        (_, i) => ({ name: `f${i}`, filename: `f${i}`, data: "." }),
      ),
    );
    await rejectsWith(
      saveForm(piecesOf(parts, 4096), TYPE, options(dir)),
      413,
      /more than 100 parts/,
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

/** A quota over a fixed number of bytes. */
class Quota implements UploadQuota {
  used = 0;
  constructor(readonly limit: number) {}
  reserve(bytes: number): void {
    if (this.used + bytes > this.limit) {
      throw new HttpError(STATUS.InsufficientStorage, "Upload quota is full", {
        expose: "Upload quota is full",
      });
    }
    this.used += bytes;
  }
  release(bytes: number): void {
    this.used -= bytes;
  }
  stored(): void {} // reserved bytes already count
  freed(bytes: number): void {
    this.used -= bytes;
  }
}

Deno.test("saveForm() answers 507 past the quota or on a full disk, and gives the room back", async () => {
  await withDir(async (dir) => {
    const quota = new Quota(1000);
    const body = formBody([
      { name: "a", filename: "a.bin", data: new Uint8Array(600) },
      { name: "b", filename: "b.bin", data: new Uint8Array(600) },
    ]);
    await rejectsWith(
      saveForm(piecesOf(body, 100), TYPE, options(dir, { quota })),
      507,
      /quota is full/,
    );
    assert.equal(quota.used, 0);
    assert.deepEqual(await listDir(dir), []);
    const fits = formBody([{
      name: "a",
      filename: "a.bin",
      data: new Uint8Array(600),
    }]);
    await saveForm(piecesOf(fits, 100), TYPE, options(dir, { quota }));
    assert.equal(quota.used, 600);
    let writes = 0;
    const full = (file: Deno.FsFile, piece: Uint8Array) => {
      if (++writes > 2) {
        return Promise.reject(
          Object.assign(new Error("No space left on device (os error 28)"), {
            code: "ENOSPC",
          }),
        );
      }
      return writePiece(file, piece);
    };
    const more = formBody([{
      name: "b",
      filename: "b.bin",
      data: new Uint8Array(300),
    }]);
    await rejectsWith(
      saveForm(piecesOf(more, 50), TYPE, options(dir, { quota, write: full })),
      507,
      /Disk is full/,
    );
    assert.equal(quota.used, 600);
    assert.deepEqual(await listDir(dir), ["a.bin"]);
  });
});

Deno.test("saveForm() counts a replaced file's bytes as freed, and a failed form's files too", async () => {
  await withDir(async (dir) => {
    const quota = new Quota(10_000);
    const one = (size: number) =>
      formBody([{ name: "a", filename: "a.bin", data: new Uint8Array(size) }]);
    await saveForm(piecesOf(one(3000), 500), TYPE, options(dir, { quota }));
    assert.equal(quota.used, 3000);
    await saveForm(
      piecesOf(one(1000), 500),
      TYPE,
      options(dir, { quota, overwrite: true }),
    );
    assert.equal(quota.used, 1000, "the 3000 bytes replaced are freed");
    // A new file stored, then the form fails: its bytes are freed with it.
    const failing = formBody([
      { name: "b", filename: "b.bin", data: new Uint8Array(2000) },
      { name: "c", filename: "../c.bin", data: "x" },
    ]);
    await rejectsWith(
      saveForm(piecesOf(failing, 500), TYPE, options(dir, { quota })),
      400,
      /path separator/,
    );
    assert.equal(quota.used, 1000);
    assert.deepEqual(await listDir(dir), ["a.bin"]);
  });
});

Deno.test("saveForm() answers 400 for a plain field that is not UTF-8, split or not", async () => {
  await withDir(async (dir) => {
    const body = formBody([{
      name: "a",
      data: Uint8Array.of(0x61, 0xc3, 0x28),
    }]);
    await rejectsWith(
      saveForm(piecesOf(body, 1), TYPE, options(dir)),
      400,
      /a field is not UTF-8/,
    );
    const split = formBody([{ name: "a", data: "\u00e9t\u00e9" }]);
    const saved = await saveForm(piecesOf(split, 1), TYPE, options(dir));
    assert.deepEqual(saved.fields, [["a", "\u00e9t\u00e9"]]);
  });
});

Deno.test("saveForm() answers 415 for another media type and 400 for a bad boundary before reading", async () => {
  await withDir(async (dir) => {
    let read = false;
    const body = (async function* () {
      read = true;
      yield new Uint8Array(1);
    })();
    await rejectsWith(
      saveForm(body, "application/json", options(dir)),
      415,
      /multipart\/form-data/,
    );
    await rejectsWith(
      saveForm(body, "multipart/form-data", options(dir)),
      400,
      /no boundary/,
    );
    assert.equal(read, false);
  });
});

// ---- over a real server, through a test route (the upload route comes later) ----

const MAX_BODY = 64 * 1024 * 1024;

function formServer(dir: string, extra: Partial<FormUploadOptions> = {}) {
  const router = new Router().post("/form", async (req) => {
    const saved = await saveForm(req.chunks(), req.header("content-type"), {
      ...options(dir, extra),
      limits: {
        maxParts: 100,
        maxPartHeadBytes: 8192,
        maxPartBytes: 32 << 20,
        maxBytes: MAX_BODY,
      },
      ...extra,
    });
    return json(saved, { status: STATUS.Created });
  }, { maxBodyBytes: MAX_BODY, jsonErrors: true });
  const server = serve({
    port: 0,
    accessLog: false,
    limits: { maxBodyBytes: MAX_BODY },
  }, router.handler());
  return {
    server,
    url: `http://127.0.0.1:${server.port}/form`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

Deno.test({
  name:
    "a test route stores what curl -F sends: files with spaces and accents, a field, 8 MiB streamed",
  ignore: await lacks("curl"),
  async fn() {
    await withDir(async (dir) => {
      const src = await Deno.makeTempDir();
      try {
        const big = new Uint8Array(8 * 1024 * 1024);
        for (let at = 0; at < big.length; at += 65536) {
          crypto.getRandomValues(big.subarray(at, at + 65536));
        }
        await Deno.writeFile(join(src, "big.bin"), big);
        await Deno.writeTextFile(join(src, "my notes \u00e9.txt"), "hello\r\n");
        await using s = formServer(join(dir, "up"));
        const out = await run("curl", [
          "-sS",
          "-F",
          "title=Holiday",
          "-F",
          `one=@${join(src, "big.bin")}`,
          "-F",
          `two=@${join(src, "my notes \u00e9.txt")}`,
          s.url,
        ], 30_000);
        assert.equal(out.code, 0, out.stderr);
        const saved = JSON.parse(out.stdout);
        assert.deepEqual(saved.fields, [["title", "Holiday"]]);
        assert.deepEqual(
          saved.files.map((
            f: { name: string; bytes: number },
          ) => [f.name, f.bytes]),
          [
            ["big.bin", big.length],
            ["my notes \u00e9.txt", 7],
          ],
        );
        assert.equal(
          await sha256(await Deno.readFile(join(dir, "up", "big.bin"))),
          await sha256(big),
        );
        // curl's own escaping of a quote in a file name, read back as the name.
        await Deno.writeTextFile(join(src, 'say "hi".txt'), "q");
        const quoted = await run("curl", [
          "-sS",
          "-F",
          `f=@${join(src, 'say "hi".txt')}`,
          s.url,
        ]);
        assert.equal(JSON.parse(quoted.stdout).files[0].name, 'say "hi".txt');
        // A name with ../ from a hostile client: 400, nothing written outside
        // or inside. A small file: the server stops reading after a refusal
        // (lingering close: 1 MiB at most), and curl, still sending 8 MiB,
        // may then see a reset before it reads the answer.
        const evil = await run("curl", [
          "-sS",
          "-F",
          `f=@${join(src, "my notes \u00e9.txt")};filename=../../evil.txt`,
          s.url,
        ]);
        assert.deepEqual(JSON.parse(evil.stdout), {
          error: "Cannot accept file name: path separator",
          status: 400,
        });
        assert.deepEqual(await listDir(join(dir, "up")), [
          "big.bin",
          "my notes \u00e9.txt",
          'say "hi".txt',
        ]);
        assert.deepEqual(
          (await listDir(dir)).filter((n) => n.includes("evil")),
          [],
        );
      } finally {
        await Deno.remove(src, { recursive: true });
      }
    });
  },
});

// Skipped only when Python says the module is missing: a slow start on a busy
// machine (killed at the timeout) or any other failure runs the test, which
// then fails with the reason.
const noRequests = (await run(PYTHON, ["-c", "import requests"], 60_000))
  .stderr.includes("No module named");
if (noRequests) {
  console.log("skipped: Debian's python3-requests is not installed");
}

Deno.test({
  name:
    "a test route stores what Python requests sends, a Unicode name included",
  ignore: noRequests,
  async fn() {
    await withDir(async (dir) => {
      await using s = formServer(dir);
      const script = `
import requests, sys
r = requests.post(sys.argv[1], data={"k": "v"}, files={
  "a": ("\u00fcber \u65e5\u672c.txt", b"unicode name\\n", "text/plain"),
  "b": ("data.bin", bytes(range(256)) * 1000, "application/octet-stream"),
})
print(r.status_code)
print(r.text)
`;
      const out = await run(PYTHON, ["-c", script, s.url], 20_000);
      assert.equal(out.code, 0, out.stderr);
      const [status, text] = out.stdout.split("\n");
      assert.equal(status, "201", text);
      const saved = JSON.parse(text);
      assert.deepEqual(saved.fields, [["k", "v"]]);
      assert.deepEqual(await listDir(dir), [
        "data.bin",
        "\u00fcber \u65e5\u672c.txt",
      ]);
      const want = new Uint8Array(256_000).map((_, i) => i % 256);
      assert.deepEqual(await Deno.readFile(join(dir, "data.bin")), want);
    });
  },
});

Deno.test({
  name: "a test route stores what Node's fetch sends with FormData",
  ignore: await lacks("node"),
  async fn() {
    await withDir(async (dir) => {
      await using s = formServer(dir);
      const script = `
const form = new FormData();
form.append("field", "value \u2713");
form.append("file", new Blob([new Uint8Array(300000).fill(45)]), "dashes--.bin");
const res = await fetch(process.argv[1], { method: "POST", body: form });
console.log(res.status, await res.text());
`;
      const out = await run("node", [
        "--input-type=module",
        "-e",
        script,
        s.url,
      ], 20_000);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /^201 /);
      assert.deepEqual(
        await Deno.readFile(join(dir, "dashes--.bin")),
        new Uint8Array(300000).fill(45),
      );
      assert.deepEqual(JSON.parse(out.stdout.slice(4)).fields, [[
        "field",
        "value \u2713",
      ]]);
    });
  },
});

Deno.test("a test route stores what Deno's fetch sends with FormData, and an empty form", async () => {
  await withDir(async (dir) => {
    await using s = formServer(dir);
    const form = new FormData();
    form.append("x", new Blob(["\r\n--"]), "crlf.txt");
    form.append("note", "n");
    const res = await fetch(s.url, { method: "POST", body: form });
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), {
      files: [{
        field: "x",
        name: "crlf.txt",
        bytes: 4,
        contentType: "application/octet-stream",
        replaced: false,
      }],
      fields: [["note", "n"]],
    });
    const empty = await fetch(s.url, { method: "POST", body: new FormData() });
    assert.equal(empty.status, 201);
    assert.deepEqual(await empty.json(), { files: [], fields: [] });
  });
});

Deno.test("a test route reads a form sent in one-byte chunks, boundaries split across every chunk", async () => {
  await withDir(async (dir) => {
    await using s = formServer(dir);
    const body = formBody([
      { name: "a", filename: "a.txt", data: "first\r\n" },
      { name: "b", filename: "b.txt", data: `\r\n--${BOUNDARY.slice(0, -1)}` },
    ]);
    let chunked = "";
    for (const byte of body) chunked += `1\r\n${String.fromCharCode(byte)}\r\n`;
    using conn = await connect(s.server.port);
    await send(
      conn,
      `POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: ${TYPE}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    await send(
      conn,
      Uint8Array.from(chunked + "0\r\n\r\n", (c) => c.charCodeAt(0)),
    );
    const reply = await readReply(conn);
    assert.equal(reply.status, 201, reply.text);
    assert.equal(
      await Deno.readTextFile(join(dir, "b.txt")),
      `\r\n--${BOUNDARY.slice(0, -1)}`,
    );
  });
});

Deno.test("a client that goes away mid-file leaves nothing: no file, no temp file, earlier files removed", async () => {
  await withDir(async (dir) => {
    await using s = formServer(dir);
    const head = formBody(
      [{ name: "a", filename: "done.txt", data: "whole" }],
      false,
    );
    const start = encoder.encode(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="b"; filename="partial.bin"\r\n\r\n`,
    );
    const conn = await connect(s.server.port);
    await send(
      conn,
      `POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: ${TYPE}\r\nContent-Length: 10000000\r\n\r\n`,
    );
    await send(conn, head);
    await send(conn, start);
    await send(conn, new Uint8Array(100_000));
    // The first file is stored and the second is being written to a temp file.
    await waitFor(
      () => {
        try {
          const names = [...Deno.readDirSync(dir)].map((e) => e.name);
          return names.includes("done.txt") &&
            names.some((n) => n.startsWith(TEMP_PREFIX));
        } catch {
          return false;
        }
      },
      "a stored file and a temp file",
    );
    conn.close();
    await waitFor(
      () => [...Deno.readDirSync(dir)].length === 0,
      "the folder to empty",
    );
  });
});
