import type { RedisClient } from '../redis/connect.ts';
import { LeashError, StoreUnavailableError } from '../errors.ts';
import { rateLimitKey } from '../redis/keys.ts';
import { createFixedWindows } from '../util/fixed-windows.ts';

/**
 * The per-minute request budget on POST /token per client address. The per-subject budget is
 * charged by the lease write itself (CreateOptions.budget), once the proof is known to be no replay.
 */
export interface RateLimiter {
  checkClient(addr: string): Promise<void>;
}

/** The window of both budgets (per address, per subject). */
export const RATE_LIMIT_WINDOW_MS = 60_000;

/** The 429 of an exhausted budget, with Retry-After. */
export const rateLimited = (what: string, retryAfterMs: number): LeashError =>
  new LeashError('rate_limited', `too many token requests for this ${what}; retry later`, {
    status: 429,
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  });

type Counter = (key: string) => Promise<{ count: number; ttlMs: number }>;

function limiterOver(count: Counter, perIp: number): RateLimiter {
  return {
    async checkClient(addr) {
      if (perIp <= 0) return;
      const { count: n, ttlMs } = await count(`ip:${addr}`);
      if (n > perIp) throw rateLimited('client address', ttlMs);
    },
  };
}

// Fixed window: INCR, and start the window's clock on the first hit. One round trip.
const INCR_WINDOW = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`;

/** Counters in Redis, so the limits hold across every API replica. */
export function createRedisRateLimiter(redis: RedisClient, prefix: string, perIp: number): RateLimiter {
  return limiterOver(async (key) => {
    try {
      const [count, ttlMs] = (await redis.eval(INCR_WINDOW, 1, rateLimitKey(prefix, key), RATE_LIMIT_WINDOW_MS)) as [number, number];
      return { count, ttlMs };
    } catch (err) {
      throw new StoreUnavailableError('rate limiter: ' + String(err), err);
    }
  }, perIp);
}

export function createMemoryRateLimiter(perIp: number, now: () => number = Date.now): RateLimiter {
  const windows = createFixedWindows(now);
  return limiterOver(async (key) => windows.hit(key, RATE_LIMIT_WINDOW_MS), perIp);
}
