import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { TestBroker } from '../helpers/broker.ts';
import type { TestRedis } from '../helpers/redis-server.ts';
import {
  afterSweeps, api, endingEvents, holderRevoke, introspect, issue, pool, sleep, sweepsDone, waitFor, type Issued, type Issuers, startLifecycleEnv, type LifecycleEnv,
} from './harness.ts';
import { SWEEP_QUEUE_NAME } from '../../src/revocation/bullmq-queue.ts';

/**
 * Redis goes away while leases are pending (some due to expire, one revoked with its effects not
 * yet run) and comes back after their expiry: the same worker reconnects and ends every one, once.
 */

let env: LifecycleEnv;
let redis: TestRedis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;

beforeAll(async () => {
  env = await startLifecycleEnv({ persist: true });
  ({ redis, issuers, broker, op } = env);
});
afterAll(async () => env?.close());

it('after a Redis restart the worker resumes and ends the leases that came due meanwhile', async () => {
  const leases = await pool(Array.from({ length: 30 }, (_, i) => i), 8, (i) => issue(broker.url, issuers.github, `repo:octo-org/app:restart-${i}`, { ttl: '3' }));
  const longLived = await issue(broker.url, issuers.github, 'repo:octo-org/app:restart-long', { ttl: '600' });
  const expiries = await pool(leases, 8, async (l) => (await broker.deps.store.get(l.lease_id))!.expires_at);
  const latest = Math.max(...expiries);
  const pendingOne = leases[expiries.indexOf(latest)]!;
  expect((await introspect(broker.url, op.token, pendingOne.token)).body.active).toBe(true);

  // Revoked just before Redis goes: its effects job may or may not run before the stop.
  const revokedBefore = leases.find((l) => l !== pendingOne)!;
  expect((await holderRevoke(broker.url, revokedBefore.token)).status).toBe(200);
  await redis.stop();
  // While Redis is away: fail closed, nothing is issued, introspection cannot vouch for a token.
  expect((await introspect(broker.url, op.token, longLived.token)).status).toBeGreaterThanOrEqual(401);
  expect((await api(broker.url, 'GET', '/readyz')).status).toBe(503);
  await sleep(Math.max(0, latest * 1000 - Date.now()) + 300); // every short lease is past expiry now
  await redis.start();

  const client = new Redis(redis.url);
  try {
    await waitFor('the broker to reach Redis again', async () => (await api(broker.url, 'GET', '/readyz')).status === 200, 20_000, 100);
    // A revocation right after the restart: visible at once, effects run by the reconnected worker.
    expect((await holderRevoke(broker.url, longLived.token)).status).toBe(200);
    expect((await introspect(broker.url, op.token, longLived.token)).body).toEqual({ active: false });

    const ids = [...leases.map((l) => l.lease_id), longLived.lease_id];
    await waitFor('the worker to end every pending lease', async () => {
      const got = await pool(ids, 8, (id) => broker.deps.store.get(id));
      return got.every((l) => l?.ended_at != null);
    }, 20_000, 100);
    // Two more sweeps and the revoke jobs drained: had anything been left to end twice, it would have been.
    await afterSweeps(broker);
    // A revoke job the worker had taken when Redis stopped stays active until its lock (BullMQ's
    // 30 s) runs out and the stalled-job check hands it back; the sweep ended its lease meanwhile.
    await waitFor('the revoke jobs to drain', async () => (await broker.deps.revocations.depth()) === 0, 45_000, 200);
    const events = await endingEvents(client, broker.config.redisPrefix);
    for (const l of leases) {
      expect(events.get(l.lease_id)?.map((e) => e.type)).toEqual([l === revokedBefore ? 'lease.revoked' : 'lease.expired']);
      expect((await introspect(broker.url, op.token, l.token)).body).toEqual({ active: false });
    }
    expect(events.get(longLived.lease_id)?.map((e) => e.type)).toEqual(['lease.revoked']);
    expect(await broker.deps.store.countActive()).toBe(1); // the operator's own lease
  } finally {
    client.disconnect();
  }
}, 120_000);

/**
 * BullMQ adds each sweep's successor as the sweep starts; when Redis fails at that moment no
 * successor is added, and without a mend the sweeps, and so every expiry, stop for good.
 */
it('a sweep schedule that lost its next run is mended by the worker, and the sweeps resume', async () => {
  const queue = `{${broker.config.redisPrefix}bull}:${SWEEP_QUEUE_NAME}`;
  // What a Redis failure at the wrong moment leaves: no pending sweep at all (none delayed, none waiting).
  const dropPending = async (): Promise<number> => {
    const delayed = await env.client.zrange(`${queue}:delayed`, '0', '-1');
    const waiting = await env.client.lrange(`${queue}:wait`, '0', '-1');
    for (const id of delayed) await env.client.zrem(`${queue}:delayed`, id);
    for (const id of waiting) await env.client.lrem(`${queue}:wait`, '0', id);
    for (const id of [...delayed, ...waiting]) await env.client.del(`${queue}:${id}`);
    return delayed.length + waiting.length;
  };
  await waitFor('a pending sweep', async () => (await env.client.zcard(`${queue}:delayed`)) + (await env.client.llen(`${queue}:wait`)) > 0, 10_000, 20);
  // A sweep running now would add one more successor: drop until none is left for a moment.
  await waitFor('no pending sweep', async () => (await dropPending()) === 0 && (await dropPending()) === 0, 10_000, 50);
  const before = await sweepsDone(broker);
  await waitFor('the sweeps to resume', async () => (await sweepsDone(broker)) >= before + 3, 20_000, 100);
  expect(await sweepsDone(broker)).toBeGreaterThanOrEqual(before + 3);
}, 60_000);
