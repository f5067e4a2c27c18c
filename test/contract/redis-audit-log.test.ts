import type { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.ts';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { newLeaseId, shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { auditLogContract } from './audit-log.contract.ts';
import { uniquePrefix, withTestRedis } from './redis-client.ts';

let redis: Redis;
withTestRedis((r) => {
  redis = r;
});

auditLogContract('redis', async (caps = {}) => createRedisAuditLog({ redis, prefix: uniquePrefix(), ...caps }));

it('maxEvents is the total over the shard streams: trim() keeps the newest, however unevenly spread', async () => {
  const audit = createRedisAuditLog({ redis, prefix: uniquePrefix(), maxEvents: 120 });
  const busy = newLeaseId('repo:busy');
  // Two thirds of the events are one lease's (one shard, under the per-stream bound); the rest spread out.
  for (let i = 0; i < 150; i++) {
    const lease_id = i % 3 ? busy : newLeaseId(`repo:${i}`);
    await audit.write({ type: 'lease.revoked', time: Date.now(), lease_id, subject: 'x', n: i });
  }
  await audit.write({ type: 'exchange.denied', time: Date.now(), actor: 'unverified', reason: 'invalid_request' });
  const before = (await audit.list({ limit: 1000 })).events.filter((e) => e.type !== 'exchange.denied');
  expect(before).toHaveLength(150);
  expect(await audit.trim!()).toBe(150 - 120);
  const after = (await audit.list({ limit: 1000 })).events;
  const credentials = after.filter((e: AuditEvent) => e.type !== 'exchange.denied');
  expect(credentials).toEqual(before.slice(0, 120));
  // The busy shard keeps its share of the newest, not a 16th of the cap.
  expect(credentials.filter((e) => e.lease_id === busy).length).toBeGreaterThan(120 / 16);
  expect(new Set(credentials.map((e) => shardOfLeaseId(e.lease_id!))).size).toBeGreaterThan(1);
  // Refusals are not counted against it, and a second pass has nothing to do.
  expect(after.filter((e) => e.type === 'exchange.denied')).toHaveLength(1);
  expect(await audit.trim!()).toBe(0);
});
