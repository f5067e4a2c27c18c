/**
 * Bulk revocations walk in a process of their own (src/revocation/walk-process.ts), which queues their
 * effects itself: a real forked process, real Redis, real scripts, real BullMQ. What the API
 * process learns must be what an in-process walk would tell it, errors included, and a walker that
 * cannot walk must never make a bulk revocation fail while Redis is up.
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { startWalkProcess, type WalkProcess } from '../../src/revocation/walk-process.ts';
import { Queue } from 'bullmq';
import { QUEUE_NAME } from '../../src/revocation/bullmq-queue.ts';
import { WALK_CONNECTION_NAME } from '../../src/revocation/walk-process-wire.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { redisKeys } from '../../src/redis/keys.ts';
import { NO_WAIT, NotReplicatedError, type Durability } from '../../src/redis/replicated-write.ts';
import type { TestRedis } from '../helpers/redis-server.ts';
import { freePort } from '../helpers/redis-server.ts';
import { makeLease, revokeInput } from '../contract/lease-fixtures.ts';
import { uniquePrefix, withTestRedis } from '../contract/redis-client.ts';
import { pool, waitFor } from '../lifecycle/harness.ts';
import { StoreUnavailableError } from '../../src/errors.ts';

let redis: Redis;
let server: TestRedis;
withTestRedis((r, s) => {
  redis = r;
  server = s;
});

const walkers: WalkProcess[] = [];
afterAll(async () => {
  await Promise.all(walkers.map((w) => w.close()));
});

function setup(opts: { redisUrl?: string; durability?: Durability } = {}) {
  const prefix = uniquePrefix();
  const unreadable: string[] = [];
  const errors: Error[] = [];
  const durability = opts.durability ?? NO_WAIT;
  const walker = startWalkProcess({
    redisUrl: opts.redisUrl ?? server.url,
    prefix,
    retentionSeconds: 3600,
    durability,
    onUnreadable: (id) => unreadable.push(id),
    onError: (err) => errors.push(err),
  });
  walkers.push(walker);
  const store = createRedisLeaseStore({ redis, prefix, durability });
  return { prefix, walker, store, unreadable, errors };
}

/**
 * Until the walker has started and connected it hands walks back (null), and on a busy machine that
 * takes longer than a call waits: a walk that matches nothing shows it is up.
 */
async function up(walker: WalkProcess): Promise<void> {
  await waitFor('the walker to be up', async () => (await walker.revokeAndQueue({ subject: 'repo:nobody/none' }, revokeInput(), {})) !== null, 20_000, 100);
}

/** The walker's connection as CLIENT LIST shows it: its last command. */
async function walkConnectionLastCommand(): Promise<string[]> {
  const list = (await redis.client('LIST')) as string;
  return list.split('\n').filter((l) => l.includes(` name=${WALK_CONNECTION_NAME} `)).map((l) => / cmd=(\S+)/.exec(l)?.[1] ?? '');
}

/** The ids in the effects jobs queued under `prefix`, job by job. */
async function queuedJobs(prefix: string): Promise<string[][]> {
  const q = new Queue(QUEUE_NAME, { connection: { url: server.url }, prefix: `{${prefix}bull}` });
  try {
    const jobs = await q.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed'], 0, 1000);
    return jobs.map((j) => (j.data as { ids: string[] }).ids);
  } finally {
    await q.close();
  }
}

describe('the bulk revocation process', () => {
  it('revokes every match over its own connection and queues the effects itself, in jobs of 5,000', async () => {
    const { walker, store, prefix } = setup();
    const subject = 'repo:octo-org/kill-switch:ref:refs/heads/main';
    const leases = Array.from({ length: 12_500 }, () => makeLease({ subject }));
    const other = makeLease({ subject: 'repo:octo-org/bystander:ref:refs/heads/main' });
    await pool([...leases, other], 64, (l) => store.create(l));

    expect(await walker.revokeAndQueue({ rule: 'app-deploy', subject }, revokeInput(), {})).toEqual({ revoked: 12_500 });
    for (const l of [leases[0]!, leases[6_000]!, leases[12_499]!]) expect((await store.get(l.id))?.status).toBe('revoked');
    expect((await store.get(other.id))?.status).toBe('active');
    // The walk went over the walker's connection (its last command is a walk script), not ours.
    expect(await walkConnectionLastCommand()).toContain('evalsha');
    const jobs = await queuedJobs(prefix);
    expect(jobs.map((ids) => ids.length).sort((a, b) => b - a)).toEqual([5_000, 5_000, 2_500]);
    expect(jobs.flat().sort()).toEqual(leases.map((l) => l.id).sort());
  }, 60_000);

  it('throws in the API process what the walk threw: not replicated, and a selector that selects nothing', async () => {
    const { walker, prefix } = setup({ durability: { replicas: 1, waitMs: 50 } });
    // Written without WAIT: this Redis has no replica, so the walker's WAIT never holds.
    const plain = createRedisLeaseStore({ redis, prefix });
    const lease = makeLease();
    await plain.create(lease);
    await up(walker);
    const err = await walker.revokeAndQueue({ subject: lease.subject }, revokeInput(), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotReplicatedError);
    expect(err).toMatchObject({ acked: 0, wanted: 1, status: 503 });
    // The flip was written before the WAIT: a retry (once a replica confirms) finds it done.
    expect((await plain.get(lease.id))?.status).toBe('revoked');
    // Not confirmed, so no effects were queued for it: the sweep takes it over.
    expect(await queuedJobs(prefix)).toEqual([]);

    await expect(walker.revokeAndQueue({}, revokeInput(), {})).rejects.toThrow(TypeError);
  }, 30_000);

  it('reports a record it cannot read to the API process, once, and still revokes the rest', async () => {
    const { walker, store, prefix, unreadable } = setup();
    await up(walker);
    const issuer = 'gitlab-self-managed';
    const good = makeLease({ issuer });
    const bad = makeLease({ issuer, subject: 'repo:octo-org/other' });
    await store.create(good);
    await store.create(bad);
    // Not a lease: cut short, but still holding the selector's value, so the walk decodes it.
    await redis.hset(redisKeys(prefix).leases(shardOfLeaseId(bad.id)), bad.id, `["jwt","active","app-deploy","${issuer}"`);

    // No index fits an issuer: the walk scans every shard's schedule.
    expect(await walker.revokeAndQueue({ issuer }, revokeInput(), {})).toEqual({ revoked: 1 });
    expect((await store.get(good.id))?.status).toBe('revoked');
    expect(unreadable).toEqual([bad.id]);
    expect(await walker.revokeAndQueue({ issuer }, revokeInput(), {})).toEqual({ revoked: 0 });
    expect(unreadable).toEqual([bad.id]);
  }, 30_000);

  it('while its connection is down, hands the walk back', async () => {
    const { walker, store } = setup({ redisUrl: `redis://127.0.0.1:${await freePort()}` });
    const lease = makeLease();
    await store.create(lease);
    expect(await walker.revokeAndQueue({ subject: lease.subject }, revokeInput(), {})).toBeNull();
    expect((await store.get(lease.id))?.status).toBe('active');
  }, 30_000);

  it('killed mid-walk, fails the walk as unavailable (503, retried), and is not forked again at once', async () => {
    const { walker, store, prefix, errors } = setup();
    const subject = 'repo:octo-org/killed-walker:ref:refs/heads/main';
    const n = 50_000;
    const leases = Array.from({ length: n }, () => makeLease({ subject }));
    await pool(leases, 64, (l) => store.create(l));
    const walking = walker.revokeAndQueue({ rule: 'app-deploy', subject }, revokeInput(), {});
    // Once its first flips are in (a flipped lease waits in pending for its effects), the walker dies.
    const pending = redisKeys(prefix).pending(shardOfLeaseId(leases[0]!.id));
    await waitFor('the walk to be under way', async () => (await redis.zcard(pending)) > 0, 10_000, 2);
    process.kill(walker.pid()!, 'SIGKILL');
    await expect(walking).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(errors.map((e) => e.message).join()).toMatch(/exited \(SIGKILL\)/);
    expect(await walker.revokeAndQueue({ subject }, revokeInput(), {})).toBeNull();
    expect(await redis.zcard(pending)).toBeLessThan(n);
  }, 60_000);

  it('once closed, hands every walk back', async () => {
    const { walker, store } = setup();
    const lease = makeLease();
    await store.create(lease);
    await walker.close();
    expect(walker.pid()).toBeUndefined();
    expect(await walker.revokeAndQueue({ subject: lease.subject }, revokeInput(), {})).toBeNull();
  }, 30_000);
});
