import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy, AUD, type IssuerSet } from '../helpers/policies.ts';
import { createLeashVerifier } from '../../src/verify/index.ts';
import { createResourceServer } from '../../examples/resource-server.ts';
import type { Hono } from 'hono';

let redis: TestRedis;
let issuers: IssuerSet;
let broker: TestBroker;
let app: Hono;
let seq = 0;

beforeAll(async () => {
  redis = await startRedis();
  issuers = { github: await startFakeIssuer(), gitlab: await startFakeIssuer(), k8s: await startFakeIssuer(), spiffe: await startFakeIssuer() };
  broker = await startBroker({ policy: e2ePolicy(issuers), redisUrl: redis.url });
  const introspect = await exchange({ sub: 'repo:octo-org/ops:ref:refs/heads/main', repository: 'octo-org/ops' }, { scope: 'leash:introspect', audience: broker.config.issuer });
  const verifier = createLeashVerifier({ issuer: broker.config.issuer, audience: 'https://deploy.acme.internal', introspection: { token: introspect.access_token, cacheTtlMs: 0 } });
  app = createResourceServer(verifier);
});
afterAll(async () => {
  await broker?.close();
  for (const i of Object.values(issuers ?? {})) await i.close();
  await redis?.destroy();
});

async function exchange(claims: Record<string, unknown> = {}, extra: Record<string, string> = {}) {
  const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, jti: `rs-${++seq}`, sub: `repo:octo-org/octo-repo:job-${seq}`, ...claims });
  const res = await exchangeProof(broker.url, proof, extra);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { access_token: string; lease_id: string };
}

const getDeploy = (authorization?: string) => app.request('/deploy', { headers: authorization ? { authorization } : {} });

describe('examples/resource-server.ts behind leashAuth', () => {
  it('serves GET /deploy to a token with deploy:write and exposes the claims', async () => {
    const t = await exchange({}, { task_id: 'run-9' });
    const res = await getDeploy(`Bearer ${t.access_token}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ deploying: true, for: expect.stringMatching(/^repo:octo-org\/octo-repo:job-/), lease_id: t.lease_id, task_id: 'run-9' });
  });

  it('no token: 401 with a bare Bearer challenge (RFC 6750 section 3.1)', async () => {
    const res = await getDeploy();
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="leash"');
    expect(await res.json()).toMatchObject({ error: 'invalid_token' });
  });

  it('garbage or malformed header: 401 invalid_token', async () => {
    for (const h of ['Bearer nope', 'Basic abc', 'Bearer']) {
      const res = await getDeploy(h);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="leash", error="invalid_token"/);
    }
  });

  it('token without deploy:write: 403 insufficient_scope naming the scope', async () => {
    const t = await exchange({}, { scope: 'artifacts:read', audience: 'https://deploy.acme.internal' });
    const res = await getDeploy(`Bearer ${t.access_token}`);
    expect(res.status).toBe(403);
    const challenge = res.headers.get('www-authenticate');
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="deploy:write"');
    const body = await res.text();
    expect(body).not.toContain(t.access_token);
  });

  it('revoked token: 401 at once (cache TTL 0)', async () => {
    const t = await exchange();
    expect((await getDeploy(`Bearer ${t.access_token}`)).status).toBe(200);
    await fetch(`${broker.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: t.access_token }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const res = await getDeploy(`Bearer ${t.access_token}`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('Leash out of reach: 503 with Retry-After, fail closed', async () => {
    const t = await exchange();
    const unreachable = createResourceServer(createLeashVerifier({ issuer: broker.config.issuer, audience: 'https://deploy.acme.internal', jwksUri: 'http://127.0.0.1:9/jwks.json' }));
    const res = await unreachable.request('/deploy', { headers: { authorization: `Bearer ${t.access_token}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' });
  });
});
