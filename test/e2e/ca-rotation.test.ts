/**
 * Rotating the issuing CA: the old CA's folder moves to keys/ca/retired/, and its certificates,
 * which name GET /crl/<its key id> as their CRL distribution point, keep a CRL signed by it until
 * they expire. Two brokers in turn on one real Redis, CAs made by openssl, CRLs judged by openssl.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { exchangeProof, startBroker, X509_TYPE, type TestBroker } from '../helpers/broker.ts';
import { fixtureClaims, startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { makeCsr, openssl } from '../helpers/csr.ts';
import { opensslCa } from '../helpers/openssl-ca.ts';
import { AUD, svidRule } from '../helpers/policies.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'leash-ca-rotation-'));
const keysDir = join(dir, 'keys');
let redis: TestRedis;
let github: FakeIssuer;
let seq = 0;

const policy = (url: string): string => `
issuers:
  - { name: github, issuer: "${url}", audiences: ["${AUD}"], max_proof_age: 10m }
rules:
  - name: operators
    issuer: github
    match: { sub: "repo:octo-org/ops:*" }
    grant: { scopes: [leash:admin], audiences: ["\${LEASH_ISSUER}"], ttl: 10m }${svidRule('mtls')}
`;

beforeAll(async () => {
  await generateSigningKey(keysDir);
  redis = await startRedis();
  github = await startFakeIssuer({ alg: 'RS256' });
});
afterAll(async () => {
  await github?.close();
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const proof = (sub: string): Promise<string> =>
  github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: github.url, aud: AUD, jti: `rot-${++seq}`, sub });

async function certificate(broker: TestBroker): Promise<{ pem: string; leaseId: string }> {
  const res = await exchangeProof(broker.url, await proof(`repo:octo-org/octo-repo:rot-${seq}`), { requested_token_type: X509_TYPE, csr: (await makeCsr({ keyType: 'ec-p256' })).csrPem });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { pem: res.body.access_token, leaseId: res.body.lease_id };
}

async function fetchCrl(broker: TestBroker, path: string): Promise<{ status: number; file: string }> {
  const res = await fetch(`${broker.url}${path}`);
  const file = join(dir, `crl-${++seq}.der`);
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  return { status: res.status, file };
}

/** openssl verify with CRL checking against the given CA files (DER CRL turned to PEM). */
function verifyWithCrl(leafPem: string, root: string, intermediate: string, crlDer: string): string {
  const leaf = join(dir, `leaf-${++seq}.pem`);
  const crl = join(dir, `crl-${seq}.pem`);
  writeFileSync(leaf, leafPem);
  expect(openssl(['crl', '-inform', 'DER', '-in', crlDer, '-out', crl]).status).toBe(0);
  const r = openssl(['verify', '-crl_check', '-CAfile', root, '-untrusted', intermediate, '-CRLfile', crl, leaf]);
  return r.stdout + r.stderr;
}

it('the old CA keeps signing a CRL for its certificates at the URL they name, revoked ones listed', async () => {
  opensslCa(keysDir, join(dir, 'ca1-work'));
  const old = join(dir, 'ca1');
  mkdirSync(old);
  cpSync(join(keysDir, 'ca'), old, { recursive: true });

  let broker = await startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), env: { REDIS_PREFIX: 'rotation:' } });
  const oldKeyId = broker.deps.ca!.keyIdHex;
  const revoked = await certificate(broker);
  const kept = await certificate(broker);
  const op = (await exchangeProof(broker.url, await proof('repo:octo-org/ops:alice'), { audience: broker.config.issuer })).body.access_token as string;
  const res = await fetch(`${broker.url}/v1/leases/${revoked.leaseId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${op}` }, body: '{}' });
  expect(res.status).toBe(200);
  // Its CRL entry is written by the worker's effects.
  for (let i = 0; !verifyWithCrl(revoked.pem, join(old, 'root.pem'), join(old, 'ca.pem'), (await fetchCrl(broker, '/crl')).file).includes('certificate revoked'); i++) {
    if (i > 100) throw new Error('the revoked certificate never reached the CRL');
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(openssl(['x509', '-noout', '-text'], revoked.pem).stdout).toContain(`URI:${broker.config.issuer}/crl/${oldKeyId}\n`);
  await broker.close();

  // The rotation: the old CA's files go to ca/retired/<name>/, a new CA (and root) takes its place.
  mkdirSync(join(keysDir, 'ca', 'retired', 'ca1'), { recursive: true });
  for (const f of ['ca.pem', 'ca.key.pem']) renameSync(join(keysDir, 'ca', f), join(keysDir, 'ca', 'retired', 'ca1', f));
  opensslCa(keysDir, join(dir, 'ca2-work'));
  broker = await startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), env: { REDIS_PREFIX: 'rotation:' } });
  try {
    const newKeyId = broker.deps.ca!.keyIdHex;
    expect(newKeyId).not.toBe(oldKeyId);

    const oldCrl = await fetchCrl(broker, `/crl/${oldKeyId}`);
    expect(oldCrl.status).toBe(200);
    expect(verifyWithCrl(revoked.pem, join(old, 'root.pem'), join(old, 'ca.pem'), oldCrl.file)).toContain('certificate revoked');
    expect(verifyWithCrl(kept.pem, join(old, 'root.pem'), join(old, 'ca.pem'), oldCrl.file)).toContain(': OK');
    // /crl is the new CA's: the old certificates cannot be checked against it.
    expect(verifyWithCrl(kept.pem, join(old, 'root.pem'), join(old, 'ca.pem'), (await fetchCrl(broker, '/crl')).file)).not.toContain(': OK');

    const fresh = await certificate(broker);
    expect(openssl(['x509', '-noout', '-text'], fresh.pem).stdout).toContain(`URI:${broker.config.issuer}/crl/${newKeyId}\n`);
    const newCrl = await fetchCrl(broker, `/crl/${newKeyId.toUpperCase()}`);
    expect(verifyWithCrl(fresh.pem, join(keysDir, 'ca', 'root.pem'), join(keysDir, 'ca', 'ca.pem'), newCrl.file)).toContain(': OK');
    expect((await fetch(`${broker.url}/crl/${'ab'.repeat(20)}`)).status).toBe(404);
  } finally {
    await broker.close();
  }
});

it('a retired CA whose key does not match its certificate stops the start, naming the file', async () => {
  const retired = join(keysDir, 'ca', 'retired', 'broken');
  mkdirSync(retired, { recursive: true });
  cpSync(join(keysDir, 'ca', 'ca.pem'), join(retired, 'ca.pem'));
  cpSync(join(keysDir, 'ca', 'retired', 'ca1', 'ca.key.pem'), join(retired, 'ca.key.pem'));
  await expect(startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), env: { REDIS_PREFIX: 'rotation:' } })).rejects.toThrow(`${join(retired, 'ca.key.pem')} does not match`);
  rmSync(retired, { recursive: true });
});

it('a retired CA may be a link to a folder; an expired one is skipped without its key; a leaf is refused', async () => {
  const retired = join(keysDir, 'ca', 'retired');
  // The folder ca1 (from the first test) moved elsewhere and linked back, as a mounted secret is.
  renameSync(join(retired, 'ca1'), join(dir, 'ca1-mounted'));
  symlinkSync(join(dir, 'ca1-mounted'), join(retired, 'ca1'));
  // An expired CA whose key was destroyed: only its certificate is left.
  const crypto = webcrypto as unknown as Crypto;
  x509.cryptoProvider.set(crypto);
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const old = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=Long gone', notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, keys, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  mkdirSync(join(retired, 'gone'));
  writeFileSync(join(retired, 'gone', 'ca.pem'), old.toString('pem'));

  const broker = await startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), env: { REDIS_PREFIX: 'rotation:' } });
  try {
    expect(broker.deps.retiredCas).toHaveLength(1);
    expect((await fetch(`${broker.url}/crl/${broker.deps.retiredCas[0]!.keyIdHex}`)).status).toBe(200);
  } finally {
    await broker.close();
  }

  // A leaf certificate (not a CA) in a retired folder stops the start, naming it.
  const leaf = (await certificateOf()).pem;
  mkdirSync(join(retired, 'leaf'));
  writeFileSync(join(retired, 'leaf', 'ca.pem'), leaf);
  await expect(startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), env: { REDIS_PREFIX: 'rotation:' } })).rejects.toThrow(`${join(retired, 'leaf', 'ca.pem')}: not a CA certificate`);
  rmSync(join(retired, 'leaf'), { recursive: true });
});

/** A certificate from a broker on the current keys. */
async function certificateOf(): Promise<{ pem: string }> {
  const broker = await startBroker({ redisUrl: redis.url, keysDir, policy: policy(github.url), env: { REDIS_PREFIX: 'rotation:' } });
  try {
    return await certificate(broker);
  } finally {
    await broker.close();
  }
}
