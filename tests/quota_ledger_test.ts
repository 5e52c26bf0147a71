/** QuotaLedger: one upload quota for the folder, whichever engine takes an upload. */
import assert from "node:assert/strict";
import { UploadStore } from "../lib/app/upload_route.ts";
import {
  createQuotaMemory,
  QuotaLedger,
  reclaimQuota,
} from "../lib/shared/quota.ts";

Deno.test("QuotaLedger.tryReserve() counts every engine's reservations", () => {
  const memory = createQuotaMemory(2);
  const a = new QuotaLedger(memory, 0);
  const b = new QuotaLedger(memory, 1);
  assert.equal(a.tryReserve(60, 100), true);
  assert.equal(b.tryReserve(60, 100), false);
  assert.equal(b.tryReserve(40, 100), true);
  a.stored(60);
  b.unreserve(40);
  assert.equal(b.usedBytes, 60);
  assert.equal(b.committedBytes, 60);
});

Deno.test("reclaimQuota() frees the room a dead engine had reserved", () => {
  const memory = createQuotaMemory(2);
  const a = new QuotaLedger(memory, 0);
  const b = new QuotaLedger(memory, 1);
  a.tryReserve(30, 100);
  a.stored(30);
  a.tryReserve(70, 100); // then engine a dies mid-write
  assert.equal(b.tryReserve(1, 100), false);
  reclaimQuota(memory, 0);
  assert.equal(b.committedBytes, 30, "what it stored stays counted");
  assert.equal(b.tryReserve(70, 100), true);
});

Deno.test("QuotaLedger.recount() counts once while another engine waits for it", async () => {
  const memory = createQuotaMemory(2);
  const a = new QuotaLedger(memory, 0);
  const b = new QuotaLedger(memory, 1);
  let counts = 0;
  let finish!: (bytes: number) => void;
  const first = a.recount(() => {
    counts++;
    return new Promise<number>((r) => finish = r);
  });
  const second = b.recount(() => {
    counts++;
    return Promise.resolve(999);
  });
  b.tryReserve(5, 1000);
  b.stored(5); // stored during the count: added to what it finds
  finish(100);
  await Promise.all([first, second]);
  assert.equal(counts, 1);
  assert.equal(b.usedBytes, 105);
  assert.equal(a.counted, true);
});

Deno.test("UploadStore: two engines sharing a ledger hold the folder to one quota", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const memory = createQuotaMemory(2);
    const store = (cell: number) =>
      new UploadStore({
        dir,
        quotaBytes: 100,
        ledger: new QuotaLedger(memory, cell),
      });
    const [a, b] = [store(0), store(1)];
    await a.save(new TextEncoder().encode(JSON.stringify("x".repeat(58))));
    await assert.rejects(
      b.save(new TextEncoder().encode(JSON.stringify("y".repeat(58)))),
      { name: "HttpError", status: 507 },
    );
    assert.equal(b.usedBytes, 60);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
