import assert from "node:assert/strict";
import { dropUntilClosed, LINGER_BYTES } from "../lib/http/linger.ts";
import type { Socket } from "../lib/http/socket.ts";

/** A socket whose reads return `pieces` bytes each, then end of file. */
function fakeSocket(pieces: number[]): Socket & { reads: number } {
  const socket = {
    reads: 0,
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } as const,
    read(into: Uint8Array): Promise<number | null> {
      const n = pieces[socket.reads++];
      return Promise.resolve(n === undefined ? null : Math.min(n, into.length));
    },
    write: (bytes: Uint8Array) => Promise.resolve(bytes.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  return socket;
}

Deno.test("dropUntilClosed() reads until the client closes", async () => {
  const socket = fakeSocket([10, 20, 30]);
  await dropUntilClosed(socket, new Uint8Array(64));
  assert.equal(socket.reads, 4, "three pieces, then end of file");
});

Deno.test("dropUntilClosed() stops after LINGER_BYTES from a client that keeps sending", async () => {
  const piece = 64 * 1024;
  const socket = fakeSocket(
    Array(LINGER_BYTES / piece + 10).fill(piece),
  );
  await dropUntilClosed(socket, new Uint8Array(piece));
  assert.equal(socket.reads, LINGER_BYTES / piece);
});
