/**
 * Passwords for HTTP Basic authentication: `--auth USER:PASSWORD` pairs
 * (hashed at start) and the `user:hash` lines of `--auth-file`, checked in
 * constant time. A hash is PBKDF2-HMAC-SHA-256 from WebCrypto with a random
 * salt per user, written `pbkdf2-sha256$<iterations>$<salt>$<hash>` (salt
 * and hash in base64). Plain passwords are never stored, in a file or in
 * memory.
 */
import { isAbsolute, relative } from "node:path";

/** The one hash scheme accepted, the first field of a hash. */
export const HASH_SCHEME = "pbkdf2-sha256";
/**
 * OWASP's 2023 figure for PBKDF2-HMAC-SHA-256. One check keeps a core busy
 * for about 140 ms (measured on a busy 2-core machine), which is why the
 * auth middleware caches good answers and caps checks running at once.
 */
export const DEFAULT_ITERATIONS = 600_000;
/** Below this, a stolen auth file falls to a GPU in hours: refused at start. */
export const MIN_ITERATIONS = 100_000;
/** Above this, one check takes many seconds: a typo, refused at start. */
const MAX_ITERATIONS = 100_000_000;
const SALT_BYTES = 16;
const HASH_BITS = 256;
const MIN_SALT_BYTES = 8;

const COLON = 0x3a;
const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A parsed hash: the KDF's inputs and the bytes it must give. */
export interface PasswordHash {
  readonly iterations: number;
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

/** A bad `--auth` value or auth file; main prints it and exits with code 2. */
export class CredentialsError extends Error {
  override name = "CredentialsError";
}

/** Strict base64 (RFC 4648 §4, padded); undefined for anything else. */
export function decodeBase64(text: string): Uint8Array | undefined {
  // fromBase64() skips whitespace and, loose, takes missing padding.
  if (!BASE64.test(text)) return undefined;
  return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
}

/**
 * Text as PRECIS's OpaqueString profile compares it (RFC 7617 §2.1, RFC
 * 8265 §4.2): Unicode NFC, so a password typed on macOS (NFD) matches the
 * one hashed elsewhere.
 */
function passwordBytes(password: string): Uint8Array {
  return encoder.encode(password.normalize("NFC"));
}

/** A key derivation: password, salt and iterations to the hash bytes. */
export type Kdf = (
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
) => Promise<Uint8Array>;

/** PBKDF2-HMAC-SHA-256 with a 32-byte output, from WebCrypto. */
export const pbkdf2Sha256: Kdf = async (password, salt, iterations) => {
  const key = await crypto.subtle.importKey(
    "raw",
    password as Uint8Array<ArrayBuffer>,
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  // WebCrypto runs the KDF off the event loop, in Deno's blocking pool.
  const bits = await crypto.subtle.deriveBits(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: salt as Uint8Array<ArrayBuffer>,
      iterations,
    },
    key,
    HASH_BITS,
  );
  return new Uint8Array(bits);
};

/**
 * Hashes a password into the line format `spindle hash-password` prints.
 * `iterations` below {@link MIN_ITERATIONS} are for tests only: an auth
 * file holding such a hash is refused.
 */
export async function hashPassword(
  password: string,
  iterations = DEFAULT_ITERATIONS,
): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await pbkdf2Sha256(passwordBytes(password), salt, iterations);
  return `${HASH_SCHEME}$${iterations}$${salt.toBase64()}$${hash.toBase64()}`;
}

/**
 * Reads `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.
 *
 * @throws {CredentialsError} naming what is wrong (never echoing the text,
 *   which may be a password pasted in by mistake).
 */
export function parsePasswordHash(
  text: string,
  minIterations = MIN_ITERATIONS,
): PasswordHash {
  const fields = text.split("$");
  if (fields.length !== 4 || fields[0] !== HASH_SCHEME) {
    throw new CredentialsError(
      `not a ${HASH_SCHEME} hash (make one with: spindle hash-password USER)`,
    );
  }
  const iterations = Number(fields[1]);
  if (!/^\d+$/.test(fields[1]) || iterations > MAX_ITERATIONS) {
    throw new CredentialsError(`hash has a bad iteration count`);
  }
  if (iterations < minIterations) {
    throw new CredentialsError(
      `hash has ${iterations} iterations, fewer than ${minIterations}: make a new one`,
    );
  }
  const salt = decodeBase64(fields[2]);
  const hash = decodeBase64(fields[3]);
  if (salt === undefined || salt.length < MIN_SALT_BYTES) {
    throw new CredentialsError("hash has a bad salt");
  }
  if (hash === undefined || hash.length * 8 !== HASH_BITS) {
    throw new CredentialsError("hash has a bad digest");
  }
  return { iterations, salt, hash };
}

/**
 * True when two byte arrays are equal, in time that depends on their length
 * only, never on where they differ (no early exit, no branch on data).
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Checks a user name for the auth file and `--auth`: RFC 7617 forbids a
 * colon and control characters; whitespace is refused too, so a name shows
 * in an access line as one field. Returns what is wrong, or undefined.
 */
export function checkUserName(user: string): string | undefined {
  if (user === "") return "empty user name";
  // deno-lint-ignore no-control-regex
  if (/[:\s\x00-\x1f\x7f-\x9f]/u.test(user)) {
    return "user names hold no colon, space or control character";
  }
  return undefined;
}

/** The users and their hashes, and the one operation on them: {@link verify}. */
export class Credentials {
  readonly #users: ReadonlyMap<string, PasswordHash>;
  /** Checked for unknown users, so they cost what a wrong password does. */
  readonly #dummy: PasswordHash;
  readonly #kdf: Kdf;

  /** `kdf` is for tests, which count its runs. */
  constructor(users: ReadonlyMap<string, PasswordHash>, kdf = pbkdf2Sha256) {
    this.#users = users;
    this.#kdf = kdf;
    let iterations = 0;
    for (const { iterations: n } of users.values()) {
      if (n > iterations) iterations = n;
    }
    this.#dummy = {
      iterations: iterations || DEFAULT_ITERATIONS,
      salt: crypto.getRandomValues(new Uint8Array(SALT_BYTES)),
      hash: new Uint8Array(HASH_BITS / 8),
    };
  }

  /** Number of users. */
  get size(): number {
    return this.#users.size;
  }

  /** True when `user` has a password here. */
  has(user: string): boolean {
    return this.#users.has(user);
  }

  /**
   * Checks a user name and password as sent (UTF-8 bytes; anything else
   * never matches). Resolves to the user name, NFC-normalised, or undefined.
   * An unknown user runs the KDF on a dummy hash: the answer takes as long
   * as for a known user with a wrong password.
   */
  async verify(
    user: Uint8Array,
    password: Uint8Array,
  ): Promise<string | undefined> {
    let name: string | undefined;
    let pass: Uint8Array | undefined;
    try {
      name = strictUtf8.decode(user).normalize("NFC");
      pass = passwordBytes(strictUtf8.decode(password));
    } catch {
      name = undefined; // not UTF-8: no stored name or password matches
    }
    const known = name === undefined ? undefined : this.#users.get(name);
    const entry = known ?? this.#dummy;
    const got = await this.#kdf(pass ?? password, entry.salt, entry.iterations);
    const same = timingSafeEqual(got, entry.hash);
    return known !== undefined && same ? name : undefined;
  }
}

/** Splits `user:rest` at the first colon; user names never hold one (RFC 7617). */
function splitPair(text: string): [string, string] | undefined {
  const colon = text.indexOf(":");
  return colon === -1
    ? undefined
    : [text.slice(0, colon), text.slice(colon + 1)];
}

/**
 * Reads an auth file: one `user:hash` a line; blank lines and `#` comments
 * are skipped, CRLF line ends taken.
 *
 * @throws {CredentialsError} naming the line, for a line without a colon, a
 *   bad user name, a repeated user or anything but a good hash (a plain
 *   password above all).
 */
export function parseAuthFile(
  text: string,
  source: string,
  minIterations = MIN_ITERATIONS,
): Map<string, PasswordHash> {
  const users = new Map<string, PasswordHash>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `${source} line ${i + 1}`;
    const pair = splitPair(line);
    if (pair === undefined) {
      throw new CredentialsError(`${where}: not user:hash`);
    }
    const user = pair[0].normalize("NFC");
    const bad = checkUserName(user);
    if (bad !== undefined) throw new CredentialsError(`${where}: ${bad}`);
    if (users.has(user)) {
      throw new CredentialsError(`${where}: user ${user} appears twice`);
    }
    try {
      users.set(user, parsePasswordHash(pair[1], minIterations));
    } catch (err) {
      if (!(err instanceof CredentialsError)) throw err;
      throw new CredentialsError(`${where}: ${err.message}`);
    }
  }
  return users;
}

/** Where the users come from: `--auth` values and an `--auth-file`. */
export interface CredentialSources {
  /** `USER:PASSWORD` values, hashed at start. */
  readonly pairs: readonly string[];
  /** Path of a file of `user:hash` lines. */
  readonly file?: string;
  /** The static root: an auth file inside it would be served, so is refused. */
  readonly servedRoot?: string;
}

/** Throws unless `file` lies outside `root` (both resolved through symlinks). */
async function checkNotServed(file: string, root: string): Promise<void> {
  let realRoot: string;
  try {
    realRoot = await Deno.realPath(root);
  } catch {
    return; // no root yet: nothing is served from it
  }
  const rel = relative(realRoot, await Deno.realPath(file));
  if (rel !== "" && !rel.startsWith("..") && !isAbsolute(rel)) {
    throw new CredentialsError(
      `${file} is inside the served folder ${root}: clients could download it; keep it elsewhere`,
    );
  }
}

/**
 * Builds the credentials from the command line: reads the auth file and
 * hashes each `--auth` password (one KDF run each, so start takes about
 * 140 ms a pair).
 *
 * @throws {CredentialsError} for a bad value, line or repeated user;
 *   whatever `Deno.readTextFile` throws for an unreadable file.
 */
export async function loadCredentials(
  sources: CredentialSources,
  iterations = DEFAULT_ITERATIONS,
): Promise<Credentials> {
  if (sources.file !== undefined && sources.servedRoot !== undefined) {
    await checkNotServed(sources.file, sources.servedRoot);
  }
  const users = sources.file === undefined
    ? new Map<string, PasswordHash>()
    : parseAuthFile(await Deno.readTextFile(sources.file), sources.file);
  for (const value of sources.pairs) {
    const pair = splitPair(value);
    if (pair === undefined || pair[1] === "") {
      throw new CredentialsError("--auth takes USER:PASSWORD");
    }
    const user = pair[0].normalize("NFC");
    const bad = checkUserName(user);
    if (bad !== undefined) throw new CredentialsError(`--auth: ${bad}`);
    if (users.has(user)) {
      throw new CredentialsError(`--auth: user ${user} is given twice`);
    }
    users.set(
      user,
      parsePasswordHash(await hashPassword(pair[1], iterations), 0),
    );
  }
  if (users.size === 0) {
    throw new CredentialsError(`${sources.file ?? "--auth"}: no users`);
  }
  return new Credentials(users);
}

/** A Basic credential as sent: the user name and password bytes. */
export interface BasicCredentials {
  readonly user: Uint8Array;
  readonly password: Uint8Array;
}

/**
 * Reads an `Authorization` value of the Basic scheme (RFC 7617 §2): the
 * scheme name in any case, one or more spaces, then strict, padded base64
 * of `user-id ":" password`. Resolves to:
 * - `"other"` for another scheme (Bearer, Digest): the client may retry
 *   with Basic, so the caller challenges again (401);
 * - `"malformed"` for bad base64, no colon, or a control character, which
 *   RFC 7617 forbids: no client that follows the challenge sends it (400);
 * - the bytes otherwise, still undecoded: the caller decides on UTF-8.
 */
export function parseBasic(
  value: string,
): BasicCredentials | "other" | "malformed" {
  const space = value.indexOf(" ");
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== "basic") return "other";
  const bytes = decodeBase64(value.slice(space + 1).trimStart());
  if (bytes === undefined) return "malformed";
  const colon = bytes.indexOf(COLON);
  if (colon === -1) return "malformed";
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c < 0x20 || c === 0x7f) return "malformed";
  }
  return {
    user: bytes.subarray(0, colon),
    password: bytes.subarray(colon + 1),
  };
}
