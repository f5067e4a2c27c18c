import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { SHARD_COUNT, actName, redisKeys, taskName } from '../../src/redis/keys.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { retainedEndedAt } from '../helpers/retention.ts';
import type { TestBroker } from '../helpers/broker.ts';
import {
  afterSweeps, api, endingEvents, introspect, issue, sleep, waitFor, type Issued, type Issuers, startLifecycleEnv, type LifecycleEnv,
} from './harness.ts';

/** Expiry through the real BullMQ worker: on time, invisible to introspection, nothing left behind. */

let env: LifecycleEnv;
let client: Redis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;

beforeAll(async () => {
  env = await startLifecycleEnv();
  ({ client, issuers, broker, op } = env);
});
afterAll(async () => env?.close());

// How soon after expires_at the worker ends a lease is a figure of the bench (section 6, expiry
// lag); here the bounds only tell "ended by the sweep" from "never, or by something else".
it('2-second leases are expired by the worker after expires_at, introspect inactive, and leave no index entry', async () => {
  const subjects = [0, 1, 2, 3, 4].map((i) => `repo:octo-org/app:expiry-${i}`);
  const leases = await Promise.all(subjects.map((sub, i) => issue(broker.url, issuers.github, sub, { ttl: '2', task_id: `expiry-task-${i}` })));
  for (const l of leases) {
    expect(l.expires_in).toBe(2);
    expect((await introspect(broker.url, op.token, l.token)).body).toMatchObject({ active: true, jti: l.lease_id });
  }

  const seen = await Promise.all(
    leases.map((l) =>
      waitFor(`lease ${l.lease_id} to be expired`, async () => {
        const r = await api(broker.url, 'GET', `/v1/leases/${l.lease_id}`, op.token);
        expect(r.status).toBe(200);
        return r.body.status === 'expired' ? { lease: r.body, at: Date.now() } : null;
      }, 15_000, 20),
    ),
  );
  for (const { lease, at } of seen) {
    const seenLagMs = at - lease.expires_at * 1000; // includes this client's polling delay
    expect(seenLagMs).toBeGreaterThanOrEqual(0); // never ended early
    expect(seenLagMs).toBeLessThan(15_000); // fails fast on a hang, not a performance claim
    expect(lease.ended_at).toBeGreaterThanOrEqual(lease.expires_at);
    expect(lease.revoked_at).toBeNull();
  }

  const keys = redisKeys(broker.config.redisPrefix);
  for (const [i, l] of leases.entries()) {
    expect((await introspect(broker.url, op.token, l.token)).body).toEqual({ active: false });
    const shard = shardOfLeaseId(l.lease_id);
    expect(await client.zscore(keys.due(shard), l.lease_id)).toBeNull();
    expect(await client.zscore(keys.pending(shard), l.lease_id)).toBeNull();
    // The sweep drops an expiry's index entries by time once its endings are written (PRUNE).
    await waitFor(`lease ${l.lease_id}'s index entries to be dropped`, async () =>
      (await client.hget(keys.index(shard, 'act'), actName('work', subjects[i]!))) === null &&
      (await client.hget(keys.index(shard, 'task'), taskName(`expiry-task-${i}`))) === null, 5_000, 20);
    expect(await client.smembers(keys.lapsed(shard, 'act'))).toEqual([]);
    expect(await retainedEndedAt(client, keys, shard, l.lease_id)).not.toBeNull(); // kept for retention
  }
  // Only the operator's own lease is still scheduled.
  const due = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => client.zrange(keys.due(s), '0', '-1')));
  expect(due.flat()).toEqual([op.lease_id]);
  expect(await broker.deps.store.countActive()).toBe(1);

  await afterSweeps(broker); // more sweeps run: still one ending each
  const events = await endingEvents(client, broker.config.redisPrefix);
  for (const l of leases) {
    expect(events.get(l.lease_id)).toHaveLength(1);
    const ev = events.get(l.lease_id)![0]!;
    expect(ev).toMatchObject({ type: 'lease.expired', actor: 'worker', reason: 'expired' });
    // The worker's own measure of how late it ended the lease.
    expect(ev.lag_ms as number).toBeGreaterThanOrEqual(0);
    expect(ev.lag_ms as number).toBeLessThan(15_000); // lag in ms from expires_at, not a performance claim
  }
});

it('introspection answers inactive from expires_at on, whether or not the worker has run yet', async () => {
  const l = await issue(broker.url, issuers.github, 'repo:octo-org/app:edge', { ttl: '1' });
  const lease = await broker.deps.store.get(l.lease_id);
  await sleep(Math.max(0, lease!.expires_at * 1000 - Date.now()));
  expect((await introspect(broker.url, op.token, l.token)).body).toEqual({ active: false });
  // and the holder can no longer use it to revoke: the ending stays an expiry
  await api(broker.url, 'POST', '/v1/tasks/none/complete', l.token).then((r) => expect(r.status).toBe(401));
  const ended = await waitFor('the edge lease to end', async () => {
    const got = await broker.deps.store.get(l.lease_id);
    return got?.ended_at != null ? got : null;
  });
  expect(ended.status).toBe('expired');
});
