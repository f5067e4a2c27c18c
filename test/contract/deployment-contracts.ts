import { afterAll, beforeAll } from 'vitest';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { leaseStoreContract } from './lease-store.contract.ts';
import { uniquePrefix } from './redis-client.ts';

/**
 * The one suite every store passes, on a real Redis deployment the file starts (Cluster, Sentinel)
 * and reaches through `REDIS_URL`'s client, as the broker does.
 */
export function deploymentContracts(name: string, start: () => Promise<{ url: string; destroy(): Promise<void> }>): void {
  let deployment: { url: string; destroy(): Promise<void> } | undefined;
  let redis: RedisClient;
  beforeAll(async () => {
    deployment = await start();
    redis = connectRedis(deployment.url);
    redis.on('error', () => undefined);
    await whenReady(redis, 10_000);
  }, 120_000);
  afterAll(async () => {
    redis?.disconnect();
    await deployment?.destroy();
  });

  leaseStoreContract(name, async (opts = {}) => {
    const prefix = uniquePrefix();
    return { store: createRedisLeaseStore({ redis, prefix, ...opts }), audit: createRedisAuditLog({ redis, prefix }) };
  });
  auditLogContract(name, async (caps = {}) => createRedisAuditLog({ redis, prefix: uniquePrefix(), ...caps }));
}
