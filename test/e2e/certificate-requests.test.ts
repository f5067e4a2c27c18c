/**
 * Certificate requests that a rule or the CA cannot serve: a key type the first rule refuses falls
 * through to a later one, CSRs in shapes openssl writes, and a CA that ends before the certificate
 * would, or has ended. Real broker over HTTP on real Redis, with a CA made by openssl.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { exchangeProof, startBroker, X509_TYPE, type TestBroker } from '../helpers/broker.ts';
import { fixtureClaims, startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { makeCsr, openssl } from '../helpers/csr.ts';
import { opensslCa } from '../helpers/openssl-ca.ts';
import { AUD, svidRule } from '../helpers/policies.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'leash-cert-requests-'));
const keysDir = join(dir, 'keys');
let redis: TestRedis;
let github: FakeIssuer;
let broker: TestBroker;
/** Moves the broker's clock forward; only the last test uses it. */
let offsetMs = 0;
let seq = 0;

// Two rules for the same job: the first takes EC keys only, the second RSA too. A CA valid one day.
const policy = (url: string): string => `
issuers:
  - { name: github, issuer: "${url}", audiences: ["${AUD}"], max_proof_age: 10m }
rules:${svidRule('ec-only', { keyTypes: ['ec-p256'], maxTtl: '72h' })}${svidRule('rsa-too', { keyTypes: ['ec-p256', 'rsa-2048'], maxTtl: '72h' })}
`;

beforeAll(async () => {
  await generateSigningKey(keysDir);
  opensslCa(keysDir, join(dir, 'ca-work'), { days: 1 });
  redis = await startRedis();
  github = await startFakeIssuer({ alg: 'RS256' });
  broker = await startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), now: () => Date.now() + offsetMs, env: { LEASH_METRICS_PUBLIC: 'true' } });
});
afterAll(async () => {
  await broker?.close();
  await github?.close();
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

async function requestCert(csr: string, extra: Record<string, string> = {}) {
  const nowS = Math.floor((Date.now() + offsetMs) / 1000);
  const proof = await github.mint(
    { ...fixtureClaims('github-actions', 'push-main'), iss: github.url, aud: AUD, jti: `cr-${++seq}`, sub: `repo:octo-org/octo-repo:cr-${seq}` },
    { times: { iat: nowS, exp: nowS + 300 } },
  );
  return exchangeProof(broker.url, proof, { requested_token_type: X509_TYPE, csr, ...extra });
}

const activeLeases = (): Promise<number> => broker.deps.store.countActive();

describe('selection: the CSR is part of what a rule must grant', () => {
  it('an RSA key the first rule refuses is issued under the next rule that takes it', async () => {
    const res = await requestCert((await makeCsr({ keyType: 'rsa-2048' })).csrPem);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await broker.deps.store.get(res.body.lease_id))?.rule).toBe('rsa-too');

    const ec = await requestCert((await makeCsr({ keyType: 'ec-p256' })).csrPem);
    expect((await broker.deps.store.get(ec.body.lease_id))?.rule).toBe('ec-only');
  });

  it('a key no rule takes is refused with the first rule\'s reason, and nothing is leased', async () => {
    const before = await activeLeases();
    const res = await requestCert((await makeCsr({ keyType: 'ed25519' })).csrPem);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: 'csr key type ed25519 is not allowed by the rule (allowed: ec-p256)' });
    expect(await activeLeases()).toBe(before);
  });
});

describe('POST /revoke and certificates', () => {
  it('a certificate is no authority to revoke: 200 as RFC 7009 says for any token, and its lease stays active', async () => {
    const res = await requestCert((await makeCsr({ keyType: 'ec-p256' })).csrPem);
    expect(res.status).toBe(200);
    const revoke = await fetch(`${broker.url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: res.body.access_token }) });
    expect(revoke.status).toBe(200);
    expect((await broker.deps.store.get(res.body.lease_id))?.status).toBe('active');
  });
});

describe('CSRs as openssl writes them', () => {
  it('a PEM with openssl\'s text dump before it (openssl req -text) is read', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const withText = openssl(['req', '-text'], csrPem).stdout;
    expect(withText).toMatch(/^Certificate Request:/);
    const res = await requestCert(withText);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it('two requests in one csr are refused', async () => {
    const a = (await makeCsr({ keyType: 'ec-p256' })).csrPem;
    const b = (await makeCsr({ keyType: 'ec-p256' })).csrPem;
    const res = await requestCert(a + b);
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: 'csr holds more than one PEM certificate request' });
  });

  it('a P-256 key with explicit curve parameters is refused (RFC 5480 requires a named curve)', async () => {
    const key = join(dir, 'explicit.key');
    expect(openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-param_enc', 'explicit', '-out', key]).status).toBe(0);
    const csr = openssl(['req', '-new', '-key', key, '-subj', '/']);
    expect(csr.status, csr.stderr).toBe(0);
    const before = await activeLeases();
    const res = await requestCert(csr.stdout);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toContain('explicit EC parameters');
    expect(await activeLeases()).toBe(before);
  });
});

describe('a CA that ends before the certificate would', () => {
  it('a ttl past the CA\'s notAfter is refused with the longest ttl it can serve; nothing is leased', async () => {
    const caEnds = Date.parse(new X509Certificate(broker.deps.ca!.chainPem[0]!).validTo) / 1000;
    // What an operator alerts on before it comes.
    const scraped = await (await fetch(`${broker.url}/metrics`)).text();
    expect(scraped).toContain(`leash_ca_expiry_timestamp_seconds ${caEnds}\n`);
    const before = await activeLeases();
    const res = await requestCert((await makeCsr({ keyType: 'ec-p256' })).csrPem, { ttl: String(48 * 3600) });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    const most = Number(/ask for a ttl of at most (\d+)s/.exec(res.body.error_description)?.[1]);
    expect(Math.abs(most - (caEnds - Math.floor(Date.now() / 1000)))).toBeLessThanOrEqual(2);
    expect(res.body.error_description).toContain(`expires at ${new Date(caEnds * 1000).toISOString()}`);
    expect(await activeLeases()).toBe(before);

    const shorter = await requestCert((await makeCsr({ keyType: 'ec-p256' })).csrPem, { ttl: String(most - 60) });
    expect(shorter.status, JSON.stringify(shorter.body)).toBe(200);
  });

  it('once the CA has expired, /readyz names it (still ready: JWTs are issued) and certificate exchanges answer 500 with nothing leased', async () => {
    const ready = await fetch(`${broker.url}/readyz`);
    expect(ready.status).toBe(200);
    expect((await ready.json()).checks.ca).toMatch(/^loaded, expires at /);

    offsetMs = 2 * 86_400_000;
    const after = await fetch(`${broker.url}/readyz`);
    expect(after.status).toBe(200);
    expect((await after.json()).checks.ca).toMatch(/^expired at .+: certificate exchanges fail until keys\/ca\/ is renewed and the broker restarted$/);

    // Counted as records of any status: with the clock two days on, the worker is expiring the rest.
    const records = async (): Promise<number> => (await broker.deps.store.list({}, { limit: 1000 })).leases.length;
    const before = await records();
    const res = await requestCert((await makeCsr({ keyType: 'ec-p256' })).csrPem, { ttl: '60' });
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('server_error');
    expect(res.body.error_description).toMatch(/^the CA's certificate chain expired at .+: no certificate can be issued until it is renewed$/);
    expect(await records()).toBe(before);
  });
});
