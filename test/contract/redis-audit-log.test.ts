import { afterAll, beforeAll } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { connectTestRedis, uniquePrefix } from './redis-client.ts';

let server: TestRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startRedis();
  redis = await connectTestRedis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.destroy();
});

auditLogContract('redis', async () => createRedisAuditLog({ redis, prefix: uniquePrefix() }));
