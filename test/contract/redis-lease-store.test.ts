import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { AuditEvent } from '../../src/audit/events.ts';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { actName, redisKeys, shardOfSubject, taskName } from '../../src/redis/keys.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { leaseStoreContract } from './lease-store.contract.ts';
import { makeLease, nowSeconds, revokeInput } from './lease-fixtures.ts';
import { connectTestRedis, uniquePrefix, withTestRedis } from './redis-client.ts';

let redis: Redis;
withTestRedis((r) => {
  redis = r;
});

leaseStoreContract('redis', async (opts = {}) => {
  const prefix = uniquePrefix();
  return { store: createRedisLeaseStore({ redis, prefix, ...opts }), audit: createRedisAuditLog({ redis, prefix }) };
});

describe('Redis lease store', () => {
  it('keeps every key of a lease in its shard, and leaves nothing behind after retention', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix, retentionSeconds: 1 });
    const lease = makeLease({ task_id: 'task-1', kind: 'x509', serial: 'abcd' });
    await store.create(lease);
    const tag = `{s${shardOfSubject(lease.subject)}}`;
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k.startsWith(`${prefix}${tag}:`)).toBe(true);
    await store.revoke(lease.id, revokeInput());
    const nowMs = Date.now();
    await store.finalize(lease.id, nowMs);
    await store.pruneRetained(nowMs + 1000);
    // What stays: the audit stream and the CRL entry (dropped when the certificate expires).
    expect((await redis.keys(`${prefix}*`)).sort()).toEqual([`${prefix}${tag}:audit`, `${prefix}${tag}:crl`]);
  });

  it('drops ended leases by when they ended, under the retention of the store pruning, and still drops those an earlier version scored in `gone`', async () => {
    const prefix = uniquePrefix();
    const keys = redisKeys(prefix);
    const store = createRedisLeaseStore({ redis, prefix, retentionSeconds: 10 });
    const subject = 'repo:octo-org/retained';
    const [first, later, legacy] = [makeLease({ subject }), makeLease({ subject }), makeLease({ subject })];
    const t0 = Date.now();
    for (const l of [first, later, legacy]) {
      await store.create(l);
      await store.revoke(l.id, revokeInput());
    }
    await store.finalize(first.id, t0);
    await store.finalize(legacy.id, t0 + 1000);
    await store.finalize(later.id, t0 + 5000);
    const shard = shardOfSubject(subject);
    expect(await redis.lrange(keys.ended(shard), 0, -1)).toEqual([String(t0), first.id, String(t0 + 1000), legacy.id, String(t0 + 5000), later.id]);
    // Where a version before the retention list kept it: in `gone`, scored by when to drop it.
    await redis.lrem(keys.ended(shard), 1, legacy.id);
    await redis.lrem(keys.ended(shard), 1, String(t0 + 1000));
    await redis.zadd(keys.gone(shard), t0 + 12_000, legacy.id);

    const left = async (): Promise<string[]> =>
      (await Promise.all([first, later, legacy].map(async (l) => ((await store.get(l.id)) ? [l.id] : [])))).flat();
    expect(await store.pruneRetained(t0 + 9_999)).toBe(0);
    expect(await store.pruneRetained(t0 + 10_000)).toBe(1);
    expect(await left()).toEqual([later.id, legacy.id]);
    expect(await store.pruneRetained(t0 + 11_999)).toBe(0);
    expect(await store.pruneRetained(t0 + 12_000)).toBe(1);
    expect(await left()).toEqual([later.id]);
    // A shorter retention holds for leases that ended under the longer one too.
    const shorter = createRedisLeaseStore({ redis, prefix, retentionSeconds: 1 });
    expect(await shorter.pruneRetained(t0 + 5_999)).toBe(0);
    expect(await shorter.pruneRetained(t0 + 6_000)).toBe(1);
    expect(await left()).toEqual([]);
    expect(await redis.exists(keys.ended(shard), keys.gone(shard), keys.leases(shard), keys.all(shard))).toBe(0);
  });

  it('leaves an expiry\'s index entries to the next prune, which drops the expired entries and keeps the live ones', async () => {
    const prefix = uniquePrefix();
    const keys = redisKeys(prefix);
    const store = createRedisLeaseStore({ redis, prefix });
    const subject = 'repo:octo-org/lapsed';
    const shard = shardOfSubject(subject);
    const now = nowSeconds();
    // Due 30 s from now and swept as if then: readers go by the real clock, so until then they
    // still see the entries the sweep left (a lease due in 1 s could pass on a busy machine).
    const due = now + 30;
    const soon = makeLease({ subject, task_id: 'lapsed-task', expires_at: due });
    // Past SPILL (32) entries the act set is a ZSET of its own; the other pair stays a hash field.
    const live = Array.from({ length: 40 }, () => makeLease({ subject, expires_at: now + 3600 }));
    const spilledSoon = makeLease({ subject, expires_at: due });
    const small = makeLease({ subject, rule: 'other-rule', expires_at: due });
    const smallLive = makeLease({ subject, rule: 'other-rule', expires_at: now + 3600 });
    for (const l of [soon, ...live, spilledSoon, small, smallLive]) await store.create(l);
    const act = actName(soon.rule, subject);
    const other = actName('other-rule', subject);
    expect(await redis.hget(keys.index(shard, 'act'), act)).toBe('*');

    const ended = await store.sweep((due + 1) * 1000, { limit: 100, pendingGraceMs: 60_000 });
    expect(ended.map((e) => e.lease.id).sort()).toEqual([soon.id, spilledSoon.id, small.id].sort());
    // Still indexed, each set named once for the prune; every reader skips expired entries meanwhile.
    expect(await redis.zscore(keys.spilled(shard, 'act', act), soon.id)).not.toBeNull();
    expect(await redis.hget(keys.index(shard, 'act'), other)).toContain(small.id);
    expect((await redis.smembers(keys.lapsed(shard, 'act'))).sort()).toEqual([act, other].sort());
    expect(await redis.smembers(keys.lapsed(shard, 'task'))).toEqual([taskName('lapsed-task')]);
    expect(await store.activeIdsOfTask('lapsed-task')).toEqual([soon.id]);

    expect(await store.pruneRetained((due + 1) * 1000)).toBe(0);
    expect(await redis.zscore(keys.spilled(shard, 'act', act), soon.id)).toBeNull();
    expect(await redis.zscore(keys.spilled(shard, 'act', act), spilledSoon.id)).toBeNull();
    expect(await redis.zcard(keys.spilled(shard, 'act', act))).toBe(live.length);
    const smallSet = await redis.hget(keys.index(shard, 'act'), other);
    expect(smallSet).not.toContain(small.id);
    expect(smallSet).toContain(smallLive.id);
    expect(await redis.hget(keys.index(shard, 'task'), taskName('lapsed-task'))).toBeNull();
    expect(await redis.exists(keys.lapsed(shard, 'act'), keys.lapsed(shard, 'task'))).toBe(0);
    expect(await store.activeIdsOfTask('lapsed-task')).toEqual([]);
  });

  it('finds index entries from Lua and TypeScript alike for non-ASCII names', async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix() });
    const lease = makeLease({ subject: 'système:ünïcødé/✓', task_id: 'tâche-✓' });
    await store.create(lease, { maxActive: 1 });
    await expect(store.create(makeLease({ subject: lease.subject }), { maxActive: 1 })).rejects.toMatchObject({ code: 'ERR_LEASE_LIMIT' });
    expect(await store.activeIdsOfTask('tâche-✓')).toEqual([lease.id]);
    await store.revoke(lease.id, revokeInput()); // Lua derives the index names itself here
    expect(await store.activeIdsOfTask('tâche-✓')).toEqual([]);
    await store.create(makeLease({ subject: lease.subject }), { maxActive: 1 });
  });

  it('hands each ending\'s audit event to onAuditEvents once, as written to the stream', async () => {
    const prefix = uniquePrefix();
    const seen: AuditEvent[] = [];
    const store = createRedisLeaseStore({ redis, prefix, onAuditEvents: (events) => seen.push(...events) });
    const now = nowSeconds();
    const revoked = makeLease();
    const expiring = makeLease({ expires_at: now + 1 });
    await store.create(revoked);
    await store.create(expiring);
    await store.revoke(revoked.id, revokeInput());
    await Promise.all([store.finalize(revoked.id, Date.now()), store.finalize(revoked.id, Date.now())]);
    await store.sweep((now + 2) * 1000, { limit: 10, pendingGraceMs: 0 });
    const stream = (await createRedisAuditLog({ redis, prefix }).list({ limit: 10 })).events;
    expect(seen.map((e) => e.type).sort()).toEqual(['lease.expired', 'lease.revoked']);
    expect([...seen].sort((a, b) => a.id!.localeCompare(b.id!))).toEqual([...stream].sort((a, b) => a.id!.localeCompare(b.id!)));
  });

  it('refuses an ioredis keyPrefix and a prefix that would break hash tags', async () => {
    expect(() => createRedisLeaseStore({ redis, prefix: 'a{b}:' })).toThrow(TypeError);
    const prefixed = redis.duplicate({ keyPrefix: 'x:', lazyConnect: true });
    expect(() => createRedisLeaseStore({ redis: prefixed })).toThrow(TypeError);
    prefixed.disconnect();
  });
});

describe('Redis lease store when Redis fails', () => {
  it('fails closed and fast with StoreUnavailableError while Redis is down, and recovers', async () => {
    const own = await startRedis();
    const client = await connectTestRedis(own.url);
    const store = createRedisLeaseStore({ redis: client, prefix: uniquePrefix() });
    const audit = createRedisAuditLog({ redis: client, prefix: 'x:' });
    await store.create(makeLease());
    await own.stop();
    const started = Date.now();
    // Each call's failure is taken as it is made: one still pending while another is awaited
    // would otherwise be an unhandled rejection.
    const calls = [
      store.create(makeLease()), store.get(makeLease().id), store.list({}, { limit: 5 }), store.probe(),
      store.sweep(Date.now(), { limit: 10, pendingGraceMs: 0 }), store.revokeWhere({ subject: 's' }, revokeInput()),
      audit.write({ type: 'exchange.denied', time: Date.now() }), audit.list({ limit: 5 }),
    ].map((call: Promise<unknown>) => call.then(() => null, (e: unknown) => e));
    for (const call of calls) {
      const err = await call;
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(err).toMatchObject({ code: 'temporarily_unavailable', status: 503 });
    }
    // Fails fast: no command waits for a Redis that is not coming back until the 30 s test timeout.
    // A hang bound, not a performance claim.
    expect(Date.now() - started).toBeLessThan(10_000);
    await own.start();
    await waitFor(() => store.probe());
    await store.create(makeLease());
    client.disconnect();
    await own.destroy();
  });

  it('keeps leases across a Redis restart when Redis persists', async () => {
    const own = await startRedis({ persist: true });
    const client = await connectTestRedis(own.url);
    const store = createRedisLeaseStore({ redis: client, prefix: uniquePrefix() });
    const lease = makeLease({ task_id: 'task-7' });
    await store.create(lease);
    await own.restart();
    await waitFor(() => store.probe());
    expect(await store.get(lease.id)).toEqual(lease);
    expect(await store.activeIdsOfTask('task-7')).toEqual([lease.id]);
    // Scripts are gone from the restarted server's cache: EVALSHA falls back to EVAL.
    expect(await store.revoke(lease.id, revokeInput())).toMatchObject({ status: 'revoked' });
    client.disconnect();
    await own.destroy();
  });
});

async function waitFor(f: () => Promise<unknown>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await f();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
