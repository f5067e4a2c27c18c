import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, postToken, GRANT, ID_TOKEN, X509_TYPE, type TestBroker } from '../helpers/broker.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { e2ePolicy, AUD, type IssuerSet } from '../helpers/policies.ts';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import { waitFor } from '../helpers/wait.ts';

let env: E2E;
let redis: TestRedis;
let issuers: IssuerSet;
let broker: TestBroker;

beforeAll(async () => {
  env = await startE2E();
  ({ redis, issuers, broker } = env);
});
afterAll(async () => env?.close());

const ghClaims = (extra: Record<string, unknown> = {}) => ({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, ...extra });

async function verifyMinted(token: string, audience: string) {
  const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
  return jwtVerify(token, jwks, { issuer: broker.config.issuer, audience, typ: 'at+jwt' });
}

describe('happy paths: each CI/workload proof shape for a scoped JWT', () => {
  it('GitHub Actions: every RFC 9068 claim, verified against the broker JWKS, and the lease in Redis', async () => {
    const proof = await issuers.github.mint(ghClaims());
    const res = await exchangeProof(broker.url, proof, { scope: 'artifacts:read', audience: 'https://artifacts.acme.internal', ttl: '120', task_id: 'run-42' });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({ issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 120, scope: 'artifacts:read' });
    const { payload, protectedHeader } = await verifyMinted(res.body.access_token, 'https://artifacts.acme.internal');
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(payload).toMatchObject({
      iss: broker.config.issuer,
      sub: 'repo:octo-org/octo-repo:ref:refs/heads/main',
      aud: 'https://artifacts.acme.internal',
      scope: 'artifacts:read',
      client_id: 'gh-deploy',
      jti: res.body.lease_id,
      task_id: 'run-42',
      repo: 'octo-org/octo-repo',
      workflow: 'example-workflow',
    });
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(payload.nbf).toBe(payload.iat);
    const lease = await broker.deps.store.get(res.body.lease_id);
    expect(lease).toMatchObject({
      id: res.body.lease_id, kind: 'jwt', status: 'active', rule: 'gh-deploy', issuer: 'github',
      subject: 'repo:octo-org/octo-repo:ref:refs/heads/main', scopes: ['artifacts:read'],
      audiences: ['https://artifacts.acme.internal'], task_id: 'run-42', proof_iss: issuers.github.url,
      proof_jti: '8e4a6f0d-3c1b-4f7e-9a2d-5b6c7d8e9f01', expires_at: payload.exp, issued_at: payload.iat,
    });
  });

  it('no scope or audience asked: the full grant of the selected rule, default ttl', async () => {
    const proof = await issuers.github.mint(ghClaims({ jti: 'full-grant-1' }));
    const res = await exchangeProof(broker.url, proof, { requested_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    expect(res.status).toBe(200);
    expect(res.body.issued_token_type).toBe('urn:ietf:params:oauth:token-type:jwt');
    expect(res.body.scope).toBe('deploy:write artifacts:read');
    expect(res.body.expires_in).toBe(600);
    const { payload } = await verifyMinted(res.body.access_token, 'https://deploy.acme.internal');
    expect(payload.aud).toEqual(['https://deploy.acme.internal', 'https://artifacts.acme.internal']);
  });

  it('GitLab CI id_token', async () => {
    const proof = await issuers.gitlab.mint({ ...fixtureClaims('gitlab-ci', 'branch-main'), iss: issuers.gitlab.url, aud: AUD });
    const res = await exchangeProof(broker.url, proof);
    expect(res.status).toBe(200);
    const { payload } = await verifyMinted(res.body.access_token, 'https://artifacts.acme.internal');
    expect(payload).toMatchObject({ client_id: 'gl-build', scope: 'artifacts:read', sub: fixtureClaims('gitlab-ci', 'branch-main').sub });
  });

  it('Kubernetes service-account token, matched through a JSON Pointer and templated', async () => {
    const proof = await issuers.k8s.mint({ ...fixtureClaims('kubernetes-sa'), iss: issuers.k8s.url, aud: [AUD] });
    const res = await exchangeProof(broker.url, proof, { subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    expect(res.status).toBe(200);
    const { payload } = await verifyMinted(res.body.access_token, 'https://dns.acme.internal');
    expect(payload).toMatchObject({ sub: 'system:serviceaccount:kube-system:coredns', ns: 'kube-system', client_id: 'k8s-payments' });
  });

  it('SPIFFE JWT-SVID without jti (replay allowed for this issuer)', async () => {
    const claims = { ...fixtureClaims('spiffe-jwt-svid'), iss: issuers.spiffe.url, aud: [AUD] };
    const proof = await issuers.spiffe.mint(claims);
    const first = await exchangeProof(broker.url, proof, { scope: 'db:read' });
    const second = await exchangeProof(broker.url, proof, { scope: 'db:read' });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(first.body.lease_id).not.toBe(second.body.lease_id);
  });

  it('SPIFFE JWT-SVID as the spec allows it (no iss, no iat), trusted by its trust domain, single use', async () => {
    const claims: Record<string, unknown> = { ...fixtureClaims('spiffe-jwt-svid', 'es256-list-audience'), aud: [AUD] };
    const proof = await issuers.spiffe.mint(claims, { omit: ['iss', 'iat'] });
    const payload = JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString());
    expect(payload).not.toHaveProperty('iss');
    expect(payload).not.toHaveProperty('iat');
    const res = await exchangeProof(broker.url, proof, { scope: 'db:read' });
    expect(res.status).toBe(200);
    const lease = await broker.deps.store.get(res.body.lease_id);
    expect(lease).toMatchObject({ rule: 'spiffe-td-db', issuer: 'spiffe-td', proof_iss: 'spiffe://staging.example.com', subject: claims.sub });
    // single use (the default) without a jti: keyed on the token's hash
    const again = await exchangeProof(broker.url, proof, { scope: 'db:read' });
    expect(again.status).toBe(400);
    expect(again.body.error_description).toMatch(/already been exchanged/);
    // a SPIFFE ID of a trust domain the policy does not name finds no issuer
    const foreign = await issuers.spiffe.mint({ ...claims, sub: 'spiffe://evil.example.com/payments/web-fe' }, { omit: ['iss', 'iat'] });
    const refused = await exchangeProof(broker.url, foreign, { scope: 'db:read' });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_request');
  });
});

describe('LEASH_SIGNATURE_THREAD=off: proof signatures checked on the event loop', () => {
  it('issues for a good proof and refuses a forged one, as with the thread', async () => {
    const b = await startBroker({ redisUrl: redis.url, policy: e2ePolicy(issuers), env: { LEASH_SIGNATURE_THREAD: 'off' } });
    try {
      expect(b.config.signatureThread).toBe(false);
      const good = await exchangeProof(b.url, await issuers.github.mint(ghClaims({ jti: `on-loop-${Math.random()}` })));
      expect(good.status).toBe(200);
      const forged = await exchangeProof(b.url, await issuers.github.mint(ghClaims({ jti: `on-loop-${Math.random()}` }), { key: 'other' }));
      expect(forged.status).toBe(400);
      expect(forged.body.error_description).toMatch(/signature is invalid/);
    } finally {
      await b.close();
    }
  });
});

describe('a rule that lists no audiences', () => {
  it('grants tokens for Leash itself (aud = LEASH_ISSUER), never an empty aud; other audiences are refused', async () => {
    const own = await startFakeIssuer();
    const b = await startBroker({
      redisUrl: redis.url,
      policy: `issuers: [{ name: own, issuer: "${own.url}", audiences: ["${AUD}"] }]\nrules: [{ name: noaud, issuer: own, grant: { scopes: [a] } }]\n`,
    });
    try {
      const mint = (jti: string) => own.mint({ iss: own.url, sub: 'svc', aud: AUD, jti });
      const res = await exchangeProof(b.url, await mint('noaud-1'));
      expect(res.status).toBe(200);
      const payload = JSON.parse(Buffer.from(res.body.access_token.split('.')[1], 'base64url').toString());
      expect(payload.aud).toBe(b.config.issuer);
      const named = await exchangeProof(b.url, await mint('noaud-2'), { audience: b.config.issuer });
      expect(named.status).toBe(200);
      const foreign = await exchangeProof(b.url, await mint('noaud-3'), { audience: 'https://elsewhere.example' });
      expect(foreign.status).toBe(400);
      expect(foreign.body.error).toBe('invalid_target');
    } finally {
      await b.close();
      await own.close();
    }
  });
});

describe('refusals: the exact error code, and no lease written', () => {
  async function expectRefused(fields: Record<string, string | string[] | undefined>, code: string, status = 400) {
    const before = await broker.deps.store.countActive();
    const res = await postToken(broker.url, fields);
    expect(res.status).toBe(status);
    expect(res.body.error).toBe(code);
    expect(typeof res.body.error_description).toBe('string');
    expect(res.body).not.toHaveProperty('access_token');
    if (typeof fields.subject_token === 'string') expect(JSON.stringify(res.body)).not.toContain(fields.subject_token);
    expect(await broker.deps.store.countActive()).toBe(before);
    return res;
  }
  const base = async (claims: Record<string, unknown> = {}, opts = {}) => ({
    grant_type: GRANT,
    subject_token_type: ID_TOKEN,
    subject_token: await issuers.github.mint(ghClaims({ jti: `j-${Math.random()}`, ...claims }), opts),
  });

  it('alg none', async () => {
    await expectRefused({ ...(await base()), subject_token: issuers.github.mintUnsigned(ghClaims()) }, 'invalid_request');
  });
  it('HS256 signed with the issuer public key', async () => {
    await expectRefused({ ...(await base()), subject_token: issuers.github.mintHs256WithPublicKey(ghClaims()) }, 'invalid_request');
  });
  it('unknown kid', async () => expectRefused(await base({}, { kid: 'nope' }), 'invalid_request'));
  it('signature by another key', async () => expectRefused(await base({}, { key: 'other' }), 'invalid_request'));
  it('wrong iss (another trusted issuer name in iss)', async () => expectRefused(await base({ iss: issuers.gitlab.url }), 'invalid_request'));
  it('untrusted issuer', async () => {
    const rogue = await startFakeIssuer();
    try {
      await expectRefused({ ...(await base()), subject_token: await rogue.mint(ghClaims({ iss: rogue.url })) }, 'invalid_request');
    } finally {
      await rogue.close();
    }
  });
  it('wrong aud', async () => expectRefused(await base({ aud: 'https://elsewhere.example' }), 'invalid_request'));
  it('expired', async () => {
    const t = Math.floor(Date.now() / 1000);
    await expectRefused(await base({}, { times: { iat: t - 400, nbf: t - 400, exp: t - 100 } }), 'invalid_request');
  });
  it('nbf in the future', async () => {
    const t = Math.floor(Date.now() / 1000);
    await expectRefused(await base({}, { times: { iat: t, nbf: t + 600, exp: t + 900 } }), 'invalid_request');
  });
  it('proof older than max_proof_age', async () => {
    const t = Math.floor(Date.now() / 1000);
    await expectRefused(await base({}, { times: { iat: t - 3600, nbf: t - 3600, exp: t + 600 } }), 'invalid_request');
  });
  it('replayed proof', async () => {
    const fields = await base();
    expect((await postToken(broker.url, fields)).status).toBe(200);
    const res = await expectRefused(fields, 'invalid_request');
    expect(res.body.error_description).toMatch(/already been exchanged/);
  });
  it('no matching rule', async () => {
    const res = await expectRefused(await base({ repository: 'octo-org/other', sub: 'repo:octo-org/other:ref:refs/heads/main' }), 'invalid_request');
    expect(res.body.error_description).toMatch(/no policy rule/);
  });
  it('scope not granted', async () => expectRefused({ ...(await base()), scope: 'artifacts:read admin:all' }, 'invalid_scope'));
  it('audience not granted', async () => expectRefused({ ...(await base()), audience: 'https://evil.example' }, 'invalid_target'));
  it('resource not granted', async () => expectRefused({ ...(await base()), resource: 'https://evil.example' }, 'invalid_target'));
  it('TTL above max_ttl', async () => expectRefused({ ...(await base()), ttl: '3601' }, 'invalid_request'));
  it('TTL zero, negative, float', async () => {
    for (const ttl of ['0', '-5', '1.5', 'abc', '']) await expectRefused({ ...(await base()), ttl }, 'invalid_request');
  });
  it('wrong grant type', async () => expectRefused({ ...(await base()), grant_type: 'client_credentials' }, 'unsupported_grant_type'));
  it('missing parameters', async () => {
    const b = await base();
    await expectRefused({ ...b, subject_token: undefined }, 'invalid_request');
    await expectRefused({ ...b, subject_token_type: undefined }, 'invalid_request');
    await expectRefused({ ...b, grant_type: undefined }, 'invalid_request');
    await expectRefused({ ...b, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 'invalid_request');
  });
  it('actor_token (delegation) is refused until built', async () => expectRefused({ ...(await base()), actor_token: 'x', actor_token_type: ID_TOKEN }, 'invalid_request'));
  it('duplicated single-valued parameters', async () => expectRefused({ ...(await base()), scope: ['artifacts:read', 'deploy:write'] }, 'invalid_request'));
  it('malformed form body and wrong content type', async () => {
    const res = await fetch(`${broker.url}/token`, { method: 'POST', body: JSON.stringify(await base()), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe('invalid_request');
    const res2 = await fetch(`${broker.url}/token`, { method: 'POST', body: '%%%&&&==', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res2.status).toBe(400);
    expect((await res2.json()).error).toBe('invalid_request');
  });
  it('oversized body', async () => {
    const res = await fetch(`${broker.url}/token`, { method: 'POST', body: 'subject_token=' + 'a'.repeat(200_000), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toBe('invalid_request');
  });
  it('max_active_leases reached; the refused proof is not burnt', async () => {
    const claims = { repository: 'octo-org/octo-repo', sub: 'repo:octo-org/octo-repo:ref:refs/heads/main:limit-test', ref: 'refs/heads/main' };
    for (let n = 0; n < 3; n++) expect((await postToken(broker.url, await base(claims))).status).toBe(200);
    const fields = await base(claims);
    const res = await expectRefused(fields, 'invalid_request');
    expect(res.body.error_description).toMatch(/maximum of 3 active leases/);
  });
  it('a denial is audited with its reason and never the token', async () => {
    const fields = { ...(await base()), scope: 'root' };
    await postToken(broker.url, fields);
    const page = await broker.deps.audit.list({ type: 'exchange.denied', limit: 5 });
    const ev = page.events.find((e) => String(e.reason).includes('invalid_scope'));
    expect(ev).toBeDefined();
    expect(JSON.stringify(page)).not.toContain(fields.subject_token);
  });
});

describe('fail closed', () => {
  it('JWKS endpoint down with a cold cache: no credential', async () => {
    const cold = await startFakeIssuer({ alg: 'ES256' });
    const b = await startBroker({
      redisUrl: redis.url,
      policy: `issuers: [{ name: cold, issuer: "${cold.url}", audiences: ["${AUD}"] }]\nrules: [{ name: r, issuer: cold, grant: { scopes: [a] } }]\n`,
    });
    try {
      cold.setDown(true);
      const res = await exchangeProof(b.url, await cold.mint({ iss: cold.url, sub: 'x', aud: AUD, jti: 'cold-1' }));
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('temporarily_unavailable');
      expect(await b.deps.store.countActive()).toBe(0);
    } finally {
      await b.close();
      await cold.close();
    }
  });

  it('Redis down: 503 temporarily_unavailable and no token; back up: issuing resumes', async () => {
    const own = await startRedis({ persist: true });
    const b = await startBroker({ redisUrl: own.url, policy: e2ePolicy(issuers) });
    try {
      const warm = await exchangeProof(b.url, await issuers.github.mint(ghClaims({ jti: 'warm-1' })));
      expect(warm.status).toBe(200);
      await own.stop();
      const res = await exchangeProof(b.url, await issuers.github.mint(ghClaims({ jti: 'down-1' })));
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('temporarily_unavailable');
      expect(res.body.access_token).toBeUndefined();
      const ready = await fetch(`${b.url}/readyz`);
      expect(ready.status).toBe(503);
      await own.start();
      await waitFor('readyz once Redis is back', async () => (await fetch(`${b.url}/readyz`)).status === 200, 15_000, 100);
      const after = await exchangeProof(b.url, await issuers.github.mint(ghClaims({ jti: 'down-1' })));
      expect(after.status).toBe(200);
    } finally {
      await b.close();
      await own.destroy();
    }
  });
});

describe('discovery documents', () => {
  it('JWKS publishes the signing key; RFC 8414 metadata names the endpoints', async () => {
    const jwks = await (await fetch(`${broker.url}/.well-known/jwks.json`)).json();
    const proof = await issuers.github.mint(ghClaims({ jti: 'kid-check', sub: 'repo:octo-org/octo-repo:ref:refs/heads/main:kid' }));
    const res = await exchangeProof(broker.url, proof);
    const { kid } = decodeProtectedHeader(res.body.access_token);
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(kid);
    for (const k of jwks.keys) expect(k).not.toHaveProperty('d');
    const meta = await (await fetch(`${broker.url}/.well-known/oauth-authorization-server`)).json();
    expect(meta).toMatchObject({
      issuer: broker.config.issuer,
      token_endpoint: `${broker.config.issuer}/token`,
      introspection_endpoint: `${broker.config.issuer}/introspect`,
      revocation_endpoint: `${broker.config.issuer}/revoke`,
      jwks_uri: `${broker.config.issuer}/.well-known/jwks.json`,
      grant_types_supported: [GRANT],
      crl_uri: `${broker.config.issuer}/crl`,
    });
    expect(meta.requested_token_types_supported).toContain(X509_TYPE);
  });
  it('metadata names no certificates where no CA is loaded', async () => {
    const keysDir = mkdtempSync(join(tmpdir(), 'leash-no-ca-'));
    await generateSigningKey(keysDir);
    const gitlab = await startFakeIssuer();
    const own = await startRedis(); // not dev mode, which would make a dev CA
    const plain = await startBroker({ redisUrl: own.url, keysDir, policy: `issuers:\n  - { name: gl, issuer: "${gitlab.url}", audiences: ["${AUD}"] }\nrules:\n  - { name: r, issuer: gl, match: { sub: x }, grant: { scopes: [a:b] } }\n` });
    try {
      const meta = await (await fetch(`${plain.url}/.well-known/oauth-authorization-server`)).json();
      expect(meta).not.toHaveProperty('crl_uri');
      expect(meta.requested_token_types_supported).not.toContain(X509_TYPE);
      expect((await fetch(`${plain.url}/crl`)).status).toBe(404);
    } finally {
      await plain.close();
      await gitlab.close();
      await own.destroy();
      rmSync(keysDir, { recursive: true, force: true });
    }
  });
  it('healthz and readyz', async () => {
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
    const r = await fetch(`${broker.url}/readyz`);
    expect(r.status).toBe(200);
    expect((await r.json()).status).toBe('ready');
  });
});
