import assert from "node:assert/strict";
import {
  compose,
  type Middleware,
  type MiddlewareHooks,
  type Next,
} from "../lib/app/chain.ts";
import { AppRequest } from "../lib/app/app_request.ts";
import type { Reply } from "../lib/http/handler.ts";
import { fake } from "./fixtures/app_request.ts";

function request(): AppRequest {
  return new AppRequest(fake("GET", "/").req, "/");
}

/** Hooks that log what they see, and answer or throw when told. */
function hooks(
  name: string,
  log: string[],
  opts: {
    answer?: boolean;
    throwBefore?: boolean;
    throwAfter?: boolean;
    rescue?: boolean;
  } = {},
): MiddlewareHooks {
  return {
    before: () => {
      log.push(`${name}>`);
      if (opts.throwBefore) throw new Error(`${name} refused`);
      return opts.answer ? { status: 299, body: name } : undefined;
    },
    after: (_req, reply) => {
      log.push(`<${name} ${reply.status}`);
      if (opts.throwAfter) throw new Error(`${name} broke`);
      return { ...reply, status: reply.status + 1 };
    },
    error: (_req, err) => {
      log.push(`<${name} ${(err as Error).message}`);
      if (opts.rescue) return { status: 500, body: name };
      throw err;
    },
  };
}

/** A function layer that logs around next(). */
function wrap(name: string, log: string[]): Middleware {
  return async (_req, next) => {
    log.push(`${name}>`);
    try {
      const reply = await next();
      log.push(`<${name} ${reply.status}`);
      return reply;
    } catch (err) {
      log.push(`<${name} ${(err as Error).message}`);
      throw err;
    }
  };
}

const handler = (log: string[], reply: Reply | Error): Next => () => {
  log.push("handler");
  if (reply instanceof Error) throw reply;
  return reply;
};

Deno.test("compose() runs hooks around the handler, synchronously, innermost after first", () => {
  const log: string[] = [];
  const run = compose([hooks("a", log), hooks("b", log)]);
  const reply = run(request(), handler(log, { status: 200 }));
  assert.ok(!(reply instanceof Promise));
  assert.equal(reply.status, 202);
  assert.deepEqual(log, ["a>", "b>", "handler", "<b 200", "<a 201"]);
});

Deno.test("compose() lets a before hook answer: inner layers and the handler are skipped", () => {
  const log: string[] = [];
  const run = compose([
    hooks("a", log),
    hooks("b", log, { answer: true }),
    hooks("c", log),
  ]);
  const reply = run(request(), handler(log, { status: 200 })) as Reply;
  assert.equal(reply.body, "b");
  assert.equal(reply.status, 300, "only a's after saw it");
  assert.deepEqual(log, ["a>", "b>", "<a 299"]);
});

Deno.test("compose() sends a throw to the error hooks of the layers outside it", () => {
  const log: string[] = [];
  const run = compose([
    hooks("a", log),
    hooks("b", log, { throwBefore: true }),
    hooks("c", log),
  ]);
  assert.throws(
    () => run(request(), handler(log, { status: 200 })),
    /b refused/,
  );
  assert.deepEqual(log, ["a>", "b>", "<a b refused"]);

  log.length = 0;
  const broken = compose([
    hooks("a", log),
    hooks("b", log, { throwAfter: true }),
  ]);
  assert.throws(
    () => broken(request(), handler(log, { status: 200 })),
    /b broke/,
  );
  assert.deepEqual(log, ["a>", "b>", "handler", "<b 200", "<a b broke"]);
});

Deno.test("compose() turns an error into a reply where a hook rescues it, and outer layers see the reply", () => {
  const log: string[] = [];
  const run = compose([
    hooks("a", log),
    hooks("b", log, { rescue: true }),
    hooks("c", log),
  ]);
  const reply = run(request(), handler(log, new Error("boom"))) as Reply;
  assert.equal(reply.body, "b");
  assert.equal(reply.status, 501);
  assert.deepEqual(log, [
    "a>",
    "b>",
    "c>",
    "handler",
    "<c boom",
    "<b boom",
    "<a 500",
  ]);
});

Deno.test("compose() runs after and error hooks once an async handler settles", async () => {
  const log: string[] = [];
  const run = compose([hooks("a", log), hooks("b", log)]);
  const ok = run(request(), () => Promise.resolve({ status: 200 }));
  assert.ok(ok instanceof Promise);
  assert.equal((await ok).status, 202);
  const failed = run(request(), () => Promise.reject(new Error("late")));
  assert.ok(failed instanceof Promise);
  await assert.rejects(failed, /late/);
  assert.deepEqual(log, [
    "a>",
    "b>",
    "<b 200",
    "<a 201",
    "a>",
    "b>",
    "<b late",
    "<a late",
  ]);
});

Deno.test("compose() nests function layers and hooks in list order", async () => {
  const log: string[] = [];
  const run = compose([
    hooks("a", log),
    wrap("f", log),
    hooks("b", log),
    hooks("c", log),
  ]);
  const reply = await run(request(), handler(log, { status: 200 }));
  assert.equal(reply.status, 203);
  assert.deepEqual(log, [
    "a>",
    "f>",
    "b>",
    "c>",
    "handler",
    "<c 200",
    "<b 201",
    "<f 202",
    "<a 202",
  ]);
  assert.equal(
    (await compose([])(request(), () => ({ status: 204 }))).status,
    204,
  );
});
