import type { Redis } from 'ioredis';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { uniquePrefix, withTestRedis } from './redis-client.ts';

let redis: Redis;
withTestRedis((r) => {
  redis = r;
});

auditLogContract('redis', async () => createRedisAuditLog({ redis, prefix: uniquePrefix() }));
