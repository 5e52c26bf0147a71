/**
 * The fleet of `deno task fleet`, shortened: Debian's HAProxy with
 * deploy/haproxy.cfg in front of three Spindle instances on loopback that
 * share a Redis rate limit, a rolling restart under wrk load. Skipped, with
 * the reason printed, where haproxy, redis-server, wrk or curl is missing.
 */
import assert from "node:assert/strict";
import { judge, missingTools, report, runFleet } from "../deploy/fleet.ts";

const missing = await missingTools();
if (missing.length > 0) {
  console.log(`skipped: the fleet test needs ${missing.join(", ")}`);
}

Deno.test({
  name:
    "fleet: a rolling restart behind HAProxy drops no request, the Redis limit holds across instances, logs name the PROXY client",
  ignore: missing.length > 0,
}, async () => {
  const options = {
    steadySeconds: 2,
    connections: 16,
    threads: 2,
    limit: 20,
    probeRequests: 40,
    // The test shares a busy machine with the whole suite: a check that
    // waits on a starved event loop must not pass for a Redis outage (that
    // case has its own tests in redis_rate_limit_test.ts).
    storeTimeoutMs: 2000,
    log: () => {},
  };
  const result = await runFleet(options);
  const summary = report(result);
  assert.deepEqual(judge(result, options), [], summary);
  // judge() covers these; spelled out so a reader sees what "held" means.
  assert.equal(result.rolling.failed, 0, summary);
  assert.ok(result.rolling.requests > 0, summary);
  assert.equal(result.restarts.length, 3);
  for (const p of result.probes) {
    assert.ok(p.allowed >= 20 && p.allowed <= 22, summary); // not 3 x 20
    assert.ok(p.instancesSeen >= 2, summary);
  }
  for (const [server, clients] of Object.entries(result.clients)) {
    assert.ok(clients.includes("127.0.0.10"), `${server}: ${clients}`);
  }
  assert.deepEqual(result.strangers, []);
});
