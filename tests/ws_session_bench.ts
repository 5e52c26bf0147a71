/**
 * How long the WebSocket session takes to read a text message and queue
 * its echo, whole or split across reads, plain or compressed. Run with
 * `deno bench tests/ws_session_bench.ts`; compare before and after a change.
 */
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { MessageDeflater } from "../lib/http/ws/deflate.ts";
import { OPCODE } from "../lib/http/ws/frame.ts";
import { WsSession } from "../lib/http/ws/session.ts";
import { clientFrame } from "./fixtures/ws_frames.ts";

const LIMITS = { ...DEFAULT_LIMITS, wsMaxMessageBytes: 1 << 20 };
const DEFLATE = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

/** A session that echoes every message, fed `pieces` (fresh copies) each run. */
function echoBench(name: string, pieces: Uint8Array[], deflate = false) {
  const session = new WsSession(LIMITS, { deflate: deflate ? DEFLATE : null });
  session.onEvent = (e) => {
    if (e.type === "text" || e.type === "binary") session.send(e.data);
  };
  Deno.bench(name, () => {
    for (const p of pieces) session.receive(p.slice());
    const out = session.takeOutput()!;
    session.written(out.length);
  });
}

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    out.push(bytes.slice(i, i + size));
  }
  return out;
}

const json = JSON.stringify(
  Array.from({ length: 400 }, (_, i) => ({ id: i, name: `user ${i}` })),
);
for (const size of [32, 1024, 16384, 262144]) {
  const frame = clientFrame(
    OPCODE.Text,
    json.repeat(Math.ceil(size / json.length)).slice(0, size),
  );
  echoBench(`echo text ${size} B, one read`, [frame]);
  if (size > 8192) {
    echoBench(`echo text ${size} B, 8 KiB reads`, split(frame, 8192));
  }
}
const binary = clientFrame(OPCODE.Binary, new Uint8Array(65536).fill(7));
echoBench("echo binary 64 KiB, one read", [binary]);
// Compressed with context takeover, as a browser sends: each run's message
// is the same bytes, which the session's inflater reads as a fresh message.
const compressed = new MessageDeflater(15, true, 6).compress(
  new TextEncoder().encode(json),
);
echoBench(
  `echo compressed text ${json.length} B (${compressed.length} B on the wire)`,
  [clientFrame(OPCODE.Text, compressed, { rsv1: true })],
  true,
);
