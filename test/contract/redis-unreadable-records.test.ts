/**
 * Records the Lua scripts could not read used to stall endings: a lease JSON holding a lone
 * surrogate escape (as older versions wrote it) made cjson.decode fail, so its revocations
 * answered 503 and every sweep of its shard failed. Legacy records of that kind now end by every
 * path; records that are not leases at all are skipped, reported once and read as no lease.
 */
import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisAuditLog } from '../../src/audit/redis-audit-log.ts';
import type { Lease } from '../../src/leases/lease.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { redisKeys, shardOfSubject } from '../../src/redis/keys.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import type { Ending, LeaseStore } from '../../src/leases/store.ts';
import { makeLease, nowSeconds, revokeInput } from './lease-fixtures.ts';
import { uniquePrefix, withTestRedis } from './redis-client.ts';

let redis: Redis;
withTestRedis((r) => {
  redis = r;
});

const RULE = 'app-deploy';
const POISON = 'poison:x\ud800';

/** Subjects whose leases under RULE live in the same shard as `subject`'s. */
function sameShard(subject: string, n: number): string[] {
  const shard = shardOfSubject(subject);
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (shardOfSubject(`repo:octo-org/n${i}`) === shard) out.push(`repo:octo-org/n${i}`);
  return out;
}

/** The JSON an older Leash wrote: JSON.stringify keeps a lone surrogate as a `\ud800` escape. */
const legacyRecord = (l: Lease): string =>
  JSON.stringify([l.kind, l.status, l.rule, l.issuer, l.subject, l.scopes, l.audiences, l.task_id, l.serial, l.issued_at * 1000, l.expires_at, l.proof_iss, null, l.proof_jti, l.client_addr]);

function setup() {
  const prefix = uniquePrefix();
  const keys = redisKeys(prefix);
  const reported: string[] = [];
  const store = createRedisLeaseStore({ redis, prefix, onUnreadable: (id) => reported.push(id) });
  const audit = createRedisAuditLog({ redis, prefix });
  const overwrite = (l: Lease, raw: string | Buffer): Promise<number> => redis.hset(keys.leases(shardOfLeaseId(l.id)), l.id, raw);
  /** Records `l` as an older version did: indexes as always, the body with its lone surrogates escaped. */
  const recordLegacy = async (l: Lease): Promise<Lease> => {
    await store.create(l);
    await overwrite(l, legacyRecord(l));
    return l;
  };
  const scheduled = async (l: Lease): Promise<{ due: string | null; pending: string | null }> => {
    const shard = shardOfLeaseId(l.id);
    return { due: await redis.zscore(keys.due(shard), l.id), pending: await redis.zscore(keys.pending(shard), l.id) };
  };
  return { prefix, keys, store, audit, reported, overwrite, recordLegacy, scheduled };
}

async function endingsOf(env: ReturnType<typeof setup>, id: string): Promise<string[]> {
  const page = await env.audit.list({ lease_id: id, limit: 10 });
  return page.events.filter((e) => e.type === 'lease.revoked' || e.type === 'lease.expired').map((e) => e.type);
}

// As the worker's revoke job does: many ids in one call.
const finalizeAll = (store: LeaseStore, ids: string[]): Promise<Ending[]> => store.finalizeMany(ids, Date.now());

describe('finalizeMany', () => {
  it('quarantines a revoked record that turned unreadable, reports it once, and ends the others of the call', async () => {
    const env = setup();
    const [a, b] = [makeLease({ rule: RULE }), makeLease({ rule: RULE })];
    for (const l of [a, b]) {
      await env.store.create(l);
      await env.store.revoke(l.id, revokeInput());
    }
    await env.overwrite(a, '{"not": "a lease"}');
    const endings = await env.store.finalizeMany([a.id, b.id], Date.now());
    expect(endings.map((e) => e.lease.id)).toEqual([b.id]);
    expect(env.reported).toEqual([a.id]);
    expect(await env.scheduled(a)).toEqual({ due: null, pending: null });
    expect(await env.store.finalizeMany([a.id, b.id], Date.now())).toEqual([]);
    expect(env.reported).toEqual([a.id]);
  });
});

describe('a legacy record holding a lone surrogate', () => {
  it('ends by holder, operator, task, bulk and expiry, and the other leases of its shard expire', async () => {
    const env = setup();
    const { store } = env;
    const now = nowSeconds();
    const holder = await env.recordLegacy(makeLease({ rule: RULE, subject: POISON, proof_jti: 'jti-\udfff' }));
    expect(await redis.hget(env.keys.leases(shardOfLeaseId(holder.id)), holder.id)).toContain('\\ud800');
    const operator = await env.recordLegacy(makeLease({ rule: RULE, subject: POISON }));
    const task = await env.recordLegacy(makeLease({ rule: RULE, subject: POISON, task_id: 'task-poison' }));
    const bySubject = await env.recordLegacy(makeLease({ rule: RULE, subject: 'poison:y\udc00 "quoted"' }));
    const byReplaced = await env.recordLegacy(makeLease({ rule: RULE, subject: 'poison:z\udbff' }));
    const byIssuer = await env.recordLegacy(makeLease({ rule: RULE, subject: POISON, issuer: 'legacy-issuer' }));
    const expiring = await env.recordLegacy(makeLease({ rule: RULE, subject: POISON, expires_at: now + 1 }));
    const others = await Promise.all(sameShard(POISON, 3).map(async (subject) => {
      const l = makeLease({ rule: RULE, subject, expires_at: now + 1 });
      await store.create(l);
      return l;
    }));

    expect(await store.revoke(holder.id, revokeInput({ by: `holder:${POISON}`, reason: 'revoked by holder' }))).toMatchObject({ status: 'revoked' });
    expect(await store.revoke(operator.id, revokeInput({ reason: 'compromised \ud800 runner' }))).toMatchObject({ status: 'revoked', reason: 'compromised \ufffd runner' });
    expect(await store.activeIdsOfTask('task-poison')).toEqual([task.id]);
    expect(await store.revoke(task.id, revokeInput({ reason: 'task completed' }))).toMatchObject({ status: 'revoked' });
    // The selector as an operator copies it from the listing (lone surrogate and all), and as U+FFFD.
    expect(await store.revokeWhere({ subject: 'poison:y\udc00 "quoted"' }, revokeInput())).toEqual([bySubject.id]);
    expect(await store.revokeWhere({ subject: 'poison:z\ufffd' }, revokeInput())).toEqual([byReplaced.id]);
    expect(await store.revokeWhere({ issuer: 'legacy-issuer' }, revokeInput())).toEqual([byIssuer.id]);

    const revoked = [holder, operator, task, bySubject, byReplaced, byIssuer];
    const finalized = await finalizeAll(store, revoked.map((l) => l.id));
    expect(finalized.map((e) => e.lease.id).sort()).toEqual(revoked.map((l) => l.id).sort());
    const swept = await store.sweep((now + 2) * 1000, { limit: 1000, pendingGraceMs: 60_000 });
    expect(swept.map((e) => e.lease.id).sort()).toEqual([expiring, ...others].map((l) => l.id).sort());

    for (const l of [...revoked, expiring, ...others]) {
      const got = await store.get(l.id);
      expect(got, l.id).toMatchObject({ status: revoked.includes(l) ? 'revoked' : 'expired', ended_at: expect.any(Number) });
      expect(await env.scheduled(l)).toEqual({ due: null, pending: null });
      expect(await endingsOf(env, l.id)).toHaveLength(1);
    }
    // The act and task indexes Node keyed by the lone surrogate were cleared by Lua reading U+FFFD.
    expect(await store.activeIdsOfTask('task-poison')).toEqual([]);
    await store.create(makeLease({ rule: RULE, subject: POISON }), { maxActive: 1 });
    expect(env.reported).toEqual([]);
  });

  it('is found by a bulk revoke by rule beside readable leases', async () => {
    const env = setup();
    const rule = `rule-${Math.random().toString(36).slice(2)}`;
    const legacy = await env.recordLegacy(makeLease({ rule, subject: 'a\ud800' }));
    const plain = makeLease({ rule, subject: 'b' });
    await env.store.create(plain);
    expect((await env.store.revokeWhere({ rule }, revokeInput())).sort()).toEqual([legacy.id, plain.id].sort());
  });
});

describe('a record that is not a lease', () => {
  it('is skipped by the sweep and the bulk revoke, reported once, and reads as no lease', async () => {
    const env = setup();
    const { store } = env;
    const now = nowSeconds();
    const [s1, s2, s3, s4, s5] = sameShard('repo:octo-org/garbage', 5) as [string, string, string, string, string];
    const garbage = makeLease({ rule: RULE, subject: s1, expires_at: now + 1 });
    const wrongShape = makeLease({ rule: RULE, subject: s2, expires_at: now + 1 });
    const others = [makeLease({ rule: RULE, subject: s3, expires_at: now + 1 }), makeLease({ rule: RULE, subject: s4, expires_at: now + 1 })];
    const later = makeLease({ rule: RULE, subject: s5, task_id: 'task-g' });
    const laterGarbage = makeLease({ rule: RULE, subject: s5, task_id: 'task-g' });
    for (const l of [garbage, wrongShape, ...others, later, laterGarbage]) await store.create(l);
    await env.overwrite(garbage, Buffer.concat([Buffer.from('["jwt","active",'), Buffer.from([0xff, 0xfe]), Buffer.from(' not json {')]));
    await env.overwrite(wrongShape, '["jwt","active"]');
    await env.overwrite(laterGarbage, '\ud800');

    expect(await store.get(garbage.id)).toBeNull();
    expect(await store.get(wrongShape.id)).toBeNull();
    const listed = await store.list({ rule: RULE }, { limit: 100 });
    expect(listed.leases.map((l) => l.id).sort()).toEqual([...others, later].map((l) => l.id).sort());

    const swept = await store.sweep((now + 2) * 1000, { limit: 1000, pendingGraceMs: 60_000 });
    expect(swept.map((e) => e.lease.id).sort()).toEqual(others.map((l) => l.id).sort());
    expect([...env.reported].sort()).toEqual([garbage.id, wrongShape.id].sort());
    for (const l of [garbage, wrongShape]) {
      expect(await env.scheduled(l)).toEqual({ due: null, pending: null });
      expect(await redis.zscore(env.keys.gone(shardOfLeaseId(l.id)), l.id)).not.toBeNull(); // dropped at retention
    }
    expect(await store.sweep((now + 3) * 1000, { limit: 1000, pendingGraceMs: 0 })).toEqual([]);
    expect(await store.revoke(garbage.id, revokeInput())).toBeNull();
    expect(await store.finalize(garbage.id, Date.now())).toBeNull();
    expect(await store.finalizeMany([garbage.id], Date.now())).toEqual([]);

    // The bulk revoke by task walks the task index: it ends the readable lease and drops the other.
    expect(await store.revokeWhere({ task_id: 'task-g' }, revokeInput())).toEqual([later.id]);
    expect([...env.reported].sort()).toEqual([garbage.id, wrongShape.id, laterGarbage.id].sort());
    expect(await store.activeIdsOfTask('task-g')).toEqual([]);
    expect(await env.scheduled(laterGarbage)).toEqual({ due: null, pending: null });
    expect(await store.countActive()).toBe(0); // `later` is revoked; the unreadable one no longer counts
    expect(await finalizeAll(store, [later.id])).toHaveLength(1);
  });

  it('is reported by a revoke of that one lease, which answers as for an ended lease', async () => {
    const env = setup();
    const l = makeLease();
    await env.store.create(l);
    await env.overwrite(l, '{"not":"a lease"}');
    expect(await env.store.revoke(l.id, revokeInput())).toBeNull();
    expect(await env.store.revoke(l.id, revokeInput())).toBeNull();
    expect(env.reported).toEqual([l.id]);
    expect(await env.scheduled(l)).toEqual({ due: null, pending: null });
  });
});
