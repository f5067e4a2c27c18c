/**
 * API processes with no worker running (LEASH_ROLE=api and the workers down): a lease past its
 * expiry is dead to every check at once, and /metrics counts the endings no worker carried out, so
 * a missing worker shows. Real broker over HTTP on real Redis, with the worker off.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { api, closeIssuers, introspect, issue, lifecyclePolicy, operatorToken, sleep, startIssuers, type Issued, type Issuers } from './harness.ts';

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

it('a lease past its expiry is refused at once, not yet ended, and counted as overdue 10 s on', async () => {
  const before = await overdue();
  const short = await issue(broker.url, issuers.github, 'repo:octo-org/app:no-worker', { ttl: '1' });
  await sleep(2_100);
  expect((await introspect(broker.url, op.token, short.token)).body).toEqual({ active: false });
  // The worker marks it expired; none runs here.
  expect((await api(broker.url, 'GET', `/v1/leases/${short.lease_id}`, op.token)).body).toMatchObject({ status: 'active', ended_at: null });
  expect(await overdue()).toBe(before);
  offsetMs = 60_000; // a minute on, and still no worker
  expect(await overdue()).toBe(before + 1);
});
