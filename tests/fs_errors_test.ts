import assert from "node:assert/strict";
import { join } from "node:path";
import {
  diskFull,
  isDiskFull,
  missingOrThrow,
  readFault,
} from "../lib/app/fs_errors.ts";

/** An error as Deno's file system calls throw it for an errno. */
function withCode(code: string): Error {
  return Object.assign(new Error(`${code}: from the OS`), { code });
}

const faults: [name: string, err: Error, fault: "denied" | "missing"][] = [
  ["EACCES", new Deno.errors.PermissionDenied("no"), "denied"],
  ["ENOENT", new Deno.errors.NotFound("gone"), "missing"],
  ["ENOTDIR", new Deno.errors.NotADirectory("a file"), "missing"],
  ["ELOOP", new Deno.errors.FilesystemLoop("loop"), "missing"],
  ["outside --allow-read", new Deno.errors.NotCapable("no"), "missing"],
  ["ENAMETOOLONG", withCode("ENAMETOOLONG"), "missing"],
];
for (const [name, err, fault] of faults) {
  Deno.test(`readFault() says ${fault} for ${name}`, () => {
    assert.equal(readFault(err), fault);
  });
}

Deno.test("readFault() throws on what is no file system error, as it is", () => {
  const bug = new TypeError("undefined is not a function");
  assert.throws(() => readFault(bug), (e) => e === bug);
  assert.throws(() => readFault("a string"), (e) => e === "a string");
});

Deno.test("readFault() reads what the file system really throws", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "file"), "x");
    await Deno.symlink("loop", join(dir, "loop"));
    for (const path of ["nope", "file/below", "loop"]) {
      let thrown: unknown;
      try {
        Deno.realPathSync(join(dir, path));
      } catch (err) {
        thrown = err;
      }
      assert.equal(readFault(thrown), "missing", path);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missingOrThrow() is null for a missing path and throws 403 for a denied one", () => {
  assert.equal(missingOrThrow(new Deno.errors.NotFound("gone")), null);
  const denied = new Deno.errors.PermissionDenied("no");
  assert.throws(() => missingOrThrow(denied), (e: unknown) => {
    assert.ok(e instanceof Error && e.name === "HttpError");
    assert.equal((e as { status?: number }).status, 403);
    assert.equal(e.cause, denied);
    return true;
  });
});

Deno.test("isDiskFull() and diskFull() are 507 for ENOSPC and EDQUOT only", () => {
  assert.ok(isDiskFull(withCode("ENOSPC")));
  assert.ok(isDiskFull(withCode("EDQUOT")));
  assert.ok(!isDiskFull(withCode("EIO")));
  assert.ok(!isDiskFull(null));
  const err = diskFull(withCode("ENOSPC"));
  assert.equal(err.status, 507);
  assert.equal(err.expose, "Disk is full");
});
