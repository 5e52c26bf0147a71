/**
 * The opening handshake without sockets: what an upgrade request must
 * carry (400, or 426 for the version), the accept key, subprotocols, and
 * permessage-deflate offers, valid, malformed and several at once.
 */
import assert from "node:assert/strict";
import { HttpError } from "../lib/http/errors.ts";
import { HeaderFields } from "../lib/http/headers.ts";
import { listHas, listOf } from "../lib/http/ws/upgrade_request.ts";
import {
  acceptKey,
  acceptUpgrade,
  type DeflateOptions,
  isUpgradeRequest,
  negotiateDeflate,
  parseExtensions,
  type UpgradeHead,
} from "../lib/http/ws/handshake.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

const BASE: [string, string][] = [
  ["host", "example.test"],
  ["upgrade", "websocket"],
  ["connection", "Upgrade"],
  ["sec-websocket-version", "13"],
  ["sec-websocket-key", KEY],
];

/** A head with BASE's fields, some replaced (value null drops the field) or added. */
function head(
  changes: Record<string, string | null> = {},
  extra: [string, string][] = [],
  method = "GET",
  version = "HTTP/1.1",
): UpgradeHead {
  const fields = BASE.filter(([n]) => !(n in changes));
  for (const [n, v] of Object.entries(changes)) {
    if (v !== null) fields.push([n, v]);
  }
  fields.push(...extra);
  return {
    method,
    version,
    headers: HeaderFields.fromLists(
      fields.map(([n]) => n),
      fields.map(([, v]) => v),
    ),
  };
}

function header(
  headers: readonly (readonly [string, string])[],
  name: string,
): string | undefined {
  return headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

Deno.test("acceptKey() gives RFC 6455's example answer", () => {
  assert.equal(acceptKey(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("acceptUpgrade() accepts a plain upgrade and answers with the accept key", () => {
  const up = acceptUpgrade(head());
  assert.equal(
    header(up.headers, "Sec-WebSocket-Accept"),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.equal(header(up.headers, "Upgrade"), "websocket");
  assert.equal(header(up.headers, "Connection"), "Upgrade");
  assert.equal(up.protocol, "");
  assert.equal(up.deflate, null);
  assert.equal(header(up.headers, "Sec-WebSocket-Extensions"), undefined);
});

Deno.test("acceptUpgrade() takes the tokens as browsers send them", () => {
  // Firefox: "keep-alive, Upgrade"; case does not matter for either field.
  acceptUpgrade(
    head({ connection: "keep-alive, Upgrade", upgrade: "WebSocket" }),
  );
  acceptUpgrade(head({ connection: "UPGRADE" }));
  // Upgrade may list more than one protocol.
  acceptUpgrade(head({ upgrade: "foo/2, websocket" }));
  // A web Headers object, as the fetch adapter has.
  acceptUpgrade({
    method: "GET",
    version: "HTTP/1.1",
    headers: new Headers(BASE),
  });
});

const REFUSED: [string, UpgradeHead, number][] = [
  ["a POST", head({}, [], "POST"), 400],
  ["HTTP/1.0", head({}, [], "GET", "HTTP/1.0"), 400],
  ["no Upgrade", head({ upgrade: null }), 400],
  ["Upgrade: h2c", head({ upgrade: "h2c" }), 400],
  ["no Connection", head({ connection: null }), 400],
  ["Connection: keep-alive", head({ connection: "keep-alive" }), 400],
  ["no version", head({ "sec-websocket-version": null }), 426],
  ["version 8", head({ "sec-websocket-version": "8" }), 426],
  ["version 13, 8", head({ "sec-websocket-version": "13, 8" }), 426],
  ["no key", head({ "sec-websocket-key": null }), 400],
  [
    "a key of 15 bytes",
    head({ "sec-websocket-key": "AAAAAAAAAAAAAAAAAAAA" }),
    400,
  ],
  [
    "a key of 17 bytes",
    head({ "sec-websocket-key": "AAAAAAAAAAAAAAAAAAAAAAA=" }),
    400,
  ],
  [
    "a key not base64",
    head({ "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ!=" }),
    400,
  ],
  [
    "a key with stray bits",
    head({ "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZR==" }),
    400,
  ],
  ["two keys", head({}, [["sec-websocket-key", KEY]]), 400],
  [
    "a malformed protocol list",
    head({}, [["sec-websocket-protocol", "chat, a b"]]),
    400,
  ],
];

for (const [name, h, status] of REFUSED) {
  Deno.test(`acceptUpgrade() answers ${status} for ${name}`, () => {
    let error: unknown;
    try {
      acceptUpgrade(h, { protocols: ["chat"] });
    } catch (err) {
      error = err;
    }
    assert.ok(
      error instanceof HttpError,
      `expected an HttpError, got ${error}`,
    );
    assert.equal(error.status, status);
    assert.match(error.expose ?? "", /^Cannot upgrade to WebSocket: /);
    if (status === 426) {
      assert.deepEqual(error.headers, { "Sec-WebSocket-Version": "13" });
    }
  });
}

Deno.test("acceptUpgrade() says which of a missing key and a malformed one it got", () => {
  const expose = (h: UpgradeHead) => {
    try {
      acceptUpgrade(h);
    } catch (err) {
      return err instanceof HttpError ? err.expose : String(err);
    }
  };
  assert.equal(
    expose(head({ "sec-websocket-key": null })),
    "Cannot upgrade to WebSocket: Sec-WebSocket-Key is missing",
  );
  assert.equal(
    expose(head({ "sec-websocket-key": "abc" })),
    "Cannot upgrade to WebSocket: Sec-WebSocket-Key is not 16 bytes of base64",
  );
});

Deno.test("isUpgradeRequest() tells an upgrade attempt from a plain GET", () => {
  assert.equal(isUpgradeRequest(head().headers), true);
  assert.equal(isUpgradeRequest(head({ upgrade: null }).headers), false);
  assert.equal(isUpgradeRequest(new Headers({ upgrade: "WebSocket" })), true);
});

Deno.test("acceptUpgrade() picks the app's most preferred protocol the client offers", () => {
  const offer = (v: string) => head({}, [["sec-websocket-protocol", v]]);
  assert.equal(
    acceptUpgrade(offer("soap, wamp"), { protocols: ["wamp", "soap"] })
      .protocol,
    "wamp",
  );
  assert.equal(
    acceptUpgrade(offer("soap, wamp"), { protocols: ["mqtt"] }).protocol,
    "",
  );
  assert.equal(
    acceptUpgrade(offer("soap"), {}).protocol,
    "",
    "an app with none takes none",
  );
  // Two header lines are one list.
  const two = head({}, [["sec-websocket-protocol", "a"], [
    "sec-websocket-protocol",
    "b",
  ]]);
  const up = acceptUpgrade(two, { protocols: ["b"] });
  assert.equal(up.protocol, "b");
  assert.equal(header(up.headers, "Sec-WebSocket-Protocol"), "b");
});

Deno.test("parseExtensions() reads offers, parameters and quoted values; null when malformed", () => {
  assert.deepEqual(
    parseExtensions("permessage-deflate; client_max_window_bits, x-foo"),
    [
      {
        name: "permessage-deflate",
        params: [["client_max_window_bits", undefined]],
      },
      { name: "x-foo", params: [] },
    ],
  );
  assert.deepEqual(
    parseExtensions('permessage-deflate ; server_max_window_bits="10"'),
    [
      {
        name: "permessage-deflate",
        params: [["server_max_window_bits", "10"]],
      },
    ],
  );
  for (const bad of ["", ",", "a;", "a; =1", 'a; b="1', "a b", 'a; b="1 2"']) {
    assert.equal(parseExtensions(bad), null, JSON.stringify(bad));
  }
});

/** [offer header, server options, expected response element or null]. */
const NEGOTIATIONS: [string, DeflateOptions, string | null][] = [
  ["permessage-deflate", {}, "permessage-deflate"],
  // What Chrome and Firefox send.
  ["permessage-deflate; client_max_window_bits", {}, "permessage-deflate"],
  [
    "permessage-deflate; client_max_window_bits",
    { clientMaxWindowBits: 10 },
    "permessage-deflate; client_max_window_bits=10",
  ],
  [
    "permessage-deflate; client_max_window_bits=12",
    {},
    "permessage-deflate; client_max_window_bits=12",
  ],
  [
    "permessage-deflate; client_max_window_bits=12",
    { clientMaxWindowBits: 9 },
    "permessage-deflate; client_max_window_bits=9",
  ],
  // A client that did not offer client_max_window_bits is never told one (§7.1.2.2).
  ["permessage-deflate", { clientMaxWindowBits: 9 }, "permessage-deflate"],
  [
    "permessage-deflate; server_no_context_takeover",
    {},
    "permessage-deflate; server_no_context_takeover",
  ],
  [
    "permessage-deflate",
    { serverNoContextTakeover: true },
    "permessage-deflate; server_no_context_takeover",
  ],
  [
    "permessage-deflate; client_no_context_takeover",
    {},
    "permessage-deflate; client_no_context_takeover",
  ],
  [
    "permessage-deflate",
    { clientNoContextTakeover: true },
    "permessage-deflate; client_no_context_takeover",
  ],
  [
    "permessage-deflate; server_max_window_bits=10",
    {},
    "permessage-deflate; server_max_window_bits=10",
  ],
  [
    "permessage-deflate; server_max_window_bits=8",
    {},
    "permessage-deflate; server_max_window_bits=8",
  ],
  [
    "permessage-deflate; server_max_window_bits=12",
    { serverMaxWindowBits: 10 },
    "permessage-deflate; server_max_window_bits=10",
  ],
  [
    "permessage-deflate",
    { serverMaxWindowBits: 11 },
    "permessage-deflate; server_max_window_bits=11",
  ],
  // Malformed offers are declined...
  ["permessage-deflate; server_max_window_bits", {}, null],
  ["permessage-deflate; server_max_window_bits=16", {}, null],
  ["permessage-deflate; server_max_window_bits=7", {}, null],
  ["permessage-deflate; server_max_window_bits=010", {}, null],
  ["permessage-deflate; client_max_window_bits=0", {}, null],
  ["permessage-deflate; server_no_context_takeover=1", {}, null],
  [
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    {},
    null,
  ],
  ["permessage-deflate; mystery", {}, null],
  ["x-webkit-deflate-frame", {}, null],
  // ...and the next offer is tried.
  [
    "permessage-deflate; mystery, permessage-deflate; client_no_context_takeover",
    {},
    "permessage-deflate; client_no_context_takeover",
  ],
  [
    'permessage-deflate; server_max_window_bits="9"',
    {},
    "permessage-deflate; server_max_window_bits=9",
  ],
  // A header that cannot be parsed declines everything.
  ["permessage-deflate; ; x", {}, null],
];

for (const [offer, opts, expected] of NEGOTIATIONS) {
  Deno.test(`negotiateDeflate() answers ${JSON.stringify(offer)} with ${JSON.stringify(opts)}`, () => {
    assert.equal(negotiateDeflate(offer, opts)?.response ?? null, expected);
  });
}

Deno.test("negotiateDeflate() returns the parameters the session runs with", () => {
  assert.deepEqual(
    negotiateDeflate(
      "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
      {
        clientNoContextTakeover: true,
      },
    )?.params,
    {
      serverNoContextTakeover: false,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 12,
      clientMaxWindowBits: 10,
    },
  );
});

Deno.test("acceptUpgrade() negotiates compression only when the app allows it and the client offers it", () => {
  const offer = head({}, [[
    "sec-websocket-extensions",
    "permessage-deflate; client_max_window_bits",
  ]]);
  assert.equal(
    acceptUpgrade(offer).deflate,
    null,
    "off unless the app turns it on",
  );
  const on = acceptUpgrade(offer, { compression: true });
  assert.equal(
    header(on.headers, "Sec-WebSocket-Extensions"),
    "permessage-deflate",
  );
  assert.equal(on.deflate?.clientMaxWindowBits, 15);
  assert.equal(on.deflateMinBytes, 1024);
  const tuned = acceptUpgrade(offer, {
    compression: { level: 1, minBytes: 64 },
  });
  assert.equal(tuned.deflateLevel, 1);
  assert.equal(tuned.deflateMinBytes, 64);
  assert.equal(
    acceptUpgrade(head(), { compression: true }).deflate,
    null,
    "no offer, no compression",
  );
});

Deno.test("acceptUpgrade() answers 403 to a browser from an origin the app did not allow", () => {
  const opts = { origins: ["https://app.example"] };
  acceptUpgrade(head({}, [["origin", "https://app.example"]]), opts);
  acceptUpgrade(head(), opts); // no Origin: not a browser
  acceptUpgrade(head({}, [["origin", "https://evil.example"]])); // no list: any
  assert.throws(
    () => acceptUpgrade(head({}, [["origin", "https://evil.example"]]), opts),
    { name: "HttpError", status: 403 },
  );
});

Deno.test("listHas() finds a token in a comma-separated list as listOf() would, whatever its case and spaces", () => {
  const cases: [string | undefined, string, boolean][] = [
    ["websocket", "websocket", true],
    ["WebSocket", "websocket", true],
    [" h2c ,\twebsocket ", "websocket", true],
    ["keep-alive, Upgrade", "upgrade", true],
    ["upgrade,", "upgrade", true],
    [",,upgrade", "upgrade", true],
    ["websocket2", "websocket", false],
    ["web socket", "websocket", false],
    ["h2c", "websocket", false],
    ["", "websocket", false],
    [",", "websocket", false],
    [undefined, "websocket", false],
  ];
  for (const [value, token, want] of cases) {
    assert.equal(listHas(value, token), want, `${value} has ${token}`);
    assert.equal(
      listOf(value).some((t) => t.toLowerCase() === token),
      want,
      `listOf agrees on ${value}`,
    );
  }
});
