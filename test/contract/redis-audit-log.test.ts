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

it('trim() drops exactly the oldest when all of them are in one stream (it reads no more of each stream than the excess)', async () => {
  const audit = createRedisAuditLog({ redis, prefix: uniquePrefix(), maxEvents: 100 });
  const old = newLeaseId('repo:old');
  for (let i = 0; i < 40; i++) await audit.write({ type: 'lease.revoked', time: Date.now(), lease_id: old, subject: 'x', n: i });
  // Stream ids of one millisecond do not order across streams (each has its own sequence): the
  // newer events start in a later one.
  await new Promise((resolve) => setTimeout(resolve, 5));
  for (let i = 0; i < 80; i++) await audit.write({ type: 'lease.revoked', time: Date.now(), lease_id: newLeaseId(`repo:${i}`), subject: 'x', n: 40 + i });
  const before = (await audit.list({ limit: 1000 })).events;
  expect(await audit.trim!()).toBe(20);
  const after = (await audit.list({ limit: 1000 })).events;
  expect(after).toEqual(before.slice(0, 100));
  expect(after.filter((e) => e.lease_id === old).map((e) => e['n'])).toEqual(Array.from({ length: 20 }, (_, i) => 39 - i));
});
