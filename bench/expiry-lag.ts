/**
 * Section 6: expiry lag. 10,000 leases written straight through the Redis lease store, all with
 * the same expires_at (one second, a few seconds ahead), and a worker process running (LEASH_ROLE
 * =worker: startRevocationWorker with the broker's default sweep interval). Per lease, lag =
 * when the worker ended it minus expires_at, read from the `lag_ms` of its `lease.expired` audit
 * event (written by the same Lua step that ended it).
 */
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { redisKeys, SHARD_COUNT } from '../src/redis/keys.ts';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import { REDIS_PREFIX, benchPolicy, startBroker, startRedis } from './env.ts';
import { benchLease, createMany } from './leases.ts';
import { log, sleep, summarize, waitUntil, type Summary } from './util.ts';

export interface ExpiryLagResult {
  leases: number;
  expiresAt: number;
  ended: number;
  lagMs: Summary;
  /** From expires_at until the last of them had ended. */
  allEndedAfterMs: number;
  writeSeconds: number;
  sweepIntervalMs: number;
}

export async function benchExpiryLag(opts: { leases: number; aheadSeconds: number }): Promise<ExpiryLagResult> {
  const redisServer = await startRedis();
  const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
  let worker: Awaited<ReturnType<typeof startBroker>> | undefined;
  try {
    // The worker never verifies proofs; the policy only has to load.
    worker = await startBroker({ name: 'leash-worker', redisUrl: redisServer.url, policyPath: benchPolicy('http://127.0.0.1:9'), role: 'worker' });
    const store = createRedisLeaseStore({ redis, prefix: REDIS_PREFIX });
    const now = Math.floor(Date.now() / 1000);
    const expiresAt = now + opts.aheadSeconds;
    const t0 = performance.now();
    const ids = new Set<string>();
    const written = await createMany(store, opts.leases, (i) => {
      const l = benchLease({ subject: `repo:octo-org/app-${i % 1000}:ref:refs/heads/main`, issuedAt: now, expiresAt });
      ids.add(l.id);
      return l;
    });
    const writeSeconds = (performance.now() - t0) / 1000;
    if (Date.now() >= expiresAt * 1000) throw new Error(`writing ${opts.leases} leases took ${writeSeconds.toFixed(1)} s, past their expiry; raise the lead time`);
    log(`expiry lag: ${written} leases written in ${writeSeconds.toFixed(2)} s, all expiring at ${new Date(expiresAt * 1000).toISOString()}`);

    await sleep(Math.max(0, expiresAt * 1000 - Date.now()));
    const ended = await waitUntil(async () => (await store.countActive()) === 0, 30_000, 50);
    if (!ended) log(`expiry lag: ${await store.countActive()} leases still active 30 s after expiry`);
    await sleep(200);

    const lags = await expiredLags(redis, ids);
    const lagMs = summarize(lags);
    return { leases: written, expiresAt, ended: lags.length, lagMs, allEndedAfterMs: lagMs.max, writeSeconds, sweepIntervalMs: loadConfig({}).sweepIntervalMs };
  } finally {
    await worker?.stop();
    redis.disconnect();
    await redisServer.destroy();
  }
}

/** The `lag_ms` of every `lease.expired` audit event of the leases in `ids`, read from the streams. */
export async function expiredLags(redis: Redis, ids: ReadonlySet<string>): Promise<number[]> {
  const keys = redisKeys(REDIS_PREFIX);
  const lags: number[] = [];
  for (let s = 0; s < SHARD_COUNT; s++) {
    const entries = (await redis.xrange(keys.audit(s), '-', '+')) as [string, string[]][];
    for (const [, fields] of entries) {
      const json = fields[fields.indexOf('e') + 1];
      if (!json) continue;
      const e = JSON.parse(json) as { type?: string; lease_id?: string; lag_ms?: number };
      if (e.type === 'lease.expired' && e.lease_id && ids.has(e.lease_id) && typeof e.lag_ms === 'number') lags.push(e.lag_ms);
    }
  }
  return lags;
}
