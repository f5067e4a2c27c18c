/**
 * Certificates whose SAN holds a SPIFFE ID are X509-SVIDs and follow that spec: every rule of
 * X509-SVID.md sections 2 to 4 and Appendix A, and SPIFFE-ID.md section 2 for the ID, checked on
 * certificates issued by a real broker over HTTP for every key type, under rules that leave
 * server_auth false; then OpenSSL validates them for both TLS purposes. The
 * checker itself is shown to catch each violation on a certificate built to break them.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import { exchangeProof, X509_TYPE } from '../helpers/broker.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { AUD } from '../helpers/policies.ts';
import { makeCsr, openssl, type TestCsrKeyType } from '../helpers/csr.ts';
import { leafSvidViolations, signingCertViolations, spiffeIdViolations } from '../helpers/x509-svid.ts';

let env: E2E;
const dir = mkdtempSync(join(tmpdir(), 'leash-svid-'));
let seq = 0;

beforeAll(async () => {
  env = await startE2E();
});
afterAll(async () => {
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Case {
  name: string;
  keyType: TestCsrKeyType;
  proof: () => Promise<string>;
  spiffeId: string;
  dns: string[];
}

// e2ePolicy: gh-deploy grants spiffe://acme.internal/gh/<repository> with server_auth left false;
// k8s-payments a SPIFFE ID plus a DNS SAN.
const gh = (): Promise<string> =>
  env.issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: env.issuers.github.url, aud: AUD, jti: `svid-${++seq}`, sub: `repo:octo-org/octo-repo:svid-${seq}` });
const k8s = (): Promise<string> =>
  env.issuers.k8s.mint({ ...fixtureClaims('kubernetes-sa'), iss: env.issuers.k8s.url, aud: [AUD], jti: `svid-${++seq}` });

const CASES: Case[] = [
  ...(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const).map((keyType) => ({
    name: `gh-deploy (server_auth false), ${keyType} key`, keyType, proof: gh, spiffeId: 'spiffe://acme.internal/gh/octo-org/octo-repo', dns: [],
  })),
  { name: 'k8s-payments (SPIFFE ID and a DNS SAN), ec-p256 key', keyType: 'ec-p256', proof: k8s, spiffeId: 'spiffe://acme.internal/ns/kube-system/sa/coredns', dns: ['coredns.kube-system.svc'] },
];

describe('issued X509-SVIDs follow the X509-SVID spec', () => {
  it.each(CASES)('$name', async ({ keyType, proof, spiffeId, dns }) => {
    const { csrPem } = await makeCsr({ keyType });
    const res = await exchangeProof(env.broker.url, await proof(), { requested_token_type: X509_TYPE, csr: csrPem });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const leaf: string = res.body.access_token;
    const chain: string[] = res.body.certificate_chain;

    expect(leafSvidViolations(leaf, { keyIsRsa: keyType.startsWith('rsa') })).toEqual([]);
    for (const ca of chain) expect(signingCertViolations(ca)).toEqual([]);
    const names = new x509.X509Certificate(leaf).getExtension(x509.SubjectAlternativeNameExtension)!.names.items;
    expect(names.filter((n) => n.type === 'url').map((n) => n.value)).toEqual([spiffeId]);
    expect(names.filter((n) => n.type === 'dns').map((n) => n.value)).toEqual(dns); // section 2: other SAN types may be present

    // Section 5: a validator accepts it on standard path validation, as a TLS client and as a server.
    const leafPath = join(dir, `leaf-${seq}.pem`);
    const untrusted = join(dir, `chain-${seq}.pem`);
    writeFileSync(leafPath, leaf);
    writeFileSync(untrusted, chain.join(''));
    for (const purpose of ['sslclient', 'sslserver']) {
      const r = openssl(['verify', '-x509_strict', '-purpose', purpose, '-CAfile', join(env.broker.keysDir, 'ca', 'root.pem'), '-untrusted', untrusted, leafPath]);
      expect(r.stdout.trim() + r.stderr, purpose).toBe(`${leafPath}: OK`);
    }
  });
});

describe('the checker catches each violation', () => {
  it('on a certificate built to break every rule', async () => {
    const crypto = webcrypto as unknown as Crypto;
    x509.cryptoProvider.set(crypto);
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const bad = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 600_000),
      keys,
      signingAlgorithm: alg,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://Acme.internal:443/a/../b?x=1' }, { type: 'url', value: 'https://acme.internal/x' }], false),
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.dataEncipherment, false),
        new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2']),
      ],
    });
    const v = leafSvidViolations(bad.toString('pem'), { keyIsRsa: false }).join('\n');
    for (const rule of [
      'X509-SVID 2: 2 URI SANs', 'SPIFFE-ID 2: has a query', 'SPIFFE-ID 2.1: has a port', 'SPIFFE-ID 2.1: trust domain', 'SPIFFE-ID 2.2: relative segment ..',
      'SPIFFE-ID 2: scheme is "https"', 'X509-SVID 3.1: empty Subject', 'X509-SVID 4.1: leaf with cA true', 'pathLenConstraint on a leaf',
      'X509-SVID 4.3: key usage not critical', 'X509-SVID 4.3: leaf without digitalSignature', 'X509-SVID 4.3: leaf with keyCertSign', 'X509-SVID 4.3: leaf with cRLSign',
      'beyond digitalSignature', 'keyEncipherment for a non-RSA key', 'X509-SVID 4.4: EKU without id-kp-serverAuth',
    ]) expect(v).toContain(rule);
    expect(v).not.toContain('EKU without id-kp-clientAuth');
  });

  it('on SPIFFE IDs the SPIFFE-ID spec refuses', () => {
    expect(spiffeIdViolations('spiffe://acme.internal/ns/a/sa/b', 'leaf')).toEqual([]);
    for (const [id, rule] of [
      ['spiffe://acme.internal', 'X509-SVID 3.1'],
      ['spiffe://user@acme.internal/a', 'userinfo'],
      ['spiffe://acme.internal/a#frag', 'fragment'],
      ['spiffe://acme.internal/a//b', 'empty path segment'],
      ['spiffe://acme.internal/a/', 'trailing /'],
      ['spiffe://acme.internal/a%20b', 'percent-encoded path'],
      ['spiffe:///a', 'empty trust domain'],
      [`spiffe://acme.internal/${'a'.repeat(2048)}`, 'over 2048 bytes'],
    ]) expect(spiffeIdViolations(id!, 'leaf').join('\n'), id).toContain(rule);
    expect(spiffeIdViolations('spiffe://acme.internal/ca', 'signing').join()).toContain('X509-SVID 3.2');
  });
});
