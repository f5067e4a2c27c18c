import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, decodeProtectedHeader, generateKeyPair } from 'jose';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { AUD } from '../helpers/policies.ts';
import {
  api, closeIssuers, holderRevoke, introspect, issue, lifecyclePolicy, operatorToken, sleep, startIssuers, uniq, waitFor,
  type Issued, type Issuers, type Reply,
} from './harness.ts';

/**
 * Leash's own endpoints (operator API, audit, introspection): no or bad token 401, a Leash token
 * without the scope 403, an expired or revoked operator token 401. Refused calls change nothing.
 */

let redis: TestRedis;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;
let reader: Issued;
let workload: Issued;
let target: Issued;
const bad: Record<string, string | undefined> = {};

beforeAll(async () => {
  redis = await startRedis();
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url });
  const iss = broker.config.issuer;
  op = await operatorToken(broker.url, issuers, iss);
  reader = await issue(broker.url, issuers.github, 'repo:octo-org/reader:bob', { audience: iss });
  workload = await issue(broker.url, issuers.github, 'repo:octo-org/app:auth', { task_id: 'auth-task' });
  target = await issue(broker.url, issuers.github, 'repo:octo-org/app:target');
  // A token shaped like the operator's, signed by a key Leash never had (same kid in the header).
  const { privateKey } = await generateKeyPair('ES256');
  const forged = await new SignJWT({ scope: 'leash:admin leash:introspect', client_id: 'operators' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: decodeProtectedHeader(op.token).kid! })
    .setIssuer(iss).setAudience(iss).setSubject('repo:octo-org/ops:mallory').setJti(op.lease_id)
    .setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const expiring = await operatorToken(broker.url, issuers, iss, { who: 'short', ttl: '1' });
  const revoked = await operatorToken(broker.url, issuers, iss, { who: 'leaver' });
  expect((await holderRevoke(broker.url, revoked.token)).status).toBe(200);
  const exp = (await broker.deps.store.get(expiring.lease_id))!.expires_at;
  await sleep(Math.max(0, exp * 1000 - Date.now()) + 50);
  Object.assign(bad, {
    'no token': undefined,
    'not a JWT': 'not-a-token',
    'a workload proof (not a Leash token)': await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: 'repo:octo-org/ops:alice', jti: uniq() }),
    'a forged Leash-shaped token': forged,
    'a Leash token for another audience': workload.token,
    'an expired operator token': expiring.token,
    'a revoked operator token': revoked.token,
  });
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await redis?.destroy();
});

type Call = (bearer: string | undefined) => Promise<Reply>;
const endpoints: Record<string, { call: Call; scope: string; readerOk: boolean }> = {
  'GET /v1/leases': { call: (b) => api(broker.url, 'GET', '/v1/leases?limit=5', b), scope: 'leash:leases:read', readerOk: true },
  'GET /v1/leases/{id}': { call: (b) => api(broker.url, 'GET', `/v1/leases/${target.lease_id}`, b), scope: 'leash:leases:read', readerOk: true },
  'POST /v1/leases/{id}/revoke': { call: (b) => api(broker.url, 'POST', `/v1/leases/${target.lease_id}/revoke`, b, { reason: 'x' }), scope: 'leash:leases:revoke', readerOk: false },
  'POST /v1/leases/revoke': { call: (b) => api(broker.url, 'POST', '/v1/leases/revoke', b, { subject: 'repo:octo-org/app:target' }), scope: 'leash:leases:revoke', readerOk: false },
  'GET /v1/audit': { call: (b) => api(broker.url, 'GET', '/v1/audit?limit=5', b), scope: 'leash:audit:read', readerOk: false },
  'POST /introspect': { call: (b) => introspect(broker.url, b, target.token), scope: 'leash:introspect', readerOk: false },
};

describe.each(Object.entries(endpoints))('%s', (_name, { call, scope, readerOk }) => {
  it('refuses missing, foreign, forged, wrong-audience, expired and revoked tokens with 401', async () => {
    for (const [what, token] of Object.entries(bad)) {
      const r = await call(token);
      expect({ what, status: r.status, error: r.body?.error }).toEqual({ what, status: 401, error: 'invalid_token' });
      if (token) expect(JSON.stringify(r.body)).not.toContain(token);
    }
  });

  it(`answers a Leash token without ${scope} with 403, and ${readerOk ? 'lets the reader in' : 'keeps the reader out'}`, async () => {
    const r = await call(reader.token);
    if (readerOk) expect(r.status).toBe(200);
    else expect({ status: r.status, error: r.body?.error }).toEqual({ status: 403, error: 'insufficient_scope' });
  });
});

it('nothing refused above changed the target lease; the operator token still works', async () => {
  expect((await broker.deps.store.get(target.lease_id))!.status).toBe('active');
  expect((await introspect(broker.url, op.token, target.token)).body).toMatchObject({ active: true });
  const r = await api(broker.url, 'POST', `/v1/leases/${target.lease_id}/revoke`, op.token, { reason: 'finally' });
  expect(r.body).toMatchObject({ status: 'revoked', revoked_by: 'repo:octo-org/ops:alice' });
});

it('an operator token is refused from the request after its own revocation', async () => {
  const t = await operatorToken(broker.url, issuers, broker.config.issuer, { who: 'carol' });
  expect((await api(broker.url, 'GET', '/v1/leases?limit=1', t.token)).status).toBe(200);
  const res = await api(broker.url, 'POST', `/v1/leases/${t.lease_id}/revoke`, op.token, { reason: 'offboarded' });
  expect(res.status).toBe(200);
  expect((await api(broker.url, 'GET', '/v1/leases?limit=1', t.token)).status).toBe(401);
  expect((await introspect(broker.url, t.token, target.token)).status).toBe(401);
});

it('task completion: no token 401, a token of another task 403, a live token of the task 200', async () => {
  const other = await issue(broker.url, issuers.github, 'repo:octo-org/app:other-task', { task_id: 'other-task' });
  expect((await api(broker.url, 'POST', '/v1/tasks/auth-task/complete')).status).toBe(401);
  expect((await api(broker.url, 'POST', '/v1/tasks/auth-task/complete', bad['a forged Leash-shaped token'])).status).toBe(401);
  expect((await api(broker.url, 'POST', '/v1/tasks/auth-task/complete', other.token)).status).toBe(403);
  expect((await api(broker.url, 'POST', '/v1/tasks/auth-task/complete', reader.token)).status).toBe(403);
  expect((await broker.deps.store.get(workload.lease_id))!.status).toBe('active');
  const ok = await api(broker.url, 'POST', '/v1/tasks/auth-task/complete', workload.token);
  expect(ok.body).toMatchObject({ revoked: 1, lease_ids: [workload.lease_id] });
  await waitFor('the task lease to end', async () => (await broker.deps.store.get(workload.lease_id))?.ended_at != null);
});
