/**
 * `--upload-files` over real sockets: the default app stores what curl -F
 * and hand-made forms send into the folder a listing shows, within the
 * upload folder only, under the canonical name rules, the size cap, the
 * quota and the CSRF check; browsers get a 303 back to the listing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TEMP_PREFIX } from "../lib/app/atomic_write.ts";
import type { AppConfig, UploadFilesConfig } from "../lib/app/settings.ts";
import type { Limits } from "../lib/config.ts";
import { listDir, startApp } from "./fixtures/app_server.ts";
import { startMain } from "./fixtures/main_server.ts";
import {
  cmdlineOf,
  findEngine,
  launcherCommand,
  permissionsOf,
  spawnServer,
} from "./fixtures/serve_process.ts";
import {
  concat,
  connect,
  encoder,
  exchange,
  lacks,
  readReply,
  readUntilClose,
  run,
  send,
  waitFor,
} from "./helpers/socket.ts";

const BOUNDARY = "----spindleFolderUpload7";
const FORM_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

interface Part {
  readonly name?: string;
  readonly filename: string;
  readonly data: string | Uint8Array;
}

/** A multipart body, file names written exactly as given (quotes and all). */
function formBody(parts: readonly Part[]): Uint8Array {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    out.push(encoder.encode(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${
        p.name ?? "file"
      }"; filename="${p.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ));
    out.push(typeof p.data === "string" ? encoder.encode(p.data) : p.data);
    out.push(encoder.encode("\r\n"));
  }
  out.push(encoder.encode(`--${BOUNDARY}--\r\n`));
  return concat(out);
}

/** A POST of a form as raw bytes, with any extra header lines. */
function postForm(target: string, body: Uint8Array, extra = ""): Uint8Array {
  return concat([
    encoder.encode(
      `POST ${target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${FORM_TYPE}\r\nContent-Length: ${body.length}\r\n${extra}\r\n`,
    ),
    body,
  ]);
}

/** The same POST with the form in one chunk: no length declared up front. */
function postChunked(target: string, body: Uint8Array): Uint8Array {
  return concat([
    encoder.encode(
      `POST ${target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${FORM_TYPE}\r\nTransfer-Encoding: chunked\r\n\r\n${
        body.length.toString(16)
      }\r\n`,
    ),
    body,
    encoder.encode("\r\n0\r\n\r\n"),
  ]);
}

interface UploadAppOptions {
  readonly upload?: Partial<UploadFilesConfig>;
  readonly app?: Partial<AppConfig>;
  readonly limits?: Partial<Limits>;
  readonly static?: Partial<AppConfig["static"]>;
  /** Folders to make under the root before the server starts. */
  readonly folders?: readonly string[];
}

/** The default app with `--list-dirs --upload-files`, folders made first. */
async function uploadApp(opts: UploadAppOptions = {}) {
  // Folders are made before createApp() checks the upload folder.
  return await startApp({
    app: {
      uploadFiles: {
        path: "/",
        quotaBytes: 0,
        overwrite: false,
        ...opts.upload,
      },
      ...opts.app,
    },
    static: { listDirs: true, ...opts.static },
    serve: { limits: opts.limits },
    beforeStart: async (root) => {
      for (const folder of opts.folders ?? []) {
        await Deno.mkdir(join(root, folder), { recursive: true });
      }
    },
  });
}

Deno.test({
  name:
    "curl -F stores one file, then several, into the folder posted to: 201 with names and links, listed after",
  ignore: await lacks("curl"),
  async fn() {
    await using app = await uploadApp({ folders: ["photos"] });
    const src = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(join(src, "cat.jpg"), "meow");
      await Deno.writeTextFile(join(src, "my notes é.txt"), "hello\r\n");
      await Deno.writeFile(join(src, "big.bin"), new Uint8Array(300_000));
      const url = `${app.origin}/photos/`;
      const one = await run("curl", [
        "-sS",
        "-w",
        "\n%{http_code} %{redirect_url}",
        "-F",
        `file=@${join(src, "cat.jpg")}`,
        url,
      ]);
      const cut = one.stdout.lastIndexOf("\n");
      const [body, status] = [one.stdout.slice(0, cut), one.stdout.slice(cut)];
      assert.equal(status.trim(), "201", one.stdout);
      assert.deepEqual(JSON.parse(body), {
        path: "/photos/",
        files: [{
          name: "cat.jpg",
          size: 4,
          href: "/photos/cat.jpg",
          replaced: false,
        }],
      });
      const several = await run("curl", [
        "-sS",
        "-F",
        `a=@${join(src, "my notes é.txt")}`,
        "-F",
        `b=@${join(src, "big.bin")}`,
        url,
      ]);
      assert.deepEqual(
        JSON.parse(several.stdout).files.map((f: { href: string }) => f.href),
        ["/photos/my%20notes%20%C3%A9.txt", "/photos/big.bin"],
      );
      assert.equal(
        await Deno.readTextFile(join(app.root, "photos", "my notes é.txt")),
        "hello\r\n",
      );
      assert.equal(
        (await Deno.stat(join(app.root, "photos", "big.bin"))).size,
        300_000,
      );
      const listing = await fetch(`${url}?format=json`);
      assert.deepEqual(
        (await listing.json()).entries.map((e: { name: string }) => e.name),
        ["big.bin", "cat.jpg", "my notes é.txt"],
      );
      assert.deepEqual(
        (await listDir(join(app.root, "photos"))).filter((n) =>
          n.startsWith(".")
        ),
        [],
        "no temp file left",
      );
    } finally {
      await Deno.remove(src, { recursive: true });
    }
  },
});

Deno.test("a taken name is 409 with nothing of the form stored; with overwrite it is replaced (200)", async () => {
  await using app = await uploadApp({ folders: ["a"] });
  await Deno.writeTextFile(join(app.root, "a", "taken.txt"), "old");
  const body = formBody([
    { filename: "new.txt", data: "fresh" },
    { filename: "taken.txt", data: "new" },
  ]);
  const refused = await exchange(app.port, postForm("/a/", body));
  assert.equal(refused.status, 409, refused.text);
  assert.match(refused.text, /taken\.txt exists already/);
  assert.deepEqual(await listDir(join(app.root, "a")), ["taken.txt"]);
  assert.equal(
    await Deno.readTextFile(join(app.root, "a", "taken.txt")),
    "old",
  );

  await using over = await uploadApp({
    folders: ["a"],
    upload: { overwrite: true },
  });
  await Deno.writeTextFile(join(over.root, "a", "taken.txt"), "old");
  const replaced = await exchange(
    over.port,
    postForm("/a/", formBody([{ filename: "taken.txt", data: "new" }])),
  );
  assert.equal(replaced.status, 200, replaced.text);
  assert.equal(JSON.parse(replaced.text).files[0].replaced, true);
  assert.equal(
    await Deno.readTextFile(join(over.root, "a", "taken.txt")),
    "new",
  );
  const mixed = await exchange(over.port, postForm("/a/", body));
  assert.equal(mixed.status, 201, "one file is new");
  // The listing says what happens to a taken name.
  const page = await (await fetch(`${over.origin}/a/`)).text();
  assert.match(page, /a file of the same name is replaced/);
});

const badNames: [filename: string, message: RegExp][] = [
  ["../escape.txt", /path separator/],
  ["..%2Fescape.txt", /encoded separator/],
  ["a%00.txt", /encoded separator/],
  ["a\0b.txt", /control character|Cannot parse form/],
  ["CON", /reserved device name/],
  ["nul.txt", /reserved device name/],
  [".htaccess", /starts with a dot/],
];
Deno.test("file names with ../, %2F, NUL or a Windows device name are 400, and nothing is stored", async () => {
  await using app = await uploadApp({ folders: ["in"] });
  for (const [filename, message] of badNames) {
    const body = formBody([
      { filename: "fine.txt", data: "ok" },
      { filename, data: "evil" },
    ]);
    const reply = await exchange(app.port, postForm("/in/", body));
    assert.equal(
      reply.status,
      400,
      `${JSON.stringify(filename)}: ${reply.text}`,
    );
    assert.match(reply.text, message, filename);
  }
  assert.deepEqual(await listDir(join(app.root, "in")), []);
  assert.ok(!(await listDir(app.root)).includes("escape.txt"));
});

Deno.test("a client that goes away mid-file leaves nothing: no file, no temp file, earlier files removed", async () => {
  await using app = await uploadApp({ folders: ["drop"] });
  const dir = join(app.root, "drop");
  const first = formBody([{ filename: "done.txt", data: "whole" }]);
  const conn = await connect(app.port);
  await send(
    conn,
    `POST /drop/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${FORM_TYPE}\r\nContent-Length: 10000000\r\n\r\n`,
  );
  // The first file whole (its closing boundary is the next part's opening).
  await send(conn, first.subarray(0, first.length - BOUNDARY.length - 6));
  await send(
    conn,
    `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="b"; filename="partial.bin"\r\n\r\n`,
  );
  await send(conn, new Uint8Array(200_000));
  await waitFor(() => {
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    return names.includes("done.txt") &&
      names.some((n) => n.startsWith(TEMP_PREFIX));
  }, "a stored file and a temp file");
  conn.close();
  await waitFor(
    () => [...Deno.readDirSync(dir)].length === 0,
    "the folder to empty",
  );
});

Deno.test("the quota: 507 from the declared length before the body is read, and for a body that grows past it", async () => {
  await using app = await uploadApp({
    folders: ["q"],
    upload: { quotaBytes: 10_000 },
  });
  await Deno.writeFile(join(app.root, "q", "old.bin"), new Uint8Array(6000));
  // Declared past the room: 507 at once, no 100 Continue, nothing read.
  using conn = await connect(app.port);
  await send(
    conn,
    `POST /q/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${FORM_TYPE}\r\nContent-Length: 20000\r\nExpect: 100-continue\r\n\r\n`,
  );
  const early = await readReply(conn);
  assert.equal(early.status, 507, early.text);
  // Chunked, so nothing is declared: refused while the data comes.
  const big = formBody([
    { filename: "a.bin", data: new Uint8Array(3000) },
    { filename: "b.bin", data: new Uint8Array(3000) },
  ]);
  const chunked = await exchange(app.port, postChunked("/q/", big));
  assert.equal(chunked.status, 507, chunked.text);
  assert.match(chunked.text, /Upload quota is full/);
  assert.deepEqual(await listDir(join(app.root, "q")), ["old.bin"]);
  // What fits is stored.
  const fits = await exchange(
    app.port,
    postForm(
      "/q/",
      formBody([{ filename: "a.bin", data: new Uint8Array(3000) }]),
    ),
  );
  assert.equal(fits.status, 201, fits.text);
});

Deno.test("the quota counts the upload folder's subfolders; a replacement needs room for its new bytes while written", async () => {
  await using app = await uploadApp({
    folders: ["q/deep"],
    upload: { quotaBytes: 10_000, overwrite: true },
  });
  await Deno.writeFile(
    join(app.root, "q", "deep", "old.bin"),
    new Uint8Array(6000),
  );
  const post = (name: string, size: number) =>
    exchange(
      app.port,
      postForm(
        "/q/",
        formBody([{ filename: name, data: new Uint8Array(size) }]),
      ),
    );
  assert.equal((await post("a.bin", 5000)).status, 507, "6000 + 5000 > 10000");
  assert.equal((await post("a.bin", 3000)).status, 201);
  // Old and new are both on disk until the rename: 6000 + 3000 + 2000 > 10000.
  assert.equal((await post("a.bin", 2000)).status, 507);
  // Checked first from Content-Length, which counts the form's framing too.
  assert.equal((await post("a.bin", 500)).status, 200);
  assert.equal((await post("b.bin", 3000)).status, 201, "a.bin is 500 now");
});

Deno.test("past --upload-files-max: 413 from the declared length, or while a chunked body comes, and nothing stored", async () => {
  await using app = await uploadApp({
    folders: ["cap"],
    limits: { maxFormBytes: 4096 },
  });
  const big = formBody([{ filename: "big.bin", data: new Uint8Array(5000) }]);
  const declared = await exchange(app.port, postForm("/cap/", big));
  assert.equal(declared.status, 413, declared.text);
  assert.equal(declared.headers.get("connection"), "close");
  const chunked = await exchange(app.port, postChunked("/cap/", big));
  assert.equal(chunked.status, 413, chunked.text);
  assert.deepEqual(await listDir(join(app.root, "cap")), []);
});

Deno.test("form uploads may pass --max-body; every other route still stops at it", async () => {
  await using app = await uploadApp({
    folders: ["big"],
    limits: { maxBodyBytes: 64 * 1024, maxFormBytes: 1024 * 1024 },
  });
  const body = formBody([{ filename: "a.bin", data: new Uint8Array(500_000) }]);
  const stored = await exchange(app.port, postForm("/big/", body));
  assert.equal(stored.status, 201, stored.text);
  const files = await exchange(
    app.port,
    `POST /files/x.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n`,
  );
  assert.equal(files.status, 413, "/files keeps --max-body");
  const chunkedFiles = await exchange(
    app.port,
    concat([
      encoder.encode(
        `POST /files/y.bin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n`,
      ),
      new Uint8Array(100_000),
      encoder.encode("\r\n0\r\n\r\n"),
    ]),
  );
  assert.equal(chunkedFiles.status, 413, "and so does a chunked body");
  assert.deepEqual(await listDir(app.directory), []);
});

Deno.test("--upload-files=/inbox: its folders take uploads; others 405 with Allow, missing 404, dot folders 404, links out 404", async () => {
  await using app = await uploadApp({
    upload: { path: "/inbox/" },
    folders: ["inbox/sub", "other", "inbox/.git", "outside-root"],
    app: {},
  });
  const outside = await Deno.makeTempDir();
  try {
    await Deno.symlink(outside, join(app.root, "inbox", "out"));
    await Deno.symlink(
      join(app.root, "other"),
      join(app.root, "inbox", "away"),
    );
    await Deno.symlink(
      join(app.root, "inbox", "sub"),
      join(app.root, "to-sub"),
    );
    const body = formBody([{ filename: "x.txt", data: "x" }]);
    const table: [target: string, status: number][] = [
      ["/inbox/", 201],
      ["/inbox/sub/", 201],
      ["/to-sub/", 409], // a link that leads into the upload folder: the same folder
      ["/", 405],
      ["/other/", 405],
      ["/inbox/away/", 405], // a link inside that leads out of the upload folder
      ["/inbox/out/", 404], // a link out of the root
      ["/inbox/nope/", 404],
      ["/inbox/.git/", 404],
      ["/index.html", 405],
    ];
    for (const [target, status] of table) {
      const reply = await exchange(app.port, postForm(target, body));
      assert.equal(reply.status, status, `${target}: ${reply.text}`);
      if (status === 405) {
        assert.equal(reply.headers.get("allow"), "GET, HEAD, OPTIONS", target);
      }
    }
    assert.deepEqual(await listDir(outside), []);
    assert.deepEqual(await listDir(join(app.root, "other")), []);
    assert.deepEqual(await listDir(join(app.root, "inbox", ".git")), []);
    assert.deepEqual(await listDir(join(app.root, "inbox", "sub")), ["x.txt"]);
    // A folder named without its slash: 308 to it, keeping the method.
    const bare = await exchange(app.port, postForm("/inbox/sub?x=1", body));
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get("location"), "/inbox/sub/?x=1");
    // OPTIONS names POST where uploads go, not elsewhere.
    const options = await exchange(
      app.port,
      "OPTIONS /inbox/sub/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert.equal(options.headers.get("allow"), "GET, HEAD, OPTIONS, POST");
    const elsewhere = await exchange(
      app.port,
      "OPTIONS /other/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert.equal(elsewhere.headers.get("allow"), "GET, HEAD, OPTIONS");
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("CSRF: a form posted from another site's page is 403; this server's pages and --cors origins may upload", async () => {
  await using app = await uploadApp({
    folders: ["c"],
    app: { cors: "https://app.example" },
  });
  const table: [headers: string, status: number][] = [
    ["Origin: http://evil.example\r\n", 403],
    ["Origin: null\r\n", 403],
    ["Origin: http://localhost:1\r\n", 403], // another port is another origin
    ["Sec-Fetch-Site: cross-site\r\n", 403],
    ["Origin: https://app.example\r\n", 201],
    [`Origin: http://localhost\r\n`, 201], // the Host this test sends
    ["", 201], // curl and scripts send no Origin
  ];
  let n = 0;
  for (const [headers, status] of table) {
    const body = formBody([{ filename: `f${n++}.txt`, data: "x" }]);
    const reply = await exchange(app.port, postForm("/c/", body, headers));
    assert.equal(reply.status, status, `${headers}: ${reply.text}`);
  }
  assert.equal((await listDir(join(app.root, "c"))).length, 3);
  // --cors alone (any origin may read) does not let any page write.
  await using open = await uploadApp({ folders: ["c"], app: { cors: "*" } });
  const evil = await exchange(
    open.port,
    postForm(
      "/c/",
      formBody([{ filename: "x.txt", data: "x" }]),
      "Origin: http://evil.example\r\n",
    ),
  );
  assert.equal(evil.status, 403);
  // Without --cors, no origin but this server's, not even an empty one.
  await using none = await uploadApp({ folders: ["c"] });
  for (const origin of ["", "http://evil.example"]) {
    const reply = await exchange(
      none.port,
      postForm(
        "/c/",
        formBody([{ filename: "x.txt", data: "x" }]),
        `Origin: ${origin}\r\n`,
      ),
    );
    assert.equal(reply.status, 403, JSON.stringify(origin));
  }
});

Deno.test("a browser's form post gets 303 back to the listing, its query kept; an empty form is 400", async () => {
  await using app = await uploadApp({ folders: ["my photos"] });
  const reply = await exchange(
    app.port,
    postForm(
      "/my%20photos/?sort=size",
      formBody([{ filename: "a.txt", data: "a" }]),
      "Accept: text/html,application/xhtml+xml\r\nOrigin: http://localhost\r\n",
    ),
  );
  assert.equal(reply.status, 303);
  assert.equal(reply.headers.get("location"), "/my%20photos/?sort=size");
  const empty = await exchange(
    app.port,
    postForm("/my%20photos/", encoder.encode(`--${BOUNDARY}--\r\n`)),
  );
  assert.equal(empty.status, 400);
  assert.match(empty.text, /Form holds no file/);
});

Deno.test("names the static layer would show in place of something else are 403, and so are types not served", async () => {
  await using app = await uploadApp({
    folders: ["s"],
    static: { allowExt: ["txt", "html", "gz"] },
  });
  await Deno.writeTextFile(join(app.root, "s", "page.html"), "<p>mine</p>");
  const table: [filename: string, status: number, message: RegExp][] = [
    ["index.html", 403, /in place of this folder's listing/],
    ["page.html.gz", 403, /in place of page\.html/],
    ["run.exe", 403, /type of file is not accepted/],
    ["other.txt.gz", 201, /other\.txt\.gz/], // no other.txt to shadow
  ];
  for (const [filename, status, message] of table) {
    const reply = await exchange(
      app.port,
      postForm("/s/", formBody([{ filename, data: "x" }])),
    );
    assert.equal(reply.status, status, `${filename}: ${reply.text}`);
    assert.match(reply.text, message);
  }
  const root404 = await exchange(
    app.port,
    postForm("/", formBody([{ filename: "404.html", data: "x" }])),
  );
  assert.equal(root404.status, 403, "the site's 404 page");
});

Deno.test("pages and images in the upload folder are sent with CSP sandbox; elsewhere not", async () => {
  await using app = await uploadApp({
    upload: { path: "/up/" },
    folders: ["up", "site"],
  });
  for (const dir of ["up", "site"]) {
    await Deno.writeTextFile(
      join(app.root, dir, "x.html"),
      "<script>1</script>",
    );
    await Deno.writeTextFile(join(app.root, dir, "x.svg"), "<svg/>");
    await Deno.writeTextFile(join(app.root, dir, "x.txt"), "text");
  }
  for (const name of ["x.html", "x.svg", "x.txt"]) {
    for (const dir of ["up", "site"]) {
      const res = await fetch(`${app.origin}/${dir}/${name}`);
      await res.body?.cancel();
      assert.equal(res.status, 200);
      assert.equal(
        res.headers.get("content-security-policy"),
        dir === "up" && name !== "x.txt" ? "sandbox" : null,
        `${dir}/${name}`,
      );
    }
  }
});

Deno.test("the listing offers the upload form in upload folders only, and never without --upload-files", async () => {
  await using app = await uploadApp({
    upload: { path: "/in/" },
    folders: ["in/sub", "out"],
  });
  for (
    const [path, form] of [["/in/", true], ["/in/sub/", true], [
      "/out/",
      false,
    ]] as const
  ) {
    const page = await (await fetch(`${app.origin}${path}`)).text();
    assert.equal(page.includes('<form id="upload"'), form, path);
    assert.equal(page.includes('enctype="multipart/form-data"'), form, path);
  }
  await using off = await startApp({
    static: { listDirs: true },
  });
  await Deno.mkdir(join(off.root, "in"));
  const page = await (await fetch(`${off.origin}/in/`)).text();
  assert.ok(!page.includes('id="upload"'));
  const post = await exchange(
    off.port,
    postForm("/in/", formBody([{ filename: "a.txt", data: "a" }])),
  );
  assert.equal(post.status, 405, "no uploads without --upload-files");
});

Deno.test("--auth-paths write:/ asks uploads for a password and lets everyone read", async () => {
  await using app = await uploadApp({
    folders: ["shared"],
    app: {
      auth: {
        credentials: {
          verify: (user, password) =>
            Promise.resolve(
              new TextDecoder().decode(user) === "alice" &&
                new TextDecoder().decode(password) === "pw"
                ? "alice"
                : undefined,
            ),
        },
        rules: [{ prefix: "/", writeOnly: true }],
      },
    },
  });
  const body = formBody([{ filename: "a.txt", data: "a" }]);
  assert.equal(
    (await exchange(app.port, postForm("/shared/", body))).status,
    401,
  );
  const signed = await exchange(
    app.port,
    postForm("/shared/", body, `Authorization: Basic ${btoa("alice:pw")}\r\n`),
  );
  assert.equal(signed.status, 201, signed.text);
  const read = await fetch(`${app.origin}/shared/a.txt`);
  assert.equal(await read.text(), "a");
});

Deno.test("a refused upload keeps the connection when the body was read, and closes it past a limit", async () => {
  await using app = await uploadApp({
    folders: ["k"],
    limits: { maxFormBytes: 4096 },
  });
  using conn = await connect(app.port);
  // 409 after the whole body was read: the connection stays usable.
  await Deno.writeTextFile(join(app.root, "k", "a.txt"), "a");
  await send(
    conn,
    postForm("/k/", formBody([{ filename: "a.txt", data: "b" }])),
  );
  const conflict = await readReply(conn);
  assert.equal(conflict.status, 409);
  await send(
    conn,
    postForm("/k/", formBody([{ filename: "b.txt", data: "b" }])),
  );
  assert.equal((await readReply(conn)).status, 201);
  await send(
    conn,
    postForm(
      "/k/",
      formBody([{ filename: "c.bin", data: new Uint8Array(5000) }]),
    ),
  );
  const tooBig = await readUntilClose(conn);
  assert.match(new TextDecoder().decode(tooBig), /^HTTP\/1\.1 413 /);
});

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** `deno run <permissions> main.ts <args>` to its end: exit code and stderr. */
async function runMain(
  permissions: readonly string[],
  args: readonly string[],
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net=127.0.0.1",
      ...permissions,
      MAIN,
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("main.ts with --upload-files under narrow permissions: stores a form past --max-body into the upload folder", async () => {
  const base = await Deno.makeTempDir({ prefix: "spindle-upload-main-" });
  try {
    const site = join(base, "site");
    await Deno.mkdir(join(site, "inbox"), { recursive: true });
    await using main = await startMain(
      [`--allow-read=${site}`, `--allow-write=${join(site, "inbox")}`],
      [
        "--root",
        site,
        "--list-dirs",
        "--upload-files=/inbox",
        "--max-body",
        "16k",
        "--uploads",
        join(site, "inbox", "json"),
      ],
    );
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(200_000)]), "big.bin");
    const res = await fetch(`${main.origin}/inbox/`, {
      method: "POST",
      body: form,
    });
    assert.equal(res.status, 201, await res.text());
    assert.equal(
      (await Deno.stat(join(site, "inbox", "big.bin"))).size,
      200_000,
    );
    const other = await fetch(`${main.origin}/echo`, {
      method: "POST",
      body: new Uint8Array(20_000),
    });
    await other.body?.cancel();
    assert.equal(other.status, 413, "other routes keep --max-body");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("main.ts exits 2 when the upload folder is missing, outside the root, or not writable", async () => {
  const base = await Deno.makeTempDir({ prefix: "spindle-upload-main-" });
  try {
    const site = join(base, "site");
    const inbox = join(site, "inbox");
    await Deno.mkdir(inbox, { recursive: true });
    await Deno.symlink(base, join(site, "up"));
    const all = [`--allow-read=${base}`, `--allow-write=${base}`];
    const table: [perms: string[], path: string, message: RegExp][] = [
      [all, "=/nope", /nope \(--upload-files\) does not exist.*mkdir -p/],
      [all, "=/up", /--upload-files: .*up leads out of the root/],
      [
        [`--allow-read=${base}`, `--allow-write=${join(site, "json")}`],
        "=/inbox",
        /no write permission for .*inbox \(--upload-files\)/,
      ],
    ];
    for (const [perms, path, message] of table) {
      const { code, stderr } = await runMain(perms, [
        "--root",
        site,
        "--port",
        "0",
        `--upload-files${path}`,
        "--uploads",
        join(site, "json"),
      ]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, /^spindle: /);
      assert.match(stderr, message);
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("deno task serve --upload-files=/inbox: the engine may write to the upload folder and nowhere else", async () => {
  const site = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "spindle-upload-site-" }),
  );
  try {
    const inbox = join(site, "inbox");
    const uploads = join(site, "json");
    await Deno.mkdir(inbox);
    await using server = await spawnServer([
      ...launcherCommand(),
      site,
      "--list-dirs",
      "--upload-files=/inbox",
      "--uploads",
      uploads,
      "--port",
      "0",
    ]);
    assert.notEqual(server.port, 0, "listening");
    const perms = permissionsOf(
      await cmdlineOf(await findEngine(server.child.pid)),
    );
    assert.deepEqual(perms.get("write"), [uploads, inbox].join(","));
    assert.ok(
      server.lines.some((l) => l.startsWith("May write ") && l.includes(inbox)),
      server.lines.join("\n"),
    );
    const form = new FormData();
    form.append("file", new Blob(["hi"]), "hi.txt");
    const res = await fetch(`http://127.0.0.1:${server.port}/inbox/`, {
      method: "POST",
      body: form,
    });
    assert.equal(res.status, 201, await res.text());
    assert.equal(await Deno.readTextFile(join(inbox, "hi.txt")), "hi");
  } finally {
    await Deno.remove(site, { recursive: true });
  }
});
