/**
 * What the server may touch, worked out from its flags: the folders and files
 * they name, the address it listens on, and Spindle's own code for --workers.
 * The launcher (launch.ts) turns this plan into Deno permission flags; the
 * engine checks it at start, so a missing folder or permission is one line
 * and exit code 2, never a 404 or a 500 at request time.
 */
import type { CliOptions } from "./cli.ts";
import { uploadFilesDir } from "./app/settings.ts";

// No node:path here: the launcher imports this file, and node compatibility
// costs ~15 ms of each start. Paths are POSIX, as --workers' reusePort is Linux.

/** `path` made absolute against the current folder, `.` and `..` resolved. */
export function absolutePath(path: string, cwd = Deno.cwd()): string {
  const parts: string[] = [];
  for (
    const part of (path.startsWith("/") ? path : `${cwd}/${path}`).split("/")
  ) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** One path the server needs, and the flag that named it. */
export interface Need {
  /** Absolute path. */
  readonly path: string;
  /** The flag that named it, e.g. `--root`. */
  readonly flag: string;
  readonly kind: "folder" | "file";
  /** Written as well as read. */
  readonly write: boolean;
  /** Made at start when missing (the uploads folder, as UploadStore does). */
  readonly create: boolean;
}

/** Everything the engine needs from the operating system and Deno. */
export interface AccessPlan {
  readonly needs: readonly Need[];
  /**
   * Deno's net grant: `host:port` (and `host:port` of `--redirect-http`), or
   * `host` when a port is picked at start.
   */
  readonly net: string;
  /** `host:port`s the engine connects to: the `--rate-limit-store`. */
  readonly connect?: readonly string[];
  /** Bound to every interface, or --qr: the start lines list the addresses. */
  readonly networkInterfaces: boolean;
  /** Spindle's own code, which --workers threads load (Deno checks read for it). */
  readonly program: readonly string[];
}

/** True for an address that binds every interface. */
export function isWildcard(hostname: string): boolean {
  return ["0.0.0.0", "::", "[::]"].includes(hostname);
}

/** `::1` -> `[::1]`, as URLs and Deno's --allow-net write IPv6 hosts. */
export function bracketHost(hostname: string): string {
  return hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname}]`
    : hostname;
}

/**
 * The plan for one command line. Relative paths resolve against the current
 * folder; `programDir` is the folder holding main.ts and lib/.
 */
export function planAccess(
  opts: CliOptions,
  programDir: string,
): AccessPlan {
  const needs: Need[] = [];
  const add = (
    flag: string,
    path: string | undefined,
    kind: Need["kind"],
    write = false,
    create = false,
  ) => {
    if (path !== undefined) {
      needs.push({ path: absolutePath(path), flag, kind, write, create });
    }
  };
  add("--root", opts.app.static.root, "folder");
  add("--uploads", opts.app.uploads, "folder", true, true);
  add("--directory", opts.app.directory, "folder", true);
  // Form uploads write there and below, nowhere else; the folder must exist.
  const upload = opts.app.uploadFiles;
  if (upload !== undefined) {
    const dir = uploadFilesDir(opts.app.static.root, upload.path);
    add("--upload-files", dir, "folder", true);
  }
  add("--cert", opts.server.cert, "file");
  add("--key", opts.server.key, "file");
  add("--auth-file", opts.auth?.file, "file");
  // The self-signed pair is written there and read back on the next start.
  add("--tls-save", opts.tls?.saveDir, "folder", true, true);
  const { hostname, port } = opts.server;
  const host = bracketHost(hostname);
  const redirect = opts.tls?.redirectPort;
  const store = opts.app.rateLimit?.store;
  // Port 0: the kernel picks one, and --workers threads bind it after.
  const ports = redirect === undefined ? [port] : [port, redirect];
  return {
    needs,
    net: ports.includes(0) ? host : ports.map((p) => `${host}:${p}`).join(","),
    connect: store === undefined ? [] : [storeAddress(store)],
    // A self-signed certificate names the machine's own addresses.
    networkInterfaces: isWildcard(hostname) || opts.qr ||
      opts.tls?.selfSigned === true,
    program: opts.workers > 1
      ? [`${programDir}/main.ts`, `${programDir}/lib`]
      : [],
  };
}

/** `redis://user:pw@host:6380/1` -> `host:6380` (Redis's port 6379 when none is given). */
export function storeAddress(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port === "" ? "6379" : u.port}`;
}

/** Thrown for a path Deno's permission flags cannot name. */
export class UngrantablePath extends Error {
  override name = "UngrantablePath";
}

/**
 * Deno flags that grant exactly the plan: net to the listen address, read
 * to every path (and its real path, since the static layer opens files by
 * their real path), write to the write folders, nothing else.
 *
 * @param realPath resolves symlinks; returns undefined for a missing path.
 * @throws {UngrantablePath} for a path with a comma (Deno splits on commas).
 */
export function permissionFlags(
  plan: AccessPlan,
  realPath: (path: string) => string | undefined,
): string[] {
  const read = new Set<string>();
  const write = new Set<string>();
  for (const need of plan.needs) {
    const paths = [need.path, realPath(need.path) ?? need.path];
    for (const path of paths) {
      if (path.includes(",")) {
        throw new UngrantablePath(
          `${need.path} (${need.flag}): Deno cannot grant access to a path with a comma; serve it through a link: ln -s '${path}' /tmp/spindle-site`,
        );
      }
      read.add(path);
      if (need.write) write.add(path);
    }
  }
  for (const path of plan.program) read.add(path);
  const net = [plan.net, ...plan.connect ?? []];
  const flags = [`--allow-net=${net}`, `--allow-read=${[...read]}`];
  if (write.size > 0) flags.push(`--allow-write=${[...write]}`);
  if (plan.networkInterfaces) flags.push("--allow-sys=networkInterfaces");
  return flags;
}

/** How the engine was started, for the command a message suggests. */
export interface StartContext {
  /** The arguments, to repeat them in `deno task serve ...`. */
  readonly args: readonly string[];
  /** Running as the `deno compile` binary, whose permissions are fixed. */
  readonly compiled: boolean;
}

/** `a b` -> `'a b'`: an argument as a shell reads it back. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg)
    ? arg
    : `'${arg.replaceAll("'", `'\\''`)}'`;
}

function serveCommand(ctx: StartContext): string {
  const args = ctx.args[0] === "--" ? ctx.args.slice(1) : ctx.args;
  return ["deno task serve", ...args.map(shellQuote)].join(" ");
}

/** The fix for a permission Deno did not grant. */
function grantAdvice(ctx: StartContext): string {
  return ctx.compiled
    ? `this binary's permissions were fixed when it was built; run: ${
      serveCommand(ctx)
    } (from a clone of Spindle), or build a binary that may (README: Standalone binary)`
    : `Deno was started without it; run: ${
      serveCommand(ctx)
    } (it grants exactly the folders the flags name)`;
}

function granted(name: "read" | "write", path: string): boolean {
  return Deno.permissions.querySync({ name, path }).state === "granted";
}

/** The first entry of a folder, or undefined; throws what readdir throws. */
function firstEntry(path: string): Deno.DirEntry | undefined {
  for (const entry of Deno.readDirSync(path)) return entry;
  return undefined;
}

function osDenied(need: Need, access: "read" | "write"): string {
  return `cannot ${access} ${need.path} (${need.flag}): the file system denies ${access} access to this user; run as a user who may, or allow it: chmod ${
    access === "read" ? "-R o+rX" : "o+wx"
  } ${shellQuote(need.path)}`;
}

/** Stats a need, first making a missing folder that may be made. */
function statOrCreate(need: Need): Deno.FileInfo {
  try {
    return Deno.statSync(need.path);
  } catch (err) {
    if (!(need.create && err instanceof Deno.errors.NotFound)) throw err;
    Deno.mkdirSync(need.path, { recursive: true });
    return Deno.statSync(need.path);
  }
}

/** Checks one need; returns what is wrong, or undefined. */
function checkNeed(need: Need, ctx: StartContext): string | undefined {
  const { path, flag } = need;
  const access: ("read" | "write")[] = need.write
    ? ["read", "write"]
    : ["read"];
  for (const a of access) {
    if (!granted(a, path)) {
      return `no ${a} permission for ${path} (${flag}): ${grantAdvice(ctx)}`;
    }
  }
  let info: Deno.FileInfo;
  try {
    info = statOrCreate(need);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return `${path} (${flag}) does not exist; check the path${
        need.kind === "folder"
          ? `, or create it: mkdir -p ${shellQuote(path)}`
          : ""
      }`;
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      return osDenied(need, need.create ? "write" : "read");
    }
    if (err instanceof Deno.errors.NotADirectory) {
      return `${path} (${flag}) is not a ${need.kind}: a part of the path is a file`;
    }
    throw err;
  }
  if (need.kind === "folder" && !info.isDirectory) {
    return `${path} (${flag}) is a file, not a folder${
      flag === "--root"
        ? `; serve the folder that holds it: ${
          serveCommand({ ...ctx, args: ["--root", parentOf(path)] })
        }`
        : ""
    }`;
  }
  if (need.kind === "file" && !info.isFile) {
    return `${path} (${flag}) is not a file`;
  }
  // Files are opened by their real path: a link needs its target granted too.
  const real = Deno.realPathSync(path);
  for (const a of access) {
    if (real !== path && !granted(a, real)) {
      return `no ${a} permission for ${real} (${flag} ${path} links there): ${
        grantAdvice(ctx)
      }`;
    }
  }
  try {
    if (need.kind === "file") {
      Deno.openSync(path, { read: true }).close();
    } else {
      // readdir needs r; a stat of an entry inside also needs x.
      const entry = firstEntry(path);
      if (entry !== undefined) Deno.lstatSync(`${path}/${entry.name}`);
    }
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      return osDenied(need, "read");
    }
    throw err;
  }
  if (need.write) {
    try {
      // A name UploadStore and the /files route never serve (leading dot).
      Deno.removeSync(
        Deno.makeTempFileSync({ dir: path, prefix: ".spindle-probe-" }),
      );
    } catch (err) {
      if (err instanceof Deno.errors.PermissionDenied) {
        return osDenied(need, "write");
      }
      throw err;
    }
  }
  return undefined;
}

/**
 * Checks the plan against this process: Deno's permissions, then the file
 * system (exists, right kind, readable, writable). Makes a missing uploads
 * folder. Returns one line saying what is wrong and what works, or undefined.
 */
export function checkAccess(
  plan: AccessPlan,
  ctx: StartContext,
): string | undefined {
  // One query an address: Deno's query takes no list (--redirect-http adds one).
  for (const host of plan.net.split(",")) {
    if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
      return `no net permission to listen on ${host}: ${grantAdvice(ctx)}`;
    }
  }
  for (const host of plan.connect ?? []) {
    if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
      return `no net permission to reach the rate-limit store at ${host}: ${
        grantAdvice(ctx)
      }`;
    }
  }
  for (const need of plan.needs) {
    const problem = checkNeed(need, ctx);
    if (problem !== undefined) return problem;
  }
  // A compiled binary loads its code from inside itself, not from these paths.
  if (!ctx.compiled) {
    for (const path of plan.program) {
      if (!granted("read", path)) {
        return `no read permission for ${path}, Spindle's own code, which --workers threads load: ${
          grantAdvice(ctx)
        }`;
      }
    }
  }
  return undefined;
}

/** What this process may read and write, in words, for the start lines. */
export function describeAccess(
  plan: AccessPlan,
): { reads: string; writes: string } {
  const describe = (name: "read" | "write", paths: string[]): string => {
    if (Deno.permissions.querySync({ name }).state === "granted") {
      return `any file (Deno's --allow-${name} names no paths)`;
    }
    return paths.length === 0 ? "nothing" : paths.join(", ");
  };
  const read = plan.needs.map((n) => n.path);
  if (plan.program.length > 0) read.push("Spindle's own code (for --workers)");
  return {
    reads: describe("read", read),
    writes: describe(
      "write",
      plan.needs.filter((n) => n.write).map((n) => n.path),
    ),
  };
}
