import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import { parseCsr } from '../../src/mint/x509/csr.ts';
import { generateDevCa } from '../../src/mint/x509/generate-ca.ts';
import type { CaGenerationKeyType } from '../../src/mint/x509/generate-ca.ts';
import { makeCsr, openssl } from '../helpers/csr.ts';
import { opensslCa } from '../helpers/openssl-ca.ts';

const base = mkdtempSync(join(tmpdir(), 'leash-x509-ca-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let counter = 0;
const freshDir = (): string => join(base, `keys-${counter++}`);
const crlUrl = 'http://127.0.0.1:8080/crl';
const file = (dir: string, name: string): string => join(dir, 'ca', name);
const text = (path: string): string => openssl(['x509', '-in', path, '-noout', '-text']).stdout;
const years = (path: string): number => {
  const dates = openssl(['x509', '-in', path, '-noout', '-startdate', '-enddate']).stdout;
  const [from, to] = [...dates.matchAll(/=(.+)/g)].map((m) => Date.parse(m[1] as string));
  return ((to as number) - (from as number)) / (365.25 * 86_400_000);
};

describe('generateDevCa', () => {
  it.each(['ec-p256', 'ec-p384', 'ed25519'] as CaGenerationKeyType[])('writes a %s root and intermediate that openssl accepts', async (keyType) => {
    const dir = freshDir();
    await generateDevCa(dir, { keyType, trustDomain: 'acme.internal' });
    const root = file(dir, 'root.pem');
    const ca = file(dir, 'ca.pem');
    expect(openssl(['verify', '-x509_strict', '-CAfile', root, ca]).status).toBe(0);

    const rootText = text(root);
    expect(rootText).toMatch(/Basic Constraints: critical\s+CA:TRUE\n/);
    expect(rootText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(rootText).toContain('acme.internal');
    expect(years(root)).toBeCloseTo(10, 1);

    const caText = text(ca);
    expect(caText).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(caText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(caText).toContain('Authority Key Identifier');
    expect(years(ca)).toBeCloseTo(5, 1);

    // The broker only needs the issuing key; the root key is not kept anywhere.
    expect(existsSync(file(dir, 'root.key.pem'))).toBe(false);
    expect(statSync(file(dir, 'ca.key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(file(dir, 'ca.key.pem'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const loaded = await loadCertificateAuthority(dir, { crlUrl });
    expect(loaded.keyType).toBe(keyType);
  });

  it('leaves an existing CA alone unless forced', async () => {
    const dir = freshDir();
    await generateDevCa(dir);
    const before = readFileSync(file(dir, 'ca.key.pem'), 'utf8');
    await generateDevCa(dir);
    expect(readFileSync(file(dir, 'ca.key.pem'), 'utf8')).toBe(before);
    await generateDevCa(dir, { force: true });
    expect(readFileSync(file(dir, 'ca.key.pem'), 'utf8')).not.toBe(before);
    expect(statSync(file(dir, 'ca.key.pem')).mode & 0o777).toBe(0o600);
  });

  it('refuses to complete half a CA without force', async () => {
    const dir = freshDir();
    await generateDevCa(dir);
    unlinkSync(file(dir, 'ca.pem'));
    await expect(generateDevCa(dir)).rejects.toMatchObject({ code: 'ERR_CA', file: join(dir, 'ca') });
    await generateDevCa(dir, { force: true });
    await expect(loadCertificateAuthority(dir, { crlUrl })).resolves.toBeDefined();
  });
});

describe('loadCertificateAuthority', () => {
  it.each(['ca.key.pem', 'ca.pem', 'root.pem'])('names the file when %s is missing', async (name) => {
    const dir = freshDir();
    await generateDevCa(dir);
    unlinkSync(file(dir, name));
    await expect(loadCertificateAuthority(dir, { crlUrl })).rejects.toMatchObject({ code: 'ERR_CA', file: file(dir, name) });
  });

  it('names the key file when the key does not match the certificate', async () => {
    const a = freshDir();
    const b = freshDir();
    await generateDevCa(a);
    await generateDevCa(b);
    copyFileSync(file(b, 'ca.key.pem'), file(a, 'ca.key.pem'));
    await expect(loadCertificateAuthority(a, { crlUrl })).rejects.toMatchObject({ code: 'ERR_CA', file: file(a, 'ca.key.pem') });
  });

  it('refuses an intermediate that the root did not issue, and a garbled file', async () => {
    const a = freshDir();
    const b = freshDir();
    await generateDevCa(a);
    await generateDevCa(b);
    copyFileSync(file(b, 'root.pem'), file(a, 'root.pem'));
    await expect(loadCertificateAuthority(a, { crlUrl })).rejects.toMatchObject({ code: 'ERR_CA', file: file(a, 'ca.pem') });
    writeFileSync(file(b, 'ca.pem'), 'not a certificate');
    await expect(loadCertificateAuthority(b, { crlUrl })).rejects.toMatchObject({ code: 'ERR_CA', file: file(b, 'ca.pem') });
  });

  it('keeps the root out of the chain even when ca.pem bundles it', async () => {
    const dir = freshDir();
    await generateDevCa(dir);
    const root = readFileSync(file(dir, 'root.pem'), 'utf8');
    writeFileSync(file(dir, 'ca.pem'), readFileSync(file(dir, 'ca.pem'), 'utf8') + root);
    const ca = await loadCertificateAuthority(dir, { crlUrl });
    expect(ca.chainPem).toHaveLength(1);
    expect(ca.rootPem.trim()).toBe(root.trim());
  });

  it('refuses a CRL URL that is not http(s)', async () => {
    const dir = freshDir();
    await generateDevCa(dir);
    await expect(loadCertificateAuthority(dir, { crlUrl: 'ldap://x' })).rejects.toThrow(TypeError);
  });
});

describe('a CA made elsewhere', () => {
  it('loads an RSA intermediate that openssl made without a Subject Key Identifier, and issues from it', async () => {
    const dir = freshDir();
    const ca = join(dir, 'ca');
    mkdirSync(ca, { recursive: true });
    const ok = (args: string[]): void => expect(openssl(args).status).toBe(0);
    ok(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(base, 'rsa-root.key'), '-subj', '/CN=Other Root', '-days', '30',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', join(ca, 'root.pem')]);
    ok(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(ca, 'ca.key.pem'), '-subj', '/CN=Other Issuing', '-out', join(base, 'rsa-ca.csr')]);
    writeFileSync(join(base, 'rsa-ext.cnf'), '[v3]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=none\n');
    ok(['x509', '-req', '-in', join(base, 'rsa-ca.csr'), '-CA', join(ca, 'root.pem'), '-CAkey', join(base, 'rsa-root.key'), '-days', '20',
      '-extfile', join(base, 'rsa-ext.cnf'), '-extensions', 'v3', '-out', join(ca, 'ca.pem')]);
    expect(text(join(ca, 'ca.pem'))).not.toContain('Subject Key Identifier');

    const authority = await loadCertificateAuthority(dir, { crlUrl });
    expect(authority.keyType).toBe('rsa');
    const csr = parseCsr((await makeCsr({ keyType: 'ec-p256' })).csrPem);
    const now = Math.floor(Date.now() / 1000);
    const leaf = authority.issue({ spkiDer: csr.spkiDer, keyType: csr.keyType, uriSans: ['spiffe://other/x'], dnsSans: [], notBefore: now - 60, notAfter: now + 600, serverAuth: false });
    const leafPath = join(base, 'rsa-leaf.pem');
    writeFileSync(leafPath, leaf.pem);
    // Not -x509_strict: that (rightly) faults this intermediate for lacking an SKI, which is the point here.
    const r = openssl(['verify', '-CAfile', join(ca, 'root.pem'), '-untrusted', join(ca, 'ca.pem'), leafPath]);
    expect(r.stdout.trim()).toBe(`${leafPath}: OK`);
    expect(text(leafPath)).toContain('Signature Algorithm: sha256WithRSAEncryption');
  });

  it('refuses an intermediate whose keyUsage lacks cRLSign or keyCertSign, naming ca.pem and the bit', async () => {
    for (const [keyUsage, missing] of [['critical,keyCertSign', 'cRLSign'], ['critical,cRLSign,digitalSignature', 'keyCertSign']] as const) {
      const dir = freshDir();
      opensslCa(dir, join(dir, 'work'), { keyUsage });
      await expect(loadCertificateAuthority(dir, { crlUrl })).rejects.toMatchObject({
        code: 'ERR_CA',
        file: file(dir, 'ca.pem'),
        message: expect.stringContaining(`keyUsage lacks ${missing}`),
      });
    }
  });

  it('reports its notAfter, and whether it carries name constraints', async () => {
    const plain = freshDir();
    opensslCa(plain, join(plain, 'work'), { days: 1 });
    const ca = await loadCertificateAuthority(plain, { crlUrl });
    expect(ca.nameConstrained).toBe(false);
    const validTo = openssl(['x509', '-in', file(plain, 'ca.pem'), '-noout', '-enddate']).stdout.trim().replace('notAfter=', '');
    expect(ca.notAfter).toBe(Date.parse(validTo) / 1000);

    const constrained = freshDir();
    opensslCa(constrained, join(constrained, 'work'), { extraExtensions: ['nameConstraints=critical,permitted;DNS:other.internal'] });
    expect((await loadCertificateAuthority(constrained, { crlUrl })).nameConstrained).toBe(true);
  });
});

