import { createPublicKey } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { children, DerError, readOctetAlignedBitString, readOid, readRoot, value } from './der-reader.ts';
import type { KeyFamily } from './csr-signature.ts';

export type SpkiKeyType = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa';

export interface ImportedKey {
  key: KeyObject;
  keyType: SpkiKeyType;
  family: KeyFamily;
  rsaBits?: number;
}

/** A well-formed public key of a type, curve or shape Leash does not certify. */
export class UnsupportedKey extends Error {
  override readonly name = 'UnsupportedKey';
  readonly code = 'ERR_UNSUPPORTED_KEY';
}

// Canonical DER prefixes: AlgorithmIdentifier plus the BIT STRING header and, for EC, the
// uncompressed-point marker. Only these exact encodings take the fast path. P-384 has none: its
// JWK import runs a full key check that is slower than the DER decoder.
const P256_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200' + '04', 'hex');
const ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';

/**
 * Imports a requester's SubjectPublicKeyInfo. OpenSSL 3's DER key decoder costs ~100 us a key,
 * most of a certificate's budget, while importing the same numbers as a JWK is far cheaper for
 * P-256, Ed25519 and RSA. So canonical encodings of those are split here and imported as JWK;
 * other EC encodings go through the generic decoder and are classified from what OpenSSL reports.
 */
export function importSpki(spkiDer: Buffer): ImportedKey {
  if (startsWith(spkiDer, P256_PREFIX) && spkiDer.length === P256_PREFIX.length + 64) {
    const x = spkiDer.subarray(P256_PREFIX.length, P256_PREFIX.length + 32);
    const y = spkiDer.subarray(P256_PREFIX.length + 32);
    return { key: fromJwk({ kty: 'EC', crv: 'P-256', x: b64u(x), y: b64u(y) }), keyType: 'ec-p256', family: 'ec' };
  }
  if (startsWith(spkiDer, ED25519_PREFIX) && spkiDer.length === ED25519_PREFIX.length + 32) {
    const x = spkiDer.subarray(ED25519_PREFIX.length);
    return { key: fromJwk({ kty: 'OKP', crv: 'Ed25519', x: b64u(x) }), keyType: 'ed25519', family: 'ed25519' };
  }
  const rsa = rsaNumbers(spkiDer);
  if (rsa) {
    return { key: fromJwk({ kty: 'RSA', n: b64u(rsa.n), e: b64u(rsa.e) }), keyType: 'rsa', family: 'rsa', rsaBits: bitLength(rsa.n) };
  }
  return importGeneric(spkiDer);
}

function importGeneric(spkiDer: Buffer): ImportedKey {
  const key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      // OpenSSL names the curve of explicit parameters that equal a named one; RFC 5480 section
      // 2.1.1 forbids them in a certificate, and strict verifiers refuse such a certificate.
      if (!hasNamedCurve(spkiDer)) throw new UnsupportedKey('key uses explicit EC parameters; RFC 5480 requires a named curve');
      if (details.namedCurve === 'prime256v1') return { key, keyType: 'ec-p256', family: 'ec' };
      if (details.namedCurve === 'secp384r1') return { key, keyType: 'ec-p384', family: 'ec' };
      throw new UnsupportedKey(`key uses curve ${details.namedCurve ?? 'with explicit parameters'}, which is not supported`);
    case 'ed25519':
      return { key, keyType: 'ed25519', family: 'ed25519' };
    default:
      throw new UnsupportedKey(`key algorithm ${key.asymmetricKeyType ?? 'unknown'} is not supported`);
  }
}

/** Whether an EC key's AlgorithmIdentifier parameters are a namedCurve OID (not specifiedCurve). */
function hasNamedCurve(spkiDer: Buffer): boolean {
  const [alg] = children(spkiDer, readRoot(spkiDer, 0x30, 'SubjectPublicKeyInfo'));
  const params = alg ? children(spkiDer, alg)[1] : undefined;
  return params?.tag === 0x06;
}

/**
 * n and e of an rsaEncryption key, or undefined for other algorithms. RSA keys are only taken in
 * canonical form and with sane numbers: OpenSSL happily verifies with e = 1 or an even modulus,
 * and a certificate for such a key lets anyone who sees it sign as its holder. Every key's
 * subjectPublicKey is checked to hold whole octets here, since OpenSSL's decoder, which takes the
 * others, reads past a non-zero unused-bit count.
 */
function rsaNumbers(spkiDer: Buffer): { n: Buffer; e: Buffer } | undefined {
  const [alg, bits, extra] = children(spkiDer, readRoot(spkiDer, 0x30, 'SubjectPublicKeyInfo'));
  if (!alg || !bits || extra || alg.tag !== 0x30) throw new DerError('malformed SubjectPublicKeyInfo');
  const keyBits = readOctetAlignedBitString(spkiDer, bits);
  const [oid, params, more] = children(spkiDer, alg);
  if (!oid || readOid(spkiDer, oid) !== RSA_ENCRYPTION) return undefined;
  if (more || !params || params.tag !== 0x05 || params.end !== params.valueStart) {
    throw new DerError('rsaEncryption parameters must be NULL');
  }
  const [n, e, rest] = children(keyBits, readRoot(keyBits, 0x30, 'RSAPublicKey'));
  if (!n || !e || rest) throw new DerError('malformed RSAPublicKey');
  const nBytes = positiveMagnitude(value(keyBits, n), n.tag);
  const eBytes = positiveMagnitude(value(keyBits, e), e.tag);
  if (!nBytes || !eBytes) throw new DerError('RSA numbers must be minimal positive INTEGERs');
  const eIsOdd = ((eBytes[eBytes.length - 1] as number) & 1) === 1;
  if (((nBytes[nBytes.length - 1] as number) & 1) === 0) throw new UnsupportedKey('RSA key has an even modulus');
  if (!eIsOdd || bitLength(eBytes) < 2 || bitLength(eBytes) > 256) {
    throw new UnsupportedKey('RSA key public exponent must be odd and between 3 and 2^256');
  }
  return { n: nBytes, e: eBytes };
}

/** The magnitude of a minimally encoded positive INTEGER, or undefined for anything else. */
function positiveMagnitude(v: Buffer, tag: number): Buffer | undefined {
  if (tag !== 0x02 || v.length === 0 || ((v[0] as number) & 0x80) !== 0) return undefined;
  if (v[0] === 0) {
    if (v.length === 1 || ((v[1] as number) & 0x80) === 0) return undefined;
    return v.subarray(1);
  }
  return v;
}

function bitLength(magnitude: Buffer): number {
  const top = magnitude[0] as number;
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(top));
}

const fromJwk = (jwk: JsonWebKey): KeyObject => createPublicKey({ key: jwk, format: 'jwk' });
const b64u = (b: Buffer): string => b.toString('base64url');
const startsWith = (buf: Buffer, prefix: Buffer): boolean =>
  buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
