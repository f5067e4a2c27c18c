import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import type { CertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import { parseCsr } from '../../src/mint/x509/csr.ts';
import { generateDevCa } from '../../src/mint/x509/generate-ca.ts';
import type { CaGenerationKeyType } from '../../src/mint/x509/generate-ca.ts';
import { makeCsr, openssl } from '../helpers/csr.ts';

const dir = mkdtempSync(join(tmpdir(), 'leash-x509-crl-'));
const CA_TYPES: CaGenerationKeyType[] = ['ec-p256', 'ec-p384', 'ed25519'];
const cas = new Map<CaGenerationKeyType, CertificateAuthority>();
let counter = 0;

beforeAll(async () => {
  for (const keyType of CA_TYPES) {
    await generateDevCa(join(dir, keyType), { keyType });
    cas.set(keyType, await loadCertificateAuthority(join(dir, keyType), { crlUrl: 'http://127.0.0.1:8080/crl' }));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const caPath = (t: CaGenerationKeyType, f: string): string => join(dir, t, 'ca', f);
const at = (iso: string): number => Date.parse(iso) / 1000;

function writeCrl(der: Buffer): string {
  const path = join(dir, `crl-${counter++}.der`);
  writeFileSync(path, der);
  return path;
}

/** `openssl crl -text` with signature verification against the issuing CA. */
function inspect(t: CaGenerationKeyType, path: string): { text: string; verified: boolean } {
  const r = openssl(['crl', '-inform', 'DER', '-in', path, '-noout', '-text', '-CAfile', caPath(t, 'ca.pem')]);
  return { text: r.stdout, verified: r.status === 0 && /verify OK/.test(r.stderr) };
}

describe('CRL', () => {
  for (const caType of CA_TYPES) {
    it(`${caType} CA signs a CRL that openssl verifies and reads`, () => {
      const crl = (cas.get(caType) as CertificateAuthority).buildCrl({
        entries: [
          { serialHex: '4a1b2c3d4e5f60718293a4b5c6d7e8f9', revokedAt: at('2026-01-02T03:04:05Z') },
          { serialHex: 'ff', revokedAt: at('2026-01-03T00:00:00Z') },
        ],
        crlNumber: 1234567890123n,
        thisUpdate: at('2026-01-03T00:00:00Z'),
        nextUpdate: at('2026-01-03T01:00:00Z'),
      });
      const { text, verified } = inspect(caType, writeCrl(crl));
      expect(verified).toBe(true);
      expect(text).toContain('Version 2 (0x1)');
      expect(text).toMatch(/X509v3 CRL Number: \s+1234567890123/);
      expect(text).toContain('X509v3 Authority Key Identifier');
      expect(text).toMatch(/Serial Number: 4A1B2C3D4E5F60718293A4B5C6D7E8F9\s+Revocation Date: Jan {2}2 03:04:05 2026 GMT/);
      expect(crl.includes(Buffer.from('020200ff', 'hex'))).toBe(true); // positive despite the top bit
      expect(text).toMatch(/Serial Number: FF\s+Revocation Date: Jan {2}3 00:00:00 2026 GMT/);
      expect(text).toContain('Last Update: Jan  3 00:00:00 2026 GMT');
      expect(text).toContain('Next Update: Jan  3 01:00:00 2026 GMT');
    });
  }

  it('leaves the revoked list out when nothing is revoked', () => {
    const crl = (cas.get('ec-p256') as CertificateAuthority).buildCrl({
      entries: [],
      crlNumber: 0n,
      thisUpdate: at('2026-01-01T00:00:00Z'),
      nextUpdate: at('2026-01-02T00:00:00Z'),
    });
    const { text, verified } = inspect('ec-p256', writeCrl(crl));
    expect(verified).toBe(true);
    expect(text).toContain('No Revoked Certificates.');
  });

  it('fails verification when a bit of the CRL changes', () => {
    const crl = (cas.get('ec-p256') as CertificateAuthority).buildCrl({
      entries: [{ serialHex: '0a', revokedAt: at('2026-01-01T00:00:00Z') }],
      crlNumber: 7n,
      thisUpdate: at('2026-01-01T00:00:00Z'),
      nextUpdate: at('2026-01-02T00:00:00Z'),
    });
    const tampered = Buffer.from(crl);
    const i = tampered.indexOf(Buffer.from('020107', 'hex')); // the CRL number INTEGER
    tampered[i + 2] = 8;
    expect(inspect('ec-p256', writeCrl(tampered)).verified).toBe(false);
  });

  it('makes openssl reject a revoked certificate and accept the others', async () => {
    const ca = cas.get('ec-p256') as CertificateAuthority;
    const csr = parseCsr((await makeCsr({ keyType: 'ec-p256' })).csrPem);
    const nowS = Math.floor(Date.now() / 1000);
    const issue = () =>
      ca.issue({ spkiDer: csr.spkiDer, keyType: csr.keyType, uriSans: ['spiffe://acme/a'], dnsSans: [], notBefore: nowS - 60, notAfter: nowS + 600, serverAuth: false });
    const revoked = issue();
    const fine = issue();
    const crlDer = ca.buildCrl({ entries: [{ serialHex: revoked.serialHex, revokedAt: nowS - 10 }], crlNumber: 2n, thisUpdate: nowS - 30, nextUpdate: nowS + 3600 });
    const crlPem = join(dir, 'revoked.crl.pem');
    expect(openssl(['crl', '-inform', 'DER', '-in', writeCrl(crlDer), '-out', crlPem]).status).toBe(0);
    const verify = (pem: string) => {
      const leaf = join(dir, `leaf-${counter++}.pem`);
      writeFileSync(leaf, pem);
      return openssl(['verify', '-crl_check', '-CRLfile', crlPem, '-CAfile', caPath('ec-p256', 'root.pem'), '-untrusted', caPath('ec-p256', 'ca.pem'), leaf]);
    };
    expect(verify(fine.pem).status).toBe(0);
    const r = verify(revoked.pem);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('certificate revoked');
  });

  it('refuses a CRL number out of range and a nextUpdate before thisUpdate (caller mistakes: RangeError)', () => {
    const ca = cas.get('ec-p256') as CertificateAuthority;
    const base = { entries: [], thisUpdate: 1_800_000_000, nextUpdate: 1_800_003_600 };
    expect(() => ca.buildCrl({ ...base, crlNumber: -1n })).toThrow(RangeError);
    expect(() => ca.buildCrl({ ...base, crlNumber: 1n << 160n })).toThrow(RangeError);
    expect(() => ca.buildCrl({ ...base, crlNumber: 1n, nextUpdate: base.thisUpdate })).toThrow(RangeError);
  });
});
