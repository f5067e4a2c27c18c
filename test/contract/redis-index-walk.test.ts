import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { BULK_EFFECTS_AFTER_MS, createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { REVOKE_SCAN } from '../../src/leases/redis-scripts.ts';
import { actName, redisKeys, shardOfSubject } from '../../src/redis/keys.ts';
import { runScript } from '../../src/redis/scripts.ts';
import type { Lease } from '../../src/leases/lease.ts';
import { encodeLease } from '../../src/leases/lease-codec.ts';
import { makeLease, nowSeconds, revokeInput } from './lease-fixtures.ts';
import { uniquePrefix, withTestRedis } from './redis-client.ts';

let redis: Redis;
withTestRedis((r) => {
  redis = r;
});

const rule = 'deploy';
const subject = 'repo:o/big:ref:refs/heads/main';
const sorted = (ids: string[]): string[] => [...ids].sort();

/** Leases of one rule and subject, their expiries interleaved so kept ones sit among revoked ones. */
async function bigSubject(prefix: string, n: number, shape: (i: number) => Partial<Lease>): Promise<Lease[]> {
  const store = createRedisLeaseStore({ redis, prefix });
  const now = nowSeconds();
  const leases = Array.from({ length: n }, (_, i) => makeLease({ rule, subject, expires_at: now + 600 + (i % 7), ...shape(i) }));
  for (let i = 0; i < leases.length; i += 100) await Promise.all(leases.slice(i, i + 100).map((l) => store.create(l)));
  return leases;
}

describe('revocation through a spilled index', () => {
  it('writes each revoked record exactly as encodeLease would, whichever trailing fields are null', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const keys = redisKeys(prefix);
    const shard = shardOfSubject(subject);
    const shapes: Partial<Lease>[] = [{}, { client_addr: null }, { client_addr: null, proof_jti: null }, { kind: 'x509', serial: 'ab12' }, { task_id: 't' }, { proof_sub: 'other/sub' }];
    // Enough leases that the pair's set spills to a ZSET and the walk goes through Node.
    const leases = await bigSubject(prefix, 60, (i) => shapes[i % shapes.length]!);
    const raws = new Map(await Promise.all(leases.map(async (l) => [l.id, (await redis.hget(keys.leases(shard), l.id))!] as const)));
    // A reason and actor that JSON escapes, as an operator may type them.
    const input = revokeInput({ reason: 'runner "r-7" \\ compromised\n', by: 'operator:zoë' });
    expect(sorted(await store.revokeWhere({ rule, subject }, input))).toEqual(sorted(leases.map((l) => l.id)));
    for (const l of leases) {
      const issuedMs = Number(JSON.parse(raws.get(l.id)!)[9]);
      const revoked = { ...l, status: 'revoked' as const, revoked_at: input.at, reason: input.reason, revoked_by: input.by };
      expect(await redis.hget(keys.leases(shard), l.id)).toBe(encodeLease(revoked, issuedMs));
      expect(await store.get(l.id)).toEqual(revoked);
    }
  });

  it('revokes every match once over many steps, keeps the rest indexed, drops stale and unreadable entries', async () => {
    const prefix = uniquePrefix();
    const unreadable: string[] = [];
    const store = createRedisLeaseStore({ redis, prefix, onUnreadable: (id) => unreadable.push(id) });
    const keys = redisKeys(prefix);
    const shard = shardOfSubject(subject);
    const now = nowSeconds();
    // 650 leases, more than three steps: every fifth of another issuer, a few already past expiry.
    const leases = await bigSubject(prefix, 650, (i) => ({
      issuer: i % 5 === 0 ? 'gitlab' : 'github',
      ...(i % 97 === 1 ? { expires_at: now - 5 } : {}),
    }));
    const zset = keys.spilled(shard, 'act', actName(rule, subject));
    expect(await redis.zcard(zset)).toBe(650);
    const github = leases.filter((l) => l.issuer === 'github');
    const keep = github[300]!;
    const stale = github[10]!;
    const broken = github[20]!;
    await redis.hdel(keys.leases(shard), stale.id);
    await redis.hset(keys.leases(shard), broken.id, '{not json');
    const expected = github.filter((l) => l.expires_at > now && ![keep, stale, broken].includes(l)).map((l) => l.id);
    const kept = leases.filter((l) => l.issuer === 'gitlab' || l.expires_at <= now || l === keep).map((l) => l.id);

    const input = revokeInput({ at: now });
    const ids = await store.revokeWhere({ rule, subject, issuer: 'github' }, input, { keep: keep.id });
    expect(ids).toHaveLength(new Set(ids).size);
    expect(sorted(ids)).toEqual(sorted(expected));
    expect(unreadable).toEqual([broken.id]);
    for (const id of ids.slice(0, 50)) expect(await store.get(id)).toMatchObject({ status: 'revoked', revoked_at: now });
    for (const id of kept) expect(await store.get(id)).toMatchObject({ status: 'active' });
    // Only the leases not revoked stay in the index; the stale and unreadable entries are gone.
    expect(sorted(await redis.zrange(zset, '0', '-1'))).toEqual(sorted(kept));
    // Pending entries score at the revocation's ms (a step's fraction of a ms above it at most).
    const scores = (await redis.zrange(keys.pending(shard), '0', '-1', 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number);
    expect(scores).toHaveLength(expected.length);
    // Their effects are the walk's jobs': the sweep takes them over only BULK_EFFECTS_AFTER_MS on.
    for (const s of scores) expect(Math.floor(s)).toBe(now * 1000 + BULK_EFFECTS_AFTER_MS);

    expect(await store.revokeWhere({ rule, subject, issuer: 'github' }, input, { keep: keep.id })).toEqual([]);
    expect((await store.sweep(Date.now(), { limit: 10_000, pendingGraceMs: 0 })).filter((e) => e.lease.status === 'revoked')).toEqual([]);
    // Each revoked lease ends once, through the pending schedule.
    const later = Date.now() + BULK_EFFECTS_AFTER_MS;
    const endings = await store.sweep(later, { limit: 10_000, pendingGraceMs: 0 });
    expect(sorted(endings.filter((e) => e.lease.status === 'revoked').map((e) => e.lease.id))).toEqual(sorted(expected));
    expect((await store.sweep(later, { limit: 10_000, pendingGraceMs: 0 })).filter((e) => e.lease.status === 'revoked')).toEqual([]);

    // Without the issuer and `keep`, the rest goes too, and the emptied index with it.
    const rest = await store.revokeWhere({ rule, subject }, revokeInput({ at: now }));
    expect(sorted(rest)).toEqual(sorted(leases.filter((l) => (l.issuer === 'gitlab' && l.expires_at > now) || l === keep).map((l) => l.id)));
    // (The sweep above ended those past expiry; its prune drops their entries.)
    await store.pruneRetained(Date.now());
    expect(await redis.exists(zset)).toBe(0);
    expect(await redis.hget(keys.index(shard, 'act'), actName(rule, subject))).toBeNull();
  });

  it('restarts a step at the first entry of its anchor\'s score when the anchor is gone, skipping nothing', async () => {
    const prefix = uniquePrefix();
    const keys = redisKeys(prefix);
    const shard = shardOfSubject(subject);
    const now = nowSeconds();
    const leases = await bigSubject(prefix, 70, (i) => ({ issuer: i % 2 === 0 ? 'gitlab' : 'github' }));
    const zset = keys.spilled(shard, 'act', actName(rule, subject));
    const entries = await redis.zrange(zset, '0', '-1', 'WITHSCORES');
    const byRank = Array.from({ length: entries.length / 2 }, (_, i) => ({ id: entries[2 * i]!, score: entries[2 * i + 1]! }));
    // An anchor in the middle of its score's entries that no longer exists (say, ended meanwhile).
    const mid = byRank[35]!;
    const firstOfScore = byRank.findIndex((e) => e.score === mid.score);
    expect(firstOfScore).toBeLessThan(35);
    const step = async (cursor: string): Promise<[string, string[], string[]]> =>
      (await runScript(redis, REVOKE_SCAN, [keys.index(shard, 'act'), keys.pending(shard), keys.leases(shard)], [
        keys.base(shard), cursor, 1000, now, 'r', 'op', now * 1000, JSON.stringify({ rule, subject, issuer: 'github' }),
        'act', actName(rule, subject), 3600_000, now * 1000, JSON.stringify(rule), JSON.stringify(subject), JSON.stringify('github'),
      ])) as [string, string[], string[]];
    const github = new Set(leases.filter((l) => l.issuer === 'github').map((l) => l.id));
    const githubOf = (from: number, to: number): string[] => sorted(byRank.slice(from, to).map((e) => e.id).filter((id) => github.has(id)));
    // A present anchor: the step starts right after it.
    const a = byRank.findIndex((e, i) => i >= 50 && !github.has(e.id));
    const [next, after] = await step(`${byRank[a]!.score} ${byRank[a]!.id}`);
    expect(next).toBe('0');
    expect(sorted(after)).toEqual(githubOf(a + 1, 70));
    const [, revoked] = await step(`${mid.score} ${'x'.repeat(22)}`);
    expect(sorted(revoked)).toEqual(githubOf(firstOfScore, a));
    const [, head] = await step('0');
    expect(sorted(head)).toEqual(githubOf(0, firstOfScore));
  });

  it('revokes every lease once when no step keeps any, read-ahead included, even when Redis must first load the scripts', async () => {
    const prefix = uniquePrefix();
    const store = createRedisLeaseStore({ redis, prefix });
    const keys = redisKeys(prefix);
    const leases = await bigSubject(prefix, 930, () => ({}));
    // With no script cached, the first write is sent again as EVAL after its NOSCRIPT, behind the
    // read sent ahead of it: that read sees the step's leases still indexed.
    await redis.script('FLUSH');
    const revoked = await store.revokeWhere({ rule, subject }, revokeInput());
    expect(sorted(revoked)).toEqual(sorted(leases.map((l) => l.id)));
    expect(new Set(revoked).size).toBe(revoked.length);
    for (const l of leases) expect((await store.get(l.id))?.status).toBe('revoked');
    expect(await redis.zcard(keys.pending(shardOfSubject(subject)))).toBe(leases.length);
    expect(await redis.hlen(keys.index(shardOfSubject(subject), 'act'))).toBe(0);
  });
});

