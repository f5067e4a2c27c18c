import { afterAll, beforeAll } from 'vitest';
import type { Cluster } from 'ioredis';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { connectRedis, whenReady } from '../../src/redis/connect.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { leaseStoreContract } from './lease-store.contract.ts';
import { uniquePrefix } from './redis-client.ts';

// The one suite every store passes, on a real 3-primary Redis Cluster through ioredis's Cluster client.
let cluster: TestRedisCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = connectRedis(cluster.url) as Cluster;
  redis.on('error', () => undefined);
  await whenReady(redis, 10_000);
}, 120_000);
afterAll(async () => {
  redis?.disconnect();
  await cluster?.destroy();
});

leaseStoreContract('redis cluster', async (opts = {}) => {
  const prefix = uniquePrefix();
  return { store: createRedisLeaseStore({ redis, prefix, ...opts }), audit: createRedisAuditLog({ redis, prefix }) };
});

auditLogContract('redis cluster', async (caps = {}) => createRedisAuditLog({ redis, prefix: uniquePrefix(), ...caps }));
