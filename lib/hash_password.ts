/**
 * `spindle hash-password [USER]`: reads a password from stdin (without
 * echo, asked twice, on a terminal; the first line otherwise) and prints
 * the line for an `--auth-file`: `USER:pbkdf2-sha256$...`, or the hash
 * alone. The password is never an argument: argv is visible to every user
 * of the machine (`ps`).
 */
import { checkUserName, hashPassword } from "./app/credentials.ts";

const CR = 0x0d;
const LF = 0x0a;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const DEL = 0x7f;
/** A password line longer than this is a file piped in by mistake. */
const MAX_PASSWORD_BYTES = 4096;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Thrown when the user gives up (Ctrl-C, Ctrl-D) or stdin ends first. */
class Cancelled extends Error {}

/** Reads one line from a terminal in raw mode: nothing is echoed. */
async function readHidden(prompt: string): Promise<string> {
  const bytes: number[] = [];
  const buf = new Uint8Array(64);
  Deno.stdin.setRaw(true); // before the prompt: nothing typed after it echoes
  try {
    await Deno.stderr.write(encoder.encode(prompt));
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) throw new Cancelled();
      for (let i = 0; i < n; i++) {
        const c = buf[i];
        if (c === CR || c === LF) return decoder.decode(new Uint8Array(bytes));
        if (c === CTRL_C || (c === CTRL_D && bytes.length === 0)) {
          throw new Cancelled();
        }
        if (c === BACKSPACE || c === DEL) {
          // Drop one character: its UTF-8 continuation bytes, then its lead.
          while (
            bytes.length > 0 && (bytes[bytes.length - 1] & 0xc0) === 0x80
          ) {
            bytes.pop();
          }
          bytes.pop();
        } else if (bytes.length < MAX_PASSWORD_BYTES) bytes.push(c);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
}

/** The first line of piped stdin, without its line end. */
async function readLine(): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of Deno.stdin.readable) {
    chunks.push(chunk);
    size += chunk.length;
    if (chunk.includes(LF) || size > MAX_PASSWORD_BYTES) break;
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  let end = all.indexOf(LF);
  if (end === -1) end = all.length;
  if (end > 0 && all[end - 1] === CR) end--;
  if (end > MAX_PASSWORD_BYTES) {
    throw new Error(`password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  return decoder.decode(all.subarray(0, end));
}

/** Runs the subcommand; returns the exit code (2 for a usage error). */
export async function hashPasswordCommand(
  args: readonly string[],
): Promise<number> {
  if (args.length > 1 || args[0]?.startsWith("-")) {
    console.error(
      "usage: spindle hash-password [USER] (the password comes from stdin)",
    );
    return 2;
  }
  const user = args[0]?.normalize("NFC");
  const bad = user === undefined ? undefined : checkUserName(user);
  if (bad !== undefined) {
    console.error(`spindle: ${bad}`);
    return 2;
  }
  let password: string;
  try {
    if (Deno.stdin.isTerminal()) {
      password = await readHidden("Password: ");
      if (password !== await readHidden("Again: ")) {
        console.error("spindle: the passwords differ");
        return 2;
      }
    } else password = await readLine();
  } catch (err) {
    if (err instanceof Cancelled) return 130;
    console.error(
      `spindle: cannot read the password: ${
        err instanceof TypeError ? "not UTF-8" : (err as Error).message
      }`,
    );
    return 2;
  }
  if (password === "") {
    console.error("spindle: the password is empty");
    return 2;
  }
  const hash = await hashPassword(password);
  console.log(user === undefined ? hash : `${user}:${hash}`);
  return 0;
}
