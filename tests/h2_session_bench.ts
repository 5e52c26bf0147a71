/**
 * The HTTP/2 hot path without sockets: one small GET as h2load sends it
 * (its fields already in both HPACK tables), and the reply to
 * /echo/hello. Run: deno bench tests/h2_session_bench.ts
 */
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { encodeFrame, FRAME } from "../lib/http/h2/frames.ts";
import { FakeClient, get } from "./helpers/h2.ts";

const c = new FakeClient({
  ...DEFAULT_LIMITS,
  maxRequestsPerConnection: Infinity,
});
const HELLO = new TextEncoder().encode("hello");
const HEADERS = Object.freeze({ "content-type": "text/plain;charset=utf-8" });
const FIELDS = get("/echo/hello", [["user-agent", "h2load nghttp2/1.52.0"]]);

// The first request teaches both tables the fields; later ones are a few
// bytes. The client opens its connection window all the way.
c.send(
  { type: FRAME.WINDOW_UPDATE, streamId: 0, increment: 2 ** 31 - 1 - 65_535 },
  c.headers(1, FIELDS),
);
c.session.sendHeaders(1, 200, HEADERS, false, 5);
c.session.sendData(1, HELLO, true);
c.session.takeOutput();
const frame = encodeFrame(c.headers(3, FIELDS));
let id = 1;

Deno.bench(
  `H2Session: read a GET (${frame.length} bytes) and reply hello`,
  () => {
    id += 2;
    frame[5] = id >>> 24;
    frame[6] = id >>> 16;
    frame[7] = id >>> 8;
    frame[8] = id;
    const [event] = c.session.receive(frame);
    if (event?.type !== "request") throw new Error("No request");
    c.session.sendHeaders(event.streamId, 200, HEADERS, false, 5);
    c.session.sendData(event.streamId, HELLO, true);
    c.session.takeOutput();
  },
);
