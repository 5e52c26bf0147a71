/**
 * Counts the timers code starts and stops through the globals
 * (`setTimeout`, `setInterval` and their `clear*`), until disposed.
 */
export function countTimers() {
  const real = {
    setTimeout: globalThis.setTimeout,
    setInterval: globalThis.setInterval,
    clearTimeout: globalThis.clearTimeout,
    clearInterval: globalThis.clearInterval,
  };
  /** Timeouts and intervals started; timers cleared (an undefined id is not counted). */
  const count = { timeouts: 0, intervals: 0, cleared: 0 };
  Object.assign(globalThis, {
    setTimeout: (...args: Parameters<typeof setTimeout>) => {
      count.timeouts++;
      return real.setTimeout(...args);
    },
    setInterval: (...args: Parameters<typeof setInterval>) => {
      count.intervals++;
      return real.setInterval(...args);
    },
    clearTimeout: (id?: number) => {
      if (id !== undefined) count.cleared++;
      real.clearTimeout(id);
    },
    clearInterval: (id?: number) => {
      if (id !== undefined) count.cleared++;
      real.clearInterval(id);
    },
  });
  return {
    count,
    [Symbol.dispose]: () => void Object.assign(globalThis, real),
  };
}
