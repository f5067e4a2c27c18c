import { afterAll, beforeAll } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { connectRedis, whenReady } from '../../src/redis/connect.ts';
import { startRedisSentinel, type TestRedisSentinel } from '../helpers/redis-sentinel.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { leaseStoreContract } from './lease-store.contract.ts';
import { uniquePrefix } from './redis-client.ts';

// The one suite every store passes, on a real Sentinel set through ioredis's Sentinel client.
let sentinel: TestRedisSentinel;
let redis: Redis;
beforeAll(async () => {
  sentinel = await startRedisSentinel();
  redis = connectRedis(sentinel.url) as Redis;
  redis.on('error', () => undefined);
  await whenReady(redis, 10_000);
}, 120_000);
afterAll(async () => {
  redis?.disconnect();
  await sentinel?.destroy();
});

leaseStoreContract('redis sentinel', async (opts = {}) => {
  const prefix = uniquePrefix();
  return { store: createRedisLeaseStore({ redis, prefix, ...opts }), audit: createRedisAuditLog({ redis, prefix }) };
});

auditLogContract('redis sentinel', async (caps = {}) => createRedisAuditLog({ redis, prefix: uniquePrefix(), ...caps }));
