/**
 * The bench's WebSocket load generator: N sockets, each writing `depth`
 * masked messages of one size and waiting for their echoes, for a fixed
 * time. Frames are built once and read back by their headers alone (no
 * payload is copied or decoded), so the client costs less than the
 * servers it measures. Also holds idle WebSockets for the memory case.
 *
 * CLI: `deno run --allow-net bench/ws_load.ts ws://127.0.0.1:8080/echo
 * -c 256 -d 5 -s 32 [-p 1] [--binary] [--json]`
 */
import { parseArgs } from "node:util";
import type { IdleKind } from "./clients.ts";
import type { LoadResult } from "./load.ts";

const READ_BUFFER_BYTES = 256 * 1024;
const CONNECT_BATCH = 100;
const MASK = [0x5a, 0x13, 0xc7, 0x2e];
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;

/** What to send and for how long. */
export interface WsLoadOptions {
  readonly hostname: string;
  readonly port: number;
  readonly path: string;
  readonly connections: number;
  readonly durationMs: number;
  /** Payload bytes of each message. */
  readonly messageBytes: number;
  /** Messages written at once per socket before waiting for their echoes. */
  readonly depth: number;
  /** Binary messages; text ("x" repeated) otherwise. */
  readonly binary: boolean;
}

/** One masked client frame carrying `payload`. */
export function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const ext = n < 126 ? 0 : n <= 0xffff ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + n);
  out[0] = 0x80 | opcode;
  if (ext === 0) out[1] = 0x80 | n;
  else if (ext === 2) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  const at = 2 + ext;
  out.set(MASK, at);
  for (let i = 0; i < n; i++) out[at + 4 + i] = payload[i] ^ MASK[i & 3];
  return out;
}

/**
 * Counts whole server frames in bytes fed piece by piece, skipping their
 * payloads. Unmasked frames only, as a server sends.
 */
export class FrameCounter {
  /** Data frames (text, binary) with FIN seen whole. */
  messages = 0;
  /** A close frame came. */
  closed = false;
  readonly #head = new Uint8Array(10);
  #headLen = 0;
  #skip = 0;
  #opcode = 0;
  #fin = false;

  push(buf: Uint8Array, end: number): void {
    let i = 0;
    while (i < end) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, end - i);
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) this.#frameDone();
        continue;
      }
      this.#head[this.#headLen++] = buf[i++];
      if (this.#headLen < 2) continue;
      const len7 = this.#head[1] & 0x7f;
      const need = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      if (this.#headLen < need) continue;
      const h = this.#head;
      this.#fin = (h[0] & 0x80) !== 0;
      this.#opcode = h[0] & 0x0f;
      this.#skip = need === 2
        ? len7
        : need === 4
        ? (h[2] << 8) | h[3]
        : Number(new DataView(h.buffer).getBigUint64(2));
      this.#headLen = 0;
      if (this.#skip === 0) this.#frameDone();
    }
  }

  #frameDone(): void {
    if (this.#opcode === OPCODE_CLOSE) this.closed = true;
    else if (this.#fin && this.#opcode !== 0x9 && this.#opcode !== 0xa) {
      this.messages++;
    }
  }
}

/** Connects and completes a WebSocket handshake; the socket is then open. */
export async function openWebSocket(
  hostname: string,
  port: number,
  path: string,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname, port });
  try {
    conn.setNoDelay(true);
    await writeAll(
      conn,
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    // The 101 head arrives alone: the server sends nothing more unasked.
    const buf = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("Server closed during the handshake");
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    if (!text.startsWith("HTTP/1.1 101")) {
      throw new Error(`Handshake refused: ${text.split("\r\n")[0]}`);
    }
    return conn;
  } catch (err) {
    conn.close();
    throw err;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Runs the load for `durationMs`; messages echoed in time are counted. */
export async function runWsLoad(opts: WsLoadOptions): Promise<LoadResult> {
  const payload = new Uint8Array(opts.messageBytes).fill(0x78); // "x"
  const one = maskedFrame(opts.binary ? OPCODE_BINARY : OPCODE_TEXT, payload);
  const batch = new Uint8Array(one.length * opts.depth);
  for (let i = 0; i < opts.depth; i++) batch.set(one, i * one.length);
  const open = new Set<Deno.Conn>();
  let stopped = false;
  let messages = 0;
  let bytes = 0;
  let socketErrors = 0;
  let connects = 0;
  let firstError: string | undefined;
  const fail = (err: unknown) => {
    socketErrors++;
    firstError ??= err instanceof Error
      ? `${err.name}: ${err.message}`
      : `${err}`;
  };

  async function drive(conn: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    const counter = new FrameCounter();
    try {
      while (!stopped) {
        await writeAll(conn, batch);
        const target = counter.messages + opts.depth;
        while (counter.messages < target) {
          const n = await conn.read(buf);
          if (n === null || counter.closed) {
            throw new Error("Server closed the WebSocket");
          }
          if (stopped) return;
          bytes += n;
          const before = counter.messages;
          counter.push(buf, n);
          messages += counter.messages - before;
        }
      }
    } catch (err) {
      if (!stopped) fail(err);
    } finally {
      if (open.delete(conn)) conn.close();
    }
  }

  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < opts.connections; i += CONNECT_BATCH) {
    const n = Math.min(CONNECT_BATCH, opts.connections - i);
    const opened = await Promise.allSettled(
      Array.from(
        { length: n },
        () => openWebSocket(opts.hostname, opts.port, opts.path),
      ),
    );
    for (const r of opened) {
      if (r.status === "fulfilled") {
        connects++;
        conns.push(r.value);
        open.add(r.value);
      } else fail(r.reason);
    }
  }
  const started = performance.now();
  const loops = conns.map((conn) => drive(conn));
  await new Promise((r) => setTimeout(r, opts.durationMs));
  stopped = true;
  const durationMs = performance.now() - started;
  for (const conn of open) conn.close();
  open.clear();
  await Promise.all(loops);
  return {
    requests: messages,
    bytes,
    durationMs,
    requestsPerSec: messages / (durationMs / 1000),
    bytesPerSec: bytes / (durationMs / 1000),
    errorStatuses: 0,
    socketErrors,
    connects,
    firstError,
  };
}

const ALIVE = maskedFrame(OPCODE_TEXT, new TextEncoder().encode("alive?"));

/** Idle WebSockets after their handshake, for the memory case; a check sends one message. */
export const wsIdle: IdleKind = {
  open: openWebSocket,
  async check(conn) {
    await writeAll(conn, ALIVE);
    const counter = new FrameCounter();
    const buf = new Uint8Array(1024);
    while (counter.messages === 0) {
      const n = await conn.read(buf);
      if (n === null || counter.closed) return false;
      counter.push(buf, n);
    }
    return true;
  },
};

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      connections: { type: "string", short: "c", default: "64" },
      duration: { type: "string", short: "d", default: "5" },
      size: { type: "string", short: "s", default: "32" },
      depth: { type: "string", short: "p", default: "1" },
      binary: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1) {
    console.error(
      "Usage: ws_load.ts <ws://host:port/path> [-c sockets] [-d seconds] [-s bytes] [-p depth] [--binary] [--json]",
    );
    Deno.exit(2);
  }
  const url = new URL(positionals[0]);
  const result = await runWsLoad({
    hostname: url.hostname,
    port: Number(url.port || 80),
    path: url.pathname + url.search,
    connections: Number(values.connections),
    durationMs: Number(values.duration) * 1000,
    messageBytes: Number(values.size),
    depth: Number(values.depth),
    binary: values.binary,
  });
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `${result.requests} messages echoed in ${
        (result.durationMs / 1000).toFixed(2)
      } s: ${result.requestsPerSec.toFixed(0)} msg/s, ${
        (result.bytesPerSec / 1048576).toFixed(2)
      } MiB/s, ${result.socketErrors} socket errors${
        result.firstError ? ` (${result.firstError})` : ""
      }`,
    );
  }
}
