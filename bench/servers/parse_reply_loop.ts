/**
 * The bare loop (bare_loop.ts) plus the least a strict HTTP/1.1 engine
 * must do per request: each read's head parsed by the engine's own
 * `parseHead()` (every RFC 9112 check, the head's Latin-1 text, the Host
 * value) and the reply written by its writer (status line with a current
 * Date and nosniff, the fields, Content-Length, Keep-Alive, the body). No
 * deadlines, limits on reads, counters, dispatch or keep-alive decisions:
 * a lower bound for the engine alone (spindle_hello.ts), not a server.
 * Correct only for a client that sends one small request a read and waits.
 * Listens on 127.0.0.1 and the port given as the first argument. A second
 * argument keeps one half, to split the cost over sockets: `parse` parses
 * and sends the writer's bytes made once; `reply` writes each reply and
 * parses nothing (both still find the head's end).
 */
import { DEFAULT_LIMITS } from "../../lib/config.ts";
import { batchNow } from "../../lib/http/clock.ts";
import { findHeadEnd, parseHead } from "../../lib/http/parser.ts";
import {
  OutBuffer,
  writeFields,
  writeFraming,
} from "../../lib/http/response.ts";

const FIELDS = Object.freeze({ "content-type": "text/plain" });
const KEEP_ALIVE_MS = DEFAULT_LIMITS.keepAliveTimeoutMs;
const PART = Deno.args[1] ?? "both";
if (PART !== "both" && PART !== "parse" && PART !== "reply") {
  throw new TypeError(`Not a part: ${PART} (parse, reply or none)`);
}
const PARSE = PART !== "reply";
const WRITE = PART !== "parse";

function writeReply(out: OutBuffer, now: number): Uint8Array {
  writeFields(out, 200, FIELDS, now);
  writeFraming(out, 5, false, false, false, KEEP_ALIVE_MS);
  out.text("hello");
  return out.take();
}

/** The same bytes, made once, for `parse` alone (the Date is not updated). */
const FIXED = writeReply(new OutBuffer(), Date.now()).slice();

async function answer(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buf = new Uint8Array(4096);
  const out = new OutBuffer();
  try {
    let n: number | null;
    while ((n = await conn.read(buf)) !== null) {
      if (findHeadEnd(buf, 0, n) === -1) break; // not this loop's client
      if (PARSE) parseHead(buf, 0, n, DEFAULT_LIMITS);
      const reply = WRITE ? writeReply(out, batchNow()) : FIXED;
      for (let off = 0; off < reply.length;) {
        off += await conn.write(reply.subarray(off));
      }
    }
  } catch {
    // the client went away
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

if (import.meta.main) {
  const listener = Deno.listen({
    hostname: "127.0.0.1",
    port: Number(Deno.args[0] ?? 0),
  });
  for await (const conn of listener) answer(conn);
}
