import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { APPLY_ENDINGS, DUE_RECORDS } from '../../src/leases/redis-scripts.ts';
import { endingArgs, planEnding } from '../../src/leases/ending-plan.ts';
import { encodeLease } from '../../src/leases/lease-codec.ts';
import { redisKeys, shardOfLeaseId } from '../../src/redis/keys.ts';
import { runScript } from '../../src/redis/scripts.ts';
import { makeLease, nowSeconds } from '../contract/lease-fixtures.ts';
import { uniquePrefix, withTestRedis } from '../contract/redis-client.ts';

/**
 * The sweep reads due records (DUE_RECORDS), works out their endings in Node (planEnding) and
 * writes them (APPLY_ENDINGS) only where the record is still as read: what keeps an ending single
 * when another sweep or a finalize gets there between the read and the write.
 */
describe('sweep endings worked out in Node', () => {
  let redis: Redis;
  withTestRedis((r) => (redis = r));

  async function dueLease(over: Parameters<typeof makeLease>[0] = {}) {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const now = nowSeconds();
    const lease = makeLease({ issued_at: now - 60, expires_at: now - 1, task_id: 'task-1', ...over });
    await store.create(lease);
    const shard = shardOfLeaseId(lease.id);
    const keys = redisKeys(prefix);
    const setKeys = [keys.due(shard), keys.pending(shard), keys.leases(shard)];
    const read = async () => (await runScript(redis, DUE_RECORDS, setKeys, [Date.now(), 100, Date.now() - 15_000])) as string[][];
    return { store, lease, keys, shard, setKeys, read };
  }

  it('applies an ending once: a second write of the same plan changes nothing and reports no event', async () => {
    const { store, lease, keys, shard, setKeys, read } = await dueLease();
    const [ids, raws] = await read();
    expect(ids).toEqual([lease.id]);
    const plan = planEnding(lease.id, raws![0]!, 'due', Date.now());
    if (plan === 'lua') throw new Error('a plain record must be planned in Node');
    expect(plan.op).toBe('x');
    const args = [keys.base(shard), Date.now(), 1_000, 1_000, ...endingArgs([plan])];
    const first = (await runScript(redis, APPLY_ENDINGS, setKeys, args)) as string[];
    const second = (await runScript(redis, APPLY_ENDINGS, setKeys, args)) as string[];
    expect(first[0]).toMatch(/^\d+-\d+$/);
    expect(second[0]).toBe('');
    expect(await redis.xlen(keys.audit(shard))).toBe(1);
    expect(await store.get(lease.id)).toMatchObject({ status: 'expired', ended_at: plan.ended!.lease.ended_at });
    expect(await redis.zscore(keys.due(shard), lease.id)).toBeNull();
    // Its index entries stay for the sweep's prune, which drops them by time: both fields go.
    expect(await redis.scard(keys.lapsed(shard, 'act'))).toBe(1);
    await store.pruneRetained(Date.now());
    expect(await redis.hlen(keys.index(shard, 'act'))).toBe(0);
    expect(await redis.hlen(keys.index(shard, 'task'))).toBe(0);
  });

  it('skips a plan whose record changed after it was read (another sweep ended it first)', async () => {
    const { store, lease, keys, shard, setKeys, read } = await dueLease();
    const [ids, raws] = await read();
    const plan = planEnding(ids![0]!, raws![0]!, 'due', Date.now());
    if (plan === 'lua') throw new Error('a plain record must be planned in Node');
    // Another worker's sweep ends the lease between this one's read and its write.
    const other = await store.sweep(Date.now(), { limit: 100, pendingGraceMs: 15_000 });
    expect(other.map((e) => e.lease.id)).toEqual([lease.id]);
    const res = (await runScript(redis, APPLY_ENDINGS, setKeys, [keys.base(shard), Date.now(), 1_000, 1_000, ...endingArgs([plan])])) as string[];
    expect(res).toEqual(['']);
    expect(await redis.xlen(keys.audit(shard))).toBe(1);
  });

  it('writes the expired record exactly as encodeLease would, whichever trailing fields are null', async () => {
    const now = nowSeconds();
    const shapes = [{}, { client_addr: null }, { client_addr: null, proof_jti: null }, { kind: 'x509' as const, serial: 'ab12' }, { task_id: 't' }, { proof_sub: 'other/sub' }];
    for (const over of shapes) {
      const { store, lease, keys, shard, setKeys, read } = await dueLease({ issued_at: now - 60, expires_at: now - 1, ...over });
      const [, raws] = await read();
      const nowMs = now * 1000 + 250;
      const plan = planEnding(lease.id, raws![0]!, 'due', nowMs);
      if (plan === 'lua') throw new Error('a plain record must be planned in Node');
      // Node patches the record as read (expiredRecordHead); the script stores what it is sent.
      const issuedMs = Number(JSON.parse(raws![0]!)[9]);
      const expected = encodeLease({ ...lease, status: 'expired', ended_at: now }, issuedMs);
      expect(plan.ended!.record).toBe(expected);
      await runScript(redis, APPLY_ENDINGS, setKeys, [keys.base(shard), nowMs, 1_000, 1_000, ...endingArgs([plan])]);
      const stored = await store.get(lease.id);
      expect(await redis.hget(keys.leases(shard), lease.id)).toBe(expected);
      expect(stored).toEqual({ ...lease, status: 'expired', ended_at: now });
    }
  });

  it('leaves to Lua the records whose text may not survive a JS string: escapes and invalid UTF-8', () => {
    const lease = makeLease();
    expect(planEnding(lease.id, '["jwt","active","r","i","a\\u0001b"]', 'due', Date.now())).toBe('lua');
    expect(planEnding(lease.id, '["jwt","active","r","i","a\ufffdb"]', 'due', Date.now())).toBe('lua');
    expect(planEnding(lease.id, 'not json', 'due', Date.now())).toBe('lua');
    expect(planEnding(lease.id, '', 'due', Date.now())).toMatchObject({ op: 'd' });
  });

  it('ends records with escapes through Lua, in the same sweep as the plain ones', async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix() });
    const now = nowSeconds();
    const escaped = makeLease({ issued_at: now - 60, expires_at: now - 1, subject: 'repo:octo-org/a\u0001b:ref:refs/heads/main' });
    const plain = makeLease({ issued_at: now - 60, expires_at: now - 1 });
    await store.create(escaped);
    await store.create(plain);
    const ended = await store.sweep(Date.now(), { limit: 100, pendingGraceMs: 15_000 });
    expect(ended.map((e) => e.lease.id).sort()).toEqual([escaped.id, plain.id].sort());
    for (const e of ended) expect(e.lease.status).toBe('expired');
    expect((await store.get(escaped.id))?.subject).toBe(escaped.subject);
  });
  it('keeps the audit stream near its cap when a burst of expiries is written (trimmed once a script)', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix, auditMaxLenPerShard: 20 });
    const now = nowSeconds();
    // One subject: every lease lands in the same shard, and so its events in the same stream.
    const leases = Array.from({ length: 400 }, () => makeLease({ subject: 'repo:octo-org/octo-repo:ref:refs/heads/main', issued_at: now - 60, expires_at: now - 1 }));
    for (const l of leases) await store.create(l);
    const shard = shardOfLeaseId(leases[0]!.id);
    const ended = await store.sweep(Date.now(), { limit: 1_000, pendingGraceMs: 15_000 });
    expect(ended).toHaveLength(400);
    // Approximate trimming drops whole stream nodes only, so a node's worth above the cap may stay.
    expect(await redis.xlen(redisKeys(prefix).audit(shard))).toBeLessThan(120);
  });
});
