import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, generateKeyPair } from 'jose';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy, AUD, type IssuerSet } from '../helpers/policies.ts';
import { createLeashVerifier, LeashVerifyError, type LeashVerifier } from '../../src/verify/index.ts';

const DEPLOY = 'https://deploy.acme.internal';

let redis: TestRedis;
let issuers: IssuerSet;
let broker: TestBroker;
let introspectToken: string;
let seq = 0;

beforeAll(async () => {
  redis = await startRedis();
  issuers = {
    github: await startFakeIssuer({ alg: 'RS256' }),
    gitlab: await startFakeIssuer(),
    k8s: await startFakeIssuer(),
    spiffe: await startFakeIssuer(),
  };
  broker = await startBroker({ policy: e2ePolicy(issuers), redisUrl: redis.url });
  introspectToken = await operatorToken('leash:introspect');
});
afterAll(async () => {
  await broker?.close();
  for (const i of Object.values(issuers ?? {})) await i.close();
  await redis?.destroy();
});

/** A workload token from a real exchange (rule gh-deploy); a fresh subject each, as the rule caps leases per subject. */
async function workloadToken(extra: Record<string, string> = {}): Promise<{ token: string; leaseId: string }> {
  const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, jti: `verify-${++seq}`, sub: `repo:octo-org/octo-repo:job-${seq}` });
  const res = await exchangeProof(broker.url, proof, extra);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, leaseId: res.body.lease_id };
}

/** An operator token from a real exchange (rule operators), audience the broker itself. */
async function operatorToken(scope: string): Promise<string> {
  const claims = { ...fixtureClaims('github-actions', 'push-main'), sub: 'repo:octo-org/ops:ref:refs/heads/main', repository: 'octo-org/ops', iss: issuers.github.url, aud: AUD, jti: `op-${++seq}` };
  const res = await exchangeProof(broker.url, await issuers.github.mint(claims), { scope, audience: broker.config.issuer });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token;
}

const verifierFor = (extra: Partial<Parameters<typeof createLeashVerifier>[0]> = {}): LeashVerifier =>
  createLeashVerifier({ issuer: broker.config.issuer, audience: DEPLOY, ...extra });

async function expectCode(p: Promise<unknown>, code: string, token?: string): Promise<LeashVerifyError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(LeashVerifyError);
  expect((err as LeashVerifyError).code).toBe(code);
  if (token) expect(String((err as Error).message)).not.toContain(token);
  return err as LeashVerifyError;
}

/** Signs claims with the broker's own active key, for tokens a real exchange never mints. */
async function signWithBrokerKey(payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const key = broker.deps.keys.active();
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header }).sign(key.privateKey);
}

const now = (): number => Math.floor(Date.now() / 1000);
const validPayload = () => ({ iss: broker.config.issuer, sub: 'repo:x', aud: DEPLOY, iat: now(), nbf: now(), exp: now() + 300, jti: 'crafted', scope: 'deploy:write' });

describe('createLeashVerifier: accepting', () => {
  it('accepts a real Leash token from a real exchange and returns its claims', async () => {
    const { token, leaseId } = await workloadToken({ task_id: 'run-7' });
    const claims = await verifierFor().verify(token, { scopes: ['deploy:write', 'artifacts:read'] });
    expect(claims).toMatchObject({ iss: broker.config.issuer, jti: leaseId, client_id: 'gh-deploy', task_id: 'run-7', scope: 'deploy:write artifacts:read' });
    expect(claims.sub).toMatch(/^repo:octo-org\/octo-repo:job-\d+$/);
  });

  it('accepts with introspection while the lease is active', async () => {
    const { token } = await workloadToken();
    await expect(verifierFor({ introspection: { token: introspectToken } }).verify(token)).resolves.toMatchObject({ client_id: 'gh-deploy' });
  });
});

describe('createLeashVerifier: refusing with a fixed code', () => {
  it('wrong audience', async () => {
    const { token } = await workloadToken({ audience: 'https://artifacts.acme.internal', scope: 'artifacts:read' });
    const err = await expectCode(verifierFor().verify(token), 'ERR_LEASH_TOKEN_INVALID', token);
    expect(err.status).toBe(401);
  });

  it('missing scope: ERR_LEASH_SCOPE naming what is missing, status 403', async () => {
    const { token } = await workloadToken({ scope: 'artifacts:read' });
    const err = await expectCode(verifierFor().verify(token, { scopes: ['deploy:write'] }), 'ERR_LEASH_SCOPE', token);
    expect(err.status).toBe(403);
    expect(err).toMatchObject({ missing: ['deploy:write'] });
  });

  it('a scope that is a prefix of a granted one does not count', async () => {
    const { token } = await workloadToken({ scope: 'deploy:write' });
    await expectCode(verifierFor().verify(token, { scopes: ['deploy'] }), 'ERR_LEASH_SCOPE');
  });

  it('forged: signed by another key under the broker kid', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT(validPayload()).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: broker.deps.keys.active().kid }).sign(privateKey);
    await expectCode(verifierFor().verify(forged), 'ERR_LEASH_TOKEN_INVALID', forged);
  });

  it('forged: a real token with its payload edited to add a scope', async () => {
    const { token } = await workloadToken({ scope: 'artifacts:read' });
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    payload.scope = 'artifacts:read deploy:write';
    const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    await expectCode(verifierFor().verify(tampered, { scopes: ['deploy:write'] }), 'ERR_LEASH_TOKEN_INVALID', tampered);
  });

  it('alg none and garbage', async () => {
    const none = `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${Buffer.from(JSON.stringify(validPayload())).toString('base64url')}.`;
    await expectCode(verifierFor().verify(none), 'ERR_LEASH_TOKEN_INVALID');
    await expectCode(verifierFor().verify('not-a-jwt'), 'ERR_LEASH_TOKEN_INVALID');
    await expectCode(verifierFor().verify(''), 'ERR_LEASH_TOKEN_INVALID');
  });

  it('right key but wrong typ (not an access token) or wrong issuer', async () => {
    await expectCode(verifierFor().verify(await signWithBrokerKey(validPayload(), { typ: 'JWT' })), 'ERR_LEASH_TOKEN_INVALID');
    const err = await expectCode(verifierFor().verify(await signWithBrokerKey({ ...validPayload(), iss: 'https://evil.example' })), 'ERR_LEASH_TOKEN_INVALID');
    expect(err).toMatchObject({ claim: 'iss' });
  });

  it('expired: ERR_LEASH_TOKEN_EXPIRED, beyond the clock tolerance', async () => {
    const expired = await signWithBrokerKey({ ...validPayload(), iat: now() - 600, nbf: now() - 600, exp: now() - 60 });
    await expectCode(verifierFor().verify(expired), 'ERR_LEASH_TOKEN_EXPIRED', expired);
  });

  it('expired: a real one-second token after it lapsed', async () => {
    const { token } = await workloadToken({ ttl: '1' });
    await new Promise((r) => setTimeout(r, 2100));
    await expectCode(verifierFor({ clockToleranceSeconds: 0 }).verify(token), 'ERR_LEASH_TOKEN_EXPIRED');
  });

  it('JWKS out of reach: ERR_LEASH_UNAVAILABLE (fail closed, 503)', async () => {
    const { token } = await workloadToken();
    const err = await expectCode(verifierFor({ jwksUri: 'http://127.0.0.1:9/jwks.json' }).verify(token), 'ERR_LEASH_UNAVAILABLE');
    expect(err.status).toBe(503);
  });

  it('bad options are a TypeError at construction', () => {
    expect(() => createLeashVerifier({ issuer: 'not a url', audience: DEPLOY })).toThrow(TypeError);
    expect(() => createLeashVerifier({ issuer: broker.config.issuer, audience: '' })).toThrow(TypeError);
  });
});

describe('revocation through introspection', () => {
  it('a token revoked at the broker (POST /revoke) is refused within cacheTtlMs', async () => {
    const ttl = 500;
    const verifier = verifierFor({ introspection: { token: introspectToken, cacheTtlMs: ttl } });
    const plain = verifierFor();
    const { token } = await workloadToken();
    await verifier.verify(token); // caches "active"

    const res = await fetch(`${broker.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(200);
    // Signature checks alone still pass: this is what introspection is for.
    await expect(plain.verify(token)).resolves.toBeTruthy();
    // Once the cached "active" answer is older than cacheTtlMs, the next check asks the broker again.
    await new Promise((r) => setTimeout(r, ttl + 50));
    const err = await verifier.verify(token).then(() => null, (e: LeashVerifyError) => e);
    expect(err?.code).toBe('ERR_LEASH_REVOKED');
  });

  it('an introspection token without leash:introspect makes verification fail closed', async () => {
    const { token } = await workloadToken();
    const { token: notOperator } = await workloadToken();
    await expectCode(verifierFor({ introspection: { token: notOperator, cacheTtlMs: 0 } }).verify(token), 'ERR_LEASH_UNAVAILABLE');
  });

  it('takes its introspection token from a function, as read from a file a sidecar renews (trailing newline and all)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leash-introspect-'));
    const file = join(dir, 'token');
    try {
      writeFileSync(file, `${introspectToken}\n`);
      const verifier = verifierFor({ introspection: { token: () => readFileSync(file, 'utf8'), cacheTtlMs: 0 } });
      const { token } = await workloadToken();
      await expect(verifier.verify(token)).resolves.toMatchObject({ sub: expect.any(String) });
      writeFileSync(file, 'not-a-live-token\n'); // renewed badly: fail closed, never "active"
      await expectCode(verifier.verify(token), 'ERR_LEASH_UNAVAILABLE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('concurrent checks of one token share one introspection request and the cached answer', async () => {
    const { token } = await workloadToken();
    let calls = 0;
    const verifier = verifierFor({ introspection: { token: () => (calls++, introspectToken), cacheTtlMs: 60_000 } });
    await Promise.all(Array.from({ length: 5 }, () => verifier.verify(token)));
    await verifier.verify(token);
    expect(calls).toBe(1);
  });
});
