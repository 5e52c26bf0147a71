import assert from "node:assert/strict";
import { AppMetrics } from "../lib/app/metrics.ts";
import { text } from "../lib/app/replies.ts";
import { Router } from "../lib/app/router.ts";
import { HttpError } from "../lib/http/errors.ts";
import { EngineStats } from "../lib/http/stats.ts";
import { call, fake } from "./fixtures/app_request.ts";

Deno.test("AppMetrics.middleware() counts by route template and status class, errors included", async () => {
  const metrics = new AppMetrics();
  const handler = new Router()
    .use(metrics.middleware())
    .get("/users/{id}", (req) => {
      if (req.params.id === "0") throw new HttpError(404, "no user");
      if (req.params.id === "boom") throw new Error("bug");
      return text("ok");
    })
    .handler();
  for (const id of ["1", "2", "0"]) {
    await call(handler, fake("GET", `/users/${id}`).req);
  }
  await assert.rejects(call(handler, fake("GET", "/users/boom").req));
  await call(handler, fake("GET", "/nowhere").req);
  await call(handler, fake("GET", "/users/%2F").req);
  assert.equal(metrics.requests("/users/{id}", "2xx"), 2);
  assert.equal(metrics.requests("/users/{id}", "4xx"), 1);
  assert.equal(metrics.requests("/users/{id}", "5xx"), 1);
  assert.equal(
    metrics.requests("none", "4xx"),
    2,
    "raw paths never become labels",
  );
});

Deno.test("AppMetrics.render() writes the Prometheus text format", () => {
  const metrics = new AppMetrics();
  metrics.record("/echo/{text}", 200);
  metrics.record("/echo/{text}", 200);
  metrics.record('we"ird\\route\n', 503);
  metrics.rateLimited = 3;
  const stats = new EngineStats();
  stats.requests = 9;
  stats.bytesIn = 100;
  stats.bytesOut = 2000;
  stats.active = 2;
  stats.queued = 1;
  stats.rejected = 4;
  const out = metrics.render(stats, stats.startedAt + 12_500);
  const lines = out.split("\n");
  assert.ok(
    lines.includes(
      'spindle_http_requests_total{route="/echo/{text}",status="2xx"} 2',
    ),
  );
  assert.ok(
    lines.includes(
      'spindle_http_requests_total{route="we\\"ird\\\\route\\n",status="5xx"} 1',
    ),
  );
  for (
    const line of [
      "spindle_requests_total 9",
      "spindle_received_bytes_total 100",
      "spindle_sent_bytes_total 2000",
      "spindle_connections_active 2",
      "spindle_connections_queued 1",
      "spindle_connections_rejected_total 4",
      "spindle_rate_limited_total 3",
      "spindle_uptime_seconds 12.5",
      "# TYPE spindle_connections_active gauge",
      "# TYPE spindle_http_requests_total counter",
    ]
  ) assert.ok(lines.includes(line), line);
  // Every sample line is "name{labels} value" or "name value".
  for (const line of lines.filter((l) => l !== "" && !l.startsWith("#"))) {
    assert.match(line, /^[a-z_]+(\{.*\})? [0-9.]+$/, line);
  }
  assert.ok(out.endsWith("\n"));
});

Deno.test("AppMetrics.record() keeps each route's count when routes alternate", () => {
  const metrics = new AppMetrics();
  const routes = ["/a", "/b", "/a", "/a", "none", "/b", "/a"];
  for (const route of routes) metrics.record(route, 200);
  metrics.record("/b", 503);
  metrics.record("/a", 99); // not a status class: not counted
  assert.equal(metrics.requests("/a", "2xx"), 4);
  assert.equal(metrics.requests("/b", "2xx"), 2);
  assert.equal(metrics.requests("/b", "5xx"), 1);
  assert.equal(metrics.requests("none", "2xx"), 1);
  assert.equal(metrics.requests("", "2xx"), 0);
});

Deno.test("AppMetrics.middleware() counts a synchronous chain without making it async", () => {
  const metrics = new AppMetrics();
  const handler = new Router()
    .use(metrics.middleware())
    .get("/x", () => text("x"))
    .get("/boom", () => {
      throw new HttpError(409, "clash");
    })
    .handler();
  const reply = handler(fake("GET", "/x").req);
  assert.ok(!(reply instanceof Promise));
  assert.throws(() => handler(fake("GET", "/boom").req), { status: 409 });
  assert.equal(metrics.requests("/x", "2xx"), 1);
  assert.equal(metrics.requests("/boom", "4xx"), 1);
});
