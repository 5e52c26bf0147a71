/**
 * Everything the `--workers` engines share, made once by the main thread
 * and handed to each engine with its cell (its part, free again once it
 * ends) and its slot (the worker number): the connection cap, the
 * counters behind `/metrics`, the upload quotas, the rate limiter and
 * the failed password checks.
 */
import { ENGINE_COLUMNS, RESTARTS_COLUMN } from "../app/metrics.ts";
import {
  type CounterMemory,
  CounterTable,
  createCounterMemory,
} from "./counters.ts";
import { createQuotaMemory, type QuotaMemory, reclaimQuota } from "./quota.ts";
import { createRateMemory, type RateMemory } from "./rate_table.ts";
import { createSlotMemory, reclaimSlots, type SlotMemory } from "./slots.ts";

/** The shared memory, as it crosses to a worker in a message. */
export interface SharedMemory {
  readonly slots: SlotMemory;
  readonly counters: CounterMemory;
  /** --upload-quota (POST /upload). */
  readonly quota: QuotaMemory;
  /** --upload-files-quota (forms posted to folders). */
  readonly formQuota: QuotaMemory;
  /** Only with a rate limit. */
  readonly rate?: RateMemory;
  /** Failed password checks; only with passwords. */
  readonly authFailures?: RateMemory;
}

/** One engine's part: the memory, its cell and its slot. */
export interface EngineShare {
  readonly memory: SharedMemory;
  readonly cell: number;
  /** 1-based worker number. */
  readonly slot: number;
}

export interface SharedSizes {
  /** Worker numbers: engines serving at once. */
  readonly slots: number;
  /** Engines that may run at once, draining ones included. */
  readonly cells: number;
  /** Clients the rate limiter tracks; unset: no rate limit. */
  readonly rateClients?: number;
  /** Clients whose failed password checks are tracked; unset: no passwords. */
  readonly authClients?: number;
}

/** Memory for `sizes`; the engine's counters are the table's first columns. */
export function createSharedMemory(sizes: SharedSizes): SharedMemory {
  return {
    slots: createSlotMemory(sizes.cells),
    counters: createCounterMemory(sizes.slots, sizes.cells, [
      ...ENGINE_COLUMNS,
      [RESTARTS_COLUMN, "counter"],
    ]),
    quota: createQuotaMemory(sizes.cells),
    formQuota: createQuotaMemory(sizes.cells),
    rate: sizes.rateClients === undefined
      ? undefined
      : createRateMemory(sizes.rateClients),
    authFailures: sizes.authClients === undefined
      ? undefined
      : createRateMemory(sizes.authClients),
  };
}

/** Readies `cell` for an engine in `slot`. Supervisor only. */
export function claimCell(
  memory: SharedMemory,
  cell: number,
  slot: number,
): EngineShare {
  new CounterTable(memory.counters).attach(cell, slot);
  return { memory, cell, slot };
}

/**
 * The engine in `cell` ended: its connection slots, reserved upload bytes
 * and gauges are given back, its counters kept under its slot; a death
 * counts as a restart of the slot. Supervisor only, once it runs no more.
 */
export function releaseCell(
  memory: SharedMemory,
  cell: number,
  slot: number,
  died: boolean,
): void {
  reclaimSlots(memory.slots, cell);
  reclaimQuota(memory.quota, cell);
  reclaimQuota(memory.formQuota, cell);
  const table = new CounterTable(memory.counters);
  table.retire(cell);
  if (died) table.addToSlot(slot, table.column(RESTARTS_COLUMN));
}
