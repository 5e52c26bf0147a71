import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import {
  FLAGS,
  formatDuration,
  formatSize,
  helpText,
  parseDuration,
  parseFlags,
  parseSize,
  UsageError,
} from "../lib/cli.ts";

Deno.test("parseFlags() gives the documented defaults for no arguments", () => {
  const o = parseFlags([]);
  assert.equal(o.server.hostname, "127.0.0.1");
  assert.equal(o.server.port, 8080);
  assert.deepEqual(o.server.limits, DEFAULT_LIMITS);
  assert.equal(o.app.static.root, "resources");
  assert.equal(o.app.static.dotfiles, "deny");
  assert.equal(o.app.uploads, "resources/uploads");
  assert.equal(o.app.rateLimit, undefined);
  assert.equal(o.logFormat, "text");
  assert.equal(o.workers, 1);
  assert.equal(o.qr, false);
  assert.equal(o.server.accessLog, true);
});

Deno.test("parseFlags() takes the seeds' positional [port] [host] [max-conns]", () => {
  const o = parseFlags(["9000", "0.0.0.0", "16"]);
  assert.equal(o.server.port, 9000);
  assert.equal(o.server.hostname, "0.0.0.0");
  assert.equal(o.server.limits.maxConns, 16);
});

Deno.test("parseFlags() takes a first positional that is not a number as the folder to serve", () => {
  const o = parseFlags(["./site", "9000", "0.0.0.0"]);
  assert.equal(o.app.static.root, "./site");
  assert.equal(o.server.port, 9000);
  assert.equal(o.server.hostname, "0.0.0.0");
  assert.equal(parseFlags(["/srv/www"]).app.static.root, "/srv/www");
  // A number stays the seeds' port; --root wins over the positional folder.
  assert.equal(parseFlags(["8081"]).app.static.root, "resources");
  assert.equal(parseFlags(["a", "--root", "b"]).app.static.root, "b");
  assert.throws(() => parseFlags(["a", "1", "h", "2", "3"]), UsageError);
});

Deno.test("parseFlags() skips a leading --, as `deno task serve -- --port 8081` passes it", () => {
  const o = parseFlags(["--", "--port", "8081", "--qr"]);
  assert.equal(o.server.port, 8081);
  assert.equal(o.qr, true);
  // Later, -- still ends the options: what follows is positional.
  assert.equal(parseFlags(["--port", "1", "--", "--x"]).app.static.root, "--x");
});

Deno.test("parseFlags() lets a flag win over a positional value", () => {
  assert.equal(parseFlags(["9000", "--port", "0"]).server.port, 0);
  assert.equal(parseFlags(["--port=1234"]).server.port, 1234);
});

Deno.test("parseFlags() maps every limit and timeout flag", () => {
  const o = parseFlags([
    "--max-body=2m",
    "--max-head=8k",
    "--max-headers=50",
    "--max-target=4k",
    "--max-requests=10",
    "--max-queue=0",
    "--head-timeout=500ms",
    "--keepalive-timeout=2s",
    "--body-timeout=1m",
    "--write-timeout=3",
    "--queue-timeout=250ms",
    "--shutdown-timeout=1.5s",
    "--ws-max-message=16m",
  ]);
  const l = o.server.limits;
  assert.equal(l.maxBodyBytes, 2 * 1024 * 1024);
  assert.equal(l.maxHeadBytes, 8192);
  assert.equal(l.maxHeaderCount, 50);
  assert.equal(l.maxTargetBytes, 4096);
  assert.equal(l.maxRequestsPerConnection, 10);
  assert.equal(l.maxQueue, 0);
  assert.equal(l.headTimeoutMs, 500);
  assert.equal(l.keepAliveTimeoutMs, 2000);
  assert.equal(l.bodyTimeoutMs, 60_000);
  assert.equal(l.writeTimeoutMs, 3000);
  assert.equal(l.queueTimeoutMs, 250);
  assert.equal(l.shutdownTimeoutMs, 1500);
  assert.equal(l.wsMaxMessageBytes, 16 * 1024 * 1024);
  assert.equal(l.wsMaxFrameBytes, 16 * 1024 * 1024);
});

Deno.test("parseFlags() maps the static and app flags", () => {
  const o = parseFlags([
    "--root",
    "site",
    "--dotfiles",
    "allow",
    "--allow-ext",
    "html,.TXT,png",
    "--list-dirs",
    "--spa",
    "--attachment",
    "--cache-control",
    "max-age=60",
    "--directory",
    "/tmp/files",
    "--rate-limit",
    "100/10s",
    "--trust-proxy",
    "10.0.0.1, 10.0.0.2",
    "--allowed-hosts",
    "example.com",
    "--metrics-public",
    "--strict-links",
    "--header",
    "X-Frame-Options: DENY",
    "--header",
    "Vary: Origin",
    "--archive-max",
    "1g",
    "--watch",
    "--cors",
    "*",
    "--quiet",
    "--log-format",
    "json",
    "--workers",
    "2",
  ]);
  assert.deepEqual(o.app.static, {
    root: "site",
    dotfiles: "allow",
    allowExt: ["html", "txt", "png"],
    cacheControl: "max-age=60",
    listDirs: true,
    spa: true,
    attachment: true,
    strictLinks: true,
    headers: [["x-frame-options", "DENY"], ["vary", "Origin"]],
    archiveMaxBytes: 1024 ** 3,
    watch: true,
  });
  assert.equal(o.app.directory, "/tmp/files");
  assert.deepEqual(o.app.rateLimit, { limit: 100, windowMs: 10_000 });
  assert.deepEqual(o.app.trustProxy, ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(o.app.allowedHosts, ["example.com"]);
  assert.equal(o.app.metricsPublic, true);
  assert.equal(o.app.cors, "*");
  assert.equal(o.quiet, true);
  assert.equal(o.server.accessLog, false);
  assert.equal(o.logFormat, "json");
  assert.equal(o.workers, 2);
});

Deno.test("parseFlags() reads the many-machines flags", () => {
  const o = parseFlags([
    "--rate-limit",
    "100/10s",
    "--rate-limit-store",
    "redis://:secret@10.0.0.5:6379/2",
    "--rate-limit-fail",
    "closed",
    "--trust-proxy",
    "10.0.0.1",
    "--proxy-protocol",
    "--drain-delay",
    "3s",
  ]);
  assert.deepEqual(o.app.rateLimit, {
    limit: 100,
    windowMs: 10_000,
    store: "redis://:secret@10.0.0.5:6379/2",
    fail: "closed",
  });
  assert.equal(o.proxyProtocol, true);
  assert.equal(o.server.limits.drainDelayMs, 3000);
  assert.equal(parseFlags([]).proxyProtocol, false);
  assert.equal(parseFlags([]).server.limits.drainDelayMs, 0);
  assert.equal(
    parseFlags(["--rate-limit", "1/1s", "--rate-limit-store", "redis://r:1"])
      .app.rateLimit?.fail,
    "open",
  );
});

Deno.test("parseFlags() takes every --log-format", () => {
  for (const format of ["text", "json", "common", "combined"]) {
    assert.equal(parseFlags(["--log-format", format]).logFormat, format);
  }
});

Deno.test("parseFlags() turns HTTP/2 on TLS off with --http2 off, and h2c on with --h2c", () => {
  const none = parseFlags([]).server;
  assert.equal(none.http2, true);
  assert.equal(none.h2c, false);
  assert.equal(parseFlags(["--http2", "off"]).server.http2, false);
  assert.equal(parseFlags(["--h2c"]).server.h2c, true);
});

const bad: [args: string[], message: RegExp][] = [
  [["--nope"], /unknown option --nope/],
  [["--port"], /--port needs a value/],
  [["--port", "http"], /--port: "http" is not a whole number/],
  [["--port", "70000"], /not a port/],
  [["--max-body", "lots"], /not a size/],
  [["--head-timeout", "soon"], /not a duration/],
  [["--cert", "c.pem"], /--cert and --key go together/],
  [["--dotfiles", "maybe"], /not allow or deny/],
  [["--http2", "yes"], /--http2: "yes" is not on or off/],
  [
    ["--h2c", "--cert", "c.pem", "--key", "k.pem"],
    /--h2c is HTTP\/2 on plain HTTP/,
  ],
  [["--log-format", "xml"], /not text, json, common or combined/],
  [["--rate-limit", "100"], /not N\/TIME/],
  [["--rate-limit", "0/10s"], /at least 1/],
  [["--spa=yes"], /takes no value/],
  [["--max-conns", "0"], /at least 1/],
  [["1", "2", "3", "4"], /too many arguments/],
  [["--header", "X-Nothing"], /is not NAME: VALUE/],
  [["--header", "Bad Name: 1"], /is not NAME: VALUE/],
  [["--header", "Content-Length: 5"], /content-length is worked out/],
  [["--header", 'ETag: "x"'], /etag is worked out/],
  [["--header", "X-A: a\x01b"], /control byte/],
  [["--archive-max", "huge"], /not a size/],
  [["--auth", "alice"], /--auth takes USER:PASSWORD/],
  [["--auth", ":pw"], /--auth takes USER:PASSWORD/],
  [["--auth", "alice:"], /--auth takes USER:PASSWORD/],
  [["--auth-paths", "/upload"], /--auth-paths needs --auth or --auth-file/],
  [["--auth-insecure"], /--auth-insecure needs --auth or --auth-file/],
  [["--auth", "a:b", "--auth-paths", "upload"], /"upload" is not \/PREFIX/],
  [["--auth", "a:b", "--auth-paths", "/a/../b"], /is not \/PREFIX/],
  [["--auth", "a:b", "--auth-paths", "/a//b"], /is not \/PREFIX/],
  [["--auth", "a:b", "--auth-paths", "/a%2Fb"], /is not \/PREFIX/],
  [["--auth", "a:b", "--auth-paths", "read:/a"], /is not \/PREFIX/],
  [["--auth", "a:b", "--auth-paths", ","], /empty list/],
  [["--tls", "acme"], /--tls: "acme" is not self-signed/],
  [["--tls", "self-signed", "--cert", "c", "--key", "k"], /choose one/],
  [["--tls-save", "d"], /--tls-save needs --tls self-signed/],
  [["--redirect-http", "8080"], /--redirect-http needs HTTPS/],
  [["--hsts"], /--hsts needs HTTPS/],
  [["--tls", "self-signed", "--redirect-http", "99999"], /not a port/],
  [
    ["--tls", "self-signed", "--port", "8443", "--redirect-http", "8443"],
    /is the HTTPS port/,
  ],
  [["--tls", "self-signed", "--hsts=soon"], /--hsts: "soon" is not a duration/],
  [
    [
      "--tls",
      "self-signed",
      "--port",
      "8443",
      "--redirect-http",
      "0",
      "--takeover",
    ],
    /--takeover needs the --redirect-http port/,
  ],
  [
    ["--h2c", "--tls", "self-signed"],
    /--h2c is HTTP\/2 on plain HTTP; with HTTPS/,
  ],
  [["--proxy-protocol"], /--proxy-protocol needs --trust-proxy/],
  [["--rate-limit-store", "redis://r:6379"], /needs --rate-limit$/],
  [
    ["--rate-limit", "1/1s", "--rate-limit-fail", "closed"],
    /needs --rate-limit-store/,
  ],
  [["--rate-limit", "1/1s", "--rate-limit-fail", "shut"], /not open or closed/],
  [
    ["--rate-limit", "1/1s", "--rate-limit-store", "r:6379"],
    /not redis:\/\/HOST:PORT/,
  ],
  [
    ["--rate-limit", "1/1s", "--rate-limit-store", "http://r:6379"],
    /not redis:/,
  ],
  [
    ["--rate-limit", "1/1s", "--rate-limit-store", "redis://r:6379/x"],
    /not redis:/,
  ],
  [["--drain-delay", "soon"], /not a duration/],
];
for (const [args, message] of bad) {
  Deno.test(`parseFlags() refuses ${args.join(" ")}`, () => {
    assert.throws(() => parseFlags(args), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, message);
      return true;
    });
  });
}

Deno.test("parseFlags() reads the HTTPS flags", () => {
  const o = parseFlags([
    "--tls",
    "self-signed",
    "--tls-save",
    ".tls",
    "--redirect-http",
    "8080",
    "--port",
    "8443",
    "--hsts",
  ]);
  assert.deepEqual(o.tls, {
    selfSigned: true,
    saveDir: ".tls",
    redirectPort: 8080,
  });
  assert.equal(o.app.hstsMaxAgeS, 365 * 24 * 3600);
  assert.equal(o.server.cert, undefined);
  const files = parseFlags(["--cert", "c", "--key", "k", "--hsts=1d"]);
  assert.deepEqual(files.tls, {
    selfSigned: false,
    saveDir: undefined,
    redirectPort: undefined,
  });
  assert.equal(files.app.hstsMaxAgeS, 86400);
  // "--hsts 8080" is the switch and a positional port, never max-age=8080.
  const positional = parseFlags(["--tls", "self-signed", "--hsts", "8081"]);
  assert.equal(positional.server.port, 8081);
  assert.equal(positional.app.hstsMaxAgeS, 365 * 24 * 3600);
  assert.equal(parseFlags([]).tls, undefined);
  assert.equal(parseFlags([]).app.hstsMaxAgeS, undefined);
  // --tls self-signed is HTTPS: passwords may cross the network.
  assert.ok(
    parseFlags(["--auth", "a:b", "--host", "0.0.0.0", "--tls", "self-signed"])
      .auth,
  );
});

Deno.test("parseFlags() serves every file by default; --allow-ext takes all, web or a list", () => {
  assert.equal(parseFlags([]).app.static.allowExt, null);
  assert.equal(parseFlags(["--allow-ext", "all"]).app.static.allowExt, null);
  const web = parseFlags(["--allow-ext", "web"]).app.static.allowExt!;
  assert.ok(web.includes("html") && web.includes("woff2"));
  assert.ok(!web.includes("exe") && !web.includes("mkv"));
  assert.deepEqual(
    parseFlags(["--allow-ext", "html,txt,png,jpg,jpeg"]).app.static.allowExt,
    ["html", "txt", "png", "jpg", "jpeg"],
  );
});

Deno.test("parseFlags() takes --cors alone as any origin, and a value only when it is one", () => {
  assert.equal(parseFlags(["--cors"]).app.cors, "*");
  assert.equal(parseFlags(["--cors", "--watch"]).app.cors, "*");
  const port = parseFlags(["--cors", "9000"]);
  assert.equal(port.app.cors, "*");
  assert.equal(port.server.port, 9000);
  assert.equal(
    parseFlags(["--cors", "https://a.test,http://localhost:5173"]).app.cors,
    "https://a.test,http://localhost:5173",
  );
  assert.equal(
    parseFlags(["--cors=https://b.test"]).app.cors,
    "https://b.test",
  );
  assert.equal(parseFlags([]).app.cors, undefined);
});

Deno.test("parseSize() and parseDuration() read their units", () => {
  assert.equal(parseSize("512", "x"), 512);
  assert.equal(parseSize("16k", "x"), 16384);
  assert.equal(parseSize("1MiB", "x"), 1048576);
  assert.equal(parseSize("2g", "x"), 2 * 1024 ** 3);
  assert.equal(parseDuration("10", "x"), 10_000);
  assert.equal(parseDuration("250ms", "x"), 250);
  assert.equal(parseDuration("2m", "x"), 120_000);
  assert.equal(parseDuration("2h", "x"), 7_200_000);
  assert.equal(parseDuration("1d", "x"), 86_400_000);
});

Deno.test("helpText() lists every flag with its default", () => {
  const text = helpText();
  for (
    const flag of [
      "--host",
      "--port",
      "--max-conns",
      "--head-timeout",
      "--cert",
      "--quiet",
      "--rate-limit",
    ]
  ) {
    assert.ok(text.includes(flag), flag);
  }
  assert.match(
    text,
    /--port N\s+port to listen on; 0 picks a free one \[8080\]/,
  );
});

Deno.test("helpText() shows each flag's real default: passing the one it shows changes nothing", () => {
  const none = parseFlags([]);
  // "  --max-body SIZE   largest request body (413) [1m]": read from the
  // help itself, so a default typed into it by hand and gone stale fails.
  const shown = helpText().split("\n").flatMap((line) => {
    const m = /^ {2}--([a-z0-9-]+).* \[([^\]]+)\]$/.exec(line);
    return m === null ? [] : [{ name: m[1], value: FLAGS[m[1]][0], def: m[2] }];
  });
  // Switches are off unless given; some defaults are words, with no value to pass.
  const literal = shown.filter(({ value, def }) =>
    value !== "" && !/^(off|loopback names)$/.test(def)
  );
  assert.ok(literal.length >= 35, `only ${literal.length} flags checked`);
  for (const { name, def } of literal) {
    assert.deepEqual(parseFlags([`--${name}`, def]), none, `--${name} ${def}`);
  }
  assert.ok(
    shown.some(({ name, def }) => name === "max-fds" && def === "auto"),
    "--max-fds shows auto",
  );
  // --hsts alone: the max-age its help names.
  const hsts = /max-age (\S+), or TIME/.exec(helpText());
  assert.ok(hsts, "--hsts names its max-age");
  assert.equal(
    parseFlags(["--tls", "self-signed", "--hsts"]).app.hstsMaxAgeS,
    parseDuration(hsts[1], "hsts") / 1000,
  );
});

Deno.test("formatSize() and formatDuration() write the largest unit that divides, and parse back", () => {
  const sizes: [number, string][] = [
    [0, "0"],
    [500, "500"],
    [1024, "1k"],
    [16 * 1024, "16k"],
    [1024 ** 2, "1m"],
    [1536 * 1024 ** 2, "1536m"],
    [4 * 1024 ** 3, "4g"],
    [1024 ** 3 + 1, String(1024 ** 3 + 1)],
  ];
  for (const [bytes, text] of sizes) {
    assert.equal(formatSize(bytes), text);
    assert.equal(parseSize(text, "x"), bytes);
  }
  const times: [number, string][] = [
    [0, "0"],
    [200, "200ms"],
    [1500, "1500ms"],
    [10_000, "10s"],
    [5 * 60_000, "5m"],
    [3_600_000, "1h"],
    [365 * 86_400_000, "365d"],
  ];
  for (const [ms, text] of times) {
    assert.equal(formatDuration(ms), text);
    assert.equal(parseDuration(text, "x"), ms);
  }
});

Deno.test("parseFlags() collects repeated --auth, --auth-file and --auth-paths rules", () => {
  const o = parseFlags([
    "--auth",
    "alice:pw:with:colons",
    "--auth=bob:x",
    "--auth-file",
    "users.txt",
    "--auth-paths",
    "write:/, /private/",
  ]);
  assert.deepEqual(o.auth, {
    pairs: ["alice:pw:with:colons", "bob:x"],
    file: "users.txt",
    rules: [
      { prefix: "/", writeOnly: true },
      { prefix: "/private/", writeOnly: false },
    ],
  });
  assert.deepEqual(parseFlags(["--auth-file", "u"]).auth?.rules, [
    { prefix: "/", writeOnly: false },
  ]);
  assert.equal(parseFlags([]).auth, undefined);
});

Deno.test("parseFlags() refuses passwords over plain HTTP on a non-loopback address, saying why", () => {
  for (const host of ["0.0.0.0", "::", "192.168.1.10", "example.com"]) {
    assert.throws(
      () => parseFlags(["--auth", "a:b", "--host", host]),
      (err: unknown) => {
        assert.ok(err instanceof UsageError);
        assert.match(
          err.message,
          /would send passwords across the network in clear text/,
        );
        assert.match(err.message, /--cert/);
        assert.match(err.message, /--auth-insecure/);
        assert.ok(!err.message.includes("a:b"));
        return true;
      },
      host,
    );
  }
  // Loopback, TLS, or an explicit --auth-insecure: allowed.
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) {
    assert.ok(parseFlags(["--auth", "a:b", "--host", host]).auth, host);
  }
  assert.ok(
    parseFlags([
      "--auth-file",
      "u",
      "--host",
      "0.0.0.0",
      "--cert",
      "c.pem",
      "--key",
      "k.pem",
    ]).auth,
  );
  assert.ok(
    parseFlags(["--auth", "a:b", "--host", "0.0.0.0", "--auth-insecure"]).auth,
  );
  // Without passwords, a public address needs nothing.
  assert.equal(parseFlags(["--host", "0.0.0.0"]).auth, undefined);
});

Deno.test("parseFlags() maps --upload-files[=PATH], --upload-files-max, --upload-files-quota and --overwrite", () => {
  assert.equal(parseFlags([]).app.uploadFiles, undefined);
  const whole = parseFlags(["--upload-files"]);
  assert.deepEqual(whole.app.uploadFiles, {
    path: "/",
    quotaBytes: 10 * 1024 ** 3,
    overwrite: false,
  });
  assert.equal(whole.server.limits.maxFormBytes, 1024 ** 3);
  for (const value of ["inbox", "/inbox", "/inbox/", "inbox/"]) {
    assert.equal(
      parseFlags([`--upload-files=${value}`]).app.uploadFiles?.path,
      "/inbox/",
      value,
    );
  }
  assert.equal(
    parseFlags(["--upload-files=photos/2026"]).app.uploadFiles?.path,
    "/photos/2026/",
  );
  const o = parseFlags([
    "--upload-files",
    "--upload-files-max",
    "4g",
    "--upload-files-quota=0",
    "--overwrite",
  ]);
  assert.equal(o.server.limits.maxFormBytes, 4 * 1024 ** 3);
  assert.equal(o.app.uploadFiles?.quotaBytes, 0);
  assert.equal(o.app.uploadFiles?.overwrite, true);
  // The value comes only after "=": a port or a folder after it stays what it was.
  const p = parseFlags(["--upload-files", "9000"]);
  assert.equal(p.server.port, 9000);
  assert.equal(p.app.uploadFiles?.path, "/");
});

Deno.test("parseFlags() refuses an --upload-files PATH that is not a plain folder of the root, and --overwrite alone", () => {
  for (
    const bad of [
      "../up",
      "/a/../b",
      "/.git",
      "a/.ssh/keys",
      "a//b",
      "%2e%2e",
      "a\\b",
      "a\x00b",
    ]
  ) {
    assert.throws(
      () => parseFlags([`--upload-files=${bad}`]),
      (err: unknown) =>
        err instanceof UsageError &&
        /--upload-files: .* is not a folder of the root/.test(err.message),
      bad,
    );
  }
  assert.throws(
    () => parseFlags(["--overwrite"]),
    /--overwrite needs --upload-files/,
  );
  assert.throws(() => parseFlags(["--upload-files-max", "lots"]), UsageError);
});

Deno.test("README's flag table names flags that exist, with the defaults --help shows", async () => {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const help = new Map(
    helpText().split("\n").flatMap((line) => {
      const m = /^ {2}--([a-z0-9-]+).* \[([^\]]+)\]$/.exec(line);
      return m === null ? [] : [[m[1], m[2]] as const];
    }),
  );
  // "| `--max-body SIZE` | `1m` | largest request body |"
  const rows = readme.split("\n").flatMap((line) => {
    const m = /^\| `--([a-z0-9-]+)(?:[^|\\]|\\.)*\| *(?:`([^`]*)` *|[^|]*)\|/
      .exec(line);
    return m === null ? [] : [{ name: m[1], def: m[2] }];
  });
  assert.ok(rows.length >= 60, `only ${rows.length} rows read`);
  let compared = 0;
  for (const { name, def } of rows) {
    assert.ok(name in FLAGS, `README names --${name}, which is no flag`);
    if (def === undefined) continue; // a word such as "off", or none
    assert.equal(def, help.get(name), `README's default for --${name}`);
    compared++;
  }
  assert.ok(compared >= 35, `only ${compared} defaults compared`);
});

Deno.test("README's limit tables show DEFAULT_LIMITS' values", async () => {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const UNITS: Record<string, number> = {
    "": 1,
    "B/s": 1,
    KiB: 1024,
    "KiB/s": 1024,
    MiB: 1024 ** 2,
    GiB: 1024 ** 3,
    ms: 1,
    s: 1000,
  };
  let compared = 0;
  for (const line of readme.split("\n")) {
    // "| `maxHeadBytes` | 16 KiB | `431 ...` |"; "4096 + 1024" and the
    // like name two limits at once and are left to a reader.
    const m = /^\| `([a-zA-Z0-9]+)` +\| ([\d.]+)(?: ([A-Za-z/]+))? +\|/
      .exec(line);
    if (m === null || !(m[1] in DEFAULT_LIMITS)) continue;
    const unit = UNITS[m[3] ?? ""];
    assert.ok(unit !== undefined, `${m[1]}: unit ${m[3]}`);
    assert.equal(
      Number(m[2]) * unit,
      DEFAULT_LIMITS[m[1] as keyof typeof DEFAULT_LIMITS],
      `README's default for ${m[1]}`,
    );
    compared++;
  }
  assert.ok(compared >= 35, `only ${compared} limits compared`);
});
