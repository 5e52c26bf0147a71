/**
 * Counters every engine writes and any engine reads, for `/metrics` over
 * all `--workers`: a table in SharedArrayBuffers with one row per running
 * engine (its cell) and one column per counter name.
 *
 * An engine writes only its own row, with plain stores: no lock and no
 * atomic on the request path. Names are registered once per engine under a
 * spin lock. Rows are grouped by slot, the worker number `/metrics` shows:
 * an engine that replaces another (a crash, a reload) takes its slot. When
 * an engine ends, the supervisor folds its counters into the slot's
 * retired row, under a sequence lock that readers retry on, so a slot's
 * counters never go back; its gauges just drop out.
 */

/** A counter only grows; a gauge goes up and down and ends with its engine. */
export type CounterKind = "counter" | "gauge";

/** Names the table holds at most: engine fields, app fields, 5 per route. */
export const MAX_NAMES = 512;
/** Longest name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 160;

const SEQ = 0;
const NAMES = 1;
const LOCK = 2;
const HEADER = 3;
/** Per name: byte length, kind (1 for gauge). */
const NAME_INFO = HEADER;
/** Per row: live (1) or not, slot. */
const ROW_INFO = NAME_INFO + 2 * MAX_NAMES;

/** The table's memory, passed to each engine's {@link CounterTable}. */
export interface CounterMemory {
  readonly meta: Int32Array;
  readonly names: Uint8Array;
  readonly values: Float64Array;
  /** Slots 1..slots; row s - 1 holds what slot s's ended engines counted. */
  readonly slots: number;
  /** Rows for running engines, after the slots' rows. */
  readonly cells: number;
}

/** What {@link CounterTable.read} sees: totals and each slot's sums. */
export interface CounterSnapshot {
  readonly names: readonly string[];
  readonly kinds: readonly CounterKind[];
  /** Column -> sum over every row. */
  readonly total: Float64Array;
  /** Slot -> column -> sum over its rows; only slots with a live engine or counts. */
  readonly bySlot: ReadonlyMap<number, Float64Array>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Spins before taking the registry lock from a holder that must have died. */
const LOCK_SPINS = 1 << 20;

/**
 * Memory for `slots` slots and `cells` running engines, with `preset`
 * names registered first, in order (columns 0, 1, ...).
 */
export function createCounterMemory(
  slots: number,
  cells: number,
  preset: readonly (readonly [string, CounterKind])[] = [],
): CounterMemory {
  const rows = slots + cells;
  const memory: CounterMemory = {
    meta: new Int32Array(
      new SharedArrayBuffer(
        (ROW_INFO + 2 * rows) * Int32Array.BYTES_PER_ELEMENT,
      ),
    ),
    names: new Uint8Array(new SharedArrayBuffer(MAX_NAMES * MAX_NAME_BYTES)),
    values: new Float64Array(
      new SharedArrayBuffer(rows * MAX_NAMES * Float64Array.BYTES_PER_ELEMENT),
    ),
    slots,
    cells,
  };
  const table = new CounterTable(memory);
  for (const [name, kind] of preset) table.column(name, kind);
  return memory;
}

/** One engine's (or the supervisor's) view of the shared counters. */
export class CounterTable {
  readonly memory: CounterMemory;
  readonly #meta: Int32Array;
  readonly #known = new Map<string, number>();

  constructor(memory: CounterMemory) {
    this.memory = memory;
    this.#meta = memory.meta;
  }

  /**
   * The column of `name`, registered on first use by any engine; -1 when
   * the table is full.
   *
   * @throws {RangeError} for a name longer than {@link MAX_NAME_BYTES}.
   */
  column(name: string, kind: CounterKind = "counter"): number {
    const known = this.#known.get(name);
    if (known !== undefined) return known;
    const bytes = encoder.encode(name);
    if (bytes.length > MAX_NAME_BYTES) {
      throw new RangeError(
        `Counter name over ${MAX_NAME_BYTES} bytes: ${name}`,
      );
    }
    const meta = this.#meta;
    this.#lock();
    try {
      const count = Atomics.load(meta, NAMES);
      let col = this.#find(bytes, count);
      if (col === -1 && count < MAX_NAMES) {
        col = count;
        this.memory.names.set(bytes, col * MAX_NAME_BYTES);
        Atomics.store(meta, NAME_INFO + 2 * col, bytes.length);
        Atomics.store(meta, NAME_INFO + 2 * col + 1, kind === "gauge" ? 1 : 0);
        // Published last: a reader that sees the count sees the name.
        Atomics.store(meta, NAMES, count + 1);
      }
      if (col !== -1) this.#known.set(name, col);
      return col;
    } finally {
      Atomics.store(meta, LOCK, 0);
    }
  }

  #find(bytes: Uint8Array, count: number): number {
    const names = this.memory.names;
    outer: for (let col = 0; col < count; col++) {
      if (Atomics.load(this.#meta, NAME_INFO + 2 * col) !== bytes.length) {
        continue;
      }
      const at = col * MAX_NAME_BYTES;
      for (let i = 0; i < bytes.length; i++) {
        if (names[at + i] !== bytes[i]) continue outer;
      }
      return col;
    }
    return -1;
  }

  #lock(): void {
    for (
      let spins = 0;
      Atomics.compareExchange(this.#meta, LOCK, 0, 1) !== 0;
    ) {
      // Registering takes microseconds: a holder this slow has died mid-way.
      if (++spins === LOCK_SPINS) return;
    }
  }

  /** The row engine `cell` writes; index it by {@link column}. */
  row(cell: number): Float64Array {
    const { slots, cells, values } = this.memory;
    if (!(cell >= 0 && cell < cells)) {
      throw new RangeError(`No cell ${cell} in this counter table`);
    }
    const start = (slots + cell) * MAX_NAMES;
    return values.subarray(start, start + MAX_NAMES);
  }

  /** Starts counting `cell` under `slot` (1-based). Supervisor only. */
  attach(cell: number, slot: number): void {
    if (!(slot >= 1 && slot <= this.memory.slots)) {
      throw new RangeError(`No slot ${slot} in this counter table`);
    }
    this.row(cell).fill(0);
    const at = ROW_INFO + 2 * (this.memory.slots + cell);
    Atomics.store(this.#meta, at + 1, slot);
    Atomics.store(this.#meta, at, 1);
  }

  /**
   * Folds an ended engine's counters into its slot's retired row and frees
   * its cell; its gauges are dropped. Supervisor only, once the engine runs
   * no more.
   */
  retire(cell: number): void {
    const meta = this.#meta;
    const at = ROW_INFO + 2 * (this.memory.slots + cell);
    if (Atomics.load(meta, at) !== 1) return;
    const slot = Atomics.load(meta, at + 1);
    const row = this.row(cell);
    const kept = this.#retiredRow(slot);
    const count = Atomics.load(meta, NAMES);
    Atomics.add(meta, SEQ, 1); // odd: readers wait
    for (let col = 0; col < count; col++) {
      if (Atomics.load(meta, NAME_INFO + 2 * col + 1) === 0) {
        kept[col] += row[col];
      }
    }
    Atomics.store(meta, at, 0);
    row.fill(0);
    Atomics.add(meta, SEQ, 1);
  }

  /** Adds `n` to `slot`'s retired row in `column` (a supervisor's counter). */
  addToSlot(slot: number, column: number, n = 1): void {
    if (column < 0 || !(slot >= 1 && slot <= this.memory.slots)) return;
    const meta = this.#meta;
    Atomics.add(meta, SEQ, 1);
    this.#retiredRow(slot)[column] += n;
    Atomics.add(meta, SEQ, 1);
  }

  #retiredRow(slot: number): Float64Array {
    const start = (slot - 1) * MAX_NAMES;
    return this.memory.values.subarray(start, start + MAX_NAMES);
  }

  /** Totals and per-slot sums, consistent with any fold in progress. */
  read(): CounterSnapshot {
    const meta = this.#meta;
    for (;;) {
      const seq = Atomics.load(meta, SEQ);
      if (seq % 2 === 1) continue; // a fold takes microseconds
      const snapshot = this.#readOnce();
      if (Atomics.load(meta, SEQ) === seq) return snapshot;
    }
  }

  #readOnce(): CounterSnapshot {
    const meta = this.#meta;
    const { slots, cells, values } = this.memory;
    const count = Atomics.load(meta, NAMES);
    const names: string[] = [];
    const kinds: CounterKind[] = [];
    for (let col = 0; col < count; col++) {
      const len = Atomics.load(meta, NAME_INFO + 2 * col);
      const at = col * MAX_NAME_BYTES;
      // Copied out: TextDecoder does not read shared memory.
      names.push(decoder.decode(this.memory.names.slice(at, at + len)));
      kinds.push(
        Atomics.load(meta, NAME_INFO + 2 * col + 1) === 1 ? "gauge" : "counter",
      );
    }
    const total = new Float64Array(count);
    const bySlot = new Map<number, Float64Array>();
    const add = (slot: number, row: number) => {
      let sums = bySlot.get(slot);
      if (sums === undefined) bySlot.set(slot, sums = new Float64Array(count));
      const start = row * MAX_NAMES;
      for (let col = 0; col < count; col++) {
        const v = values[start + col];
        sums[col] += v;
        total[col] += v;
      }
    };
    for (let slot = 1; slot <= slots; slot++) {
      const start = (slot - 1) * MAX_NAMES;
      if (values.subarray(start, start + count).some((v) => v !== 0)) {
        add(slot, slot - 1);
      }
    }
    for (let cell = 0; cell < cells; cell++) {
      const at = ROW_INFO + 2 * (slots + cell);
      if (Atomics.load(meta, at) === 1) {
        add(Atomics.load(meta, at + 1), slots + cell);
      }
    }
    return { names, kinds, total, bySlot };
  }
}
