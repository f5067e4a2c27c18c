import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { isCluster } from '../../src/redis/connect.ts';
import { describe, expect, it } from 'vitest';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { legacyReplayRecords } from '../../src/leases/legacy-replay.ts';
import { LeaseLimitError, ProofReplayedError } from '../../src/leases/store.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { withDeploymentClient } from '../helpers/deployment-client.ts';
import { legacyShardOf, shardOfSubject } from '../../src/redis/keys.ts';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { makeLease, revokeInput } from '../contract/lease-fixtures.ts';
import { uniquePrefix } from '../contract/redis-client.ts';

/**
 * Leases used to be sharded by (rule, subject); they go by subject alone now, so that a proof's
 * replay record shares the lease's Cluster slot. A lease made before keeps its shard (its id
 * carries it) until it ends: the lookups by pair must still find it.
 */
const RULE = 'app-deploy';

/** A subject whose pair had another shard before. */
function movedSubject(): string {
  for (let i = 0; ; i++) {
    const subject = `repo:octo-org/legacy-${i}:environment:prod`;
    if (legacyShardOf(RULE, subject) !== shardOfSubject(subject)) return subject;
  }
}

/** An id as Leash made them before: the pair's shard in the low 4 bits of byte 0. */
function legacyId(rule: string, subject: string): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0xf0) | legacyShardOf(rule, subject);
  return bytes.toString('base64url');
}

const deployments = [
  ['one redis-server', async () => {
    const s = await startRedis();
    return { url: s.url, destroy: () => s.destroy() };
  }],
  ['Redis Cluster (3 primaries)', () => startRedisCluster({ primaries: 3, replicas: 0 })],
] as const;

describe.each(deployments)('leases of the earlier layout, on %s', (_name, start) => {
  const client = withDeploymentClient(start);

  it('are listed and revoked with their pair, beside the pair\'s new leases', async () => {
    const store = createRedisLeaseStore({ redis: client(), prefix: uniquePrefix() });
    const subject = movedSubject();
    const old = makeLease({ rule: RULE, subject, id: legacyId(RULE, subject) });
    const fresh = makeLease({ rule: RULE, subject });
    await store.create(old);
    await store.create(fresh);
    expect(shardOfLeaseId(old.id)).not.toBe(shardOfLeaseId(fresh.id));
    const listed = await store.list({ rule: RULE, subject }, { limit: 10 });
    expect(listed.leases.map((l) => l.id).sort()).toEqual([old.id, fresh.id].sort());
    const revoked = await store.revokeWhere({ rule: RULE, subject }, revokeInput());
    expect(revoked.sort()).toEqual([old.id, fresh.id].sort());
    expect((await store.get(old.id))?.status).toBe('revoked');
    expect((await store.get(fresh.id))?.status).toBe('revoked');
  });

  it('are never made with a replay record: it would sit where the proof\'s next use does not look', async () => {
    const store = createRedisLeaseStore({ redis: client(), prefix: uniquePrefix() });
    const subject = movedSubject();
    const old = makeLease({ rule: RULE, subject, id: legacyId(RULE, subject) });
    await expect(store.create(old, { replay: { key: 'github:jti:legacy-id', ttlSeconds: 600 } })).rejects.toBeInstanceOf(TypeError);
    expect(await store.get(old.id)).toBeNull();
  });

  it('refuse a proof whose replay record was written before', async () => {
    const prefix = uniquePrefix();
    // The record as Leash wrote it before: `<prefix>replay:<proof key>`, a slot of its own on Cluster.
    await client().set(`${prefix}replay:github:jti:used-before`, '1', 'EX', 600);
    const store = createRedisLeaseStore({ redis: client(), prefix });
    const replay = (key: string) => ({ key, ttlSeconds: 600 });
    await expect(store.create(makeLease(), { replay: replay('github:jti:used-before') })).rejects.toBeInstanceOf(ProofReplayedError);
    await store.create(makeLease(), { replay: replay('github:jti:fresh') });
    await expect(store.create(makeLease(), { replay: replay('github:jti:fresh') })).rejects.toBeInstanceOf(ProofReplayedError);
  });

  it('a look made before the client knows its primaries does not stop the checks', async () => {
    const c = client();
    // A client of the same deployment that has not connected yet (a Cluster one lists no primaries).
    const fresh = isCluster(c)
      ? new Cluster(c.nodes('master').map((n) => ({ host: n.options.host!, port: n.options.port! })), { lazyConnect: true })
      : new Redis({ host: c.options.host!, port: c.options.port!, lazyConnect: true });
    fresh.on('error', () => undefined);
    try {
      const prefix = uniquePrefix();
      await c.set(`${prefix}replay:github:jti:a`, '1', 'EX', 600);
      const earlier = legacyReplayRecords(fresh, prefix);
      expect(await earlier.used('github:jti:a')).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      expect(await earlier.used('github:jti:a')).toBe(true);
    } finally {
      fresh.disconnect();
    }
  });
});

describe('the earlier layout on one server', () => {
  const client = withDeploymentClient(async () => {
    const s = await startRedis();
    return { url: s.url, destroy: () => s.destroy() };
  });
  const existsCalls = async (): Promise<number> => Number(/cmdstat_exists:calls=(\d+)/.exec(await client().info('commandstats'))?.[1] ?? 0);
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

  it('leases count toward max_active_leases, where one script may read both shards', async () => {
    const store = createRedisLeaseStore({ redis: client(), prefix: uniquePrefix() });
    const subject = movedSubject();
    await store.create(makeLease({ rule: RULE, subject, id: legacyId(RULE, subject) }), { maxActive: 2 });
    await store.create(makeLease({ rule: RULE, subject }), { maxActive: 2 });
    // The subject's own shard holds one lease of the pair: the legacy one fills the second place.
    await expect(store.create(makeLease({ rule: RULE, subject }), { maxActive: 2 })).rejects.toBeInstanceOf(LeaseLimitError);
  });

  it('replay records are checked while any remain, and no more once a look finds none', async () => {
    const prefix = uniquePrefix();
    let t = 1_000_000;
    const earlier = legacyReplayRecords(client(), prefix, () => t);
    await client().set(`${prefix}replay:github:jti:a`, '1', 'EX', 600);
    expect(await earlier.used('github:jti:a')).toBe(true);
    await settle();
    expect(await earlier.used('github:jti:b')).toBe(false);
    // The last one expires; the next look, a minute on, finds none and the checks stop.
    await client().del(`${prefix}replay:github:jti:a`);
    t += 60_000;
    await earlier.used('github:jti:c');
    await settle();
    const before = await existsCalls();
    for (let i = 0; i < 5; i++) expect(await earlier.used('github:jti:a')).toBe(false);
    expect(await existsCalls()).toBe(before);
  });

  it('the look for replay records matches the prefix only, glob characters and all', async () => {
    const base = uniquePrefix();
    const prefix = `${base}*:`;
    // What `*` unescaped would match: another prefix's record.
    await client().set(`${base}zz:replay:github:jti:z`, '1', 'EX', 600);
    const earlier = legacyReplayRecords(client(), prefix);
    await earlier.used('github:jti:z');
    await settle();
    const before = await existsCalls();
    expect(await earlier.used('github:jti:z')).toBe(false);
    expect(await existsCalls()).toBe(before);
  });
});
