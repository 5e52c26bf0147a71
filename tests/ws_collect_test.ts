/**
 * Minor collections as big WebSocket messages come in
 * (lib/http/ws/collect.ts): counted per message buffer, asked for of the
 * collector V8 gives under our name, and nothing without one.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type Collect,
  COLLECT_EVERY_BYTES,
  COLLECT_MIN_BYTES,
  COLLECTOR_GLOBAL,
  noteMessageBuffer,
  setCollector,
} from "../lib/http/ws/collect.ts";
import { startApp } from "./fixtures/app_server.ts";
import { openWebSocket, withTimeout } from "./helpers/socket.ts";

const COLLECT_TS = fileURLToPath(
  new URL("../lib/http/ws/collect.ts", import.meta.url),
);

/** Runs `body` with a collector that counts its calls; the one before is put back. */
async function withCounter(
  body: (calls: { type: string }[]) => Promise<void> | void,
): Promise<void> {
  const calls: { type: string }[] = [];
  const counter: Collect = (options) => calls.push(options);
  const before = setCollector(counter);
  try {
    await body(calls);
  } finally {
    setCollector(before);
  }
}

Deno.test("noteMessageBuffer() asks for a minor collection once per COLLECT_EVERY_BYTES of big buffers, not for small ones", async () => {
  await withCounter((calls) => {
    const big = 256 * 1024;
    const perCollection = COLLECT_EVERY_BYTES / big;
    for (let i = 0; i < perCollection - 1; i++) noteMessageBuffer(big);
    assert.equal(calls.length, 0);
    noteMessageBuffer(big);
    assert.deepEqual(calls, [{ type: "minor" }]);
    // Small buffers do not add up to a collection, however many.
    const small = COLLECT_MIN_BYTES - 1;
    for (let i = 0; i < (2 * COLLECT_EVERY_BYTES) / small; i++) {
      noteMessageBuffer(small);
    }
    assert.equal(calls.length, 1);
    for (let i = 0; i < perCollection; i++) noteMessageBuffer(big);
    assert.equal(calls.length, 2);
  });
});

Deno.test("noteMessageBuffer() does nothing without a collector", () => {
  const before = setCollector(undefined);
  try {
    for (let i = 0; i < 64; i++) noteMessageBuffer(COLLECT_EVERY_BYTES);
  } finally {
    setCollector(before);
  }
});

Deno.test("/echo asks for minor collections as big binary messages come in over a socket, and echoes them whole", async () => {
  await withCounter(async (calls) => {
    await using app = await startApp();
    const ws = await openWebSocket(`ws://127.0.0.1:${app.port}/echo`);
    const size = 256 * 1024;
    const count = (2 * COLLECT_EVERY_BYTES) / size;
    for (let i = 0; i < count; i++) {
      const bytes = new Uint8Array(size).fill(i);
      const reply = new Promise<ArrayBuffer>((resolve) =>
        ws.onmessage = (e) => resolve(e.data)
      );
      ws.send(bytes);
      const got = new Uint8Array(await withTimeout(reply, 10_000, "echo"));
      assert.equal(got.length, size);
      assert.equal(got[0], i);
      assert.equal(got[size - 1], i);
    }
    // Small messages add nothing.
    for (let i = 0; i < 20; i++) {
      const reply = new Promise((resolve) => ws.onmessage = resolve);
      ws.send(new Uint8Array(1000));
      await withTimeout(reply, 10_000, "small echo");
    }
    assert.deepEqual(calls, [{ type: "minor" }, { type: "minor" }]);
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
  });
});

Deno.test("under --expose-gc-as with our name, the collector is taken (the global left undefined) and runs V8's minor collection", async () => {
  const code = `
    const { noteMessageBuffer, COLLECT_EVERY_BYTES } = await import(${
    JSON.stringify(COLLECT_TS)
  });
    console.log("global:", typeof globalThis[${
    JSON.stringify(COLLECTOR_GLOBAL)
  }]);
    noteMessageBuffer(COLLECT_EVERY_BYTES);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `--v8-flags=--expose-gc-as=${COLLECTOR_GLOBAL},--trace-gc`,
      code,
    ],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /global: undefined/);
  // --trace-gc names a collection that gc() asked for "testing".
  assert.match(text, /Scavenge[^\n]*testing/);
  assert.doesNotMatch(text, /Mark-Compact[^\n]*testing/);
});
