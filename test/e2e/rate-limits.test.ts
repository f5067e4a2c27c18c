import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

// A Kubernetes subject: its rule (k8s-payments) has no lease limit, so only budgets refuse.
const k8sSub = 'system:serviceaccount:kube-system:coredns';
const k8sProof = () =>
  others[1]!.mint({ ...fixtureClaims('kubernetes-sa'), iss: others[1]!.url, aud: [AUD], jti: `rl-k8s-${++n}` });

describe.each([
  ['Redis', () => redis.url],
  ['memory (dev mode)', () => undefined],
])('subject budget, %s', (_name, redisUrl) => {
  const broker = async (env: Record<string, string>) => {
    const url = redisUrl();
    const b = await startBroker({ ...(url ? { redisUrl: url } : {}), policy: policy(), env: { REDIS_PREFIX: `rlb${++n}:`, ...env } });
    brokers.push(b);
    return b;
  };

  it('replays of a leaked, used proof do not lock its subject out, and still use up their address budget', async () => {
    const b = await broker({ LEASH_RATE_LIMIT_SUBJECT: '5', LEASH_RATE_LIMIT_IP: '8' });
    const used = await k8sProof();
    expect((await exchangeProof(b.url, used)).status).toBe(200);
    for (let i = 0; i < 6; i++) {
      const replay = await exchangeProof(b.url, used);
      expect(replay.status).toBe(400);
      expect(replay.body.error).toBe('invalid_request');
    }
    const fresh = await exchangeProof(b.url, await k8sProof());
    expect(fresh.status).toBe(200);
    expect(fresh.body.access_token).toEqual(expect.any(String));
    // 8 requests from this address so far, the 6 replays among them: the next is over its budget,
    // whatever it holds (a malformed request never reaches the subject's budget).
    const over = await postToken(b.url, { grant_type: 'nope' });
    expect(over.status).toBe(429);
    expect(over.body.error).toBe('rate_limited');
  });

  it('a concurrent burst of fresh valid proofs beyond the subject budget is refused with 429', async () => {
    const b = await broker({ LEASH_RATE_LIMIT_SUBJECT: '5' });
    const proofs = await Promise.all(Array.from({ length: 9 }, () => k8sProof()));
    const results = await Promise.all(proofs.map((p) => exchangeProof(b.url, p)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(5);
    const limited = results.filter((r) => r.status !== 200);
    expect(limited).toHaveLength(4);
    for (const r of limited) {
      expect(r.status).toBe(429);
      expect(r.body.error).toBe('rate_limited');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    }
    // A proof refused for the budget was not used up: it is refused again for the budget, not as a replay.
    const again = await exchangeProof(b.url, proofs[results.findIndex((r) => r.status === 429)]!);
    expect(again.status).toBe(429);
    // Another subject has its own budget.
    expect((await exchangeProof(b.url, await proof('repo:octo-org/octo-repo:ref:refs/heads/main:burst'))).status).toBe(200);
  });
});
