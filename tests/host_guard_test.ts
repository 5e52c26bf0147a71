import assert from "node:assert/strict";
import {
  hostAllowed,
  hostGuard,
  isLoopbackBind,
  splitHost,
} from "../lib/app/middleware/host_guard.ts";
import { text } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import { call, fake } from "./fixtures/app_request.ts";

const PORT = 8080;

// The loopback default: names a browser can only reach through loopback.
const loopbackMatrix: [host: string, ok: boolean][] = [
  ["localhost", true],
  ["localhost:8080", true],
  ["LOCALHOST:8080", true],
  ["127.0.0.1", true],
  ["127.0.0.1:8080", true],
  ["[::1]", true],
  ["[::1]:8080", true],
  ["", true], // HTTP/1.0 without Host: never a browser
  ["localhost:8081", false], // another port: meant for another server
  ["127.0.0.1:80", false],
  ["localhost:", true], // RFC 3986: an empty port is no port
  ["localhost:80a", false],
  ["evil.example", false], // DNS rebinding: evil.example -> 127.0.0.1
  ["evil.example:8080", false],
  ["localhost.evil.example", false],
  ["127.0.0.2", false],
  ["::1", false], // not a valid Host without brackets
  ["[::1]x", false],
  ["0.0.0.0:8080", false],
];
for (const [host, ok] of loopbackMatrix) {
  Deno.test(`hostAllowed() ${ok ? "takes" : "refuses"} "${host}" on a loopback bind`, () => {
    assert.equal(hostAllowed(host, undefined, PORT), ok);
  });
}

const listMatrix: [rules: string[], host: string, ok: boolean][] = [
  [["example.com"], "example.com", true],
  [["example.com"], "EXAMPLE.com:8443", true], // a bare name takes any port
  [["example.com"], "www.example.com", false],
  [["example.com:8443"], "example.com:8443", true],
  [["example.com:8443"], "example.com", false],
  [["example.com:8443"], "example.com:443", false],
  [["*.example.com"], "api.example.com", true],
  [["*.example.com"], "a.b.example.com:1", true],
  [["*.example.com"], "example.com", false],
  [["*.example.com"], "badexample.com", false],
  [["*.example.com"], ".example.com", false],
  [["[::1]:9000"], "[::1]:9000", true],
  [["a.test", "b.test"], "b.test", true],
  [[], "localhost", false], // an empty list takes nothing but an absent Host
  [[], "", true],
  [["*"], "anything.at.all:1", true],
];
for (const [rules, host, ok] of listMatrix) {
  Deno.test(`hostAllowed() ${ok ? "takes" : "refuses"} "${host}" with [${rules.join(", ")}]`, () => {
    assert.equal(hostAllowed(host, rules, PORT), ok);
  });
}

Deno.test("splitHost() keeps IPv6 literals whole", () => {
  assert.deepEqual(splitHost("[::1]:80"), { name: "[::1]", port: "80" });
  assert.deepEqual(splitHost("[::1]"), { name: "[::1]", port: "" });
  assert.deepEqual(splitHost("Example.COM:1"), {
    name: "example.com",
    port: "1",
  });
});

const binds: [name: string, loopback: boolean][] = [
  ["127.0.0.1", true],
  ["127.0.0.53", true],
  ["localhost", true],
  ["::1", true],
  ["[::1]", true],
  ["0.0.0.0", false],
  ["::", false],
  ["192.168.1.10", false],
];
for (const [name, loopback] of binds) {
  Deno.test(`isLoopbackBind() says ${loopback} for ${name}`, () => {
    assert.equal(isLoopbackBind(name), loopback);
  });
}

Deno.test("hostGuard() is off when bound beyond loopback without a list, or with *", () => {
  assert.equal(hostGuard({ hostname: "0.0.0.0", port: () => PORT }), null);
  assert.equal(
    hostGuard({ hostname: "127.0.0.1", allowedHosts: ["*"], port: () => PORT }),
    null,
  );
  assert.notEqual(
    hostGuard({
      hostname: "0.0.0.0",
      allowedHosts: ["a.test"],
      port: () => PORT,
    }),
    null,
  );
});

Deno.test("hostGuard() answers 421 to a foreign Host, counts it, and lets the rest through", async () => {
  let refused = 0;
  const guard = hostGuard({
    hostname: "127.0.0.1",
    port: () => PORT,
    onRefused: () => refused++,
  });
  assert.ok(guard);
  const handler = new Router().use(guard).get("/", () => text("ok")).handler();
  const bad = await call(
    handler,
    fake("GET", "/", { host: "evil.example:8080" }).req,
  );
  assert.equal(bad.status, 421);
  assert.equal(refused, 1);
  const good = await call(
    handler,
    fake("GET", "/", { host: "localhost:8080" }).req,
  );
  assert.equal(good.status, 200);
  assert.equal(refused, 1);
});

Deno.test("hostGuard() reads the port when asked, so port 0 works once bound", async () => {
  let port = 0;
  const guard = hostGuard({ hostname: "127.0.0.1", port: () => port });
  assert.ok(guard);
  const handler = new Router().use(guard).get("/", () => text("ok")).handler();
  port = 41234;
  const a = await call(
    handler,
    fake("GET", "/", { host: "127.0.0.1:41234" }).req,
  );
  assert.equal(a.status, 200);
});
