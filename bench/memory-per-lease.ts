/**
 * Section 7: Redis bytes per active lease, expiry scheduling included. INFO memory used_memory
 * before and after writing N leases straight through the Redis lease store (create calls
 * pipelined on one connection), divided by N. Leases have realistic field sizes; every lease
 * carries a task id (the costlier case: it also joins a task index) and 20 share a subject.
 */
import { Redis } from 'ioredis';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import { REDIS_PREFIX, startRedis } from './env.ts';
import { benchLease, createMany } from './leases.ts';
import { log, usedMemory } from './util.ts';
import { randomUUID } from 'node:crypto';

export interface MemoryResult {
  requested: number;
  written: number;
  bytesPerLease: number;
  usedBefore: number;
  usedAfter: number;
  writeSeconds: number;
  createsPerSecond: number;
  /** The time budget cut the run short. */
  cutShort: boolean;
}

export async function benchMemoryPerLease(opts: { leases: number; budgetSeconds: number }): Promise<MemoryResult> {
  const redisServer = await startRedis();
  const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
  try {
    const store = createRedisLeaseStore({ redis, prefix: REDIS_PREFIX });
    const now = Math.floor(Date.now() / 1000);
    const subjects = Math.max(1, Math.ceil(opts.leases / 20));
    const make = (i: number) =>
      benchLease({
        subject: `repo:octo-org/service-${i % subjects}:environment:production`,
        issuedAt: now,
        expiresAt: now + 600 + (i % 3000),
        taskId: randomUUID(),
      });
    // One lease first: loads the Lua script and creates the per-shard keys, so they are not counted.
    await store.create(make(0));
    const before = await usedMemory(redis);
    const t0 = performance.now();
    const written = await createMany(store, opts.leases, (i) => make(i + 1), {
      inFlight: 2_000,
      deadline: Date.now() + opts.budgetSeconds * 1000,
      onProgress: (n) => {
        if (n % 200_000 === 0) log(`memory: ${n.toLocaleString('en-US')} leases written`);
      },
    });
    const writeSeconds = (performance.now() - t0) / 1000;
    const after = await usedMemory(redis);
    const active = await store.countActive();
    if (active !== written + 1) throw new Error(`countActive() is ${active}, expected ${written + 1}`);
    return {
      requested: opts.leases,
      written,
      bytesPerLease: (after - before) / written,
      usedBefore: before,
      usedAfter: after,
      writeSeconds,
      createsPerSecond: written / writeSeconds,
      cutShort: written < opts.leases,
    };
  } finally {
    redis.disconnect();
    await redisServer.destroy();
  }
}
