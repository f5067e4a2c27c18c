import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ROOT_CRL_FILE } from '../../src/mint/x509/generate-ca.ts';
import { CRL_VALIDITY_SECONDS } from '../../src/http/crl.ts';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { exchangeProof, postToken, X509_TYPE, type TestBroker } from '../helpers/broker.ts';
import { AUD, type IssuerSet } from '../helpers/policies.ts';
import { makeCsr, mismatchedKeyCsr, openssl, pemToDer, type TestCsrKeyType } from '../helpers/csr.ts';
import type { CsrRefusal } from '../../src/mint/x509/csr-error.ts';

let env: E2E;
let issuers: IssuerSet;
let broker: TestBroker;
const dir = mkdtempSync(join(tmpdir(), 'leash-certs-'));
let jti = 0;

/** Moves the broker's clock (deps.now) forward; only the last test of the file uses it. */
let offsetMs = 0;

beforeAll(async () => {
  env = await startE2E({ now: () => Date.now() + offsetMs });
  ({ issuers, broker } = env);
});
afterAll(async () => {
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh GitHub-shaped proof; each test run gets its own subject so lease limits never collide. */
const ghProof = async (subjectSuffix: string) =>
  issuers.github.mint({
    ...fixtureClaims('github-actions', 'push-main'),
    iss: issuers.github.url,
    aud: AUD,
    jti: `cert-${++jti}`,
    sub: `repo:octo-org/octo-repo:ref:refs/heads/main:${subjectSuffix}`,
  });

async function requestCert(csrPem: string, subjectSuffix: string, extra: Record<string, string> = {}) {
  return exchangeProof(broker.url, await ghProof(subjectSuffix), { requested_token_type: X509_TYPE, csr: csrPem, ...extra });
}

const rootPath = () => join(broker.keysDir, 'ca', 'root.pem');

function verifyWithOpenssl(leafPem: string, chain: string[]): { code: number; out: string } {
  const leaf = join(dir, `leaf-${Math.random()}.pem`);
  const untrusted = join(dir, `chain-${Math.random()}.pem`);
  writeFileSync(leaf, leafPem);
  writeFileSync(untrusted, chain.join(''));
  const r = openssl(['verify', '-CAfile', rootPath(), '-untrusted', untrusted, leaf]);
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('certificates from CSRs, judged by OpenSSL', () => {
  it.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as TestCsrKeyType[])('%s CSR: openssl verify accepts the leaf, SANs come from policy', async (keyType) => {
    const { csrPem } = await makeCsr({ keyType });
    const res = await requestCert(csrPem, `kt-${keyType}`, { ttl: '300' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ issued_token_type: X509_TYPE, token_type: 'N_A', expires_in: 300 });
    expect(res.body.certificate_chain).toHaveLength(1);
    const v = verifyWithOpenssl(res.body.access_token, res.body.certificate_chain);
    expect(v.out).toContain(': OK');
    expect(v.code).toBe(0);
    const cert = new X509Certificate(res.body.access_token);
    expect(cert.subjectAltName).toBe('URI:spiffe://acme.internal/gh/octo-org/octo-repo');
    expect(cert.ca).toBe(false);
    const lease = await broker.deps.store.get(res.body.lease_id);
    expect(lease).toMatchObject({ kind: 'x509', status: 'active', rule: 'gh-deploy' });
    expect(lease!.serial!.replace(/^0+/, '')).toBe(cert.serialNumber.toLowerCase().replace(/^0+/, ''));
    expect(new Date(cert.validTo).getTime() / 1000).toBe(lease!.expires_at);
  });

  it('the certificate names its CRL distribution point, serverAuth and clientAuth (an X509-SVID), CA:FALSE critical', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await requestCert(csrPem, 'text');
    const text = openssl(['x509', '-noout', '-text'], res.body.access_token).stdout;
    expect(text).toContain(`URI:${broker.config.issuer}/crl/${broker.deps.ca!.keyIdHex}\n`);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Extended Key Usage: \s+TLS Web Server Authentication, TLS Web Client Authentication\n/);
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toContain('X509v3 Authority Key Identifier');
  });

  it('a base64url DER CSR is accepted too', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await requestCert(pemToDer(csrPem).toString('base64url'), 'der');
    expect(res.status).toBe(200);
  });

  it('Kubernetes-shaped claims template the SPIFFE URI and DNS SANs', async () => {
    const proof = await issuers.k8s.mint({ ...fixtureClaims('kubernetes-sa'), iss: issuers.k8s.url, aud: [AUD] });
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await exchangeProof(broker.url, proof, { requested_token_type: X509_TYPE, csr: csrPem });
    expect(res.status).toBe(200);
    const cert = new X509Certificate(res.body.access_token);
    expect(cert.subjectAltName).toContain('URI:spiffe://acme.internal/ns/kube-system/sa/coredns');
    expect(cert.subjectAltName).toContain('DNS:coredns.kube-system.svc');
  });
});

describe('CSR refusals: invalid_request and nothing leased', () => {
  const cases: [string, () => Promise<string>, CsrRefusal][] = [
    ['an extra SAN', async () => (await makeCsr({ keyType: 'ec-p256', uriSans: ['spiffe://acme.internal/admin'] })).csrPem, 'csr_san_not_granted'],
    ['a CA:true basic constraint', async () => (await makeCsr({ keyType: 'ec-p256', ca: true })).csrPem, 'csr_ca_requested'],
    ['name constraints', async () => (await makeCsr({ keyType: 'ec-p256', nameConstraints: true })).csrPem, 'csr_ca_requested'],
    ['an RSA-1024 key', async () => (await makeCsr({ keyType: 'rsa-1024' })).csrPem, 'csr_unsupported_key'],
    ['a signature that does not match its key', () => mismatchedKeyCsr(), 'csr_bad_signature'],
    ['garbage', async () => 'not a csr at all', 'csr_malformed'],
    ['truncated DER', async () => pemToDer((await makeCsr({ keyType: 'ec-p256' })).csrPem).subarray(0, 40).toString('base64url'), 'csr_malformed'],
  ];
  it.each(cases)('%s', async (_name, make, reason) => {
    const before = await broker.deps.store.countActive();
    const res = await requestCert(await make(), 'refused');
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    // The fixed reason is never sent; the exchange.denied event records it.
    const { events } = await broker.deps.audit.list({ type: 'exchange.denied', limit: 200 });
    expect(events.find((e) => e.request_id === res.body.request_id)?.reason).toMatch(new RegExp(`^invalid_request: ${reason}: `));
    expect(await broker.deps.store.countActive()).toBe(before);
  });

  it('a certificate under a JWT-only rule is refused', async () => {
    const proof = await issuers.gitlab.mint({ ...fixtureClaims('gitlab-ci', 'branch-main'), iss: issuers.gitlab.url, aud: AUD });
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await exchangeProof(broker.url, proof, { requested_token_type: X509_TYPE, csr: csrPem });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
  });

  it('x509 without a csr is refused', async () => {
    const res = await postToken(broker.url, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await ghProof('nocsr'),
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      requested_token_type: X509_TYPE,
    });
    expect(res.body.error).toBe('invalid_request');
  });
});

async function fetchCrlPem(): Promise<{ pem: string; der: Buffer; text: string }> {
  const res = await fetch(`${broker.url}/crl`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/pkix-crl');
  const der = Buffer.from(await res.arrayBuffer());
  const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`;
  const crlFile = join(dir, `crl-${Math.random()}.der`);
  writeFileSync(crlFile, der);
  const chainFile = join(dir, 'ca-chain.pem');
  writeFileSync(chainFile, broker.deps.ca!.chainPem.join('') + broker.deps.ca!.rootPem);
  const r = openssl(['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text', '-CAfile', chainFile]);
  expect(r.stdout + r.stderr).toContain('verify OK');
  return { pem, der, text: r.stdout };
}

const crlNumberOf = (text: string): bigint => BigInt('0x' + /CRL Number:\s*\n?\s*([0-9A-Fa-f:]+|\d+)/.exec(text)![1]!.replaceAll(':', ''));

async function waitFor(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function mtls(client: { key: string; cert: string }, crlPem?: string): Promise<boolean> {
  const ca = broker.deps.ca!;
  const now = Math.floor(Date.now() / 1000);
  const { csrPem, privateKeyPem } = await makeCsr({ keyType: 'ec-p256' });
  const { parseCsr } = await import('../../src/mint/x509/csr.ts');
  const serverCsr = parseCsr(csrPem);
  const serverCert = ca.issue({ spkiDer: serverCsr.spkiDer, keyType: serverCsr.keyType, uriSans: [], dnsSans: ['localhost'], notBefore: now - 60, notAfter: now + 600, serverAuth: true });
  const server = tls.createServer({
    key: privateKeyPem,
    cert: serverCert.pem + ca.chainPem.join(''),
    ca: [ca.rootPem],
    requestCert: true,
    rejectUnauthorized: true,
    ...(crlPem ? { crl: [crlPem, readFileSync(join(broker.keysDir, ROOT_CRL_FILE), 'utf8')] } : {}),
  }, (socket) => socket.end('hello'));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    const body = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [ca.rootPem], ...client });
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (data += d));
      s.on('error', () => undefined); // a rejected client sees an alert or a reset
      s.on('close', () => resolve(data));
    });
    return body === 'hello';
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('revocation reaches the CRL and real TLS', () => {
  it('mTLS accepts an issued certificate; after revocation and a CRL reload it is rejected', async () => {
    const { csrPem, privateKeyPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await requestCert(csrPem, 'mtls', { task_id: 'cert-task-1' });
    expect(res.status).toBe(200);
    const client = { key: privateKeyPem, cert: res.body.access_token + res.body.certificate_chain.join('') };
    const before = await fetchCrlPem();
    expect(await mtls(client)).toBe(true);
    expect(await mtls(client, before.pem)).toBe(true);

    const serial = (await broker.deps.store.get(res.body.lease_id))!.serial!;
    // Task completion revokes the certificate's lease too; possession of a JWT of the task is the authority.
    const jwtRes = await exchangeProof(broker.url, await ghProof('mtls-jwt'), { task_id: 'cert-task-1' });
    const done = await fetch(`${broker.url}/v1/tasks/cert-task-1/complete`, { method: 'POST', headers: { authorization: `Bearer ${jwtRes.body.access_token}` } });
    expect(done.status).toBe(200);
    expect((await done.json()).revoked).toBe(2);

    let after = await fetchCrlPem();
    await waitFor(async () => {
      after = await fetchCrlPem();
      return after.text.toUpperCase().includes(serial.toUpperCase());
    });
    expect(crlNumberOf(after.text)).toBeGreaterThan(crlNumberOf(before.text));
    expect(await mtls(client, after.pem)).toBe(false);
  });

  it('a revoked certificate stays on CRLs fetched after it expires: a relying party whose clock lags still rejects it', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await requestCert(csrPem, 'short', { ttl: '2' });
    expect(res.status).toBe(200);
    const lease = (await broker.deps.store.get(res.body.lease_id))!;
    await broker.deps.store.revoke(lease.id, { reason: 'test', by: 'test', at: Math.floor(Date.now() / 1000) });
    await broker.deps.revocations.enqueue([lease.id]);
    await waitFor(async () => (await fetchCrlPem()).text.toUpperCase().includes(lease.serial!.toUpperCase()));

    // The certificate has expired by the broker's clock when the CRL is fetched.
    const notAfter = lease.expires_at;
    await waitFor(async () => Date.now() >= (notAfter + 1) * 1000, 10_000);
    const crl = await fetchCrlPem();
    const crlFile = join(dir, `crl-${Math.random()}.pem`);
    writeFileSync(crlFile, crl.pem);
    const leaf = join(dir, `leaf-${Math.random()}.pem`);
    writeFileSync(leaf, res.body.access_token);
    const untrusted = join(dir, `chain-${Math.random()}.pem`);
    writeFileSync(untrusted, res.body.certificate_chain.join(''));
    // A relying party whose clock lags 2 s (within the skew Leash tolerates) sees the certificate valid...
    const attime = String(notAfter - 2);
    const plain = openssl(['verify', '-attime', attime, '-CAfile', rootPath(), '-untrusted', untrusted, leaf]);
    expect(plain.status, plain.stdout + plain.stderr).toBe(0);
    // ...and the fresh CRL (its thisUpdate is before then) tells it the certificate is revoked.
    const checked = openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-attime', attime, '-CAfile', rootPath(), '-untrusted', untrusted, leaf]);
    expect(checked.status).not.toBe(0);
    expect(checked.stdout + checked.stderr).toMatch(/certificate revoked/);
  });

  it('an expired revoked certificate leaves the CRL one CRL lifetime after its notAfter passed thisUpdate', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const res = await requestCert(csrPem, 'short-2', { ttl: '2' });
    const lease = (await broker.deps.store.get(res.body.lease_id))!;
    await broker.deps.store.revoke(lease.id, { reason: 'test', by: 'test', at: Math.floor(Date.now() / 1000) });
    await broker.deps.revocations.enqueue([lease.id]);
    const listed = async (): Promise<boolean> => (await fetchCrlPem()).text.toUpperCase().includes(lease.serial!.toUpperCase());
    await waitFor(listed);
    // Listed while now - skew - CRL lifetime <= notAfter (crlKeepsSince), dropped after.
    const lastListedAt = lease.expires_at + broker.config.clockSkewSeconds + CRL_VALIDITY_SECONDS;
    try {
      offsetMs = (lastListedAt - 2) * 1000 - Date.now();
      expect(await listed()).toBe(true);
      offsetMs = (lastListedAt + 2) * 1000 - Date.now();
      expect(await listed()).toBe(false);
    } finally {
      offsetMs = 0;
    }
  });
});
