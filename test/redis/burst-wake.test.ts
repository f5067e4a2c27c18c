import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { BURST_MIN } from '../../src/leases/endings-ahead.ts';
import type { Lease } from '../../src/leases/lease.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { connectRedis } from '../../src/redis/connect.ts';
import { SHARD_COUNT, redisKeys } from '../../src/redis/keys.ts';
import { Queue } from 'bullmq';
import { SWEEP_QUEUE_NAME, startRevocationWorker } from '../../src/revocation/bullmq-queue.ts';
import { burstWaker } from '../../src/revocation/burst-wake.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { makeLease, nowSeconds } from '../contract/lease-fixtures.ts';
import { uniquePrefix, withTestRedis } from '../contract/redis-client.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * A burst of expiries read ahead gets a sweep at its due time: without one, it waits for the next
 * scheduled sweep, up to a whole LEASH_SWEEP_INTERVAL_MS. Real store, real Redis, real BullMQ.
 */
describe('a sweep woken for a burst of expiries', () => {
  let redis: Redis;
  let url: string;
  withTestRedis((r, server) => {
    redis = r;
    url = server.url;
  });

  async function leases(store: LeaseStore, n: number, expiresAt: number, tag: string): Promise<Lease[]> {
    const out = Array.from({ length: n }, (_, i) => makeLease({ subject: `repo:octo-org/${tag}-${i % 97}:ref:refs/heads/main`, issued_at: expiresAt - 600, expires_at: expiresAt }));
    await Promise.all(out.map((l) => store.create(l)));
    return out;
  }

  async function readAll(store: LeaseStore, nowMs: number): Promise<void> {
    while ((await store.readAhead!(nowMs)) > 0);
  }

  it('is asked for at the due time of the first burst of BURST_MIN held, past a trickle before it', async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix() });
    const now = nowSeconds();
    await leases(store, 30, now + 20, 'trickle');
    await leases(store, BURST_MIN - 1, now + 25, 'small');
    await readAll(store, now * 1000);
    // 999 due together is not a burst; 30 a second earlier are not either.
    expect(store.nextBurstMs!(now * 1000)).toBeNull();

    await leases(store, BURST_MIN, now + 40, 'burst');
    await readAll(store, now * 1000);
    expect(store.nextBurstMs!(now * 1000)).toBe((now + 40) * 1000);
    // Once its sweep has taken it, there is none.
    const endings = await store.sweep((now + 40) * 1000, { limit: 10_000, pendingGraceMs: 15_000 });
    expect(endings).toHaveLength(2 * BURST_MIN - 1 + 30);
    expect(store.nextBurstMs!((now + 40) * 1000)).toBeNull();
  });

  it('is one delayed sweep job however many workers ask for it', async () => {
    const prefix = uniquePrefix();
    const stores = [createRedisLeaseStore({ redis, prefix }), createRedisLeaseStore({ redis, prefix })];
    const now = nowSeconds();
    await leases(stores[0]!, BURST_MIN, now + 30, 'fleet');
    const connection = connectRedis(url, { forBullmq: true });
    const queue = new Queue(SWEEP_QUEUE_NAME, { connection, prefix: `{${prefix}bull}` });
    try {
      for (const store of stores) {
        await readAll(store, now * 1000);
        const wake = burstWaker(store, queue, () => now * 1000);
        await wake();
        await wake();
      }
      const delayed = await queue.getDelayed();
      expect(delayed.map((j) => [j.name, j.id, j.opts.delay])).toEqual([['sweep', `burst-${(now + 30) * 1000}`, 30_000]]);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      connection.disconnect();
    }
  });

  it('ends a burst read ahead at its due time, not at the next scheduled sweep 60 s later', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const expiresAt = nowSeconds() + 4;
    const burst = await leases(store, BURST_MIN, expiresAt, 'fleet');
    const log = createLogger({ level: 'silent', pretty: false });
    // The scheduled sweep runs once now (reading the burst ahead) and then not for a minute.
    const worker = await startRevocationWorker(connectRedis(url, { forBullmq: true }), prefix, { store, metrics: createMetrics(), log, now: () => Date.now() }, { sweepIntervalMs: 60_000 });
    try {
      const keys = redisKeys(prefix);
      const due = async (): Promise<number> => {
        const n = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => redis.zcard(keys.due(s))));
        return n.reduce((a, b) => a + b, 0);
      };
      await waitFor('the burst to end', async () => (await due()) === 0, 20_000, 100);
      const ended = await Promise.all(burst.slice(0, 50).map((l) => store.get(l.id)));
      expect(ended.every((l) => l?.status === 'expired')).toBe(true);
      // Ended by the woken sweep, well before the scheduled one (a minute after the start).
      expect(Math.max(...ended.map((l) => l!.ended_at! - expiresAt))).toBeLessThan(15);
    } finally {
      await worker.close();
    }
  });
});
