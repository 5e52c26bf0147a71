/**
 * The web-API-shaped WebSocket over a session, with byte arrays alone:
 * the open event, messages by binaryType, send() of every data type in
 * order (Blobs included), close() as the web API checks it, and how a
 * failed connection ends (error, then close).
 */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { OPCODE } from "../lib/http/ws/frame.ts";
import { WsSession } from "../lib/http/ws/session.ts";
import { ServerWebSocket } from "../lib/http/ws/socket.ts";
import {
  clientFrame,
  closePayload,
  decoder,
  readClose,
  readServerFrames,
} from "./fixtures/ws_frames.ts";
import { runWithGc } from "./helpers/gc_child.ts";
import { waitFor } from "./helpers/socket.ts";

/** A socket over a fresh session, with no handler of any kind. */
function unheard(): { ws: ServerWebSocket; session: WsSession } {
  const session = new WsSession(DEFAULT_LIMITS);
  const ws = new ServerWebSocket(session, {
    url: "ws://localhost/",
    protocol: "",
    extensions: "",
  });
  return { ws, session };
}

function make(): { ws: ServerWebSocket; session: WsSession; log: string[] } {
  const session = new WsSession(DEFAULT_LIMITS);
  const ws = new ServerWebSocket(session, {
    url: "ws://localhost/chat",
    protocol: "chat",
    extensions: "",
  });
  const log: string[] = [];
  ws.onopen = () => log.push("open");
  ws.onmessage = (e) =>
    log.push(
      `message:${
        typeof e.data === "string" ? e.data : e.data.constructor.name
      }`,
    );
  ws.onerror = () => log.push("error");
  ws.onclose = (e) => log.push(`close:${e.code}:${e.reason}:${e.wasClean}`);
  return { ws, session, log };
}

/** Everything the session has queued, as frames. */
function drain(session: WsSession) {
  const frames = [];
  for (let out; (out = session.takeOutput()) !== null;) {
    frames.push(...readServerFrames(out));
    session.written(out.length);
  }
  return frames;
}

/**
 * Counts every MessageEvent made, of whatever subclass, as its constructor
 * assigns `this.data` (a setter on the prototype hears it), until disposed.
 */
function messageEventsMade(): { made: unknown[] } & Disposable {
  const made: unknown[] = [];
  Object.defineProperty(MessageEvent.prototype, "data", {
    configurable: true,
    set(this: MessageEvent, data: unknown) {
      made.push(data);
      Object.defineProperty(this, "data", { value: data, writable: true });
    },
  });
  return {
    made,
    [Symbol.dispose]: () => {
      Reflect.deleteProperty(MessageEvent.prototype, "data");
    },
  };
}

Deno.test("ServerWebSocket has CONNECTING to CLOSED on its prototype, as a browser's WebSocket, not in each socket", () => {
  const { ws } = make();
  for (
    const [name, value] of [["CONNECTING", 0], ["OPEN", 1], ["CLOSING", 2], [
      "CLOSED",
      3,
    ]] as const
  ) {
    assert.equal(Object.hasOwn(ws, name), false, name);
    assert.equal(ws[name], value);
    assert.equal(ServerWebSocket[name], value);
    assert.equal(
      Object.getOwnPropertyDescriptor(ServerWebSocket.prototype, name)
        ?.enumerable,
      true,
    );
  }
});

Deno.test("ServerWebSocket opens when the engine says so, not before", () => {
  const { ws, log } = make();
  assert.equal(ws.readyState, ServerWebSocket.CONNECTING);
  assert.throws(() => ws.send("early"), { name: "InvalidStateError" });
  ws.opened();
  ws.opened();
  assert.equal(ws.readyState, ws.OPEN);
  assert.deepEqual(log, ["open"]);
  assert.equal(ws.protocol, "chat");
  assert.equal(ws.url, "ws://localhost/chat");
});

Deno.test("ServerWebSocket delivers text as strings and binary as Blob or ArrayBuffer", async () => {
  const { ws, session, log } = make();
  ws.opened();
  const seen: unknown[] = [];
  ws.addEventListener("message", (e) => seen.push((e as MessageEvent).data));
  session.receive(clientFrame(OPCODE.Text, "hi"));
  session.receive(clientFrame(OPCODE.Binary, new Uint8Array([1, 2])));
  ws.binaryType = "arraybuffer";
  session.receive(clientFrame(OPCODE.Binary, new Uint8Array([3, 4])));
  assert.deepEqual(log, [
    "open",
    "message:hi",
    "message:Blob",
    "message:ArrayBuffer",
  ]);
  assert.equal(seen[0], "hi", "listeners get the same events");
  assert.deepEqual(
    new Uint8Array(await (seen[1] as Blob).arrayBuffer()),
    new Uint8Array([1, 2]),
  );
  assert.deepEqual(
    new Uint8Array(seen[2] as ArrayBuffer),
    new Uint8Array([3, 4]),
  );
});

Deno.test("each message event is its own: events kept by the app keep their data, type and origin", () => {
  const { ws, session } = make();
  ws.opened();
  const kept: MessageEvent[] = [];
  ws.onmessage = (e) => kept.push(e);
  ws.binaryType = "arraybuffer";
  session.receive(
    new Uint8Array([
      ...clientFrame(OPCODE.Text, "one"),
      ...clientFrame(OPCODE.Binary, new Uint8Array([9])),
      ...clientFrame(OPCODE.Text, "three"),
    ]),
  );
  assert.equal(kept.length, 3);
  assert.equal(new Set(kept).size, 3);
  assert.equal(kept[0].data, "one");
  assert.deepEqual(new Uint8Array(kept[1].data), new Uint8Array([9]));
  assert.equal(kept[2].data, "three");
  for (const e of kept) {
    assert.ok(e instanceof MessageEvent);
    assert.equal(e.type, "message");
    assert.equal(e.origin, "");
    assert.deepEqual(e.ports, []);
  }
});

Deno.test("events reach on* handlers and listeners at the socket, as a dispatched event does", () => {
  const { ws, session } = make();
  /** What a handler saw while it ran, and the event it kept. */
  const seen: unknown[][] = [];
  const kept: Event[] = [];
  const look = (who: string) => (e: Event) => {
    kept.push(e);
    seen.push([
      who,
      e.type,
      e.target === ws,
      e.currentTarget === ws,
      e.eventPhase,
      e.composedPath().length,
    ]);
  };
  ws.onopen = look("onopen");
  ws.onmessage = look("onmessage");
  ws.onerror = look("onerror");
  ws.onclose = look("onclose");
  ws.opened();
  session.receive(clientFrame(OPCODE.Text, "alone"));
  ws.addEventListener("message", look("listener"));
  session.receive(clientFrame(OPCODE.Text, "listened"));
  session.receive(clientFrame(OPCODE.Text, "x", { mask: false }));
  const AT = Event.AT_TARGET;
  assert.deepEqual(seen, [
    ["onopen", "open", true, true, AT, 1],
    ["onmessage", "message", true, true, AT, 1],
    ["onmessage", "message", true, true, AT, 1],
    ["listener", "message", true, true, AT, 1],
    ["onerror", "error", true, true, AT, 1],
    ["onclose", "close", true, true, AT, 1],
  ]);
  for (const e of kept) {
    assert.equal(e.target, ws, "kept events keep their target");
    assert.equal(e.currentTarget, null);
    assert.equal(e.eventPhase, Event.NONE);
  }
  assert.ok(kept[1] instanceof MessageEvent);
  assert.ok(kept[5] instanceof CloseEvent);
});

Deno.test("a socket's event fired inside another socket's handler does not change what that handler sees", () => {
  const a = make();
  const b = make();
  a.ws.opened();
  b.ws.opened();
  const seen: unknown[] = [];
  b.ws.onclose = (e) => seen.push(e.target === b.ws);
  a.ws.onmessage = (e) => {
    // b fails at once: its close event fires inside this handler.
    b.session.receive(clientFrame(OPCODE.Text, "x", { mask: false }));
    seen.push(e.target === a.ws, e.currentTarget === a.ws);
  };
  a.session.receive(clientFrame(OPCODE.Text, "hi"));
  assert.deepEqual(seen, [true, true, true]);
});

Deno.test("ServerWebSocket.send() takes strings, buffers, views and Blobs, in order", async () => {
  const { ws, session } = make();
  ws.opened();
  const bytes = new Uint8Array([9, 8, 7, 6]);
  ws.send("text");
  ws.send(bytes.buffer);
  ws.send(bytes.subarray(1, 3));
  ws.send(new Blob([new Uint8Array([5])]));
  ws.send("after the blob");
  assert.equal(ws.bufferedAmount > 0, true);
  // The Blob is read asynchronously; the frames behind it wait for it.
  const frames: ReturnType<typeof drain> = [];
  await waitFor(() => {
    frames.push(...drain(session));
    return frames.length >= 5;
  }, "five frames");
  assert.deepEqual(frames.map((f) => f.opcode), [1, 2, 2, 2, 1]);
  assert.equal(decoder.decode(frames[0].payload), "text");
  assert.deepEqual(frames[1].payload, bytes);
  assert.deepEqual(frames[2].payload, new Uint8Array([8, 7]));
  assert.deepEqual(frames[3].payload, new Uint8Array([5]));
  assert.equal(decoder.decode(frames[4].payload), "after the blob");
  assert.equal(ws.bufferedAmount, 0);
});

Deno.test("ServerWebSocket.close() checks code and reason as the web API does", () => {
  const { ws, session, log } = make();
  ws.opened();
  assert.throws(() => ws.close(1001), { name: "InvalidAccessError" });
  assert.throws(() => ws.close(2999), { name: "InvalidAccessError" });
  assert.throws(() => ws.close(1000, "r".repeat(124)), { name: "SyntaxError" });
  ws.close(4000, "done");
  assert.equal(ws.readyState, ws.CLOSING);
  ws.close(4001); // no-op once closing
  ws.send("dropped");
  const frames = drain(session);
  assert.deepEqual(frames.map((f) => f.opcode), [OPCODE.Close]);
  assert.deepEqual(readClose(frames[0].payload), [4000, "done"]);
  session.receive(clientFrame(OPCODE.Close, closePayload(4000, "ok")));
  assert.equal(ws.readyState, ws.CLOSED);
  assert.deepEqual(log, ["open", "close:4000:ok:true"]);
});

Deno.test("ServerWebSocket reports a failed connection as error, then close", () => {
  const { ws, session, log } = make();
  ws.opened();
  session.receive(clientFrame(OPCODE.Text, "x", { mask: false }));
  assert.deepEqual(log, [
    "open",
    "error",
    "close:1002:Client frame is not masked:false",
  ]);
  assert.equal(ws.readyState, ws.CLOSED);
});

Deno.test("an onmessage handler that throws fails the connection with 1011", () => {
  const { ws, session, log } = make();
  ws.opened();
  ws.onmessage = () => {
    throw new Error("handler bug");
  };
  assert.throws(
    () => session.receive(clientFrame(OPCODE.Text, "x")),
    /handler bug/,
  );
  assert.deepEqual(log, [
    "open",
    "error",
    "close:1011:Internal error in the app:false",
  ]);
  assert.deepEqual(readClose(drain(session)[0].payload)[0], 1011);
});

Deno.test("ServerWebSocket's iterator yields text and bytes in order, then ends at the close", async () => {
  const { ws, session } = make();
  ws.opened();
  const seen: unknown[] = [];
  const reading = (async () => {
    for await (const message of ws) seen.push(message);
  })();
  assert.throws(() => ws[Symbol.asyncIterator](), TypeError, "one at a time");
  session.receive(clientFrame(OPCODE.Text, "one"));
  session.receive(clientFrame(OPCODE.Binary, new Uint8Array([1, 2])));
  await Promise.resolve();
  session.receive(clientFrame(OPCODE.Text, "three"));
  session.receive(clientFrame(OPCODE.Close, closePayload(1000)));
  await reading;
  assert.deepEqual(seen, ["one", new Uint8Array([1, 2]), "three"]);
});

Deno.test("a message nobody listens for makes no event; an onmessage or a listener added later gets the next ones", async () => {
  using spy = messageEventsMade();
  const { made } = spy;
  const { ws, session } = unheard();
  ws.opened();
  const messages = ws[Symbol.asyncIterator]();
  session.receive(clientFrame(OPCODE.Text, "iterated"));
  session.receive(clientFrame(OPCODE.Binary, new Uint8Array([1])));
  assert.deepEqual(made, [], "an app that only iterates pays for no event");
  const heard: unknown[] = [];
  ws.onmessage = (e) => heard.push(e.data);
  session.receive(clientFrame(OPCODE.Text, "handled"));
  ws.onmessage = null;
  ws.addEventListener(
    "message",
    (e) => heard.push(`listener ${(e as MessageEvent).data}`),
  );
  session.receive(clientFrame(OPCODE.Text, "listened"));
  assert.deepEqual(heard, ["handled", "listener listened"]);
  assert.equal(made.length, 2);
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push((await messages.next()).value);
  assert.deepEqual(seen, [
    "iterated",
    new Uint8Array([1]),
    "handled",
    "listened",
  ]);
});

Deno.test("ServerWebSocket's backlog() holds the engine's reads while unread messages pass maxBacklogBytes", async () => {
  const session = new WsSession(DEFAULT_LIMITS);
  const ws = new ServerWebSocket(session, {
    url: "ws://localhost/",
    protocol: "",
    extensions: "",
    maxBacklogBytes: 10,
  });
  ws.opened();
  const messages = ws[Symbol.asyncIterator]();
  assert.equal(ws.backlog(), undefined, "nothing waits");
  session.receive(clientFrame(OPCODE.Text, "12345678"));
  assert.equal(ws.backlog(), undefined, "8 bytes are under 10");
  session.receive(clientFrame(OPCODE.Text, "abcdefgh"));
  const held = ws.backlog();
  assert.ok(held instanceof Promise, "16 bytes wait: reads pause");
  assert.equal(ws.backlog(), held, "one promise for one pause");
  let resumed = false;
  held.then(() => resumed = true);
  assert.deepEqual(await messages.next(), { done: false, value: "12345678" });
  await Promise.resolve();
  assert.equal(resumed, true, "taking one message makes room");
  assert.equal(ws.backlog(), undefined);
  // Ending the iteration releases the engine too.
  session.receive(clientFrame(OPCODE.Text, "abcdefghijkl"));
  const again = ws.backlog();
  assert.ok(again instanceof Promise);
  await messages.return!();
  await again;
  assert.equal(ws.backlog(), undefined);
});

Deno.test("ServerWebSocket without an iterator never holds reads", () => {
  const { ws, session } = make();
  ws.opened();
  session.receive(clientFrame(OPCODE.Text, "x".repeat(100_000)));
  assert.equal(ws.backlog(), undefined);
});

Deno.test("handlers get open with its argument, each message as a plain value with no MessageEvent made, and the close's code and reason, before the on* handlers' events", () => {
  using spy = messageEventsMade();
  const { made } = spy;
  const { ws, session } = unheard();
  const log: unknown[] = [];
  const handlers = {
    seen: 0,
    open(socket: ServerWebSocket, arg: { room: string }) {
      log.push(["open", socket === ws, arg.room, socket.readyState]);
      socket.send(`welcome to ${arg.room}`);
    },
    message(socket: ServerWebSocket, data: string | Uint8Array) {
      this.seen++; // called on the handlers object
      log.push(["message", socket === ws, data]);
    },
    close(socket: ServerWebSocket, code: number, reason: string) {
      log.push(["close", socket === ws, code, reason]);
    },
  };
  ws.handleWith(handlers, { room: "lobby" });
  ws.onopen = () => log.push("onopen");
  ws.onclose = (e) => log.push(`onclose ${e.code}`);
  ws.opened();
  assert.deepEqual(
    drain(session).map((f) => decoder.decode(f.payload)),
    ["welcome to lobby"],
  );
  session.receive(clientFrame(OPCODE.Text, "hi"));
  session.receive(clientFrame(OPCODE.Binary, new Uint8Array([1, 2])));
  assert.deepEqual(made, [], "no MessageEvent for the handlers");
  session.receive(clientFrame(OPCODE.Close, closePayload(4001, "bye")));
  assert.deepEqual(log, [
    ["open", true, "lobby", ws.OPEN],
    "onopen",
    ["message", true, "hi"],
    ["message", true, new Uint8Array([1, 2])],
    ["close", true, 4001, "bye"],
    "onclose 4001",
  ]);
  assert.equal(handlers.seen, 2);
});

Deno.test("an onmessage handler still gets its event beside the handlers, binary as binaryType says", () => {
  const { ws, session, log } = make();
  const got: unknown[] = [];
  ws.handleWith({ message: (_ws, data) => got.push(data) }, undefined);
  ws.binaryType = "arraybuffer";
  ws.opened();
  session.receive(clientFrame(OPCODE.Binary, new Uint8Array([7])));
  assert.deepEqual(got, [new Uint8Array([7])], "handlers get a Uint8Array");
  assert.deepEqual(log, ["open", "message:ArrayBuffer"]);
});

Deno.test("handleWith() is once per socket, before it opens", () => {
  const { ws } = make();
  ws.handleWith({}, undefined);
  assert.throws(() => ws.handleWith({}, undefined), TypeError);
  const other = make().ws;
  other.opened();
  assert.throws(
    () => other.handleWith({}, undefined),
    (err) => err instanceof DOMException && err.name === "InvalidStateError",
  );
});

Deno.test("a message handler that throws fails the connection with 1011; a close handler that throws still lets the close events fire", () => {
  const { ws, session, log } = make();
  ws.handleWith({
    message() {
      throw new Error("handler bug");
    },
    close(_ws, code) {
      log.push(`handlers close ${code}`);
      throw new Error("close bug");
    },
  }, undefined);
  ws.opened();
  assert.throws(
    () => session.receive(clientFrame(OPCODE.Text, "x")),
    /handler bug|close bug/,
  );
  assert.deepEqual(log, [
    "open",
    "handlers close 1011",
    "error",
    "close:1011:Internal error in the app:false",
  ]);
  assert.deepEqual(readClose(drain(session)[0].payload)[0], 1011);
});

/**
 * A child Deno with `gc()` exposed: a socket handed handlers and an
 * argument, opened, then kept; prints whether the argument survives a
 * full collection (1) or not (0).
 */
const ARG_KEPT = `
import { DEFAULT_LIMITS } from ${
  JSON.stringify(import.meta.resolve("../lib/config.ts"))
};
import { WsSession } from ${
  JSON.stringify(import.meta.resolve("../lib/http/ws/session.ts"))
};
import { ServerWebSocket } from ${
  JSON.stringify(import.meta.resolve("../lib/http/ws/socket.ts"))
};
const ws = new ServerWebSocket(new WsSession(DEFAULT_LIMITS), {
  url: "ws://localhost/",
  protocol: "",
  extensions: "",
});
let opened = 0;
const ref = (() => {
  const request = { big: new Uint8Array(1 << 20) };
  ws.handleWith({ open: (_ws, arg) => opened += arg.big.length }, request);
  return new WeakRef(request);
})();
ws.opened();
await new Promise((r) => setTimeout(r, 0)); // WeakRefs hold until the job ends
gc();
if (opened !== 1 << 20 || ws.readyState !== 1) throw new Error("not opened");
console.log(ref.deref() === undefined ? 0 : 1);
Deno.exit(0);
`;

Deno.test("an open socket does not keep what handleWith() gave open (the router's request)", async () => {
  assert.equal(await runWithGc(ARG_KEPT), "0");
});
