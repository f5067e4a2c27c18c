/**
 * Differential test of Leash's hand-written PKCS#10 parser (csr.ts, der-reader.ts,
 * csr-signature.ts, spki.ts, names.ts) against @peculiar/asn1-csr with a DER re-encoding check and
 * WebCrypto signatures (csr-oracle.ts), and `openssl req -verify` for every request Leash accepts.
 * Requests are made by @peculiar/x509 for each key type, then mutated: outside the signed part
 * (bit flips, truncation, trailing bytes, swapped algorithm, another key's signature) and inside it
 * with a fresh signature, so the parser meets broken structure that still verifies.
 */
import 'reflect-metadata';
import { KeyObject, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { LeashError } from '../../src/errors.ts';
import { parseCsr } from '../../src/mint/x509/csr.ts';
import { openssl } from '../helpers/csr.ts';
import { oracle, type Verdict } from './csr-oracle.ts';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

type KeyName = 'p256' | 'p384' | 'ed25519' | 'rsa2048' | 'p521' | 'rsa1024';
const GEN: Record<KeyName, EcKeyGenParams | RsaHashedKeyGenParams | Algorithm> = {
  p256: { name: 'ECDSA', namedCurve: 'P-256' },
  p384: { name: 'ECDSA', namedCurve: 'P-384' },
  p521: { name: 'ECDSA', namedCurve: 'P-521' },
  ed25519: { name: 'Ed25519' },
  rsa2048: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  rsa1024: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
};
const KEY_NAMES = Object.keys(GEN) as KeyName[];
type Hash = 'SHA-256' | 'SHA-384' | 'SHA-512';

/** Two key pairs per type: the second signs requests that name the first (a forged possession proof). */
const keys = {} as Record<KeyName, [CryptoKeyPair, CryptoKeyPair]>;
beforeAll(async () => {
  for (const n of KEY_NAMES) {
    const gen = async (): Promise<CryptoKeyPair> => (await crypto.subtle.generateKey(GEN[n], true, ['sign', 'verify'])) as CryptoKeyPair;
    keys[n] = [await gen(), await gen()];
  }
}, 60_000);

// ---- requests ----------------------------------------------------------------------------------

type San = { type: 'dns' | 'url' | 'ip' | 'email' | 'upn' | 'id' | 'dn'; value: string };
type ExtName = 'ca' | 'notCa' | 'keyUsage' | 'keyUsageCa' | 'eku' | 'ski' | 'unknown' | 'dupSan';
interface Spec {
  key: KeyName;
  hash: Hash;
  sans: San[];
  cn: 'none' | 'one' | 'two' | 'withO';
  exts: ExtName[];
}

const sanArb: fc.Arbitrary<San> = fc.oneof(
  { arbitrary: fc.constantFrom<San>({ type: 'dns', value: 'app.acme.internal' }, { type: 'dns', value: '*.acme.internal' }, { type: 'url', value: 'spiffe://acme.internal/gh/acme/app' }), weight: 6 },
  { arbitrary: fc.constantFrom<San>({ type: 'ip', value: '10.0.0.1' }, { type: 'ip', value: '2001:db8::1' }, { type: 'email', value: 'ops@acme.internal' }), weight: 2 },
  { arbitrary: fc.constantFrom<San>({ type: 'upn', value: 'app@acme' }, { type: 'id', value: '1.2.3.4' }, { type: 'dn', value: 'CN=x' }), weight: 1 },
);
const specArb: fc.Arbitrary<Spec> = fc.record({
  key: fc.oneof({ arbitrary: fc.constantFrom<KeyName>('p256', 'p384', 'ed25519', 'rsa2048'), weight: 6 }, { arbitrary: fc.constantFrom<KeyName>('p521', 'rsa1024'), weight: 1 }),
  hash: fc.constantFrom<Hash>('SHA-256', 'SHA-384', 'SHA-512'),
  sans: fc.array(sanArb, { maxLength: 3 }),
  cn: fc.constantFrom<Spec['cn']>('none', 'one', 'one', 'withO', 'two'),
  exts: fc.subarray<ExtName>(['ca', 'notCa', 'keyUsage', 'keyUsageCa', 'eku', 'ski', 'unknown', 'dupSan'], { maxLength: 2 }),
});

function signingAlgorithm(spec: Spec): Algorithm | EcdsaParams | RsaHashedImportParams {
  if (spec.key === 'ed25519') return { name: 'Ed25519' };
  if (spec.key.startsWith('rsa')) return { name: 'RSASSA-PKCS1-v1_5', hash: spec.hash } as RsaHashedImportParams;
  return { name: 'ECDSA', hash: spec.hash } as EcdsaParams;
}

async function makeCsr(spec: Spec): Promise<Buffer> {
  const [pair] = keys[spec.key];
  const extensions: x509.Extension[] = [];
  if (spec.sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(spec.sans, false));
  if (spec.exts.includes('dupSan')) extensions.push(new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'other.acme.internal' }], false));
  if (spec.exts.includes('ca')) extensions.push(new x509.BasicConstraintsExtension(true, 0, true));
  if (spec.exts.includes('notCa')) extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
  if (spec.exts.includes('keyUsage')) extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true));
  if (spec.exts.includes('keyUsageCa')) extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true));
  if (spec.exts.includes('eku')) extensions.push(new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2'], false));
  if (spec.exts.includes('ski')) extensions.push(new x509.Extension('2.5.29.14', false, Buffer.from('04040102030a', 'hex')));
  if (spec.exts.includes('unknown')) extensions.push(new x509.Extension('1.3.6.1.4.1.99999.1', false, Buffer.from('0500', 'hex')));
  const name = { none: undefined, one: 'CN=app.acme.internal', two: 'CN=app.acme.internal, CN=evil.example', withO: 'CN=app.acme.internal, O=acme' }[spec.cn];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ ...(name ? { name } : {}), keys: pair, signingAlgorithm: signingAlgorithm(spec), extensions });
  return Buffer.from(csr.rawData);
}

// ---- DER surgery (by hand: independent of both parsers) ------------------------------------------

const len = (n: number): Buffer => (n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]));
const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(body.length), body]);

/** The three top-level fields of a CertificationRequest, as byte ranges of `der` (well-formed input only). */
function fields(der: Buffer): [Buffer, Buffer, Buffer] {
  const read = (at: number): [number, number] => {
    const first = der[at + 1]!;
    const count = first & 0x80 ? first & 0x7f : 0;
    let l = count ? 0 : first;
    for (let i = 0; i < count; i++) l = l * 256 + der[at + 2 + i]!;
    return [at, at + 2 + count + l];
  };
  const headerLen = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2;
  const [a, b] = read(headerLen);
  const [, c] = read(b);
  const [, d] = read(c);
  return [der.subarray(a, b), der.subarray(b, c), der.subarray(c, d)];
}

const assemble = (cri: Buffer, sigAlg: Buffer, sig: Buffer): Buffer => tlv(0x30, Buffer.concat([cri, sigAlg, tlv(0x03, Buffer.concat([Buffer.from([0]), sig]))]));

/** Signs `cri` as the spec's algorithm would, with node:crypto (DER ECDSA, PKCS#1 v1.5 RSA). */
function signCri(spec: Spec, which: 0 | 1, cri: Buffer): Buffer {
  const key = KeyObject.from(keys[spec.key][which].privateKey);
  const hash = spec.key === 'ed25519' ? null : `sha${spec.hash.slice(4)}`;
  return sign(hash, cri, key);
}

const SIG_ALGS: Record<string, string> = {
  ecdsaSha256: '300a06082a8648ce3d040302',
  ecdsaSha512: '300a06082a8648ce3d040304',
  ecdsaSha1: '300906072a8648ce3d0401',
  rsaSha256: '300d06092a864886f70d01010b0500',
  rsaSha256NoParams: '300b06092a864886f70d01010b',
  rsaSha384: '300d06092a864886f70d01010c0500',
  rsaSha1: '300d06092a864886f70d0101050500',
  ed25519: '300506032b6570',
  ed25519Null: '300706032b65700500',
};

type Mutation =
  | { kind: 'none' }
  | { kind: 'flip' | 'criFlip'; at: number; bit: number }
  | { kind: 'set' | 'criSet'; at: number; to: number }
  | { kind: 'truncate' | 'criTruncate'; at: number }
  | { kind: 'append'; bytes: number[] }
  | { kind: 'criInsert'; at: number; bytes: number[] }
  | { kind: 'swapAlg'; to: string }
  | { kind: 'otherKey' }
  /** The tag of the subject's first AttributeTypeAndValue (a SEQUENCE) set to `to`, re-signed. */
  | { kind: 'criAtvTag'; to: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant<Mutation>({ kind: 'none' }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constantFrom('flip' as const, 'criFlip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constantFrom('set' as const, 'criSet' as const), at: fc.nat(), to: fc.constantFrom(0x00, 0x01, 0x05, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0xa0, 0xff) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constantFrom('truncate' as const, 'criTruncate' as const), at: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('criInsert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('swapAlg' as const), to: fc.constantFrom(...Object.keys(SIG_ALGS)) }), weight: 1 },
  { arbitrary: fc.constant<Mutation>({ kind: 'otherKey' }), weight: 1 },
);

function mutate(spec: Spec, der: Buffer, m: Mutation): Buffer {
  const [cri, sigAlg, sigBits] = fields(der);
  const resign = (newCri: Buffer): Buffer => assemble(newCri, sigAlg, signCri(spec, 0, newCri));
  const out = Buffer.from(der);
  const c = Buffer.from(cri);
  switch (m.kind) {
    case 'none':
      return der;
    case 'flip':
      out[m.at % out.length]! ^= 1 << m.bit;
      return out;
    case 'set':
      out[m.at % out.length] = m.to;
      return out;
    case 'truncate':
      return der.subarray(0, m.at % der.length);
    case 'append':
      return Buffer.concat([der, Buffer.from(m.bytes)]);
    case 'swapAlg':
      return tlv(0x30, Buffer.concat([cri, Buffer.from(SIG_ALGS[m.to]!, 'hex'), sigBits]));
    case 'otherKey':
      return assemble(cri, sigAlg, signCri(spec, 1, cri));
    case 'criFlip':
      c[m.at % c.length]! ^= 1 << m.bit;
      return resign(c);
    case 'criSet':
      c[m.at % c.length] = m.to;
      return resign(c);
    case 'criTruncate':
      return resign(c.subarray(0, m.at % c.length));
    case 'criAtvTag': {
      // CRI header, version (3 bytes), Name header (2), RDN SET header (2): short lengths here.
      c[(c[1]! & 0x80 ? 2 + (c[1]! & 0x7f) : 2) + 3 + 2 + 2] = m.to;
      return resign(c);
    }
    case 'criInsert': {
      const at = m.at % (c.length + 1);
      return resign(Buffer.concat([c.subarray(0, at), Buffer.from(m.bytes), c.subarray(at)]));
    }
  }
}

// ---- the comparison ------------------------------------------------------------------------------

const pem = (der: Buffer): string =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;

function leashVerdict(der: Buffer, form: 'pem' | 'base64url'): Verdict {
  try {
    const csr = parseCsr(form === 'pem' ? pem(der) : der.toString('base64url'));
    const r = csr.requested;
    return {
      ok: true,
      csr: {
        spkiDer: csr.spkiDer,
        keyType: csr.keyType,
        ...(csr.rsaBits === undefined ? {} : { rsaBits: csr.rsaBits }),
        uriSans: r.uriSans,
        dnsSans: r.dnsSans,
        ipSans: r.ipSans,
        emailSans: r.emailSans,
        ...(csr.subjectCn === undefined ? {} : { subjectCn: csr.subjectCn }),
      },
    };
  } catch (e) {
    // Only an invalid_request refusal is an answer; anything else (a crash in the parser) fails the test.
    if (!(e instanceof LeashError)) throw e;
    expect(e.code).toBe('invalid_request');
    return { ok: false, why: e.description };
  }
}

async function agree(given: Spec, m: Mutation, form: 'pem' | 'base64url'): Promise<void> {
  // Deliberate difference: Leash reads no subject attribute but CN (the certificate's subject comes
  // from the grant), so it does not judge how others (here O) are encoded, while asn1-x509 refuses
  // e.g. a PrintableString tag flipped to a primitive SET. Signed-part mutations get a CN-only subject.
  const spec: Spec = m.kind.startsWith('cri') && given.cn === 'withO' ? { ...given, cn: 'one' } : given;
  const der = mutate(spec, await makeCsr(spec), m);
  const expected = await oracle(der);
  const leash = leashVerdict(der, form);
  const context = JSON.stringify({ spec, m, der: der.toString('base64'), oracle: expected.ok ? 'accept' : expected.why, leash: leash.ok ? 'accept' : leash.why });
  expect(leash.ok, context).toBe(expected.ok);
  if (!leash.ok || !expected.ok) return;
  expect({ ...leash.csr, spkiDer: leash.csr.spkiDer.toString('hex') }, context).toEqual({ ...expected.csr, spkiDer: expected.csr.spkiDer.toString('hex') });
  // A third opinion on what Leash accepts: OpenSSL parses the request and checks its signature.
  const r = openssl(['req', '-verify', '-noout'], pem(der));
  expect(r.status, `${context}\n${r.stderr}`).toBe(0);
}

describe('CSR parsing: Leash and @peculiar/asn1-csr + WebCrypto agree', () => {
  it.each(['p256', 'p384', 'ed25519', 'rsa2048', 'p521', 'rsa1024'] as const)('an unmutated %s request with SANs', async (key) => {
    const spec: Spec = { key, hash: 'SHA-384', sans: [{ type: 'dns', value: 'app.acme.internal' }, { type: 'url', value: 'spiffe://acme.internal/app' }, { type: 'ip', value: '2001:db8::1' }], cn: 'one', exts: [] };
    await agree(spec, { kind: 'none' }, 'pem');
    expect((await oracle(await makeCsr(spec))).ok).toBe(!['p521', 'rsa1024'].includes(key));
  });

  // Found by this test: names.ts walked any constructed element as an AttributeTypeAndValue, so a
  // subject whose CN sat in a SET instead of a SEQUENCE was read (and its CN used).
  it.each(['p256', 'ed25519'] as const)('a %s request whose subject AttributeTypeAndValue is a SET is refused by both', async (key) => {
    await agree({ key, hash: 'SHA-256', sans: [], cn: 'one', exts: [] }, { kind: 'criAtvTag', to: 0x31 }, 'pem');
  });

  // Found by this test: a keyUsage BIT STRING whose unused-bit count (0x07 flipped to 0x0f) is
  // above 7 was read for its bits instead of refused.
  it('a request whose keyUsage BIT STRING claims 15 unused bits is refused by both', async () => {
    const spec: Spec = { key: 'p256', hash: 'SHA-256', sans: [{ type: 'ip', value: '2001:db8::1' }], cn: 'none', exts: ['keyUsage'] };
    await agree(spec, { kind: 'criFlip', at: 1109776370, bit: 3 }, 'pem');
    expect(leashVerdict(mutate(spec, await makeCsr(spec), { kind: 'criFlip', at: 1109776370, bit: 3 }), 'pem')).toMatchObject({ ok: false, why: expect.stringContaining('unused-bit count above 7') });
  });

  // Found by this test: an Extension whose critical flag was written out as FALSE (the DEFAULT,
  // which DER omits) was read as if it were DER.
  it('a request whose extension spells out critical FALSE is refused by both', async () => {
    const spec: Spec = { key: 'p256', hash: 'SHA-256', sans: [{ type: 'dns', value: 'app.acme.internal' }], cn: 'none', exts: ['ca'] };
    const m: Mutation = { kind: 'criSet', at: 1116790741, to: 0 };
    await agree(spec, m, 'pem');
    expect(leashVerdict(mutate(spec, await makeCsr(spec), m), 'pem')).toMatchObject({ ok: false, why: expect.stringContaining('critical FALSE') });
  });

  // Found by this test: an Ed25519 key whose BIT STRING claimed 1 unused bit left the fast path
  // for OpenSSL's decoder, which took it.
  it('a request whose Ed25519 key BIT STRING claims an unused bit is refused by both', async () => {
    const spec: Spec = { key: 'ed25519', hash: 'SHA-256', sans: [], cn: 'none', exts: [] };
    const m: Mutation = { kind: 'criFlip', at: 18, bit: 0 };
    await agree(spec, m, 'pem');
    expect(leashVerdict(mutate(spec, await makeCsr(spec), m), 'pem')).toMatchObject({ ok: false, why: 'csr public key is not valid' });
  });

  // Found by this test: basicConstraints was read for a leading cA BOOLEAN only, so a cA with a
  // broken tag, a pathLenConstraint that is not an INTEGER, or a SAN value under the
  // basicConstraints OID were taken as "not a CA".
  it.each<[string, Spec, Mutation]>([
    ['a cA tag flipped to 0x00', { key: 'ed25519', hash: 'SHA-256', sans: [{ type: 'ip', value: '10.0.0.1' }], cn: 'one', exts: ['ca', 'keyUsage'] }, { kind: 'criFlip', at: 2147483642, bit: 0 }],
    ['a pathLenConstraint tagged BIT STRING', { key: 'rsa2048', hash: 'SHA-256', sans: [{ type: 'dns', value: '*.acme.internal' }], cn: 'one', exts: ['ca'] }, { kind: 'criFlip', at: 567973459, bit: 0 }],
    ['GeneralNames under the basicConstraints OID', { key: 'p384', hash: 'SHA-256', sans: [{ type: 'ip', value: '2001:db8::1' }, { type: 'dns', value: '*.acme.internal' }], cn: 'none', exts: ['eku'] }, { kind: 'criFlip', at: 1713059453, bit: 1 }],
  ])('a request whose basicConstraints holds %s is refused by both', async (_, spec, m) => {
    await agree(spec, m, 'pem');
    expect(leashVerdict(mutate(spec, await makeCsr(spec), m), 'pem')).toMatchObject({ ok: false, why: expect.stringContaining('malformed basicConstraints') });
  });

  it('on generated requests, mutated outside and inside the signed part', async () => {
    await fc.assert(
      fc.asyncProperty(specArb, mutationArb, fc.constantFrom<'pem' | 'base64url'>('pem', 'base64url'), agree),
      { numRuns: Number(process.env.CSR_FUZZ_RUNS ?? 200) },
    );
  });
});
