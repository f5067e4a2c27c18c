import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { SHARD_COUNT, redisKeys } from '../../src/redis/keys.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { WORKER_CHILD, startChild, type Child } from './children.ts';
import { endingEvents, leaseFor, pool, waitFor } from './harness.ts';

/**
 * A worker process dies (SIGKILL) in the middle of ending a burst of 2,000 leases that expire
 * together; another worker takes over. Every lease ends exactly once: none lost, none twice.
 */

const N = 2_000;
const PREFIX = 'crash:';
let redis: TestRedis;
let client: Redis;
const children: Child[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  for (const c of children) await c.kill('SIGKILL');
  client?.disconnect();
  await redis?.destroy();
});

async function stillDue(): Promise<number> {
  const keys = redisKeys(PREFIX);
  const counts = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => client.zcard(keys.due(s))));
  return counts.reduce((a, b) => a + b, 0);
}

const endedSoFar = (c: Child): number =>
  c.lines.filter((l) => l.startsWith('ended ')).reduce((n, l) => n + Number(l.slice(6)), 0);

it('a worker SIGKILLed mid-sweep loses nothing and a second worker ends the rest, each lease exactly once', async () => {
  const store = createRedisLeaseStore({ redis: client, prefix: PREFIX });
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, LEASH_SWEEP_INTERVAL_MS: '100' };
  const expiresAt = Math.floor(Date.now() / 1000) + 2;
  const leases = Array.from({ length: N }, () => leaseFor({ expires_at: expiresAt }));
  await pool(leases, 32, (l) => store.create(l));
  // No worker runs yet, so however slowly the burst was written, none of it can have ended.
  expect(await stillDue()).toBe(N);
  // Worker A ends leases 50 at a time with a pause in between: a batch takes long enough to be cut.
  const a = startChild(WORKER_CHILD, { ...env, SWEEP_CHUNK: '50', SWEEP_PAUSE_MS: '50' }, 'worker A');
  children.push(a);
  await a.waitLine((l) => l === 'ready', 30_000);

  await waitFor('worker A to be in the middle of the burst', async () => endedSoFar(a) >= 150, 15_000, 5);
  await a.kill('SIGKILL');
  const left = await stillDue();
  // Killed mid-batch: some leases ended, some not.
  expect(left).toBeGreaterThan(0);
  expect(left).toBeLessThan(N);

  const b = startChild(WORKER_CHILD, env, 'worker B');
  children.push(b);
  await waitFor('worker B to end every remaining lease', async () => (await stillDue()) === 0, 30_000, 100);
  // Two more complete sweeps of worker B: had anything been left to end twice, it would have been.
  const sweptSoFar = b.lines.filter((l) => l === 'swept').length;
  await b.waitLine(() => b.lines.filter((l) => l === 'swept').length >= sweptSoFar + 2, 15_000);

  const events = await endingEvents(client, PREFIX);
  expect(events.size).toBe(N);
  const counts = new Map<number, number>();
  for (const l of leases) {
    const evs = events.get(l.id) ?? [];
    counts.set(evs.length, (counts.get(evs.length) ?? 0) + 1);
    expect(evs.map((e) => e.type)).toEqual(['lease.expired']);
  }
  expect([...counts]).toEqual([[1, N]]);

  const stored = await pool(leases, 32, (l) => store.get(l.id));
  const statuses = new Set(stored.map((l) => `${l?.status}:${l?.ended_at !== null}`));
  expect([...statuses]).toEqual(['expired:true']);
  expect(await store.countActive()).toBe(0);
  const keys = redisKeys(PREFIX);
  const pending = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => client.zcard(keys.pending(s))));
  expect(pending.every((n) => n === 0)).toBe(true);
}, 60_000);
