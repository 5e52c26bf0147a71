/** `--redirect-http`: every plain request gets 308 to the same URL over HTTPS. */
import assert from "node:assert/strict";
import {
  httpsRedirect,
  type HttpsRedirectOptions,
} from "../lib/app/https_redirect.ts";
import { parseFlags } from "../lib/cli.ts";
import { startRedirect } from "../lib/https.ts";
import { call, fake } from "./fixtures/app_request.ts";
import {
  connect,
  get,
  readReply,
  ReplyReader,
  send,
  WAIT_MS,
} from "./helpers/socket.ts";

const LOOPBACK: HttpsRedirectOptions = {
  httpsPort: () => 8443,
  port: () => 8080,
  hostname: "127.0.0.1",
};

const cases: [
  name: string,
  opts: Partial<HttpsRedirectOptions>,
  method: string,
  target: string,
  host: string,
  status: number,
  location?: string,
][] = [
  [
    "path and query kept",
    {},
    "GET",
    "/a/b%20c?x=1&y",
    "localhost:8080",
    308,
    "https://localhost:8443/a/b%20c?x=1&y",
  ],
  [
    "a POST stays a POST (308, not 301)",
    {},
    "POST",
    "/upload",
    "127.0.0.1:8080",
    308,
    "https://127.0.0.1:8443/upload",
  ],
  ["IPv6 literal", {}, "GET", "/", "[::1]:8080", 308, "https://[::1]:8443/"],
  [
    "port 443 left out",
    { httpsPort: () => 443 },
    "GET",
    "/x",
    "localhost",
    308,
    "https://localhost/x",
  ],
  [
    "OPTIONS * goes to /",
    {},
    "OPTIONS",
    "*",
    "localhost",
    308,
    "https://localhost:8443/",
  ],
  [
    "a Host outside loopback names (DNS rebinding)",
    {},
    "GET",
    "/",
    "evil.example",
    421,
  ],
  [
    "allowed by --allowed-hosts",
    { allowedHosts: ["app.example"], hostname: "0.0.0.0" },
    "GET",
    "/",
    "app.example:8080",
    308,
    "https://app.example:8443/",
  ],
  [
    "a Host that would bend the Location",
    { hostname: "0.0.0.0" },
    "GET",
    "/",
    "a@evil.example",
    400,
  ],
  [
    "no Host, bound to one address",
    {},
    "GET",
    "/",
    "",
    308,
    "https://127.0.0.1:8443/",
  ],
  ["no Host, bound to every address", { hostname: "::" }, "GET", "/", "", 400],
];
for (const [name, opts, method, target, host, status, location] of cases) {
  Deno.test(`httpsRedirect() answers ${status}: ${name}`, async () => {
    const handler = httpsRedirect({ ...LOOPBACK, ...opts });
    const answer = await call(handler, fake(method, target, { host }).req);
    assert.equal(answer.status, status, answer.text);
    assert.equal(answer.headers.get("location"), location);
  });
}

Deno.test("startRedirect() reads a trusted peer's PROXY header first, as the HTTPS port does (--proxy-protocol)", async () => {
  const opts = parseFlags([
    "--tls",
    "self-signed",
    "--redirect-http",
    "0",
    "--trust-proxy",
    "127.0.0.1",
    "--proxy-protocol",
    "--quiet",
  ]);
  await using redirect = startRedirect(opts, 8443, () => true)!;
  await redirect.ready;
  {
    using conn = await connect(redirect.port);
    await send(conn, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n" + get());
    const reply = await readReply(conn);
    assert.equal(reply.status, 308);
    assert.equal(reply.headers.get("location"), "https://localhost:8443/");
  }
  {
    using conn = await connect(redirect.port);
    await send(conn, get());
    const reply = await new ReplyReader(conn).closed(WAIT_MS);
    assert.equal(reply, true, "no header: closed without a reply");
  }
});
