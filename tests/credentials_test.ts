/**
 * Passwords: the hash format, verification in constant time with a dummy
 * run for unknown users, auth files refused line by line, and Basic
 * credentials read strictly. Real PBKDF2 where cost does not matter; a
 * counting KDF where a test needs to see what ran.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Credentials,
  CredentialsError,
  DEFAULT_ITERATIONS,
  hashPassword,
  type Kdf,
  loadCredentials,
  parseAuthFile,
  parseBasic,
  parsePasswordHash,
  type PasswordHash,
  pbkdf2Sha256,
  timingSafeEqual,
} from "../lib/app/credentials.ts";

const encoder = new TextEncoder();
/** Fast hashes for tests; files made by the tool use 600,000. */
const CHEAP = 1000;

async function credentialsOf(
  pairs: Record<string, string>,
  kdf?: Kdf,
): Promise<Credentials> {
  const users = new Map<string, PasswordHash>();
  for (const [user, password] of Object.entries(pairs)) {
    users.set(user, parsePasswordHash(await hashPassword(password, CHEAP), 0));
  }
  return new Credentials(users, kdf);
}

Deno.test("hashPassword() writes pbkdf2-sha256$iterations$salt$hash that parsePasswordHash() reads back", async () => {
  const line = await hashPassword("correct horse", CHEAP);
  assert.match(
    line,
    /^pbkdf2-sha256\$1000\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/,
  );
  const parsed = parsePasswordHash(line, 0);
  assert.equal(parsed.iterations, CHEAP);
  assert.equal(parsed.salt.length, 16);
  assert.deepEqual(
    await pbkdf2Sha256(encoder.encode("correct horse"), parsed.salt, CHEAP),
    parsed.hash,
  );
  // A fresh salt every time: equal passwords never give equal lines.
  assert.notEqual(await hashPassword("correct horse", CHEAP), line);
});

Deno.test("hashPassword() defaults to OWASP's 600,000 iterations", async () => {
  const line = await hashPassword("x");
  assert.equal(parsePasswordHash(line).iterations, DEFAULT_ITERATIONS);
  assert.equal(DEFAULT_ITERATIONS, 600_000);
});

const badHashes: [string, string, RegExp][] = [
  ["a plain password", "hunter2", /not a pbkdf2-sha256 hash/],
  [
    "another scheme",
    "$2y$10$abcdefghijklmnopqrstuu",
    /not a pbkdf2-sha256 hash/,
  ],
  [
    "too few iterations",
    "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$" + "A".repeat(43) + "=",
    /fewer than 100000/,
  ],
  [
    "a count that is not a number",
    "pbkdf2-sha256$1e6$AAAAAAAAAAAAAAAAAAAAAA==$" + "A".repeat(43) + "=",
    /iteration count/,
  ],
  [
    "a short salt",
    "pbkdf2-sha256$600000$AAAA$" + "A".repeat(43) + "=",
    /bad salt/,
  ],
  [
    "unpadded base64",
    "pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA$" + "A".repeat(43) + "=",
    /bad salt/,
  ],
  [
    "a short digest",
    "pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
    /bad digest/,
  ],
];
for (const [what, text, message] of badHashes) {
  Deno.test(`parsePasswordHash() refuses ${what}, without echoing it`, () => {
    assert.throws(() => parsePasswordHash(text), (err: unknown) => {
      assert.ok(err instanceof CredentialsError);
      assert.match(err.message, message);
      assert.ok(!err.message.includes("hunter2"));
      return true;
    });
  });
}

Deno.test("timingSafeEqual() compares whole arrays", () => {
  const a = Uint8Array.of(1, 2, 3);
  assert.equal(timingSafeEqual(a, Uint8Array.of(1, 2, 3)), true);
  assert.equal(timingSafeEqual(a, Uint8Array.of(1, 2, 4)), false);
  assert.equal(timingSafeEqual(a, Uint8Array.of(0, 2, 3)), false);
  assert.equal(timingSafeEqual(a, Uint8Array.of(1, 2)), false);
  assert.equal(timingSafeEqual(new Uint8Array(0), new Uint8Array(0)), true);
});

Deno.test("Credentials.verify() takes the right password and no other", async () => {
  const creds = await credentialsOf({ alice: "s3cret", "zoë": "pässword" });
  const check = (user: string, password: string) =>
    creds.verify(encoder.encode(user), encoder.encode(password));
  assert.equal(await check("alice", "s3cret"), "alice");
  assert.equal(await check("alice", "s3cret "), undefined);
  assert.equal(await check("alice", "S3cret"), undefined);
  assert.equal(await check("alice", ""), undefined);
  assert.equal(await check("Alice", "s3cret"), undefined);
  assert.equal(await check("bob", "s3cret"), undefined);
  assert.equal(await check("zoë", "pässword"), "zoë");
});

Deno.test("Credentials.verify() matches a user name and password typed in NFD (macOS) against NFC", async () => {
  const creds = await credentialsOf({ "zoë": "pässword" });
  const nfd = (s: string) => encoder.encode(s.normalize("NFD"));
  assert.notDeepEqual(nfd("zoë"), encoder.encode("zoë"));
  assert.equal(await creds.verify(nfd("zoë"), nfd("pässword")), "zoë");
});

Deno.test("Credentials.verify() never matches bytes that are not UTF-8 (Latin-1 from an old client)", async () => {
  const creds = await credentialsOf({ "zoë": "pässword" });
  const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  assert.equal(
    await creds.verify(latin1("zoë"), encoder.encode("pässword")),
    undefined,
  );
  assert.equal(
    await creds.verify(encoder.encode("zoë"), latin1("pässword")),
    undefined,
  );
});

Deno.test("Credentials.verify() runs the KDF once for an unknown user, at the users' highest cost", async () => {
  const runs: number[] = [];
  const counting: Kdf = (password, salt, iterations) => {
    runs.push(iterations);
    return pbkdf2Sha256(password, salt, iterations);
  };
  const users = parseAuthFile(
    `alice:${await hashPassword("a", 1000)}\nbob:${await hashPassword(
      "b",
      2000,
    )}\n`,
    "users",
    0,
  );
  const creds = new Credentials(users, counting);
  const check = (user: string, password: string) =>
    creds.verify(encoder.encode(user), encoder.encode(password));
  assert.equal(await check("nobody", "a"), undefined);
  assert.equal(await check("alice", "wrong"), undefined);
  assert.equal(await check("\xff", "a"), undefined);
  assert.equal(await check("bob", "b"), "bob");
  // Unknown user: one run at bob's 2000, as costly as any known user's check.
  assert.deepEqual(runs, [2000, 1000, 2000, 2000]);
});

Deno.test("parseAuthFile() reads user:hash lines, skipping blanks, comments and CR", async () => {
  const hash = await hashPassword("pw", CHEAP);
  const users = parseAuthFile(
    `# team\r\n\r\nalice:${hash}\r\n  bob:${hash}  \n`,
    "users.txt",
    0,
  );
  assert.deepEqual([...users.keys()], ["alice", "bob"]);
});

const badFiles: [string, (hash: string) => string, RegExp][] = [
  [
    "a plain password",
    () => "alice:hunter2",
    /line 1: not a pbkdf2-sha256 hash/,
  ],
  ["a line without a colon", () => "# users\nalice", /line 2: not user:hash/],
  ["an empty user", (h) => `:${h}`, /line 1: empty user name/],
  [
    "a user with a space",
    (h) => `al ice:${h}`,
    /line 1: user names hold no colon, space/,
  ],
  ["a repeated user", (h) => `a:${h}\na:${h}`, /line 2: user a appears twice/],
  [
    "a weak hash",
    () =>
      "a:pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$" + "A".repeat(43) + "=",
    /line 1: hash has 1000 iterations/,
  ],
];
for (const [what, text, message] of badFiles) {
  Deno.test(`parseAuthFile() refuses ${what}, naming the line`, async () => {
    const hash = await hashPassword("pw", 100_000);
    assert.throws(
      () => parseAuthFile(text(hash), "users.txt"),
      (err: unknown) => {
        assert.ok(err instanceof CredentialsError);
        assert.match(err.message, /^users\.txt /);
        assert.match(err.message, message);
        assert.ok(!err.message.includes("hunter2"));
        return true;
      },
    );
  });
}

Deno.test("loadCredentials() joins --auth pairs and an --auth-file; a user in both is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "users");
    await Deno.writeTextFile(file, `bob:${await hashPassword("b", 100_000)}\n`);
    const creds = await loadCredentials(
      { pairs: ["alice:a:with:colons"], file },
      CHEAP,
    );
    assert.equal(creds.size, 2);
    assert.equal(
      await creds.verify(
        encoder.encode("alice"),
        encoder.encode("a:with:colons"),
      ),
      "alice",
    );
    assert.equal(
      await creds.verify(encoder.encode("bob"), encoder.encode("b")),
      "bob",
    );
    await assert.rejects(
      loadCredentials({ pairs: ["bob:x"], file }, CHEAP),
      /--auth: user bob is given twice/,
    );
    await assert.rejects(
      loadCredentials({ pairs: [], file: join(dir, "missing") }),
      Deno.errors.NotFound,
    );
    // Inside the served folder, the file would be a download away.
    const root = join(dir, "site");
    await Deno.mkdir(root);
    const served = join(root, "users");
    await Deno.copyFile(file, served);
    await assert.rejects(
      loadCredentials({ pairs: [], file: served, servedRoot: root }),
      /users is inside the served folder .*site: clients could download it/,
    );
    await Deno.symlink(served, join(dir, "link"));
    await assert.rejects(
      loadCredentials({ pairs: [], file: join(dir, "link"), servedRoot: root }),
      /inside the served folder/,
    );
    assert.equal(
      (await loadCredentials({ pairs: [], file, servedRoot: root })).size,
      1,
    );
    await Deno.writeTextFile(file, "# nobody yet\n");
    await assert.rejects(loadCredentials({ pairs: [], file }), /no users/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const b64 = (s: string) => btoa(s);
const basicCases: [string, string, "other" | "malformed" | [string, string]][] =
  [
    ["a good pair", `Basic ${b64("alice:s3cret")}`, ["alice", "s3cret"]],
    ["the scheme in lower case", `basic ${b64("alice:s3cret")}`, [
      "alice",
      "s3cret",
    ]],
    ["several spaces", `Basic   ${b64("a:b")}`, ["a", "b"]],
    ["a password with colons", `Basic ${b64("a:b:c")}`, ["a", "b:c"]],
    ["an empty password", `Basic ${b64("a:")}`, ["a", ""]],
    ["Bearer", "Bearer abc.def", "other"],
    ["Digest", 'Digest username="a"', "other"],
    ["the scheme alone", "Basic", "malformed"],
    ["an empty token", "Basic ", "malformed"],
    ["not base64", "Basic !!!!", "malformed"],
    ["three bytes, no padding needed", "Basic YTpi", ["a", "b"]],
    ["missing padding", "Basic YTpiYw", "malformed"],
    [
      "URL-safe base64",
      "Basic " + b64("a:\xfb\xff").replace(/\+/g, "-").replace(/\//g, "_"),
      "malformed",
    ],
    ["base64 with a space inside", "Basic YTpi YQ==", "malformed"],
    ["no colon", `Basic ${b64("alice")}`, "malformed"],
    ["a NUL byte", `Basic ${b64("alice:a\0b")}`, "malformed"],
    ["a line feed", `Basic ${b64("alice\n:b")}`, "malformed"],
  ];
for (const [what, value, want] of basicCases) {
  Deno.test(`parseBasic() reads ${what}`, () => {
    const got = parseBasic(value);
    if (typeof want === "string") assert.equal(got, want);
    else {
      assert.ok(typeof got === "object", String(got));
      assert.deepEqual(
        [
          new TextDecoder().decode(got.user),
          new TextDecoder().decode(got.password),
        ],
        want,
      );
    }
  });
}

Deno.test("parseBasic() hands non-UTF-8 bytes on undecoded", () => {
  const got = parseBasic("Basic " + btoa("z\xebe:p\xe4ss"));
  assert.ok(typeof got === "object");
  assert.deepEqual(got.user, Uint8Array.of(0x7a, 0xeb, 0x65));
  assert.deepEqual(got.password, Uint8Array.of(0x70, 0xe4, 0x73, 0x73));
});
