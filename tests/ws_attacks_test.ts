/**
 * Abuse of the WebSocket endpoint over real sockets, against the default
 * app's `/echo`: frames a client must not send (a 2^63 length, no mask, a
 * ping of 126 bytes, a fragmented control frame), a decompression bomb,
 * a client that sends but never reads, and 10,000 idle sockets held open
 * against a real server process, with the memory each one costs.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { OPCODE } from "../lib/http/ws/frame.ts";
import { startApp } from "./fixtures/app_server.ts";
import { startMain } from "./fixtures/main_server.ts";
import { memoryOf } from "./fixtures/serve_process.ts";
import { PYTHON, pythonMissing } from "./fixtures/ws_python.ts";
import {
  clientFrame,
  type ClientFrameOptions,
  closePayload,
  decoder,
  deflateAsClient,
  encoder,
  incompressible,
  readClose,
} from "./fixtures/ws_frames.ts";
import { concat, sleep, waitFor, withTimeout } from "./helpers/socket.ts";
import { RawWs, upgradeRequest } from "./helpers/ws_raw.ts";

const abuse: [
  what: string,
  opcode: number,
  payload: Uint8Array,
  opts: ClientFrameOptions,
  code: number,
][] = [
  [
    "a frame length of 2^63",
    OPCODE.Binary,
    new Uint8Array(0),
    { length: 2n ** 63n, width: 64 },
    1002,
  ],
  [
    "a frame length of 2^63 - 1",
    OPCODE.Binary,
    new Uint8Array(0),
    { length: 2n ** 63n - 1n, width: 64 },
    1009,
  ],
  ["an unmasked frame", OPCODE.Text, new Uint8Array(3), { mask: false }, 1002],
  ["a ping of 126 bytes", OPCODE.Ping, new Uint8Array(126), {}, 1002],
  [
    "a fragmented control frame",
    OPCODE.Ping,
    new Uint8Array(4),
    { fin: false },
    1002,
  ],
  ["an unknown opcode", 0x3, new Uint8Array(1), {}, 1002],
  [
    "a continuation with no message",
    OPCODE.Continuation,
    new Uint8Array(1),
    {},
    1002,
  ],
];

for (const [what, opcode, payload, opts, code] of abuse) {
  Deno.test(`WebSocket /echo answers ${what} with close ${code}, then closes`, async () => {
    await using app = await startApp();
    using ws = await RawWs.open(app.port);
    assert.equal(ws.reply.status, 101);
    await ws.send(clientFrame(opcode, payload, opts));
    const [got] = await ws.closeFrame();
    assert.equal(got, code);
    assert.equal(await ws.ended(), true, "the server closes the socket");
    await waitFor(() => app.stats.active === 0, "the slot given back");
  });
}

/** Bad UTF-8 in text, each as the frames that carry it: 1007 for all. */
const badText: [what: string, frames: Uint8Array[]][] = [
  // A small whole frame takes the one-pass path, not the frame parser.
  ["in one small frame", [
    clientFrame(OPCODE.Text, new Uint8Array([0x61, 0xff])),
  ]],
  [
    "in a character cut between two frames",
    [
      clientFrame(OPCODE.Text, new Uint8Array([0x61, 0xce]), { fin: false }),
      clientFrame(OPCODE.Continuation, new Uint8Array([0x41])),
    ],
  ],
  [
    "after 200 good bytes, in a 16-bit-length frame",
    [clientFrame(
      OPCODE.Text,
      new Uint8Array([...encoder.encode("é".repeat(100)), 0xc0, 0x80]),
    )],
  ],
];

for (const [what, frames] of badText) {
  Deno.test(`WebSocket /echo answers bad UTF-8 ${what} with close 1007, echoing no text`, async () => {
    await using app = await startApp();
    using ws = await RawWs.open(app.port);
    for (const frame of frames) await ws.send(frame);
    const [got] = await ws.closeFrame();
    assert.equal(got, 1007);
    assert.equal(await ws.ended(), true, "the server closes the socket");
  });
}

/** Raw deflate of `mib` MiB of zeros, made piece by piece (the test never holds it inflated). */
async function deflatedZeros(mib: number): Promise<Uint8Array> {
  const zeros = new Uint8Array(1024 * 1024);
  const stream = new CompressionStream("deflate-raw");
  const writer = stream.writable.getWriter();
  const writing = (async () => {
    for (let i = 0; i < mib; i++) await writer.write(zeros);
    await writer.close();
  })();
  const out = new Uint8Array(await new Response(stream.readable).arrayBuffer());
  await writing;
  return out;
}

Deno.test("WebSocket /echo stops inflating a decompression bomb at the message limit: close 1009", async () => {
  await using app = await startApp();
  using ws = await RawWs.open(
    app.port,
    upgradeRequest("/echo", "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
  );
  assert.match(
    ws.reply.headers.get("sec-websocket-extensions") ?? "",
    /^permessage-deflate/,
  );
  // 256 MiB of zeros in ~256 KiB: under the 1 MiB wire limit, 256 times over once inflated.
  const bomb = await deflatedZeros(256);
  assert.ok(bomb.length < 1024 * 1024, `${bomb.length} bytes on the wire`);
  const before = Deno.memoryUsage().rss;
  await ws.send(clientFrame(OPCODE.Binary, bomb, { rsv1: true }));
  const [code, reason] = await ws.closeFrame();
  assert.equal(code, 1009);
  assert.match(reason, /Inflated message is over the 1048576-byte limit/);
  assert.ok(
    Deno.memoryUsage().rss - before < 128 * 1024 * 1024,
    "the bomb was never inflated whole",
  );
  assert.equal(await ws.ended(), true);
});

Deno.test("WebSocket /echo stops reading a client that sends but never reads, and drops it after writeTimeoutMs", async () => {
  await using app = await startApp({
    serve: { limits: { writeTimeoutMs: 1000 } },
  });
  using ws = await RawWs.open(app.port);
  const message = clientFrame(OPCODE.Binary, new Uint8Array(512 * 1024));
  let sent = 0;
  const writing = (async () => {
    try {
      while (sent < 1024 << 20) {
        await ws.send(message);
        sent += message.length;
      }
    } catch {
      // dropped by the server
    }
  })();
  await waitFor(() => app.stats.active === 0, "the client dropped", 15_000);
  ws.conn.close(); // ends a write still waiting on a full socket
  await withTimeout(writing, 5000, "the client's writes end");
  assert.ok(
    sent < 1024 << 20,
    `the server stopped reading after ${sent} bytes`,
  );
});

const IDLE_SOCKETS = 10_000;

/** The descriptors this process (and the server it starts) may open: `ulimit -n`. */
function openFileLimit(): number {
  const out = new Deno.Command("bash", { args: ["-c", "ulimit -n"] })
    .outputSync();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}
// Each side holds one descriptor per socket, plus its own.
const fdShort = Deno.build.os !== "linux"
  ? "not Linux (/proc is read for memory)"
  : openFileLimit() < IDLE_SOCKETS + 500
  ? `ulimit -n is ${openFileLimit()}, under ${IDLE_SOCKETS + 500}`
  : undefined;
if (fdShort !== undefined) {
  console.log(`ws_attacks_test: the idle-sockets case is skipped: ${fdShort}`);
}
/** Generous: Deno.serve's own WebSocket costs ~20 KiB (bench case 15 compares). */
const MAX_BYTES_PER_SOCKET = 48 * 1024;

/** The median of three samples 100 ms apart: one GC does not decide. */
async function steadyRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    samples.push(await memoryOf(pid, "VmRSS"));
    await sleep(100);
  }
  return samples.sort((a, b) => a - b)[1];
}

Deno.test({
  name: `10,000 idle WebSockets on /echo of a real server process cost under ${
    MAX_BYTES_PER_SOCKET / 1024
  } KiB each, and all still answer`,
  ignore: fdShort !== undefined,
  async fn() {
    const site = await Deno.makeTempDir({ prefix: "spindle_ws_idle_" });
    const sockets: RawWs[] = [];
    try {
      await using main = await startMain(
        [`--allow-read=${site}`],
        ["--root", site, "--max-conns", String(IDLE_SOCKETS + 100)],
      );
      // Warm up: the code paths are compiled before the first measurement.
      for (let i = 0; i < 50; i++) {
        using ws = await RawWs.open(main.port);
        await ws.send(clientFrame(OPCODE.Close, closePayload(1000)));
        await ws.closeFrame();
        await ws.ended();
      }
      await sleep(300);
      const before = await steadyRss(main.pid);
      for (let i = 0; i < IDLE_SOCKETS; i += 250) {
        const batch = await withTimeout(
          Promise.all(
            Array.from(
              { length: Math.min(250, IDLE_SOCKETS - i) },
              () => RawWs.open(main.port),
            ),
          ),
          30_000,
          `sockets ${i}..${i + 250} open`,
        );
        sockets.push(...batch);
      }
      assert.ok(sockets.every((ws) => ws.reply.status === 101));
      await sleep(500);
      const after = await steadyRss(main.pid);
      const perSocket = (after - before) / IDLE_SOCKETS;
      console.log(
        `  ${IDLE_SOCKETS} idle WebSockets: server RSS ${
          (before / 2 ** 20).toFixed(1)
        } -> ${(after / 2 ** 20).toFixed(1)} MiB, ${
          (perSocket / 1024).toFixed(1)
        } KiB each`,
      );
      assert.ok(
        perSocket < MAX_BYTES_PER_SOCKET,
        `${(perSocket / 1024).toFixed(1)} KiB per idle socket`,
      );
      // Every socket is still served: one message each, answered.
      for (let i = 0; i < sockets.length; i += 500) {
        const batch = sockets.slice(i, i + 500);
        await Promise.all(
          batch.map((ws) => ws.send(clientFrame(OPCODE.Text, "still?"))),
        );
        for (const ws of batch) {
          assert.equal(
            decoder.decode((await ws.frame(30_000)).payload),
            "still?",
          );
        }
      }
      await Promise.all(
        sockets.map((ws) =>
          ws.send(clientFrame(OPCODE.Close, closePayload(1000)))
        ),
      );
    } finally {
      for (const ws of sockets) ws[Symbol.dispose]();
      await Deno.remove(site, { recursive: true });
    }
  },
});

/** The message limit of the default app (DEFAULT_LIMITS.wsMaxMessageBytes). */
const MIB = 1024 * 1024;

/** "echoed" when the next message (inflated if compressed) is `sent`, "changed" if not, or the close frame's code. */
async function echoOrClose(
  ws: RawWs,
  sent: Uint8Array,
): Promise<"echoed" | "changed" | number> {
  for (;;) {
    const f = await ws.frame();
    if (f.opcode === OPCODE.Close) return readClose(f.payload)[0];
    if (f.opcode !== OPCODE.Binary) continue;
    const tail = new Uint8Array([0, 0, 0xff, 0xff]);
    const got = f.rsv1
      ? zlib.inflateRawSync(concat([f.payload, tail]), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
      })
      : f.payload;
    // Not assert.deepEqual: its diff of two 1 MiB arrays takes gigabytes.
    return got.length === sent.length && got.every((b, i) => b === sent[i])
      ? "echoed"
      : "changed";
  }
}

// zlib at settings a client may choose, for data that does not compress:
// [what, zlib options, data]. The last comes out ~12.6% bigger than it went in.
const deflatedBig: [string, zlib.ZlibOptions, (n: number) => Uint8Array][] = [
  ["zlib's defaults", {}, incompressible],
  ["memory level 5 (Python's websockets)", { memLevel: 5 }, incompressible],
  ["memory level 1", { memLevel: 1 }, incompressible],
  ["a 512-byte window, fixed codes, bytes over 0x8f", {
    windowBits: 9,
    strategy: zlib.constants.Z_FIXED,
  }, (n) => incompressible(n).map((b) => 0x90 | b)],
];
for (const [what, opts, make] of deflatedBig) {
  Deno.test(`WebSocket /echo takes a compressed message of 1 MiB less 16 and of 1 MiB that grew in deflate (${what}), and refuses 1 MiB + 1 with 1009`, async () => {
    await using app = await startApp();
    const extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    for (const size of [MIB - 16, MIB, MIB + 1]) {
      using ws = await RawWs.open(app.port, upgradeRequest("/echo", extension));
      const data = make(size);
      const payload = deflateAsClient(data, opts);
      assert.ok(payload.length > size, `${payload.length} bytes deflated`);
      await ws.send(clientFrame(OPCODE.Binary, payload, { rsv1: true }));
      const got = await echoOrClose(ws, data);
      assert.equal(got, size > MIB ? 1009 : "echoed", `${size} bytes`);
    }
  });
}

Deno.test("WebSocket /echo refuses a compressed frame past deflate's most for the 1 MiB limit from its header, and a message of such frames: 1009", async () => {
  await using app = await startApp();
  const extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
  // zlib's bound for 1 MiB, n + n/8 + n/256 + n/512 + 16: one byte more is refused.
  const most = MIB + MIB / 8 + MIB / 256 + MIB / 512 + 16;
  {
    using ws = await RawWs.open(app.port, upgradeRequest("/echo", extension));
    const head = clientFrame(OPCODE.Binary, new Uint8Array(0), {
      rsv1: true,
      length: most + 1,
    });
    await ws.send(head);
    assert.deepEqual(await ws.closeFrame(), [
      1009,
      `Compressed frame of ${most + 1} bytes is over the ${most}-byte limit`,
    ]);
  }
  {
    // Two frames, each within the frame limit, together one byte over.
    using ws = await RawWs.open(app.port, upgradeRequest("/echo", extension));
    // Empty stored blocks (00 00 00 ff ff each) inflate to nothing.
    const empty = [0x00, 0x00, 0x00, 0xff, 0xff];
    const first = new Uint8Array(most - 100).map((_, i) => empty[i % 5]);
    await ws.send(
      clientFrame(OPCODE.Binary, first, { rsv1: true, fin: false }),
    );
    await ws.send(
      clientFrame(OPCODE.Continuation, new Uint8Array(0), { length: 101 }),
    );
    assert.deepEqual(await ws.closeFrame(), [
      1009,
      `Compressed message over the ${most}-byte limit on the wire`,
    ]);
  }
});

Deno.test({
  name:
    "Python's websockets sends /echo 1 MiB less 16 and 1 MiB of random bytes compressed or not, and gets 1009 for 1 MiB + 1 both ways",
  ignore: pythonMissing() !== undefined,
  async fn() {
    await using app = await startApp();
    const script = `import asyncio, json, os, sys, websockets
async def one(uri, size, compression):
    data = os.urandom(size)
    async with websockets.connect(uri, compression=compression, max_size=2**22, open_timeout=10, close_timeout=10) as ws:
        await ws.send(data)
        try:
            back = await asyncio.wait_for(ws.recv(), 30)
            return "echoed" if back == data else "changed"
        except websockets.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else "no close frame"
async def main():
    out = []
    for compression in ("deflate", None):
        for size in (${MIB - 16}, ${MIB}, ${MIB + 1}):
            out.append(await one(sys.argv[1], size, compression))
    print(json.dumps(out))
asyncio.run(main())`;
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", script, `ws://127.0.0.1:${app.port}/echo`],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    assert.deepEqual(JSON.parse(decoder.decode(out.stdout)), [
      "echoed",
      "echoed",
      1009,
      "echoed",
      "echoed",
      1009,
    ]);
  },
});
