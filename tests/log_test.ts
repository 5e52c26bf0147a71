/** lib/log.ts: what a JSON record looks like, and the access log it sets up and flushes. */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { DEFAULT_LIMITS } from "../lib/config.ts";
import { accessLog } from "../lib/http/access_log.ts";
import { parseHead } from "../lib/http/parser.ts";
import { setupLogging, stopLogging } from "../lib/log.ts";

/** A stream that keeps what LogTape writes to it. */
function memoryStream(): {
  stream: WritableStream<Uint8Array>;
  text: () => string;
} {
  const decoder = new TextDecoder();
  let text = "";
  return {
    stream: new WritableStream({
      write(chunk) {
        text += decoder.decode(chunk);
      },
    }),
    text: () => text,
  };
}

Deno.test("setupLogging() json: the message shows values bare, properties keep their JSON types", async () => {
  const out = memoryStream();
  await setupLogging({ format: "json", quiet: true, stream: out.stream });
  try {
    getLogger(["spindle", "server"]).info(
      "Listening on {url} with {n} workers",
      {
        url: "http://127.0.0.1:8080/",
        n: 2,
      },
    );
    getLogger(["spindle", "http"]).error("Unhandled error: {error}", {
      error: new TypeError("boom"),
    });
  } finally {
    await stopLogging();
  }
  const [info, error] = out.text().trimEnd().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(
    info.message,
    "Listening on http://127.0.0.1:8080/ with 2 workers",
  );
  assert.equal(info.level, "INFO");
  assert.equal(info.logger, "spindle.server");
  assert.deepEqual(info.properties, { url: "http://127.0.0.1:8080/", n: 2 });
  assert.equal(error.level, "ERROR");
  assert.equal(error.message, "Unhandled error: TypeError: boom");
  assert.equal(error.properties.error.name, "TypeError");
  assert.match(error.properties.error.stack, /boom/);
});

Deno.test("setupLogging() sets up the access log in the same format unless quiet; stopLogging() writes its buffer", async () => {
  const raw = new TextEncoder().encode("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
  const head = parseHead(raw, 0, raw.length, DEFAULT_LIMITS);
  const lines: string[] = [];
  const accessOutput = {
    writeSync(bytes: Uint8Array) {
      lines.push(new TextDecoder().decode(bytes));
      return bytes.length;
    },
  };
  await setupLogging({
    format: "common",
    quiet: true,
    stream: memoryStream().stream,
    accessOutput,
  });
  assert.equal(accessLog(), undefined, "--quiet: no access log");
  await setupLogging({
    format: "common",
    quiet: false,
    stream: memoryStream().stream,
    accessOutput,
  });
  try {
    assert.equal(accessLog()?.format, "common");
    accessLog()!.append("1.2.3.4", head, 200, 10, Date.now(), false, undefined);
    assert.deepEqual(lines, [], "buffered");
  } finally {
    await stopLogging();
  }
  assert.equal(accessLog(), undefined);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^1\.2\.3\.4 - - \[.+\] "GET \/x HTTP\/1\.1" 200 10\n$/,
  );
});
