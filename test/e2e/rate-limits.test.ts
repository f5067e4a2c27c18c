import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, postToken, type TestBroker } from '../helpers/broker.ts';
import { AUD, e2ePolicy } from '../helpers/policies.ts';

let redis: TestRedis;
let gh: FakeIssuer;
let others: FakeIssuer[];
const brokers: TestBroker[] = [];

beforeAll(async () => {
  redis = await startRedis();
  gh = await startFakeIssuer({ alg: 'RS256' });
  others = [await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer()];
});
afterAll(async () => {
  for (const b of brokers) await b.close();
  for (const i of [gh, ...(others ?? [])]) await i?.close();
  await redis?.destroy();
});

const policy = () => e2ePolicy({ github: gh, gitlab: others[0]!, k8s: others[1]!, spiffe: others[2]! });
let n = 0;
const proof = (sub: string) =>
  gh.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: gh.url, aud: AUD, jti: `rl-${++n}`, sub });

it('per client address: the request over the budget gets 429 with Retry-After, in the OAuth error format', async () => {
  const prefix = `rlip${Date.now()}:`;
  const b = await startBroker({ redisUrl: redis.url, policy: policy(), env: { LEASH_RATE_LIMIT_IP: '3', REDIS_PREFIX: prefix } });
  brokers.push(b);
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await postToken(b.url, { grant_type: 'nope' })).status);
  expect(statuses).toEqual([400, 400, 400]);
  const res = await postToken(b.url, { grant_type: 'nope' });
  expect(res.status).toBe(429);
  expect(res.body.error).toBe('rate_limited');
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(Number(res.headers.get('retry-after'))).toBeLessThanOrEqual(60);
});

it('per subject, counted in Redis: two API replicas share one budget; other subjects are unaffected', async () => {
  const prefix = `rlsub${Date.now()}:`;
  const env = { LEASH_RATE_LIMIT_SUBJECT: '4', REDIS_PREFIX: prefix };
  const a = await startBroker({ redisUrl: redis.url, policy: policy(), env });
  const b = await startBroker({ redisUrl: redis.url, policy: policy(), env, keysDir: a.keysDir });
  brokers.push(a, b);
  const sub = 'repo:octo-org/octo-repo:ref:refs/heads/main:rl';
  const results: number[] = [];
  for (let i = 0; i < 4; i++) results.push((await exchangeProof(i % 2 ? b.url : a.url, await proof(sub), { ttl: '60' })).status);
  expect(results.filter((s) => s === 200).length).toBe(3); // max_active_leases of gh-deploy is 3
  const limited = await exchangeProof(b.url, await proof(sub));
  expect(limited.status).toBe(429);
  expect(limited.body.error).toBe('rate_limited');
  const other = await exchangeProof(a.url, await proof('repo:octo-org/octo-repo:ref:refs/heads/main:other'));
  expect(other.status).toBe(200);
});
