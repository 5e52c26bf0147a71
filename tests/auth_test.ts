/**
 * HTTP Basic authentication over real sockets: the challenge and its
 * bodies, wrong, missing, malformed and non-UTF-8 credentials, failures
 * counted per client (429), the cache of good answers, the cap on checks
 * running at once (503), path and method rules, and the user name in the
 * access line with no password anywhere in the log.
 */
import assert from "node:assert/strict";
import type { AppAuth, AuthRule } from "../lib/app/settings.ts";
import {
  Credentials,
  hashPassword,
  parsePasswordHash,
  type PasswordHash,
} from "../lib/app/credentials.ts";
import {
  type AuthOptions,
  basicAuth,
  compileAuthRules,
  needsAuth,
} from "../lib/app/middleware/auth.ts";
import { text } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import { AccessLog, setAccessLog } from "../lib/http/access_log.ts";
import { serve } from "../lib/http/server.ts";
import { startApp } from "./fixtures/app_server.ts";
import { captureLogs } from "./fixtures/engine_log.ts";
import {
  connect,
  decoder,
  readReply,
  send,
  waitFor,
} from "./helpers/socket.ts";

const CHALLENGE = 'Basic realm="spindle", charset="UTF-8"';
const basic = (pair: string) => `Basic ${btoa(pair)}`;
/** Basic for any bytes, UTF-8 or not. */
const basicBytes = (bytes: Uint8Array) => `Basic ${bytes.toBase64()}`;

async function credentialsOf(
  pairs: Record<string, string>,
): Promise<Credentials> {
  const users = new Map<string, PasswordHash>();
  for (const [user, password] of Object.entries(pairs)) {
    users.set(user, parsePasswordHash(await hashPassword(password, 1000), 0));
  }
  return new Credentials(users);
}

/** Credentials that count their checks and may hold them until released. */
class StubCredentials implements Pick<Credentials, "verify"> {
  checks = 0;
  running = 0;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;

  /** Checks wait from now until release(). */
  hold(): void {
    this.#gate = new Promise((r) => this.#open = r);
  }
  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  async verify(user: Uint8Array, password: Uint8Array) {
    this.checks++;
    this.running++;
    try {
      await this.#gate;
      const pair = `${decoder.decode(user)}:${decoder.decode(password)}`;
      return pair === "alice:right" ? "alice" : undefined;
    } finally {
      this.running--;
    }
  }
}

const LIMITS = {
  maxFailures: 3,
  failureWindowMs: 60_000,
  maxChecks: 2,
  maxCheckQueue: 8,
};

/** A router behind basicAuth on a real server; every path answers "ok". */
function authServer(
  credentials: AppAuth["credentials"],
  options: Partial<AuthOptions> = {},
) {
  const router = new Router()
    .use(basicAuth({ credentials, ...LIMITS, ...options }))
    .all("/{*rest}", () => text("ok"))
    .get("/api", () => text("ok"), { jsonErrors: true });
  const server = serve({ port: 0, accessLog: false }, router.handler());
  return {
    server,
    url: (path = "/") => `http://127.0.0.1:${server.port}${path}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function status(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<number> {
  const res = await fetch(url, { headers, method });
  await res.body?.cancel();
  return res.status;
}

Deno.test("basicAuth() answers 401 with the Basic challenge, HTML for browsers and JSON for API clients", async () => {
  await using s = authServer(await credentialsOf({ alice: "right" }));
  const page = await fetch(s.url("/x"), { headers: { accept: "text/html" } });
  assert.equal(page.status, 401);
  assert.equal(page.headers.get("www-authenticate"), CHALLENGE);
  assert.equal(page.headers.get("cache-control"), "no-store");
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(await page.text(), /<h1>401 Unauthorized<\/h1>/);
  const api = await fetch(s.url("/x"), {
    headers: { accept: "application/json" },
  });
  assert.equal(api.headers.get("www-authenticate"), CHALLENGE);
  assert.deepEqual(await api.json(), {
    error: "A user name and password are needed",
    status: 401,
  });
  // A JSON route answers JSON even to a client that names no type.
  const route = await fetch(s.url("/api"));
  assert.equal(route.status, 401);
  assert.equal(route.headers.get("www-authenticate"), CHALLENGE);
  assert.equal((await route.json()).status, 401);
});

Deno.test("basicAuth() lets the right password in and refuses wrong, unknown and other-scheme credentials with 401", async () => {
  await using s = authServer(
    await credentialsOf({ alice: "right", "zoë": "pässword" }),
    {
      maxFailures: 100,
    },
  );
  const ok = await fetch(s.url("/x"), {
    headers: { authorization: basic("alice:right") },
  });
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "ok");
  const utf8 = new TextEncoder().encode("zoë:pässword");
  assert.equal(await status(s.url(), { authorization: basicBytes(utf8) }), 200);
  const refused: [string, string][] = [
    ["wrong password", basic("alice:wrong")],
    ["unknown user", basic("mallory:right")],
    ["empty password", basic("alice:")],
    [
      "Latin-1 (not UTF-8) credentials",
      basicBytes(Uint8Array.from("zo\xeb:p\xe4ssword", (c) => c.charCodeAt(0))),
    ],
    ["a Bearer token", "Bearer abc"],
  ];
  for (const [what, authorization] of refused) {
    const res = await fetch(s.url("/x"), { headers: { authorization } });
    assert.equal(res.status, 401, what);
    assert.equal(res.headers.get("www-authenticate"), CHALLENGE, what);
    await res.body?.cancel();
  }
});

Deno.test("basicAuth() answers 400, with no challenge, for malformed credentials", async () => {
  const creds = new StubCredentials();
  await using s = authServer(creds);
  const malformed = [
    "Basic",
    "Basic !!!!",
    "Basic YWxpY2U", // unpadded
    basic("alice"), // no colon
    basic("alice:a\x00b"), // a control character (RFC 7617 §2)
  ];
  for (const authorization of malformed) {
    const res = await fetch(s.url("/x"), { headers: { authorization } });
    assert.equal(res.status, 400, authorization);
    assert.equal(res.headers.get("www-authenticate"), null);
    assert.match(await res.text(), /Malformed Basic credentials/);
  }
  // Two Authorization fields are one malformed value, never a pick of one.
  using conn = await connect(s.server.port);
  await send(
    conn,
    `GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: ${
      basic("alice:right")
    }\r\nAuthorization: ${basic("alice:right")}\r\n\r\n`,
  );
  assert.equal((await readReply(conn)).status, 400);
  assert.equal(creds.checks, 0, "no KDF for what cannot be a password");
});

Deno.test("basicAuth() answers 429 with Retry-After past maxFailures, with no check run, until the window passes", async () => {
  let now = 1_000_000;
  const creds = new StubCredentials();
  await using s = authServer(creds, { now: () => now });
  for (let i = 0; i < 3; i++) {
    assert.equal(
      await status(s.url(), { authorization: basic(`alice:guess${i}`) }),
      401,
    );
  }
  const res = await fetch(s.url(), {
    headers: { authorization: basic("alice:right") },
  });
  assert.equal(res.status, 429);
  assert.ok(Number(res.headers.get("retry-after")) >= 1);
  assert.match(await res.text(), /Too many failed sign-ins/);
  assert.equal(creds.checks, 3);
  // No credentials and cached good ones are not failures: still 401 / no check.
  assert.equal(await status(s.url()), 401);
  now += 120_000; // two windows later
  assert.equal(
    await status(s.url(), { authorization: basic("alice:right") }),
    200,
  );
  assert.equal(creds.checks, 4);
});

Deno.test("basicAuth() counts parallel guesses before they are checked: a burst cannot pass the limit", async () => {
  const creds = new StubCredentials();
  await using s = authServer(creds, { maxChecks: 20, maxCheckQueue: 20 });
  creds.hold();
  const burst = Array.from(
    { length: 12 },
    (_, i) => status(s.url(), { authorization: basic(`alice:guess${i}`) }),
  );
  await waitFor(() => creds.running === 3, "three checks running");
  creds.release();
  const statuses = await Promise.all(burst);
  assert.equal(statuses.filter((x) => x === 401).length, 3);
  assert.equal(statuses.filter((x) => x === 429).length, 9);
  assert.equal(creds.checks, 3);
});

Deno.test("basicAuth() forgives a good sign-in: the right password never uses up the failure budget", async () => {
  const creds = new StubCredentials();
  await using s = authServer(creds, { cacheMs: 0 });
  for (let i = 0; i < 10; i++) {
    assert.equal(
      await status(s.url(), { authorization: basic("alice:right") }),
      200,
    );
  }
  assert.equal(creds.checks, 10, "cacheMs 0: each request checked");
  assert.equal(
    await status(s.url(), { authorization: basic("alice:wrong") }),
    401,
  );
});

Deno.test("basicAuth() checks a good Authorization value once per cacheMs, and parallel requests share one check", async () => {
  let now = 5_000_000;
  const creds = new StubCredentials();
  await using s = authServer(creds, { now: () => now, cacheMs: 60_000 });
  const good = { authorization: basic("alice:right") };
  creds.hold();
  const parallel = Array.from({ length: 6 }, () => status(s.url(), good));
  await waitFor(() => creds.running === 1, "one check running");
  creds.release();
  assert.deepEqual(await Promise.all(parallel), [200, 200, 200, 200, 200, 200]);
  for (let i = 0; i < 5; i++) assert.equal(await status(s.url(), good), 200);
  assert.equal(creds.checks, 1);
  // The same user with another spelling of the value is checked afresh.
  assert.equal(
    await status(s.url(), { authorization: `basic ${btoa("alice:right")}` }),
    200,
  );
  assert.equal(creds.checks, 2);
  now += 60_001;
  assert.equal(await status(s.url(), good), 200);
  assert.equal(creds.checks, 3);
  // A wrong value is never cached: each try is checked (and counted).
  assert.equal(
    await status(s.url(), { authorization: basic("alice:no") }),
    401,
  );
  assert.equal(
    await status(s.url(), { authorization: basic("alice:no") }),
    401,
  );
  assert.equal(creds.checks, 5);
});

Deno.test("basicAuth() answers 503 with Retry-After when maxChecks run and maxCheckQueue wait", async () => {
  const creds = new StubCredentials();
  await using s = authServer(creds, {
    maxChecks: 1,
    maxCheckQueue: 1,
    maxFailures: 100,
  });
  creds.hold();
  const first = status(s.url(), { authorization: basic("alice:a") });
  await waitFor(() => creds.running === 1, "one check running");
  // One of these two waits in the queue, the other finds it full.
  const next = [basic("alice:b"), basic("alice:c")].map((authorization) =>
    fetch(s.url(), { headers: { authorization } })
  );
  const refused = await Promise.race(next);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  await refused.body?.cancel();
  assert.equal(creds.checks, 1);
  creds.release();
  const all = await Promise.all(next);
  for (const res of all) await res.body?.cancel();
  assert.deepEqual(all.map((r) => r.status).sort(), [401, 503]);
  assert.equal(await first, 401);
  assert.equal(
    await status(s.url(), { authorization: basic("alice:right") }),
    200,
  );
});

const rules = (text: string): AuthRule[] =>
  text.split(",").map((e) => ({
    prefix: e.replace(/^write:/, ""),
    writeOnly: e.startsWith("write:"),
  }));

const scopes: [string, string, string, boolean][] = [
  ["/", "GET", "/anything", true],
  ["/private/", "GET", "/private", true],
  ["/private/", "GET", "/private/", true],
  ["/private/", "GET", "/private/a/b.txt", true],
  ["/private/", "GET", "/PRIVATE/a.txt", true], // case-insensitive file systems
  ["/private/", "GET", "/Private/a.txt", true],
  ["/privé", "GET", "/prive\u0301/a", true], // NFD spelling of the same name
  ["/private/", "GET", "/privateer", false],
  ["/private/", "GET", "/", false],
  ["/private", "GET", "/public/private", false],
  ["write:/", "GET", "/a", false],
  ["write:/", "HEAD", "/a", false],
  ["write:/", "OPTIONS", "/a", false],
  ["write:/", "POST", "/upload", true],
  ["write:/", "PUT", "/a", true],
  ["write:/", "DELETE", "/a", true],
  ["write:/", "PROPPATCH", "/a", true], // anything not known safe
  ["write:/up,/admin/", "GET", "/admin/x", true],
  ["write:/up,/admin/", "GET", "/up/x", false],
  ["write:/up,/admin/", "POST", "/up/x", true],
];
for (const [ruleText, method, path, want] of scopes) {
  Deno.test(`needsAuth() with ${ruleText}: ${method} ${path} ${want ? "needs" : "does not need"} a password`, () => {
    const compiled = compileAuthRules(rules(ruleText));
    assert.equal(needsAuth(compiled, method, path), want);
  });
}

Deno.test("basicAuth() with write:/ lets reads and CORS preflights by and asks for a password to write", async () => {
  await using s = authServer(await credentialsOf({ alice: "right" }), {
    rules: rules("write:/"),
  });
  assert.equal(await status(s.url("/a")), 200);
  assert.equal(await status(s.url("/a"), {}, "POST"), 401);
  assert.equal(
    await status(s.url("/a"), { authorization: basic("alice:right") }, "POST"),
    200,
  );
  assert.equal(await status(s.url("/a"), {}, "DELETE"), 401);
  await using all = authServer(await credentialsOf({ alice: "right" }));
  assert.equal(await status(all.url("/a"), {}, "OPTIONS"), 401);
  const preflight = {
    origin: "https://app.test",
    "access-control-request-method": "POST",
  };
  assert.equal(await status(all.url("/a"), preflight, "OPTIONS"), 200);
});

Deno.test("basicAuth() with /private/ guards that folder by any spelling and leaves the rest open", async () => {
  await using s = authServer(await credentialsOf({ alice: "right" }), {
    rules: rules("/private/"),
  });
  assert.equal(await status(s.url("/")), 200);
  assert.equal(await status(s.url("/privateer")), 200);
  assert.equal(await status(s.url("/private")), 401);
  assert.equal(await status(s.url("/private/x")), 401);
  assert.equal(await status(s.url("/PRIVATE/x")), 401);
  assert.equal(await status(s.url("/%70rivate/x")), 401); // decoded before matching
  assert.equal(
    await status(s.url("/private/x"), { authorization: basic("alice:right") }),
    200,
  );
});

Deno.test("the default app with --auth: the access line shows the user name, never the password", async () => {
  await using logs = await captureLogs();
  const credentials = await credentialsOf({ alice: "s3cret-pw" });
  await using app = await startApp({
    app: { auth: { credentials, rules: rules("/") } },
    serve: { accessLog: true },
  });
  const authorization = basic("alice:s3cret-pw");
  assert.equal(await status(`${app.origin}/`, { authorization }), 200);
  assert.equal(
    await status(`${app.origin}/`, { authorization: basic("alice:nope") }),
    401,
  );
  assert.equal(await status(`${app.origin}/health`), 401);
  // Signed in, then refused by a later layer: the line still names the user.
  assert.equal(
    await status(`${app.origin}/missing.txt`, { authorization }),
    404,
  );
  await waitFor(() => logs.access().length === 4, "four access lines");
  const lines = logs.access();
  assert.deepEqual(lines.map((l) => [l.status, l.user]), [
    [200, "alice"],
    [401, null],
    [401, null],
    [404, "alice"],
  ]);
  const everything = JSON.stringify(lines) +
    logs.records.map((r) => JSON.stringify(r.properties) + r.message.join(""))
      .join("");
  for (
    const secret of [
      "s3cret-pw",
      "nope",
      btoa("alice:s3cret-pw"),
      btoa("alice:nope"),
    ]
  ) {
    assert.ok(!everything.includes(secret), `${secret} in the log`);
  }
});

Deno.test("the access line shows the user in the text and CLF formats", async () => {
  const credentials = await credentialsOf({ "zoë": "pw" });
  for (const format of ["text", "common"] as const) {
    let out = "";
    const log = new AccessLog({
      format,
      output: {
        writeSync(bytes) {
          out += decoder.decode(bytes);
          return bytes.length;
        },
      },
    });
    setAccessLog(log);
    try {
      const router = new Router()
        .use(basicAuth({ credentials, ...LIMITS }))
        .get("/", () => text("ok"));
      await using server = serve({ port: 0 }, router.handler());
      const utf8 = new TextEncoder().encode("zoë:pw");
      assert.equal(
        await status(`http://127.0.0.1:${server.port}/`, {
          authorization: basicBytes(utf8),
        }),
        200,
      );
      assert.equal(await status(`http://127.0.0.1:${server.port}/`), 401);
      await server.shutdown();
      log.flush();
      const [good, refused] = out.trim().split("\n");
      if (format === "text") {
        assert.match(
          good,
          /spindle\.access: 127\.0\.0\.1 zo\\xeb "GET \/ HTTP\/1\.1" 200 /,
        );
        assert.match(
          refused,
          /spindle\.access: 127\.0\.0\.1 "GET \/ HTTP\/1\.1" 401 /,
        );
      } else {
        assert.match(
          good,
          /^127\.0\.0\.1 - zo\\xeb \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 \d+$/,
        );
        assert.match(
          refused,
          /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 401 \d+$/,
        );
      }
    } finally {
      setAccessLog(undefined);
    }
  }
});
