import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { SHARD_COUNT, redisKeys } from '../../src/redis/keys.ts';
import { makeLease, nowSeconds } from '../contract/lease-fixtures.ts';
import { uniquePrefix, withTestRedis } from '../contract/redis-client.ts';

let redis: Redis;
withTestRedis((r) => {
  redis = r;
});

const usedMemory = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);

const N = 20_000;
const scenarios = [
  // A deploy job's token: 20 live leases per repo environment, each job its own task.
  { name: 'typical', subject: (n: number) => `repo:octo-org/octo-repo-${n % 1000}:environment:prod` },
  // Every lease its own subject and its own task: the most index entries a lease can have.
  { name: 'worst case', subject: (n: number) => `repo:octo-org/octo-repo-${n}:environment:prod` },
];

// A memory bound (the target: at most 1 KB of Redis per active lease), not a timing assertion.
// At 1,000,000 leases the figures are lower (fuller hash tables): 864 and 949 bytes when measured.
for (const scenario of scenarios) {
  it(`stores an active lease in under 1024 bytes of Redis (${scenario.name})`, async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix() });
    await store.create(makeLease()); // loads the script, so the script cache is not counted
    const before = await usedMemory();
    const now = nowSeconds();
    for (let batch = 0; batch < N / 1000; batch++) {
      // 1,000 creates in flight at once: ioredis pipelines them on the one connection.
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) => {
          const n = batch * 1000 + i;
          const lease = makeLease({ subject: scenario.subject(n), task_id: randomUUID(), issued_at: now, expires_at: now + 600 + (n % 3000) });
          return store.create(lease, { maxActive: 20 });
        }),
      );
    }
    const perLease = ((await usedMemory()) - before) / N;
    console.log(`Redis bytes per active lease, ${scenario.name}: ${perLease.toFixed(0)} (${N} leases)`);
    expect(await store.countActive()).toBe(N + 1);
    expect(perLease).toBeLessThan(1024);
  });
}

// The README's figure for LEASH_RETENTION: an ended lease kept for retention (its record, its
// listing entry and its place on the retention list; its audit event is the audit's, not counted).
it('keeps an ended lease for retention in under 600 bytes of Redis', async () => {
  const prefix = uniquePrefix();
  const store = createRedisLeaseStore({ redis, prefix, retentionSeconds: 3600 });
  const now = nowSeconds();
  for (let batch = 0; batch < N / 1000; batch++) {
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) => store.create(makeLease({ subject: `repo:octo-org/octo-repo-${i}:environment:prod`, expires_at: now + 1 }))),
    );
  }
  let ended = 0;
  while (ended < N) {
    const swept = await store.sweep((now + 2) * 1000, { limit: 2000, pendingGraceMs: 60_000 });
    expect(swept.length).toBeGreaterThan(0);
    ended += swept.length;
  }
  await store.pruneRetained((now + 2) * 1000); // the index entries go; the ended leases stay
  await redis.del(...Array.from({ length: SHARD_COUNT }, (_, s) => redisKeys(prefix).audit(s)));
  const kept = await usedMemory();
  expect(await store.pruneRetained((now + 2) * 1000 + 3_601_000)).toBe(N);
  const perLease = (kept - (await usedMemory())) / N;
  console.log(`Redis bytes per ended lease kept for retention: ${perLease.toFixed(0)} (${N} leases)`);
  expect(perLease).toBeLessThan(600);
});
