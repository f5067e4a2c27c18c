/**
 * Attacks through the CSR of a certificate exchange. The CSR contributes its public key and
 * nothing else; anything it asks for beyond the rule's grant is refused before the proof is
 * claimed, so each refused proof is then exchanged for a JWT to show it was not burnt.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CsrRefusal } from '../../src/mint/x509/csr-error.ts';
import { exchangeProof, X509_TYPE } from '../helpers/broker.ts';
import { makeCsr, mismatchedKeyCsr, openssl, pemToDer, tamperCsrSignature } from '../helpers/csr.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { e2ePolicy, type IssuerSet } from '../helpers/policies.ts';
import { AUD, expectProofRefused, ghClaims, startSecurityEnv, uniq, type SecurityEnv } from './harness.ts';

// e2ePolicy plus a rule whose certificates carry no SPIFFE ID and no server_auth: client-only.
const policy = (i: IssuerSet): string => `${e2ePolicy(i)}
  - name: gh-web-client
    issuer: github
    match: { repository: octo-org/web }
    grant:
      scopes: [web:read]
      audiences: [https://web.acme.internal]
      credentials: [jwt, x509]
      x509: { dns_sans: [web.acme.internal] }
`;

let env: SecurityEnv;
beforeAll(async () => {
  env = await startSecurityEnv({ policy });
});
afterAll(async () => env?.close());

const GRANTED_URI = 'spiffe://acme.internal/gh/octo-org/octo-repo';
const ghProof = (): Promise<string> => env.issuers.github.mint(ghClaims(env));
const webProof = (): Promise<string> => env.issuers.github.mint(ghClaims(env, { repository: 'octo-org/web' }));

/** A P-521 request: a curve Leash does not issue for. */
async function p521Csr(): Promise<string> {
  const crypto = webcrypto as unknown as Crypto;
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-512' } as EcdsaParams });
  return csr.toString('pem');
}

const b64url = (der: Buffer): string => der.toString('base64url');
const pem = (der: Buffer, label: string): string => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;

async function refusedCsr(proof: string, csr: string, reason: CsrRefusal): Promise<void> {
  await expectProofRefused(env, proof, { code: 'invalid_request', reason }, { requested_token_type: X509_TYPE, csr });
  const jwt = await exchangeProof(env.broker.url, proof);
  expect(jwt.status, 'the proof was not burnt by the refused certificate request').toBe(200);
}

describe('CSR contents beyond the grant are refused', () => {
  it.each<[string, () => Promise<string>, CsrRefusal]>([
    ['a signature by another key than the one it names', () => mismatchedKeyCsr(), 'csr_bad_signature'],
    ['a tampered signature', async () => tamperCsrSignature((await makeCsr({ keyType: 'ec-p256' })).csrPem), 'csr_bad_signature'],
    ['basicConstraints CA:TRUE', async () => (await makeCsr({ keyType: 'ec-p256', ca: true })).csrPem, 'csr_ca_requested'],
    ['name constraints', async () => (await makeCsr({ keyType: 'ec-p256', nameConstraints: true })).csrPem, 'csr_ca_requested'],
    ['an extra URI SAN', async () => (await makeCsr({ keyType: 'ec-p256', uriSans: [GRANTED_URI, 'spiffe://acme.internal/admin'] })).csrPem, 'csr_san_not_granted'],
    ['a DNS SAN', async () => (await makeCsr({ keyType: 'ec-p256', dnsSans: ['admin.acme.internal'] })).csrPem, 'csr_san_not_granted'],
    ['an IP SAN', async () => (await makeCsr({ keyType: 'ec-p256', ipSans: ['10.0.0.1'] })).csrPem, 'csr_san_not_granted'],
    ['an email SAN', async () => (await makeCsr({ keyType: 'ec-p256', emailSans: ['root@acme.internal'] })).csrPem, 'csr_san_not_granted'],
    ['a subject CN that is not a granted name', async () => (await makeCsr({ keyType: 'ec-p256', cn: 'admin.acme.internal' })).csrPem, 'csr_cn_not_granted'],
    ['an unknown extension', async () => (await makeCsr({ keyType: 'ec-p256', extraExtensions: [{ oid: '1.2.3.4', value: Buffer.from('0500', 'hex') }] })).csrPem, 'csr_extension_not_issued'],
    ['a P-521 key', () => p521Csr(), 'csr_unsupported_key'],
    ['an RSA-1024 key', async () => (await makeCsr({ keyType: 'rsa-1024' })).csrPem, 'csr_unsupported_key'],
  ])('%s', async (_name, make, reason) => {
    await refusedCsr(await ghProof(), await make(), reason);
  });

  it('a key type allowed elsewhere but not by this rule (RSA under the k8s rule)', async () => {
    const proof = await env.issuers.k8s.mint({ ...fixtureClaims('kubernetes-sa'), iss: env.issuers.k8s.url, aud: [AUD], jti: uniq('k8s') });
    await refusedCsr(proof, (await makeCsr({ keyType: 'rsa-2048' })).csrPem, 'csr_key_type_not_allowed');
  });
});

describe('malformed CSRs', () => {
  it.each<[string, () => Promise<string>, CsrRefusal]>([
    ['garbage text', async () => 'not a csr at all', 'csr_malformed'],
    ['truncated DER', async () => b64url(pemToDer((await makeCsr({ keyType: 'ec-p256' })).csrPem).subarray(0, 60)), 'csr_malformed'],
    ['DER with trailing bytes', async () => b64url(Buffer.concat([pemToDer((await makeCsr({ keyType: 'ec-p256' })).csrPem), Buffer.from([0x00, 0x00])])), 'csr_malformed'],
    ['a PEM labelled CERTIFICATE', async () => pem(pemToDer((await makeCsr({ keyType: 'ec-p256' })).csrPem), 'CERTIFICATE'), 'csr_malformed'],
    ['a certificate instead of a request', async () => env.broker.deps.ca!.chainPem[0]!.replaceAll('CERTIFICATE', 'CERTIFICATE REQUEST'), 'csr_malformed'],
    ['a PEM whose header and footer differ', async () => (await makeCsr({ keyType: 'ec-p256' })).csrPem.replace('-----END CERTIFICATE REQUEST', '-----END NEW CERTIFICATE REQUEST'), 'csr_malformed'],
    ['a length that claims more bytes than there are', async () => b64url(Buffer.from('3084ffffffff3000', 'hex')), 'csr_malformed'],
    ['over 16 KiB', async () => b64url(Buffer.alloc(17 * 1024, 0x30)), 'csr_too_large'],
  ])('%s is refused', async (_name, make, reason) => {
    await refusedCsr(await ghProof(), await make(), reason);
  });
});

describe('what the CSR cannot choose', () => {
  it('a certificate under a JWT-only rule is refused', async () => {
    const proof = await env.issuers.gitlab.mint({ ...fixtureClaims('gitlab-ci', 'branch-main'), iss: env.issuers.gitlab.url, aud: AUD, jti: uniq('gl') });
    await expectProofRefused(env, proof, { code: 'invalid_request', description: /does not issue x509/ }, { requested_token_type: X509_TYPE, csr: (await makeCsr({ keyType: 'ec-p256' })).csrPem });
    expect((await exchangeProof(env.broker.url, proof)).status).toBe(200);
  });

  it('a csr with a JWT token type is refused', async () => {
    await expectProofRefused(env, await ghProof(), { code: 'invalid_request', description: /csr is only accepted/ }, { csr: (await makeCsr({ keyType: 'ec-p256' })).csrPem });
  });

  it('a requested CA key usage or a purpose the rule does not grant is refused, not silently dropped', async () => {
    const ext = (oid: string, hex: string) => ({ oid, value: Buffer.from(hex, 'hex') });
    const EKU_SERVER = ext('2.5.29.37', '300a06082b06010505070301');
    const EKU_CODE_SIGNING = ext('2.5.29.37', '300a06082b06010505070303');
    const KU_CA = ext('2.5.29.15', '03020106'); // keyCertSign | cRLSign
    const cases: [typeof EKU_SERVER, CsrRefusal][] = [
      [KU_CA, 'csr_ca_requested'],
      [EKU_CODE_SIGNING, 'csr_eku_not_granted'],
    ];
    for (const [extension, reason] of cases) {
      const { csrPem } = await makeCsr({ keyType: 'ec-p256', uriSans: [GRANTED_URI], extraExtensions: [extension] });
      await refusedCsr(await ghProof(), csrPem, reason);
    }
    // serverAuth under a rule without server_auth whose certificates carry no SPIFFE ID.
    const { csrPem } = await makeCsr({ keyType: 'ec-p256', dnsSans: ['web.acme.internal'], extraExtensions: [EKU_SERVER] });
    await refusedCsr(await webProof(), csrPem, 'csr_eku_not_granted');
  });

  it('without a SPIFFE ID and without server_auth, the certificate is for clients only', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256', dnsSans: ['web.acme.internal'] });
    const res = await exchangeProof(env.broker.url, await webProof(), { requested_token_type: X509_TYPE, csr: csrPem });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cert = new X509Certificate(res.body.access_token);
    expect(cert.subjectAltName).toBe('DNS:web.acme.internal');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth only
  });

  it('asking for what an X509-SVID carries anyway (serverAuth and clientAuth, digitalSignature) is fine; the CA still decides', async () => {
    const eku = Buffer.from('301406082b0601050507030106082b06010505070302', 'hex'); // serverAuth, clientAuth
    const keyUsage = Buffer.from('030205a0', 'hex'); // digitalSignature | keyEncipherment
    const { csrPem } = await makeCsr({ keyType: 'ec-p256', uriSans: [GRANTED_URI], extraExtensions: [{ oid: '2.5.29.37', value: eku }, { oid: '2.5.29.15', value: keyUsage }] });
    const res = await exchangeProof(env.broker.url, await ghProof(), { requested_token_type: X509_TYPE, csr: csrPem });
    expect(res.status).toBe(200);
    const cert = new X509Certificate(res.body.access_token);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // serverAuth, clientAuth (X509-SVID section 4.4)
    expect(cert.subjectAltName).toBe(`URI:${GRANTED_URI}`);
    const text = openssl(['x509', '-noout', '-text'], res.body.access_token).stdout;
    expect(text).toMatch(/Digital Signature/);
    expect(text).not.toMatch(/Key Encipherment|Certificate Sign|CRL Sign/);
  });
});
