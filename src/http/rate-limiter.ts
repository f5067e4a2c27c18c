import type { RedisConnection } from '../redis/connect.ts';
import { LeashError, StoreUnavailableError } from '../errors.ts';
import { rateLimitKey } from '../leases/redis-keys.ts';

/** Per-minute request budgets on POST /token, per client address and per proof subject. */
export interface RateLimiter {
  checkClient(addr: string): Promise<void>;
  checkSubject(subject: string): Promise<void>;
}

const WINDOW_MS = 60_000;

const tooMany = (what: string, retryAfterMs: number): LeashError =>
  new LeashError('rate_limited', `too many token requests for this ${what}; retry later`, {
    status: 429,
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  });

type Counter = (key: string) => Promise<{ count: number; ttlMs: number }>;

function limiterOver(count: Counter, perIp: number, perSubject: number): RateLimiter {
  const check = async (kind: 'ip' | 'sub', key: string, limit: number, what: string): Promise<void> => {
    if (limit <= 0) return;
    const { count: n, ttlMs } = await count(`${kind}:${key}`);
    if (n > limit) throw tooMany(what, ttlMs);
  };
  return {
    checkClient: (addr) => check('ip', addr, perIp, 'client address'),
    checkSubject: (subject) => check('sub', subject, perSubject, 'subject'),
  };
}

// Fixed window: INCR, and start the window's clock on the first hit. One round trip.
const INCR_WINDOW = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`;

/** Counters in Redis, so the limits hold across every API replica. */
export function createRedisRateLimiter(redis: RedisConnection, prefix: string, perIp: number, perSubject: number): RateLimiter {
  return limiterOver(async (key) => {
    try {
      const [count, ttlMs] = (await redis.eval(INCR_WINDOW, 1, rateLimitKey(prefix, key), WINDOW_MS)) as [number, number];
      return { count, ttlMs };
    } catch (err) {
      throw new StoreUnavailableError('rate limiter: ' + String(err), err);
    }
  }, perIp, perSubject);
}

export function createMemoryRateLimiter(perIp: number, perSubject: number, now: () => number = Date.now): RateLimiter {
  const windows = new Map<string, { count: number; resetAt: number }>();
  return limiterOver(async (key) => {
    const t = now();
    let w = windows.get(key);
    if (!w || w.resetAt <= t) {
      if (windows.size > 100_000) for (const [k, v] of windows) if (v.resetAt <= t) windows.delete(k);
      w = { count: 0, resetAt: t + WINDOW_MS };
      windows.set(key, w);
    }
    w.count += 1;
    return { count: w.count, ttlMs: w.resetAt - t };
  }, perIp, perSubject);
}
