import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { replayKey } from '../../src/redis/keys.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, type TestBroker } from '../helpers/broker.ts';
import { AUD, e2ePolicy } from '../helpers/policies.ts';

/**
 * Proofs may be up to 16 KB, Leash's own tokens at most 8,192 characters (what introspection,
 * downscoping and leash/verify accept back). A proof whose subject would make a longer token is
 * refused before anything is written, instead of yielding a credential Leash itself rejects.
 */
let redis: TestRedis;
let client: Redis;
let issuers: FakeIssuer[];
let broker: TestBroker;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  issuers = [await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer()];
  const [github, gitlab, k8s, spiffe] = issuers as [FakeIssuer, FakeIssuer, FakeIssuer, FakeIssuer];
  broker = await startBroker({ redisUrl: redis.url, policy: e2ePolicy({ github, gitlab, k8s, spiffe }) });
});
afterAll(async () => {
  await broker?.close();
  client?.disconnect();
  for (const i of issuers ?? []) await i.close();
  await redis?.destroy();
});

const k8s = () => issuers[2]!;
const claimsWithSub = (name: string, jti: string) => ({
  ...fixtureClaims('kubernetes-sa'),
  iss: k8s().url,
  aud: [AUD],
  jti,
  sub: `system:serviceaccount:kube-system:${name}`,
});

async function leaseCount(): Promise<number> {
  let n = 0;
  for (const key of await client.keys(`${broker.config.redisPrefix}*leases`)) n += await client.hlen(key);
  return n;
}

it('refuses, writing nothing, a proof whose token would be longer than Leash accepts back', async () => {
  const before = await leaseCount();
  const proof = await k8s().mint(claimsWithSub('x'.repeat(7_000), 'long-sub'));
  expect(proof.length).toBeLessThan(16_384);
  const res = await exchangeProof(broker.url, proof);
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('invalid_request');
  expect(res.body.error_description).toMatch(/over the 8192 that Leash accepts back/);
  expect(await leaseCount()).toBe(before);
  expect(await client.exists(replayKey(broker.config.redisPrefix, 'k8s:jti:long-sub'))).toBe(0);
});

it('issues a token for a long subject that still fits', async () => {
  const res = await exchangeProof(broker.url, await k8s().mint(claimsWithSub('y'.repeat(2_000), 'fits')));
  expect(res.status).toBe(200);
  expect(res.body.access_token.length).toBeLessThanOrEqual(8_192);
});
