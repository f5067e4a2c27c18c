import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { CREATE } from '../../src/leases/redis-scripts.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { connectTestRedis } from '../contract/redis-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { lostReplyUndone } from './lost-reply-scenario.ts';
import { api, closeIssuers, issue, lifecyclePolicy, startIssuers, uniq, waitFor, type Issuers } from '../lifecycle/harness.ts';

/**
 * Standalone Redis behind a TCP proxy: a lease write whose reply never comes back, one sent twice,
 * and writes refused while Redis is down. (The Cluster's lost reply: redis-cluster-lost-reply.test.ts.)
 */
let redis: TestRedis;
let proxy: TcpProxy;
let issuers: Issuers;
let broker: TestBroker;
/** What Redis holds, read past the proxy. */
let direct: Redis, seen: LeaseStore;

beforeAll(async () => {
  redis = await startRedis();
  proxy = await startTcpProxy(redis.port);
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis://127.0.0.1:${proxy.port}`, worker: false });
  direct = await connectTestRedis(redis.url);
  seen = createRedisLeaseStore({ redis: direct, prefix: broker.config.redisPrefix });
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  direct?.disconnect();
  await proxy?.close();
  await redis?.destroy();
});

it('a lease whose write got no reply is revoked, and its proof exchanged on the retry, once Redis answers again', async () => {
  await lostReplyUndone({ broker, issuers, proxies: [proxy], seen });
});

it('a lease write sent twice (as ioredis Cluster resends after a failover) answers 503, is undone, and the proof exchanges on the retry', async () => {
  await issue(broker.url, issuers.github, `repo:octo-org/app:warm-${uniq()}`);
  const sub = `repo:octo-org/app:sent-twice-${uniq()}`;
  const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub, jti: `jti-${uniq()}` });

  proxy.sendTwice(CREATE.sha);
  const refused = await exchangeProof(broker.url, proof);
  // The second send finds the lease and the proof's claim its first send wrote: not a replay.
  expect(refused.status).toBe(503);
  expect(refused.body.error).toBe('temporarily_unavailable');
  expect(refused.body.access_token).toBeUndefined();
  const [written] = (await seen.list({ subject: sub }, { limit: 10 })).leases;
  await waitFor('the written lease to be revoked', async () => (await seen.get(written!.id))?.status === 'revoked');

  const retried = await exchangeProof(broker.url, proof);
  expect(retried.status).toBe(200);
  expect((await exchangeProof(broker.url, proof)).body.error).toBe('invalid_request');
});

it('an exchange refused while Redis is unreachable leaves nothing to undo', async () => {
  await redis.stop();
  try {
    await waitFor('the broker to see Redis gone', async () => (await api(broker.url, 'GET', '/readyz')).status === 503, 10_000, 100);
    for (let i = 0; i < 5; i++) {
      const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: `repo:octo-org/app:down-${uniq()}`, jti: `jti-${uniq()}` });
      expect((await exchangeProof(broker.url, proof)).status).toBe(503);
    }
    // ioredis sent nothing (no offline queue), so no cleanup is held for retries: an outage's
    // refusals do not pile up retries that would all land on Redis when it is back.
    expect(broker.deps.abandoned.size).toBe(0);
  } finally {
    await redis.start();
  }
});
