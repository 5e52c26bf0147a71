/**
 * HTTPS as a user runs it: a real main.ts process with --tls self-signed,
 * --tls-save, --redirect-http and --hsts, checked with curl and openssl;
 * and --cert/--key reread on SIGHUP or on change while connections stay up.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { listeningInodes } from "../bench/stats.ts";
import { makeSelfSigned, type PemPair } from "../lib/self_signed.ts";
import { tlsConnect } from "./helpers/cert.ts";
import {
  get,
  hasTool,
  ReplyReader,
  run,
  send,
  sleep,
  withTimeout,
} from "./helpers/socket.ts";
import { freePort } from "../deploy/procs.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const tools = await hasTool("curl") && await hasTool("openssl", "version");
if (!tools) console.log("https_main_test: needs curl and openssl");

/** One JSON log record main printed. */
interface LogLine {
  readonly message: string;
  readonly properties: Record<string, unknown>;
}

/** A main.ts process and the log lines it printed so far. */
interface Main extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly lines: LogLine[];
  /** Resolves with the first line (seen or to come) that `match` accepts. */
  line(match: (l: LogLine) => boolean, what: string): Promise<LogLine>;
  /** The HTTPS port, from the listening line. */
  readonly port: number;
}

/** `deno run main.ts --port 0 ...args` with what the HTTPS flags need. */
function mainCommand(
  args: string[],
  stderr: "inherit" | "piped" = "piped",
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "--allow-sys=networkInterfaces",
      MAIN,
      ...["--port", "0", ...args],
    ],
    stdin: "null",
    stdout: "piped",
    stderr,
    env: { NO_COLOR: "1" },
  });
}

async function startMain(args: string[]): Promise<Main> {
  const child = mainCommand(
    ["--quiet", "--log-format", "json", ...args],
    "inherit",
  ).spawn();
  const lines: LogLine[] = [];
  let wake = () => {};
  const reading = (async () => {
    let rest = "";
    for await (
      const text of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      rest += text;
      for (let nl; (nl = rest.indexOf("\n")) !== -1;) {
        lines.push(JSON.parse(rest.slice(0, nl)));
        rest = rest.slice(nl + 1);
      }
      wake();
    }
  })();
  const line = async (match: (l: LogLine) => boolean, what: string) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const found = lines.find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `no log line: ${what}\n${lines.map((l) => l.message).join("\n")}`,
        );
      }
      await withTimeout(
        new Promise<void>((r) => wake = r),
        20_000,
        what,
      ).catch(() => {});
    }
  };
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await child.status;
    await reading;
  };
  try {
    const listening = await line(
      (l) => l.properties.event === "listening",
      "listening",
    );
    return {
      child,
      lines,
      line,
      port: listening.properties.port as number,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The SHA-256 fingerprint and ALPN protocol a new handshake gets, from openssl. */
async function handshake(
  port: number,
): Promise<{ fingerprint: string; alpn: string }> {
  const out = await run("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-alpn",
    "h2,http/1.1",
  ], 10_000);
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/
    .exec(
      out.stdout,
    );
  assert.ok(pem, out.stdout + out.stderr);
  return {
    fingerprint: new X509Certificate(pem[0]).fingerprint256,
    alpn: /ALPN protocol: (\S+)/.exec(out.stdout)?.[1] ?? "none",
  };
}

function fingerprintOf(pair: PemPair): string {
  return new X509Certificate(pair.cert).fingerprint256;
}

/** Two pairs for localhost, `a` in `cert` and `key` of a fresh folder. */
interface TwoPairs extends AsyncDisposable {
  readonly tmp: string;
  readonly a: PemPair;
  readonly b: PemPair;
  readonly cert: string;
  readonly key: string;
  /** main's flags: its folders in `tmp`, then `--cert` and `--key`. */
  readonly args: string[];
}

async function twoPairs(): Promise<TwoPairs> {
  const tmp = await Deno.makeTempDir();
  const names = { dns: ["localhost"], ips: ["127.0.0.1"] };
  const [a, b] = await Promise.all([
    makeSelfSigned(names),
    makeSelfSigned(names),
  ]);
  const cert = join(tmp, "cert.pem");
  const key = join(tmp, "key.pem");
  await Deno.writeTextFile(cert, a.cert);
  await Deno.writeTextFile(key, a.key);
  return {
    tmp,
    a,
    b,
    cert,
    key,
    args: [
      ...["--root", tmp, "--uploads", join(tmp, "uploads")],
      ...["--cert", cert, "--key", key],
    ],
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }),
  };
}

/** Waits for main's line saying it now presents `pair`. */
function presents(main: Main, pair: PemPair): Promise<LogLine> {
  return main.line(
    (l) =>
      l.properties.event === "certificate" &&
      l.properties.fingerprint === fingerprintOf(pair),
    "the new certificate",
  );
}

Deno.test({
  name:
    "main --tls self-signed --tls-save: the printed fingerprint is served with ALPN h2, curl --cacert trusts it over HTTP/2, --redirect-http answers 308, HSTS only over HTTPS, and a restart reuses it",
  ignore: !tools,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    const save = join(tmp, "tls");
    const args = [
      "--root",
      tmp,
      "--uploads",
      join(tmp, "uploads"),
      "--tls",
      "self-signed",
      "--tls-save",
      save,
      "--redirect-http",
      "0",
      "--hsts=600",
    ];
    try {
      let fingerprint: string;
      {
        await using main = await startMain(args);
        const cert = await main.line(
          (l) => l.properties.event === "certificate",
          "certificate",
        );
        fingerprint = cert.properties.fingerprint as string;
        assert.match(
          cert.message,
          /Self-signed certificate for localhost, 127\.0\.0\.1, ::1/,
        );
        assert.match(cert.message, /saved in/);
        assert.deepEqual(await handshake(main.port), {
          fingerprint,
          alpn: "h2",
        });
        const https = await run("curl", [
          "-si",
          "--cacert",
          join(save, "cert.pem"),
          `https://localhost:${main.port}/health`,
        ]);
        assert.equal(https.code, 0, https.stderr);
        assert.match(https.stdout, /^HTTP\/2 200 /, "curl takes h2 by ALPN");
        assert.match(https.stdout, /strict-transport-security: max-age=600/i);
        const insecure = await run("curl", [
          "-sk",
          `https://127.0.0.1:${main.port}/health`,
        ]);
        assert.equal(insecure.stdout.trim(), '{"status":"ok"}');

        const redirecting = await main.line(
          (l) => l.properties.event === "redirecting",
          "redirecting",
        );
        const plainPort = redirecting.properties.port as number;
        const plain = await run("curl", [
          "-si",
          "-X",
          "POST",
          `http://127.0.0.1:${plainPort}/upload?x=1`,
        ]);
        assert.match(plain.stdout, /^HTTP\/1\.1 308 /);
        assert.match(
          plain.stdout,
          new RegExp(
            `location: https://127\\.0\\.0\\.1:${main.port}/upload\\?x=1\\r\\n`,
            "i",
          ),
        );
        assert.doesNotMatch(plain.stdout, /strict-transport-security/i);
        // curl follows it to HTTPS (and keeps POST: 308).
        const followed = await run("curl", [
          "-sL",
          "--cacert",
          join(save, "cert.pem"),
          `http://localhost:${plainPort}/health`,
        ]);
        assert.equal(
          followed.stdout.trim(),
          '{"status":"ok"}',
          followed.stderr,
        );
      }
      await using again = await startMain(args);
      const cert = await again.line(
        (l) => l.properties.event === "certificate",
        "certificate",
      );
      assert.equal(cert.properties.fingerprint, fingerprint);
      assert.match(cert.message, /\(from /);
      assert.equal((await handshake(again.port)).fingerprint, fingerprint);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** node's transport needs the descriptor limit known: --max-fds gives it. */
const TRANSPORTS: [name: string, args: string[]][] = [
  ["Deno's socket", []],
  ["node's socket", ["--max-fds", "4096"]],
];

for (const [transport, extra] of TRANSPORTS) {
  Deno.test({
    name:
      `main rereads --cert and --key on SIGHUP (${transport}): new handshakes get the new pair, a request underway goes on, a kept-alive connection is closed cleanly, a bad pair is logged and the current one kept`,
    ignore: !tools,
    fn: async () => {
      await using pairs = await twoPairs();
      const { a, b, tmp } = pairs;
      // certbot's layout: live/ holds links, renewal points them at new
      // files. The links' targets never change, so only SIGHUP tells.
      const write = async (name: string, pair: PemPair) => {
        await Deno.writeTextFile(join(tmp, `${name}-cert.pem`), pair.cert);
        await Deno.writeTextFile(join(tmp, `${name}-key.pem`), pair.key);
      };
      const link = async (name: string) => {
        for (const part of ["cert", "key"]) {
          const tmpLink = join(tmp, `${part}.pem.new`);
          await Deno.symlink(join(tmp, `${name}-${part}.pem`), tmpLink);
          await Deno.rename(tmpLink, join(tmp, `${part}.pem`));
        }
      };
      await write("a", a);
      await write("b", b);
      await write("bad", { cert: b.cert, key: a.key });
      await link("a");
      await using main = await startMain([...pairs.args, ...extra]);
      assert.equal(
        (await handshake(main.port)).fingerprint,
        fingerprintOf(a),
      );
      // SIGHUP starts a fresh engine and drains this one: a request
      // underway is answered; an idle kept-alive connection is closed once
      // idle for a second, cleanly, for its client to reconnect.
      using kept = await tlsConnect(main.port, a.cert);
      const reader = new ReplyReader(kept);
      await send(kept, get("/health"));
      assert.equal((await reader.readReply()).status, 200);
      using midway = await tlsConnect(main.port, a.cert);
      const request = get("/health");
      await send(midway, request.slice(0, -2)); // all but the blank line

      await link("b");
      main.child.kill("SIGHUP");
      await presents(main, b);
      await main.line((l) => l.properties.event === "reloaded", "reloaded");
      assert.equal(
        (await handshake(main.port)).fingerprint,
        fingerprintOf(b),
      );
      await send(midway, "\r\n");
      const reply = await new ReplyReader(midway).readReply();
      assert.equal(reply.status, 200, "the request underway");
      assert.equal(reply.headers.get("connection"), "close");
      assert.equal(await reader.closed(), true, "closed, with nothing sent");

      await link("bad");
      main.child.kill("SIGHUP");
      const kept2 = await main.line(
        (l) => /Kept the current certificate/.test(l.message),
        "the refusal",
      );
      assert.match(kept2.message, /does not belong to the certificate/);
      assert.equal(
        (await handshake(main.port)).fingerprint,
        fingerprintOf(b),
      );
    },
  });
}

Deno.test({
  name:
    "main rereads --cert and --key when they change on disk, without a signal",
  ignore: !tools,
  fn: async () => {
    await using pairs = await twoPairs();
    const { a, b } = pairs;
    await using main = await startMain(pairs.args);
    assert.equal((await handshake(main.port)).fingerprint, fingerprintOf(a));
    // Written in place, key then chain, as an editor or a script would.
    await Deno.writeTextFile(pairs.key, b.key);
    await Deno.writeTextFile(pairs.cert, b.cert);
    await presents(main, b);
    assert.equal((await handshake(main.port)).fingerprint, fingerprintOf(b));
  },
});

/**
 * The fingerprints 8 handshakes saw; the kernel spreads them over the engines
 * (reusePort). These run while a SIGHUP swaps the workers: a connect queued on
 * an old worker's listener as it closes is reset by the kernel (README,
 * "Clients that open a connection per request"; this machine has no
 * `tcp_migrate_req`), so a handshake that got no certificate is tried again,
 * twice at most. What is checked here is the pair each engine presents.
 */
async function seen(port: number): Promise<Set<string>> {
  const once = async () => {
    for (let attempt = 1;; attempt++) {
      try {
        return (await handshake(port)).fingerprint;
      } catch (err) {
        if (attempt === 3) throw err;
      }
    }
  };
  return new Set(await Promise.all(Array.from({ length: 8 }, once)));
}

/** Puts `pair` in place of the files by renames, as certbot does, and sends SIGHUP. */
async function renameInAndSighup(
  pairs: TwoPairs,
  main: Main,
  pair: PemPair,
): Promise<void> {
  // The watcher may see the renames too; either reloads once.
  await Deno.writeTextFile(join(pairs.tmp, "cert.new"), pair.cert);
  await Deno.writeTextFile(join(pairs.tmp, "key.new"), pair.key);
  await Deno.rename(join(pairs.tmp, "key.new"), pairs.key);
  await Deno.rename(join(pairs.tmp, "cert.new"), pairs.cert);
  main.child.kill("SIGHUP");
}

/** Resolves once `count` sockets listen on `port`: every engine is up (reusePort). */
async function enginesUp(port: number, count: number): Promise<void> {
  // Deno reads /proc/net only with --allow-all; cat may.
  const until = Date.now() + 30_000; // a busy machine starts a worker slowly
  for (;;) {
    const { stdout } = await run("cat", ["/proc/net/tcp", "/proc/net/tcp6"]);
    const listening = listeningInodes(stdout, port).length;
    if (listening === count) return;
    if (Date.now() > until) {
      throw new Error(`${listening} engines of ${count} listen on ${port}`);
    }
    await sleep(50);
  }
}

/** Waits (20 s at most) until handshakes see `pair` alone. */
async function allPresent(main: Main, pair: PemPair): Promise<void> {
  // The worker gets the pair by message, a moment after the main thread.
  const deadline = Date.now() + 20_000;
  let now = await seen(main.port);
  while (now.size !== 1 || !now.has(fingerprintOf(pair))) {
    if (Date.now() > deadline) break;
    now = await seen(main.port);
  }
  assert.deepEqual(now, new Set([fingerprintOf(pair)]));
}

Deno.test({
  name:
    "main --workers 2 over HTTPS: every engine presents the pair, and the new one after SIGHUP",
  ignore: !tools,
  fn: async () => {
    await using pairs = await twoPairs();
    const { a, b } = pairs;
    await using main = await startMain([...pairs.args, "--workers", "2"]);
    await enginesUp(main.port, 2);
    assert.deepEqual(await seen(main.port), new Set([fingerprintOf(a)]));
    await renameInAndSighup(pairs, main, b);
    await presents(main, b);
    // Once reloaded, only fresh workers listen, each started with the pair
    // the main thread read before it started them.
    await main.line((l) => l.properties.event === "reloaded", "reloaded");
    await allPresent(main, b);
  },
});

Deno.test({
  name:
    "main --workers 2 over HTTPS: a SIGHUP while the workers are still starting reaches them too",
  ignore: !tools,
  fn: async () => {
    await using pairs = await twoPairs();
    // At once after the listening line: the worker engine is still starting.
    await using main = await startMain([...pairs.args, "--workers", "2"]);
    await renameInAndSighup(pairs, main, pairs.b);
    await presents(main, pairs.b);
    await enginesUp(main.port, 2);
    await allPresent(main, pairs.b);
  },
});

Deno.test("main exits 1, saying why, when the --redirect-http port is taken", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const out = await mainCommand([
    "--tls",
    "self-signed",
    "--redirect-http",
    String(taken.addr.port),
  ]).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 1, text);
  assert.match(
    text,
    new RegExp(
      `redirect-http listener: port ${taken.addr.port} is already in use`,
    ),
  );
});

/** `n` plain requests to `--redirect-http`'s port, each on its own connection: each Location. */
async function redirects(port: number, n = 8): Promise<string[]> {
  return await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const res = await fetch(`http://127.0.0.1:${port}/p${i}?q=1`, {
        redirect: "manual",
        headers: { connection: "close" },
      });
      await res.body?.cancel();
      assert.equal(res.status, 308);
      return res.headers.get("location") ?? "";
    }),
  );
}

Deno.test({
  name:
    "main --workers 2 --redirect-http: every worker answers 308, a SIGHUP hands the port over, and so does an upgrade (--takeover)",
  ignore: !tools,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    try {
      const plainPort = freePort();
      const args = [
        ...["--root", tmp, "--uploads", join(tmp, "uploads")],
        ...["--tls", "self-signed", "--tls-save", join(tmp, "tls")],
        ...["--redirect-http", String(plainPort), "--workers", "2"],
      ];
      const expected = (port: number) =>
        Array.from(
          { length: 8 },
          (_, i) => `https://127.0.0.1:${port}/p${i}?q=1`,
        );
      const first = await startMain(args);
      const port = first.port;
      try {
        const said = await first.line(
          (l) => l.properties.event === "redirecting",
          "redirecting",
        );
        assert.equal(said.properties.port, plainPort);
        assert.deepEqual(await redirects(plainPort), expected(port));

        first.child.kill("SIGHUP");
        await first.line((l) => l.properties.event === "reloaded", "reloaded");
        assert.deepEqual(await redirects(plainPort), expected(port));

        // An upgrade: a second Spindle binds both ports beside the first,
        // which then stops; the second answers on both.
        await using second = await startMain([
          ...args,
          ...["--port", String(port), "--takeover"],
        ]);
        assert.equal(second.port, port);
        await first[Symbol.asyncDispose]();
        assert.equal((await first.child.status).code, 0);
        assert.deepEqual(await redirects(plainPort), expected(port));
        const https = await run("curl", [
          "-s",
          "--cacert",
          join(tmp, "tls", "cert.pem"),
          `https://localhost:${port}/health`,
        ]);
        assert.equal(https.stdout.trim(), '{"status":"ok"}', https.stderr);
      } finally {
        await first[Symbol.asyncDispose]();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "main --tls self-signed --tls-save rereads the folder on SIGHUP: a pair gone from it is made anew, saved and presented",
  ignore: !tools,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    try {
      const save = join(tmp, "tls");
      await using main = await startMain([
        ...["--root", tmp, "--uploads", join(tmp, "uploads")],
        ...["--tls", "self-signed", "--tls-save", save],
      ]);
      const first = (await main.line(
        (l) => l.properties.event === "certificate",
        "certificate",
      )).properties.fingerprint;
      assert.equal((await handshake(main.port)).fingerprint, first);
      await Deno.remove(join(save, "cert.pem"));
      await Deno.remove(join(save, "key.pem"));
      main.child.kill("SIGHUP");
      const next = (await main.line(
        (l) =>
          l.properties.event === "certificate" &&
          l.properties.fingerprint !== first,
        "a new certificate",
      )).properties.fingerprint;
      const saved = await Deno.readTextFile(join(save, "cert.pem"));
      assert.equal(new X509Certificate(saved).fingerprint256, next);
      await main.line((l) => l.properties.event === "reloaded", "reloaded");
      assert.equal((await handshake(main.port)).fingerprint, next);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
