import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { connectRedis } from '../../src/redis/connect.ts';
import { SHARD_COUNT, redisKeys } from '../../src/redis/keys.ts';
import { createBullmqRevocationQueue } from '../../src/revocation/bullmq-queue.ts';
import { finalizeRevoked, sweepOnce, type EndingDeps } from '../../src/revocation/endings.ts';
import { revokeLeases } from '../../src/revocation/revoke-leases.ts';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import type { TestRedis } from '../helpers/redis-server.ts';
import {
  afterSweeps, api, endingEvents, issue, leaseFor, lifecyclePolicy, operatorToken, pool, sleep, waitFor, type Issued, type Issuers, startLifecycleEnv, type LifecycleEnv,
} from './harness.ts';

/** Endings are idempotent: duplicate jobs, direct double calls, and revoke racing the expiry sweep. */

let env: LifecycleEnv;
let redis: TestRedis;
let client: Redis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
let ending: EndingDeps;

beforeAll(async () => {
  env = await startLifecycleEnv();
  ({ redis, client, issuers, broker, op } = env);
  const { store, metrics, log, now } = broker.deps;
  ending = { store, metrics, log, now };
});
afterAll(async () => env?.close());

const endingsCounted = async (status: string, reason: string): Promise<number> =>
  (await broker.deps.metrics.endings.get()).values.find((v) => v.labels.status === status && v.labels.reason === reason)?.value ?? 0;

async function expectNothingScheduled(ids: string[]): Promise<void> {
  const keys = redisKeys(broker.config.redisPrefix);
  const sets = await Promise.all(Array.from({ length: SHARD_COUNT }, async (_, s) => [...(await client.zrange(keys.due(s), '0', '-1')), ...(await client.zrange(keys.pending(s), '0', '-1'))]));
  const left = new Set(sets.flat());
  expect(ids.filter((id) => left.has(id))).toEqual([]);
}

it('the same revoke job processed twice (two jobs, a duplicate job id, two direct calls) ends each lease once', async () => {
  const tokens = await pool(Array.from({ length: 20 }, (_, i) => i), 8, (i) => issue(broker.url, issuers.github, `repo:octo-org/app:dup-${i}`));
  const ids = tokens.map((t) => t.lease_id);
  const before = await endingsCounted('revoked', 'operator');
  // Flip the status without queueing anything, as the API does before it enqueues.
  const at = Math.floor(Date.now() / 1000);
  for (const id of ids) expect(await broker.deps.store.revoke(id, { reason: 'duplicate test', by: 'operator:dup', at })).not.toBeNull();

  const bull = connectRedis(redis.url, { forBullmq: true });
  const producer = createBullmqRevocationQueue(bull, broker.config.redisPrefix);
  try {
    await producer.enqueue(ids);
    await producer.enqueue(ids);
    await producer.queue.add('revoke', { ids }, { jobId: 'dup-job' });
    await producer.queue.add('revoke', { ids }, { jobId: 'dup-job' });
    const [a, b] = await Promise.all([finalizeRevoked(ending, ids), finalizeRevoked(ending, ids)]);
    expect(a.length + b.length).toBeLessThanOrEqual(ids.length);
    await waitFor('the revoke jobs to drain', async () => (await producer.depth()) === 0, 10_000);
    const counts = await producer.queue.getJobCounts('completed', 'failed');
    expect(counts).toMatchObject({ completed: 3, failed: 0 });
    expect(await finalizeRevoked(ending, ids)).toEqual([]);
  } finally {
    await producer.close();
    bull.disconnect();
  }
  await afterSweeps(broker); // the sweep, too, has had its chance to finalize them again
  const events = await endingEvents(client, broker.config.redisPrefix);
  for (const id of ids) expect(events.get(id)?.map((e) => [e.type, e.actor])).toEqual([['lease.revoked', 'operator:dup']]);
  expect((await endingsCounted('revoked', 'operator')) - before).toBe(ids.length);
  await expectNothingScheduled(ids);
});

it('revokes racing the expiry moment, and the sweep racing their effects jobs, end every lease once and consistently', async () => {
  const N = 300;
  const expiresAt = Math.floor(Date.now() / 1000) + 2;
  const leases = Array.from({ length: N }, (_, i) => leaseFor({ expires_at: expiresAt, subject: `repo:octo-org/app:race-${i % 30}` }));
  await pool(leases, 16, (l) => broker.deps.store.create(l));
  const viaApi = leases.slice(0, N / 2).map((l) => l.id);
  const viaCall = leases.slice(N / 2).map((l) => l.id);

  // Two streams of one-at-a-time revocations start just before expires_at and run on past it;
  // at expires_at exactly two extra sweeps start, on top of the worker's own every 100 ms.
  await sleep(expiresAt * 1000 - 80 - Date.now());
  const [httpRevoked, callRevoked] = await Promise.all([
    (async () => {
      const out: string[] = [];
      for (const id of viaApi) {
        const r = await api(broker.url, 'POST', `/v1/leases/${id}/revoke`, op.token, { reason: 'race' });
        expect(r.status).toBe(200);
        if (r.body.status === 'revoked') out.push(id);
      }
      return out;
    })(),
    (async () => {
      const out: string[] = [];
      for (const id of viaCall) {
        const [l] = await revokeLeases(broker.deps, [id], { reason: 'race', by: 'operator:race', path: 'operator' });
        if (l) out.push(l.id);
      }
      return out;
    })(),
    sleep(expiresAt * 1000 - Date.now()).then(() => Promise.all([sweepOnce(ending), sweepOnce(ending)])),
  ]);
  const revoked = new Set([...httpRevoked, ...callRevoked]);

  await waitFor('every raced lease to end', async () => {
    const got = await pool(leases, 16, (l) => broker.deps.store.get(l.id));
    return got.every((l) => l?.ended_at != null);
  }, 15_000, 50);
  await afterSweeps(broker); // more sweeps, and the revoke jobs drained: nothing may end twice
  await waitFor('the revoke jobs to drain', async () => (await broker.deps.revocations.depth()) === 0, 10_000);
  const events = await endingEvents(client, broker.config.redisPrefix);
  const outcome = { revoked: 0, expired: 0 };
  for (const l of leases) {
    const stored = (await broker.deps.store.get(l.id))!;
    const evs = events.get(l.id) ?? [];
    expect(evs).toHaveLength(1);
    expect(evs[0]!.type).toBe(`lease.${stored.status}`);
    // A revoke that flipped the status wins; one that came after the sweep changed nothing.
    expect(stored.status).toBe(revoked.has(l.id) ? 'revoked' : 'expired');
    outcome[stored.status as 'revoked' | 'expired']++;
  }
  // Both sides of the race happened: revoked before the moment, expired at it.
  expect(outcome.revoked).toBeGreaterThan(0);
  expect(outcome.expired).toBeGreaterThan(0);
  await expectNothingScheduled(leases.map((l) => l.id));
});

it('a revoke that arrives after expires_at but before the sweep changes nothing: the lease ends expired', async () => {
  // An API replica with no worker anywhere on its prefix: expired leases wait for a sweep.
  const api2 = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url, worker: false });
  try {
    const op2 = await operatorToken(api2.url, issuers, api2.config.issuer);
    const late = await issue(api2.url, issuers.github, 'repo:octo-org/app:late', { ttl: '1' });
    const lease = (await api2.deps.store.get(late.lease_id))!;
    await sleep(lease.expires_at * 1000 - Date.now() + 50);
    expect((await api2.deps.store.get(late.lease_id))!.status).toBe('active'); // not swept yet

    const one = await api(api2.url, 'POST', `/v1/leases/${late.lease_id}/revoke`, op2.token, { reason: 'too late' });
    expect(one.status).toBe(200);
    expect(one.body.status).not.toBe('revoked');
    expect((await api(api2.url, 'POST', '/v1/leases/revoke', op2.token, { subject: 'repo:octo-org/app:late' })).body).toEqual({ revoked: 0 });

    const { store, metrics, log, now } = api2.deps;
    const ended = await sweepOnce({ store, metrics, log, now });
    expect(ended).toBe(1);
    const final = (await store.get(late.lease_id))!;
    expect(final).toMatchObject({ status: 'expired', revoked_at: null, revoked_by: null });
    const events = await endingEvents(client, api2.config.redisPrefix);
    expect(events.get(late.lease_id)?.map((e) => e.type)).toEqual(['lease.expired']);
  } finally {
    await api2.close();
  }
});
