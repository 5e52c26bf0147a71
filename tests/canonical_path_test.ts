import assert from "node:assert/strict";
import fc from "fast-check";
import {
  canonicalPath,
  checkFileName,
  decodePathLong,
  isDotPath,
} from "../lib/app/canonical_path.ts";
import { HttpError } from "../lib/http/errors.ts";

const accepted: [raw: string, decoded: string][] = [
  ["/", "/"],
  ["/index.html", "/index.html"],
  ["/a/b/", "/a/b/"],
  ["/caf%C3%A9.txt", "/café.txt"],
  ["/with%20space.txt", "/with space.txt"],
  ["/100%25.txt", "/100%.txt"],
  // Decoded once only: the result is the literal name "%2e%2e".
  ["/%252e%252e/x", "/%2e%2e/x"],
  ["/%252f", "/%2f"],
  ["/.env", "/.env"], // dot names are the dotfiles policy's business
  ["/..a/a..b/...c.txt", "/..a/a..b/...c.txt"],
  ["/console.log", "/console.log"],
  ["/com10", "/com10"],
  ["/a+b=c;d,e@f:g", "/a+b=c;d,e@f:g"],
];
for (const [raw, decoded] of accepted) {
  Deno.test(`canonicalPath() accepts ${raw}`, () => {
    assert.equal(canonicalPath(raw), decoded);
  });
}

const rejected: [why: string, raw: string][] = [
  ["relative path", "etc/passwd"],
  ["empty path", ""],
  ["asterisk", "*"],
  ["dot-dot segment", "/../etc/passwd"],
  ["dot-dot at the end", "/a/.."],
  ["dot segment", "/a/./b"],
  ["encoded dot-dot", "/%2e%2e/etc/passwd"],
  ["mixed encoded dot-dot", "/.%2E/etc/passwd"],
  ["encoded slash", "/..%2fetc%2fpasswd"],
  ["encoded slash, upper case", "/a%2Fb"],
  ["backslash", "/..\\etc\\passwd"],
  ["encoded backslash", "/..%5cetc"],
  ["encoded backslash, upper case", "/%5C"],
  ["overlong dot", "/%c0%ae%c0%ae/etc/passwd"],
  ["overlong slash", "/..%c0%afetc"],
  ["UTF-8 surrogate", "/%ed%a0%80"],
  ["lone continuation byte", "/%80"],
  ["truncated UTF-8", "/%e2%82"],
  ["NUL", "/a%00.html"],
  ["raw NUL", "/a\0.html"],
  ["control byte", "/a%0d%0aSet-Cookie:x"],
  ["DEL", "/a%7f"],
  ["C1 control", "/a%c2%85"],
  ["raw non-ASCII", "/café"],
  ["malformed escape", "/%zz"],
  ["truncated escape", "/a%2"],
  ["lone percent", "/%"],
  ["double slash", "//etc/passwd"],
  ["empty inner segment", "/a//b"],
  ["protocol-relative host", "//evil.com/"],
  ["trailing dot", "/index.html."],
  ["trailing space", "/index.html%20"],
  ["dot folder trick", "/a./b"],
  ["device name", "/CON"],
  ["device name, lower case", "/nul"],
  ["device name with extension", "/nul.txt"],
  ["device name with two extensions", "/COM1.tar.gz"],
  ["device name in a folder", "/a/lpt9/b"],
  ["device name, superscript digit", "/COM%C2%B9"],
  ["device name with trailing spaces before the dot", "/aux%20%20.txt"],
  ["CONIN$", "/conin$"],
];
for (const [why, raw] of rejected) {
  Deno.test(`canonicalPath() answers 400 for ${why}`, () => {
    assert.throws(() => canonicalPath(raw), (err) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, 400);
      assert.ok(err.expose?.startsWith("Cannot accept path"));
      return true;
    });
  });
}

Deno.test("canonicalPath() answers a path asked twice in a row alike, good or bad", () => {
  // It remembers the last path it accepted (the router, then the static
  // handler, ask for the same one): the memory must never answer another.
  for (const [raw, decoded] of accepted) {
    assert.equal(canonicalPath(raw), decoded);
    assert.equal(canonicalPath(raw), decoded);
    for (const [, bad] of rejected) {
      assert.throws(() => canonicalPath(bad), HttpError);
      assert.throws(() => canonicalPath(bad), HttpError);
    }
    assert.equal(canonicalPath(raw), decoded);
  }
});

Deno.test("canonicalPath() returns the same string when nothing is encoded", () => {
  const raw = "/assets/app.min.js";
  assert.equal(canonicalPath(raw), raw);
});

Deno.test("canonicalPath() accepts a very long path of plain names", () => {
  const raw = "/" + "a/".repeat(4000) + "x.txt";
  assert.equal(canonicalPath(raw), raw);
});

Deno.test("canonicalPath() output never holds a separator trick, for any input", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({
          unit: fc.constantFrom(
            "/",
            ".",
            "%",
            "2",
            "e",
            "f",
            "5",
            "c",
            "a",
            "\\",
            "0",
            "C",
            "\0",
          ),
        }),
        fc.string({ unit: "binary" }).map(encodeURIComponent).map((s) =>
          `/${s}`
        ),
        fc.webPath(),
      ),
      (raw) => {
        let out: string;
        try {
          out = canonicalPath(raw);
        } catch (err) {
          assert.ok(err instanceof HttpError && err.status === 400);
          return;
        }
        assert.ok(out.startsWith("/"));
        assert.ok(
          !out.includes("\\") && !out.includes("\0") && !out.includes("//"),
        );
        // deno-lint-ignore no-control-regex
        assert.ok(!/[\x00-\x1f\x7f]/.test(out));
        for (const seg of out.split("/").slice(1, -1)) {
          assert.ok(seg !== "." && seg !== ".." && seg !== "");
        }
        // Canonical means stable: encoding it again and decoding gives it back.
        const again = out.split("/").map(encodeURIComponent).join("/");
        assert.equal(canonicalPath(again), out);
      },
    ),
    { numRuns: 2000 },
  );
});

const dotPaths: [string, boolean][] = [
  ["/.env", true],
  ["/a/.git/config", true],
  ["/a/b/.hidden/", true],
  ["/a.b/c.d", false],
  ["/", false],
  ["/..a", true],
];
for (const [path, dot] of dotPaths) {
  Deno.test(`isDotPath() is ${dot} for ${path}`, () => {
    assert.equal(isDotPath(path), dot);
  });
}

const goodFileNames: [string, string][] = [
  ["notes.txt", "notes.txt"],
  ["My Photo (1).JPG", "My Photo (1).JPG"],
  ["\u00e9t\u00e9 \u{1f600}.png", "\u00e9t\u00e9 \u{1f600}.png"],
  ["e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"], // NFD from macOS becomes NFC
  ["100%.txt", "100%.txt"],
  ["a%41.txt", "a%41.txt"], // never decoded: stored as sent
  ["console.log", "console.log"],
  ["x".repeat(255), "x".repeat(255)],
];
for (const [raw, want] of goodFileNames) {
  Deno.test(`checkFileName() takes ${JSON.stringify(raw.slice(0, 40))}`, () => {
    assert.equal(checkFileName(raw), want);
  });
}

const badFileNames: [string, string, RegExp][] = [
  ["empty", "", /empty/],
  ["a parent traversal", "../etc/passwd", /path separator/],
  ["a dot-dot", "..", /starts with a dot/],
  ["a dot", ".", /starts with a dot/],
  ["a dotfile", ".env", /starts with a dot/],
  ["a folder", "a/b.txt", /path separator/],
  ["a Windows path", "C:\\Users\\me\\a.txt", /path separator/],
  ["a drive or NTFS stream", "a.txt:stream", /path separator/],
  ["an encoded slash", "..%2Fetc%2Fpasswd", /encoded separator/],
  ["an encoded backslash", "a%5cb", /encoded separator/],
  ["an encoded NUL", "a.php%00.jpg", /encoded separator/],
  ["a NUL", "a.php\0.jpg", /control character/],
  ["a line feed", "a\nb", /control character/],
  ["a C1 control", "a\u0085b", /control character/],
  ["a bidi override", "photo\u202egpj.exe", /bidirectional/],
  ["a trailing dot", "a.txt.", /ends in a dot/],
  ["a trailing space", "a.txt ", /ends in a space/],
  ["a device name", "NUL", /reserved device name/],
  ["a device name with an extension", "com1.txt", /reserved device name/],
  ["a device name in lower case", "aux", /reserved device name/],
  ["a device name with two extensions", "con.txt.bak", /reserved device name/],
  ["a name of 256 bytes", "x".repeat(256), /longer than 255 bytes/],
  [
    "a name of 86 emoji (344 bytes)",
    "\u{1f600}".repeat(86),
    /longer than 255 bytes/,
  ],
];
for (const [what, raw, message] of badFileNames) {
  Deno.test(`checkFileName() answers 400 for ${what}`, () => {
    assert.throws(() => checkFileName(raw), (err: unknown) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, 400);
      assert.match(err.expose ?? "", /^Cannot accept file name: /);
      assert.match(err.expose ?? "", message);
      return true;
    });
  });
}

/** What canonicalPath-like `decode` makes of `raw`: the path, or the error's status and message. */
function outcome(decode: (raw: string) => string, raw: string): string {
  try {
    return `ok ${decode(raw)}`;
  } catch (err) {
    assert.ok(err instanceof HttpError, String(err));
    return `${err.status} ${err.message}`;
  }
}

Deno.test("canonicalPath()'s one pass over a plain path answers exactly as the long way, for any input", () => {
  // Segments near the rules: device names in any case, with extensions and
  // spaces, names one letter off, dots and spaces at the ends.
  const segment = fc.oneof(
    fc.constantFrom(
      "con",
      "CON",
      "Con.txt",
      "nul",
      "nul .txt",
      "NUL.tar.gz",
      "aux",
      "prn",
      "com1",
      "COM9.log",
      "com10",
      "lpt3",
      "LpT0",
      "clock$",
      "CLOCK$.x",
      "conin$",
      "conout$",
      "CONOUT$.txt",
      "console.log",
      "cons",
      "cox",
      "nulx",
      "css",
      "api",
      "assets",
      "login",
      "a.",
      "a ",
      ".",
      "..",
      ".env",
      "",
    ),
    fc.string({
      unit: fc.constantFrom(
        "c",
        "O",
        "n",
        "l",
        "p",
        "t",
        "u",
        "x",
        "1",
        "$",
        ".",
        " ",
        "%",
        "2",
        "f",
        "\\",
        "\0",
        "\x7f",
        "\u00b9",
        "\u00e9",
      ),
      maxLength: 9,
    }),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.array(segment, { maxLength: 5 }).map((s) => `/${s.join("/")}`),
        fc.webPath(),
        fc.string(),
      ),
      (raw) => {
        assert.equal(outcome(canonicalPath, raw), outcome(decodePathLong, raw));
      },
    ),
    { numRuns: 5000 },
  );
});
