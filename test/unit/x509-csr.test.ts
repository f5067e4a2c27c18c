import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { KeyType } from '../../src/policy/types.ts';
import { createHash } from 'node:crypto';
import { checkCsrAgainstGrant, parseCsr } from '../../src/mint/x509/csr.ts';
import { CsrError, type CsrRefusal } from '../../src/mint/x509/csr-error.ts';
import { bitString, contextConstructed, nullValue, oid, sequence, smallInteger, unsignedInteger } from '../../src/mint/x509/der.ts';
import type { ParsedCsr } from '../../src/mint/x509/csr.ts';
import { makeCsr, mismatchedKeyCsr, openssl, pemToDer, tamperCsrSignature } from '../helpers/csr.ts';

const SPIFFE = 'spiffe://acme.internal/gh/acme/app';
const grant = (over: Partial<{ uri_sans: string[]; dns_sans: string[]; key_types: KeyType[] }> = {}) => ({
  uri_sans: [SPIFFE],
  dns_sans: ['app.acme.internal'],
  key_types: ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as KeyType[],
  ...over,
});

const dir = mkdtempSync(join(tmpdir(), 'leash-x509-csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A CSR made by the openssl CLI: `keyArgs` go to genpkey, `reqArgs` to req. */
function opensslCsr(name: string, keyArgs: string[], reqArgs: string[] = []): string {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  expect(openssl(['genpkey', ...keyArgs, '-out', key]).status).toBe(0);
  const r = openssl(['req', '-new', '-key', key, '-subj', '/O=acme', '-out', csr, ...reqArgs]);
  expect(r.stderr).toBe('');
  return readFileSync(csr, 'utf8');
}

/** The fixed reason a request was refused for; the wire code is always invalid_request. */
function refusal(fn: () => unknown): CsrRefusal {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CsrError);
    expect((e as CsrError).code).toBe('invalid_request');
    return (e as CsrError).reason;
  }
  throw new Error('expected a refusal');
}

/** What parseCsr alone can refuse (the rest needs a grant). */
const PARSE_REFUSALS: ReadonlySet<CsrRefusal> = new Set([
  'csr_missing',
  'csr_too_large',
  'csr_malformed',
  'csr_unsupported_algorithm',
  'csr_unsupported_name',
  'csr_unsupported_key',
  'csr_invalid_key',
  'csr_algorithm_mismatch',
  'csr_bad_signature',
  'csr_multiple_cns',
]);

describe('parseCsr', () => {
  it.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const)('reads a %s request and its SANs', async (keyType) => {
    const { csrPem } = await makeCsr({ keyType, uriSans: [SPIFFE], dnsSans: ['app.acme.internal'], cn: SPIFFE });
    const csr = parseCsr(csrPem);
    expect(csr.keyType).toBe(keyType === 'rsa-2048' ? 'rsa' : keyType);
    if (keyType === 'rsa-2048') expect(csr.rsaBits).toBe(2048);
    expect(csr.requested.uriSans).toEqual([SPIFFE]);
    expect(csr.requested.dnsSans).toEqual(['app.acme.internal']);
    expect(csr.subjectCn).toBe(SPIFFE);
    expect(csr.requested.basicConstraintsCa).toBeNull();
    const pub = openssl(['req', '-pubkey', '-noout'], csrPem);
    expect(csr.spkiDer.toString('hex')).toBe(pemToDer(pub.stdout).toString('hex'));
  });

  it('accepts base64url and base64 DER and the NEW CERTIFICATE REQUEST header', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const der = pemToDer(csrPem);
    expect(parseCsr(der.toString('base64url')).keyType).toBe('ec-p256');
    expect(parseCsr(der.toString('base64')).keyType).toBe('ec-p256');
    const legacy = csrPem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST');
    expect(parseCsr(legacy).keyType).toBe('ec-p256');
  });

  it('reads IP and email SANs and other extensions so the grant check can refuse them', async () => {
    const { csrPem } = await makeCsr({
      keyType: 'ec-p256',
      ipSans: ['10.0.0.1'],
      emailSans: ['a@acme.example'],
      extraExtensions: [
        { oid: '2.5.29.15', value: Buffer.from('03020780', 'hex') },
        { oid: '2.5.29.37', value: Buffer.from('300a06082b06010505070301', 'hex') },
        { oid: '1.2.3.4', value: Buffer.from('0500', 'hex') },
      ],
    });
    const csr = parseCsr(csrPem);
    expect(csr.requested.ipSans).toEqual(['10.0.0.1']);
    expect(csr.requested.emailSans).toEqual(['a@acme.example']);
    expect(csr.requested.otherExtensions).toEqual(['1.2.3.4']);
    expect(csr.requested.extKeyUsages).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(csr.requested.caKeyUsage).toBe(false); // digitalSignature only
    const ca = await makeCsr({ keyType: 'ec-p256', extraExtensions: [{ oid: '2.5.29.15', value: Buffer.from('03020204', 'hex') }] });
    expect(parseCsr(ca.csrPem).requested.caKeyUsage).toBe(true); // keyCertSign
  });

  it('verifies requests made by openssl: RSA-PSS, ECDSA with SHA-512, Ed25519, compressed points', () => {
    const pss = opensslCsr('pss', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], [
      '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32',
    ]);
    expect(parseCsr(pss)).toMatchObject({ keyType: 'rsa', rsaBits: 2048 });
    const ec512 = opensslCsr('ec512', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-sha512']);
    expect(parseCsr(ec512).keyType).toBe('ec-p256');
    expect(parseCsr(opensslCsr('ed', ['-algorithm', 'ED25519'])).keyType).toBe('ed25519');

    const key = join(dir, 'ec512.key');
    const compressed = join(dir, 'compressed.key');
    expect(openssl(['ec', '-in', key, '-conv_form', 'compressed', '-out', compressed]).status).toBe(0);
    const r = openssl(['req', '-new', '-key', compressed, '-subj', '/O=acme', '-addext', `subjectAltName=URI:${SPIFFE}`]);
    const csr = parseCsr(r.stdout);
    expect(csr.keyType).toBe('ec-p256');
    expect(csr.spkiDer.length).toBe(59); // 33-byte compressed point: the generic decoder path
    expect(csr.requested.uriSans).toEqual([SPIFFE]);
  });

  it('refuses a tampered signature and a signature by another key', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256', uriSans: [SPIFFE] });
    expect(refusal(() => parseCsr(tamperCsrSignature(csrPem)))).toBe('csr_bad_signature');
    const rsa = await makeCsr({ keyType: 'rsa-2048' });
    expect(refusal(() => parseCsr(tamperCsrSignature(rsa.csrPem)))).toBe('csr_bad_signature');
    const mismatched = await mismatchedKeyCsr();
    expect(refusal(() => parseCsr(mismatched))).toBe('csr_bad_signature');
  });

  it('refuses RSA keys under 2048 bits', async () => {
    const { csrPem } = await makeCsr({ keyType: 'rsa-1024' });
    expect(refusal(() => parseCsr(csrPem))).toBe('csr_unsupported_key');
  });

  it('refuses unsupported curves, key algorithms and SHA-1 signatures', () => {
    const p521 = opensslCsr('p521', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521']);
    expect(refusal(() => parseCsr(p521))).toBe('csr_unsupported_key');
    const rsaPssKey = opensslCsr('pss-key', ['-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048']);
    expect(refusal(() => parseCsr(rsaPssKey))).toBe('csr_unsupported_key');
    const sha1 = opensslCsr('sha1', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-sha1']);
    expect(refusal(() => parseCsr(sha1))).toBe('csr_unsupported_algorithm');
  });

  it.each([
    ['empty input', '', 'csr_missing'],
    ['plain text', 'hello world', 'csr_malformed'],
    ['random base64', Buffer.from('not a certificate request at all').toString('base64'), 'csr_malformed'],
    ['a certificate PEM', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----', 'csr_malformed'],
    ['an oversized input', 'A'.repeat(30_000), 'csr_too_large'],
  ] as const)('refuses garbage: %s', (_name, input, reason) => {
    expect(refusal(() => parseCsr(input))).toBe(reason);
  });

  it('refuses trailing bytes after the request', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const der = Buffer.concat([pemToDer(csrPem), Buffer.from([0])]);
    expect(refusal(() => parseCsr(der.toString('base64url')))).toBe('csr_malformed');
  });
});

/**
 * A request for an RSA key with public exponent 1, "signed" without any private key: with e = 1
 * the signature is just the padded digest. OpenSSL verifies it, so Leash must refuse the key.
 */
function exponentOneCsr(modulus: Buffer, exponent: number): string {
  const rsaKey = sequence(unsignedInteger(modulus), smallInteger(exponent));
  const spki = sequence(sequence(oid('1.2.840.113549.1.1.1'), nullValue()), bitString(rsaKey));
  const cri = sequence(smallInteger(0), sequence(), spki, contextConstructed(0));
  const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(cri).digest()]);
  const padded = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - 3 - digestInfo.length, 0xff), Buffer.from([0]), digestInfo]);
  return sequence(cri, sequence(oid('1.2.840.113549.1.1.11'), nullValue()), bitString(padded)).toString('base64url');
}

describe('parseCsr and weak RSA keys', () => {
  it('refuses a public exponent of 1, whose signatures anyone can make', () => {
    const modulus = Buffer.alloc(256, 0xff); // odd, 2048 bits, above any padded digest
    expect(refusal(() => parseCsr(exponentOneCsr(modulus, 1)))).toBe('csr_unsupported_key');
  });

  it('refuses an even modulus and an even exponent', () => {
    const even = Buffer.alloc(256, 0xff);
    even[255] = 0xfe;
    expect(refusal(() => parseCsr(exponentOneCsr(even, 65537)))).toBe('csr_unsupported_key');
    expect(refusal(() => parseCsr(exponentOneCsr(Buffer.alloc(256, 0xff), 65536)))).toBe('csr_unsupported_key');
  });
});

describe('parseCsr on corrupted input', () => {
  it('answers every mutation of a valid request with a parse or a CsrError (invalid_request), never a crash', async () => {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256', uriSans: [SPIFFE], dnsSans: ['app.acme.internal'], cn: SPIFFE });
    const der = pemToDer(csrPem);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: der.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat({ max: der.length }),
        (edits, cut) => {
          const mutated = Buffer.from(der.subarray(0, Math.max(cut, 1)));
          for (const [at, byte] of edits) if (at < mutated.length) mutated[at] = byte;
          try {
            parseCsr(mutated.toString('base64url'));
          } catch (e) {
            expect(e).toBeInstanceOf(CsrError);
            expect((e as CsrError).code).toBe('invalid_request');
            expect(PARSE_REFUSALS).toContain((e as CsrError).reason);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('checkCsrAgainstGrant', () => {
  const check = async (opts: Parameters<typeof makeCsr>[0], g = grant()): Promise<ParsedCsr> => {
    const csr = parseCsr((await makeCsr(opts)).csrPem);
    checkCsrAgainstGrant(csr, g);
    return csr;
  };

  it('accepts granted SANs, a granted CN, CA:false and harmless extensions', async () => {
    await check({ keyType: 'ec-p256' });
    await check({ keyType: 'ed25519', uriSans: [SPIFFE], dnsSans: ['APP.acme.internal'], cn: 'app.acme.internal', ca: false });
    await check({
      keyType: 'ec-p256',
      extraExtensions: [
        { oid: '2.5.29.15', value: Buffer.from('03020780', 'hex') },
        { oid: '2.5.29.37', value: Buffer.from('300a06082b06010505070302', 'hex') },
      ],
    });
  });

  it.each([
    ['an extra URI SAN', { keyType: 'ec-p256', uriSans: [SPIFFE, 'spiffe://acme.internal/admin'] }, 'csr_san_not_granted'],
    ['an extra DNS SAN', { keyType: 'ec-p256', dnsSans: ['evil.example'] }, 'csr_san_not_granted'],
    ['an IP SAN', { keyType: 'ec-p256', ipSans: ['10.0.0.1'] }, 'csr_san_not_granted'],
    ['an email SAN', { keyType: 'ec-p256', emailSans: ['a@acme.example'] }, 'csr_san_not_granted'],
    ['CA:true', { keyType: 'ec-p256', ca: true }, 'csr_ca_requested'],
    ['name constraints', { keyType: 'ec-p256', nameConstraints: true }, 'csr_ca_requested'],
    ['an ungranted CN', { keyType: 'ec-p256', cn: 'root' }, 'csr_cn_not_granted'],
    ['an unknown extension', { keyType: 'ec-p256', extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', value: Buffer.from('0500', 'hex') }] }, 'csr_extension_not_issued'],
  ] as const)('refuses %s', async (_name, opts, reason) => {
    const csr = parseCsr((await makeCsr(opts)).csrPem);
    expect(refusal(() => checkCsrAgainstGrant(csr, grant()))).toBe(reason);
  });

  it('refuses key types the rule does not allow, with rsa-N meaning at least N bits', async () => {
    const ed = parseCsr((await makeCsr({ keyType: 'ed25519' })).csrPem);
    expect(refusal(() => checkCsrAgainstGrant(ed, grant({ key_types: ['ec-p256'] })))).toBe('csr_key_type_not_allowed');
    const rsa = parseCsr((await makeCsr({ keyType: 'rsa-2048' })).csrPem);
    checkCsrAgainstGrant(rsa, grant({ key_types: ['rsa-2048'] }));
    expect(refusal(() => checkCsrAgainstGrant(rsa, grant({ key_types: ['rsa-3072', 'ec-p256'] })))).toBe('csr_key_type_not_allowed');
    const p384 = parseCsr((await makeCsr({ keyType: 'ec-p384' })).csrPem);
    expect(refusal(() => checkCsrAgainstGrant(p384, grant({ key_types: ['ec-p256'] })))).toBe('csr_key_type_not_allowed');
  });

  it('refuses grants that name no SANs or SANs that are not URIs or host names', async () => {
    const csr = parseCsr((await makeCsr({ keyType: 'ec-p256' })).csrPem);
    expect(refusal(() => checkCsrAgainstGrant(csr, grant({ uri_sans: [], dns_sans: [] })))).toBe('grant_no_sans');
    expect(refusal(() => checkCsrAgainstGrant(csr, grant({ uri_sans: ['spiffe://acme/a b'] })))).toBe('grant_san_invalid');
    expect(refusal(() => checkCsrAgainstGrant(csr, grant({ dns_sans: ['bad_host.example'] })))).toBe('grant_san_invalid');
  });
});
