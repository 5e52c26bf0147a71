/**
 * Buffers for whole big frames, lent while a frame is written and kept for
 * the next one. A frame copied into one of them leaves in one write, and a
 * kept buffer is already mapped: a new one per frame is zeroed first, page
 * by page, then left to the garbage collector.
 */

/**
 * A bounded set of buffers of varied sizes: `take(size)` lends the
 * smallest kept buffer that fits without wasting more than `size` again,
 * or makes one of `size` rounded up to `step`; `give()` keeps a buffer
 * while the kept ones total at most `maxBytes`, dropping the oldest kept
 * first when over.
 */
export class FrameBuffers {
  /** New buffers are a multiple of this long, so near sizes share them. */
  readonly step: number;
  readonly #maxBytes: number;
  readonly #free: Uint8Array[] = [];
  #freeBytes = 0;

  constructor(step: number, maxBytes: number) {
    this.step = step;
    this.#maxBytes = maxBytes;
  }

  /** A buffer of at least `size` bytes, holding whatever its last user left. */
  take(size: number): Uint8Array {
    const free = this.#free;
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      const len = free[i].length;
      if (
        len >= size && len <= 2 * size &&
        (best < 0 || len < free[best].length)
      ) best = i;
    }
    if (best < 0) {
      return new Uint8Array(Math.ceil(size / this.step) * this.step);
    }
    const buf = free.splice(best, 1)[0];
    this.#freeBytes -= buf.length;
    return buf;
  }

  /**
   * Keeps `buf` for a later `take()`; call it once nothing reads or writes
   * `buf` any more.
   */
  give(buf: Uint8Array): void {
    const len = buf.length;
    if (len > this.#maxBytes) return;
    const free = this.#free;
    free.push(buf);
    this.#freeBytes += len;
    while (this.#freeBytes > this.#maxBytes) {
      this.#freeBytes -= free.shift()!.length;
    }
  }

  /** Bytes kept, ready to lend. */
  get freeBytes(): number {
    return this.#freeBytes;
  }
}
