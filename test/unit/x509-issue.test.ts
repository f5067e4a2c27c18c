import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import type { CertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import { checkCsrAgainstGrant, parseCsr } from '../../src/mint/x509/csr.ts';
import { generateDevCa } from '../../src/mint/x509/generate-ca.ts';
import type { CaGenerationKeyType } from '../../src/mint/x509/generate-ca.ts';
import { makeCsr, openssl, pemToDer } from '../helpers/csr.ts';
import { thrown } from '../helpers/thrown.ts';
import type { TestCsrKeyType } from '../helpers/csr.ts';

const SPIFFE = 'spiffe://acme.internal/gh/acme/app';
const DNS = 'app.acme.internal';
const CRL_URL = 'http://127.0.0.1:8080/crl';
const CA_TYPES: CaGenerationKeyType[] = ['ec-p256', 'ec-p384', 'ed25519'];
const CSR_TYPES: TestCsrKeyType[] = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'];
const SIG_ALG: Record<CaGenerationKeyType, string> = {
  'ec-p256': 'ecdsa-with-SHA256',
  'ec-p384': 'ecdsa-with-SHA384',
  ed25519: 'ED25519',
};

const dir = mkdtempSync(join(tmpdir(), 'leash-x509-issue-'));
const cas = new Map<CaGenerationKeyType, CertificateAuthority>();
const csrs = new Map<TestCsrKeyType, string>();
let counter = 0;

beforeAll(async () => {
  for (const keyType of CA_TYPES) {
    await generateDevCa(join(dir, keyType), { keyType });
    cas.set(keyType, await loadCertificateAuthority(join(dir, keyType), { crlUrl: CRL_URL }));
  }
  for (const keyType of CSR_TYPES) csrs.set(keyType, (await makeCsr({ keyType, uriSans: [SPIFFE] })).csrPem);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const now = (): number => Math.floor(Date.now() / 1000);

/** Runs the full path (parse, check, issue) and writes the leaf where openssl can read it. */
function issueFor(caType: CaGenerationKeyType, csrType: TestCsrKeyType, serverAuth = false, serialHex?: string) {
  const ca = cas.get(caType) as CertificateAuthority;
  const csr = parseCsr(csrs.get(csrType) as string);
  checkCsrAgainstGrant(csr, { uri_sans: [SPIFFE], dns_sans: [DNS], key_types: ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] });
  const notBefore = now() - 60;
  const issued = ca.issue({
    spkiDer: csr.spkiDer,
    keyType: csr.keyType,
    uriSans: [SPIFFE],
    dnsSans: [DNS],
    notBefore,
    notAfter: notBefore + 900,
    serverAuth,
    ...(serialHex === undefined ? {} : { serialHex }),
  });
  const leafPath = join(dir, `leaf-${counter++}.pem`);
  writeFileSync(leafPath, issued.pem);
  return { ...issued, leafPath, notBefore, csr };
}

const caFile = (caType: CaGenerationKeyType, name: 'root.pem' | 'ca.pem'): string => join(dir, caType, 'ca', name);
const text = (leafPath: string): string => openssl(['x509', '-in', leafPath, '-noout', '-text']).stdout;

describe('certificate issuance', () => {
  for (const caType of CA_TYPES) {
    for (const csrType of CSR_TYPES) {
      it(`${caType} CA issues for a ${csrType} key and openssl verifies the chain`, () => {
        const { leafPath } = issueFor(caType, csrType);
        const r = openssl([
          'verify', '-x509_strict', '-purpose', 'sslclient',
          '-CAfile', caFile(caType, 'root.pem'), '-untrusted', caFile(caType, 'ca.pem'), leafPath,
        ]);
        expect(r.stdout.trim()).toBe(`${leafPath}: OK`);
        expect(r.status).toBe(0);
        expect(text(leafPath)).toContain(`Signature Algorithm: ${SIG_ALG[caType]}`);
      });
    }
  }

  it('writes the extensions the contract names, as openssl reads them', () => {
    const { leafPath, pem } = issueFor('ec-p256', 'ec-p256');
    const t = text(leafPath);
    expect(t).toContain('Version: 3 (0x2)');
    expect(t).toMatch(/Subject: *\n/);
    expect(t).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/acme\.internal\/gh\/acme\/app, DNS:app\.acme\.internal/);
    expect(t).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(t).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    // An X509-SVID: both purposes whatever the rule's server_auth (X509-SVID spec section 4.4).
    expect(t).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Server Authentication, TLS Web Client Authentication\n/);
    // Its own CA's CRL, by key id: a URL that stays that CA's after it is retired.
    expect(t).toMatch(new RegExp(`X509v3 CRL Distribution Points: \\s+Full Name:\\s+URI:http://127\\.0\\.0\\.1:8080/crl/${cas.get('ec-p256')!.keyIdHex}\\n`));
    expect(t).not.toContain('Negative');

    // SKI is SHA-1 of the key bits (the last 65 bytes of a P-256 SPKI); AKI is the CA's SKI.
    const leaf = new X509Certificate(pem);
    const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
    const expectedSki = openssl(['dgst', '-sha1', '-r'], spki.subarray(spki.length - 65));
    const ski = openssl(['x509', '-in', leafPath, '-noout', '-ext', 'subjectKeyIdentifier']).stdout;
    expect(ski.split('\n')[1]?.trim().replace(/:/g, '').toLowerCase()).toBe(expectedSki.stdout.split(' ')[0]);
    const caSki = openssl(['x509', '-in', caFile('ec-p256', 'ca.pem'), '-noout', '-ext', 'subjectKeyIdentifier']).stdout;
    const aki = openssl(['x509', '-in', leafPath, '-noout', '-ext', 'authorityKeyIdentifier']).stdout;
    expect(aki.replace(/keyid:/, '').split('\n')[1]?.trim()).toBe(caSki.split('\n')[1]?.trim());
  });

  it('adds keyEncipherment for RSA keys; serverAuth when asked, or for an X509-SVID, and only then', () => {
    const { leafPath } = issueFor('ec-p256', 'rsa-2048', true);
    const t = text(leafPath);
    expect(t).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(t).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Server Authentication, TLS Web Client Authentication/);
    const verify = (purpose: string): number =>
      openssl(['verify', '-purpose', purpose, '-CAfile', caFile('ec-p256', 'root.pem'), '-untrusted', caFile('ec-p256', 'ca.pem'), leafPath]).status;
    expect(verify('sslserver')).toBe(0);
    expect(verify('sslclient')).toBe(0);
    const svid = issueFor('ec-p256', 'ec-p256', false).leafPath;
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', caFile('ec-p256', 'root.pem'), '-untrusted', caFile('ec-p256', 'ca.pem'), svid]).status).toBe(0);
    // Without a SPIFFE ID the rule decides: no server_auth, no serverAuth.
    const csr = parseCsr(csrs.get('ec-p256') as string);
    const notBefore = now() - 60;
    const plain = cas.get('ec-p256')!.issue({ spkiDer: csr.spkiDer, keyType: csr.keyType, uriSans: [], dnsSans: [DNS], notBefore, notAfter: notBefore + 900, serverAuth: false });
    const clientOnly = join(dir, `leaf-${counter++}.pem`);
    writeFileSync(clientOnly, plain.pem);
    expect(text(clientOnly)).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Client Authentication\n/);
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', caFile('ec-p256', 'root.pem'), '-untrusted', caFile('ec-p256', 'ca.pem'), clientOnly]).status).not.toBe(0);
  });

  it('uses a random positive 16-byte serial, or the one given', () => {
    const a = issueFor('ec-p256', 'ec-p256');
    const b = issueFor('ec-p256', 'ec-p256');
    expect(a.serialHex).toMatch(/^[4-7][0-9a-f]{31}$/);
    expect(a.serialHex).not.toBe(b.serialHex);
    const printed = openssl(['x509', '-in', a.leafPath, '-noout', '-serial']).stdout.trim();
    expect(printed).toBe(`serial=${a.serialHex.toUpperCase()}`);

    const given = issueFor('ec-p256', 'ec-p256', false, '00F1E2D3C4');
    expect(given.serialHex).toBe('f1e2d3c4');
    expect(new X509Certificate(given.pem).serialNumber).toBe('F1E2D3C4');
    // The top bit of F1 is set, so DER needs a leading zero octet to keep the serial positive.
    expect(given.der.includes(Buffer.from('020500f1e2d3c4', 'hex'))).toBe(true);
  });

  it('sets validity exactly and copies the issuer name from the CA certificate', () => {
    const { pem, notBefore } = issueFor('ed25519', 'ed25519');
    const leaf = new X509Certificate(pem);
    const ca = new X509Certificate(cas.get('ed25519')?.chainPem[0] as string);
    expect(Date.parse(leaf.validFrom) / 1000).toBe(notBefore);
    expect(Date.parse(leaf.validTo) / 1000).toBe(notBefore + 900);
    expect(leaf.issuer).toBe(ca.subject);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe(`URI:${SPIFFE}, DNS:${DNS}`);
  });

  it('returns DER and PEM of the same certificate and the chain without the root', () => {
    const ca = cas.get('ec-p256') as CertificateAuthority;
    const { pem, der } = issueFor('ec-p256', 'ec-p256');
    expect(pemToDer(pem).equals(der)).toBe(true);
    expect(ca.chainPem).toHaveLength(1);
    expect(ca.chainPem[0]).not.toBe(ca.rootPem);
    expect(ca.keyType).toBe('ec-p256');
  });

  it('refuses validity past the CA, reversed validity and unusable SANs', () => {
    const ca = cas.get('ec-p256') as CertificateAuthority;
    const csr = parseCsr(csrs.get('ec-p256') as string);
    const base = { spkiDer: csr.spkiDer, keyType: csr.keyType, uriSans: [SPIFFE], dnsSans: [], serverAuth: false };
    expect(thrown(() => ca.issue({ ...base, notBefore: now(), notAfter: now() + 20 * 365 * 86400 }))).toMatchObject({ code: 'server_error' });
    expect(() => ca.issue({ ...base, notBefore: now(), notAfter: now() - 1 })).toThrow(RangeError);
    expect(thrown(() => ca.issue({ ...base, uriSans: [], notBefore: now(), notAfter: now() + 60 }))).toMatchObject({ code: 'invalid_request', reason: 'grant_no_sans' });
    expect(thrown(() => ca.issue({ ...base, uriSans: ['spiffe://x/é'], notBefore: now(), notAfter: now() + 60 }))).toMatchObject({ code: 'invalid_request', reason: 'grant_san_invalid' });
    expect(() => ca.issue({ ...base, serialHex: '00', notBefore: now(), notAfter: now() + 60 })).toThrow(RangeError);
  });

  it('never issues an X509-SVID with more than one URI SAN or a malformed SPIFFE ID (X509-SVID sections 2 and 3.1)', () => {
    const ca = cas.get('ec-p256') as CertificateAuthority;
    const csr = parseCsr(csrs.get('ec-p256') as string);
    const base = { spkiDer: csr.spkiDer, keyType: csr.keyType, dnsSans: [DNS], serverAuth: false, notBefore: now(), notAfter: now() + 60 };
    const refusal = (uriSans: string[]): unknown => {
      try {
        ca.issue({ ...base, uriSans });
      } catch (err) {
        return err;
      }
      return undefined;
    };
    for (const uriSans of [[SPIFFE, 'https://acme.internal/x'], [SPIFFE, 'spiffe://acme.internal/other'], ['spiffe://acme.internal'], ['spiffe://Acme.internal/x'], ['SPIFFE://acme.internal/x'], ['spiffe://acme.internal:443/x']]) {
      expect(refusal(uriSans), uriSans.join(' ')).toMatchObject({ code: 'invalid_request', reason: 'grant_svid_invalid' });
    }
    // Several URI SANs without a SPIFFE ID are no SVID: they stay allowed.
    expect(refusal(['https://acme.internal/a', 'urn:acme:b'])).toBeUndefined();
  });
});
