/**
 * In-process fixed-window counters (dev mode and tests): the first hit on a key starts its
 * window. The Redis twin is LUA_BUDGET in leases/redis-budget-lua.ts.
 */
export interface FixedWindows {
  /** Counts one hit on `key`; returns the hits so far in its window and the ms the window has left. */
  hit(key: string, windowMs: number): { count: number; ttlMs: number };
}

export function createFixedWindows(now: () => number = Date.now): FixedWindows {
  const windows = new Map<string, { count: number; resetAt: number }>();
  return {
    hit(key, windowMs) {
      const t = now();
      let w = windows.get(key);
      if (!w || w.resetAt <= t) {
        if (windows.size > 100_000) for (const [k, v] of windows) if (v.resetAt <= t) windows.delete(k);
        w = { count: 0, resetAt: t + windowMs };
        windows.set(key, w);
      }
      w.count += 1;
      return { count: w.count, ttlMs: w.resetAt - t };
    },
  };
}
