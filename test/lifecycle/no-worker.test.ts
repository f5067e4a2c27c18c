/**
 * API processes with no worker running (LEASH_ROLE=api and the workers down): leases past their
 * expiry read as expired wherever an operator looks, and /metrics counts them as overdue, so a
 * missing worker shows. Real broker over HTTP on real Redis, with the worker off.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { api, closeIssuers, issue, lifecyclePolicy, operatorToken, sleep, startIssuers, type Issued, type Issuers } from './harness.ts';

let redis: TestRedis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
let offsetMs = 0;

beforeAll(async () => {
  redis = await startRedis();
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url, worker: false, now: () => Date.now() + offsetMs });
  op = await operatorToken(broker.url, issuers, broker.config.issuer);
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await redis?.destroy();
});

const overdue = async (): Promise<number> => {
  const res = await fetch(`${broker.url}/metrics`, { headers: { authorization: `Bearer ${op.token}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith('leash_overdue_leases '));
  return Number(line?.split(' ')[1]);
};

it('a lease past its expiry reads as expired (not yet ended), in a read, a listing and its filters', async () => {
  const sub = 'repo:octo-org/app:no-worker';
  const short = await issue(broker.url, issuers.github, sub, { ttl: '1' });
  const long = await issue(broker.url, issuers.github, sub, { ttl: '600' });
  await sleep(2_100);

  expect((await api(broker.url, 'GET', `/v1/leases/${short.lease_id}`, op.token)).body).toMatchObject({ status: 'expired', ended_at: null });
  expect((await api(broker.url, 'GET', `/v1/leases/${long.lease_id}`, op.token)).body).toMatchObject({ status: 'active' });
  const ids = async (status: string): Promise<string[]> =>
    (await api(broker.url, 'GET', `/v1/leases?subject=${encodeURIComponent(sub)}&status=${status}`, op.token)).body.leases.map((l: { id: string }) => l.id);
  expect(await ids('active')).toEqual([long.lease_id]);
  expect(await ids('expired')).toEqual([short.lease_id]);
  // Revoking it changes nothing (it is already dead) and says so.
  expect((await api(broker.url, 'POST', `/v1/leases/${short.lease_id}/revoke`, op.token, {})).body).toMatchObject({ status: 'expired' });
});

it('/metrics counts leases left unended more than 10 s past their expiry', async () => {
  const before = await overdue();
  await issue(broker.url, issuers.github, 'repo:octo-org/app:no-worker-2', { ttl: '1' });
  expect(await overdue()).toBe(before);
  offsetMs = 60_000; // a minute on, and still no worker
  expect(await overdue()).toBeGreaterThanOrEqual(before + 1);
});
