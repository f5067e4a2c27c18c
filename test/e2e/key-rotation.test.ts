import { cpSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, testKeysDir, type TestBroker } from '../helpers/broker.ts';
import { AUD, e2ePolicy } from '../helpers/policies.ts';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { runCli } from '../cli/run-cli.ts';

let redis: TestRedis;
let gh: FakeIssuer;
let others: FakeIssuer[];
let broker: TestBroker;
let keysDir: string;

beforeAll(async () => {
  redis = await startRedis();
  gh = await startFakeIssuer({ alg: 'RS256' });
  others = [await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer()];
  // A private copy of the keys: rotation writes into it.
  keysDir = mkdtempSync(join(tmpdir(), 'leash-rotate-'));
  cpSync(await testKeysDir(), keysDir, { recursive: true });
  broker = await startBroker({ redisUrl: redis.url, keysDir, policy: e2ePolicy({ github: gh, gitlab: others[0]!, k8s: others[1]!, spiffe: others[2]! }) });
});
afterAll(async () => {
  await broker?.close();
  for (const i of [gh, ...(others ?? [])]) await i?.close();
  await redis?.destroy();
  rmSync(keysDir, { recursive: true, force: true });
});

let n = 0;
const token = async () => {
  const proof = await gh.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: gh.url, aud: AUD, jti: `rot-${++n}`, sub: `repo:octo-org/octo-repo:ref:refs/heads/main:rot-${n}` });
  const res = await exchangeProof(broker.url, proof, { audience: 'https://deploy.acme.internal', scope: 'deploy:write' });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
};

async function operatorToken(): Promise<string> {
  const proof = await gh.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: gh.url, aud: AUD, jti: `op-${++n}`, sub: 'repo:octo-org/ops:ref:refs/heads/main' });
  return (await exchangeProof(broker.url, proof, { audience: broker.config.issuer })).body.access_token;
}

async function introspect(op: string, t: string): Promise<boolean> {
  const res = await fetch(`${broker.url}/introspect`, { method: 'POST', headers: { authorization: `Bearer ${op}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t }) });
  return (await res.json()).active;
}

it('rotation: the new key signs, the old key stays published and its tokens keep verifying', async () => {
  const before = await token();
  const oldKid = decodeProtectedHeader(before).kid!;
  const op = await operatorToken();

  const newKid = await generateSigningKey(keysDir);
  // The newest file becomes active; make "newest" unambiguous even within one filesystem tick.
  const future = new Date(Date.now() + 5_000);
  utimesSync(join(keysDir, 'jwt', `${newKid}.pem`), future, future);
  broker.deps.keys.reload(); // what SIGHUP does in main.ts

  const after = await token();
  expect(decodeProtectedHeader(after).kid).toBe(newKid);
  expect(newKid).not.toBe(oldKid);

  const jwks = await (await fetch(`${broker.url}/.well-known/jwks.json`)).json();
  expect(jwks.keys.map((k: { kid: string }) => k.kid).sort()).toEqual([oldKid, newKid].sort());

  const remote = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
  for (const t of [before, after]) {
    const { payload } = await jwtVerify(t, remote, { issuer: broker.config.issuer, audience: 'https://deploy.acme.internal' });
    expect(payload.scope).toBe('deploy:write');
  }
  // Tokens of both keys stay live for Leash itself (introspection uses the same key set).
  expect(await introspect(op, before)).toBe(true);
  expect(await introspect(op, after)).toBe(true);
});

it('a bad key file at reload keeps the loaded keys in force', async () => {
  const { writeFileSync } = await import('node:fs');
  const active = broker.deps.keys.active().kid;
  writeFileSync(join(keysDir, 'jwt', 'broken.pem'), 'not a key');
  expect(() => broker.deps.keys.reload()).toThrow(expect.objectContaining({ code: 'ERR_KEYS', file: join(keysDir, 'jwt', 'broken.pem') }));
  expect(broker.deps.keys.active().kid).toBe(active);
  expect((await fetch(`${broker.url}/.well-known/jwks.json`)).status).toBe(200);
  rmSync(join(keysDir, 'jwt', 'broken.pem'));
});

it('pinned rotation: prune keeps the old key while a token it signed may be live; after a reload the token still verifies', { timeout: 60_000 }, async () => {
  // Two replicas over one keys directory and one Redis: one still pinned to the old key, one on the new.
  const dir = mkdtempSync(join(tmpdir(), 'leash-pinned-'));
  cpSync(await testKeysDir(), dir, { recursive: true });
  const oldKid = readdirSync(join(dir, 'jwt'))[0]!.replace(/\.pem$/, '');
  const newKid = await generateSigningKey(dir);
  // The new key's file appeared two hours ago (copied to every replica ahead of the pin's switch).
  const ago = (s: number): Date => new Date(Date.now() - s * 1000);
  utimesSync(join(dir, 'jwt', `${oldKid}.pem`), ago(3 * 3600), ago(3 * 3600));
  utimesSync(join(dir, 'jwt', `${newKid}.pem`), ago(2 * 3600), ago(2 * 3600));
  const shared = { LEASH_ISSUER: 'http://leash-pinned.test', REDIS_PREFIX: `pin${n}:` };
  const policy = e2ePolicy({ github: gh, gitlab: others[0]!, k8s: others[1]!, spiffe: others[2]! });
  const pinned = await startBroker({ redisUrl: redis.url, keysDir: dir, policy, env: { ...shared, LEASH_SIGNING_KID: oldKid } });
  const fresh = await startBroker({ redisUrl: redis.url, keysDir: dir, policy, env: shared });
  try {
    expect(fresh.deps.keys.active().kid).toBe(newKid);
    // A leash:admin token the pinned replica signs with the old key, just now.
    const proof = await gh.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: gh.url, aud: AUD, jti: `pin-${++n}`, sub: 'repo:octo-org/ops:ref:refs/heads/main' });
    const res = await exchangeProof(pinned.url, proof, { audience: shared.LEASH_ISSUER });
    expect(res.status).toBe(200);
    const t = res.body.access_token as string;
    expect(decodeProtectedHeader(t).kid).toBe(oldKid);

    const prune = await runCli(['keys', 'prune', '--dir', dir, '--older-than', '1h', '--policy', fresh.policyPath, '--json'], {
      env: { REDIS_URL: redis.url, REDIS_PREFIX: shared.REDIS_PREFIX, LEASH_ISSUER: shared.LEASH_ISSUER },
    });
    fresh.deps.keys.reload(); // what SIGHUP does in main.ts
    const leases = await fetch(`${fresh.url}/v1/leases`, { headers: { authorization: `Bearer ${t}` } });
    expect(leases.status).toBe(200);
    const jwks = await (await fetch(`${fresh.url}/.well-known/jwks.json`)).json();
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(oldKid);

    expect(prune.code).toBe(0);
    const out = JSON.parse(prune.stdout);
    expect(out.removed).toEqual([]);
    expect(out.kept).toEqual(expect.arrayContaining([
      expect.objectContaining({ kid: oldKid, reason: 'tokens_live' }),
      expect.objectContaining({ kid: newKid, reason: 'active' }),
    ]));
  } finally {
    await pinned.close();
    await fresh.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
