import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { CREATE } from '../../src/leases/redis-scripts.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { connectTestRedis, uniquePrefix } from '../contract/redis-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { closeIssuers, issue, lifecyclePolicy, startIssuers, uniq, waitFor, type Issuers } from '../lifecycle/harness.ts';

/**
 * Two API processes behind a load balancer, each reaching Redis through a TCP proxy of its own.
 * The first takes a lease write whose reply is lost, answers 503, and undoes it once it reaches
 * Redis again. The job's retry of that 503 lands on the second, which is back first: it must tell
 * the job to retry (503), not refuse the proof as used (a final 400), until the undoing lands.
 */
let redis: TestRedis;
let first: { proxy: TcpProxy; broker: TestBroker };
let second: { proxy: TcpProxy; broker: TestBroker };
let issuers: Issuers;
let direct: Redis, seen: LeaseStore;

beforeAll(async () => {
  redis = await startRedis();
  issuers = await startIssuers();
  // One deployment: the same keys in Redis.
  const env = { REDIS_PREFIX: uniquePrefix() };
  const start = async (): Promise<{ proxy: TcpProxy; broker: TestBroker }> => {
    const proxy = await startTcpProxy(redis.port);
    const broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis://127.0.0.1:${proxy.port}`, worker: false, env });
    return { proxy, broker };
  };
  first = await start();
  second = await start();
  direct = await connectTestRedis(redis.url);
  seen = createRedisLeaseStore({ redis: direct, prefix: first.broker.config.redisPrefix });
});
afterAll(async () => {
  for (const p of [first, second]) {
    await p?.broker.close();
    await p?.proxy.close();
  }
  await closeIssuers(issuers);
  direct?.disconnect();
  await redis?.destroy();
});

it('a retry that another API process gets, while the first undoes the lease it wrote, is told to retry, then exchanged', async () => {
  for (const { broker } of [first, second]) await issue(broker.url, issuers.github, `repo:octo-org/app:warm-${uniq()}`);
  const sub = `repo:octo-org/app:two-apis-${uniq()}`;
  const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub, jti: `jti-${uniq()}` });

  first.proxy.holdReplies(CREATE.sha);
  const answer = exchangeProof(first.broker.url, proof);
  const written = await waitFor('the lease write to reach Redis', async () => (await seen.list({ subject: sub }, { limit: 10 })).leases[0]);
  // Both lose Redis; the second is back after 3 s, the first (which holds the undoing) after 6 s.
  const cutAt = Date.now();
  first.proxy.cutAll(6_000);
  second.proxy.cutAll(3_000);
  expect((await answer).status).toBe(503);

  const answers: string[] = [];
  const retried = await waitFor('the same proof to be exchanged on the second API process', async () => {
    const r = await exchangeProof(second.broker.url, proof);
    answers.push(`${Date.now() - cutAt} ms: ${r.status} ${r.body.error ?? ''} ${r.body.error_description ?? ''}`);
    return r.status === 200 ? r : null;
  }, 25_000, 100);
  expect(answers.slice(0, -1).filter((a) => !a.includes(': 503 '))).toEqual([]);
  // The first process ends the lease it wrote as well (its revoke and release go out together).
  await waitFor('the written lease to be revoked', async () => (await seen.get(written.id))?.status === 'revoked', 10_000, 50);
  expect(await seen.get(written.id)).toMatchObject({ status: 'revoked', reason: 'store unavailable' });
  expect(retried.body.lease_id).not.toBe(written.id);
  // The retry's own lease was written after the outage: a replay of it is a replay again, at once.
  for (const { broker } of [first, second]) expect((await exchangeProof(broker.url, proof)).body.error).toBe('invalid_request');
}, 40_000);
