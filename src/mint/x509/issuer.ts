import { createHash, randomFillSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { LeashError } from '../../errors.ts';
import {
  bitString,
  booleanValue,
  contextConstructed,
  contextPrimitive,
  extension,
  octetString,
  oid,
  sequence,
  sequenceOf,
  time,
  toPem,
  unsignedInteger,
} from './der.ts';
import { children, DerError, readOctetAlignedBitString, readRoot } from './der-reader.ts';
import { OID } from './oids.ts';
import { assertIssuableSans, isSvid } from './sans.ts';

export type CaKeyType = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa';

export interface IssueInput {
  spkiDer: Buffer;
  /** The requester's key type, as parsed from the CSR; RSA keys also get keyEncipherment. */
  keyType: 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa';
  uriSans: string[];
  dnsSans: string[];
  /** epoch seconds */
  notBefore: number;
  /** epoch seconds */
  notAfter: number;
  /** Lets the caller record the serial with the lease before the certificate exists. */
  serialHex?: string;
  /** serverAuth besides clientAuth; an X509-SVID (a SPIFFE ID in uriSans) carries both whatever this says. */
  serverAuth: boolean;
}

export interface IssuedCertificate {
  pem: string;
  der: Buffer;
  serialHex: string;
}

/** What the issuing CA contributes to every certificate and CRL, decoded once at load. */
export interface SigningContext {
  key: KeyObject;
  keyType: CaKeyType;
  /** The issuing CA certificate's subject, byte for byte, so chain building matches exactly. */
  issuerName: Buffer;
  /** The issuing CA's key identifier, for Authority Key Identifier. */
  keyId: Buffer;
  /** epoch seconds */
  caNotAfter: number;
}

interface SignatureAlgorithm {
  algorithmIdentifier: Buffer;
  hash: string | null;
}

export function signatureAlgorithmFor(keyType: CaKeyType): SignatureAlgorithm {
  switch (keyType) {
    case 'ec-p256':
      return { algorithmIdentifier: sequence(oid(OID.ecdsaWithSha256)), hash: 'sha256' };
    case 'ec-p384':
      return { algorithmIdentifier: sequence(oid(OID.ecdsaWithSha384)), hash: 'sha384' };
    case 'ed25519':
      return { algorithmIdentifier: sequence(oid(OID.ed25519)), hash: null };
    case 'rsa':
      return { algorithmIdentifier: sequence(oid(OID.sha256WithRSA), Buffer.from([0x05, 0x00])), hash: 'sha256' };
  }
}

/** Signs a TBS structure and wraps it as Certificate / CertificateList: both share this shape. */
export function signAndWrap(ctx: SigningContext, alg: SignatureAlgorithm, tbs: Buffer): Buffer {
  const signature = sign(alg.hash, tbs, ctx.key);
  return sequence(tbs, alg.algorithmIdentifier, bitString(signature));
}

export function authorityKeyIdentifierExtension(keyId: Buffer): Buffer {
  return extension(OID.authorityKeyIdentifier, false, sequence(contextPrimitive(0, keyId)));
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value. */
export function keyIdentifierOf(spkiDer: Buffer): Buffer {
  const spki = readRoot(spkiDer, 0x30, 'SubjectPublicKeyInfo');
  const [alg, key, extra] = children(spkiDer, spki);
  if (!alg || !key || extra || alg.tag !== 0x30) throw new DerError('malformed SubjectPublicKeyInfo');
  return createHash('sha1').update(readOctetAlignedBitString(spkiDer, key)).digest();
}

/** 16 random bytes, top bit clear (positive) and bit 6 set so the DER INTEGER is always 16 octets. */
export function generateSerialHex(): string {
  // One CSPRNG call per 256 serials: the call overhead, not the bytes, is what costs.
  if (poolOffset + 16 > serialPool.length) {
    randomFillSync(serialPool);
    poolOffset = 0;
  }
  const bytes = serialPool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

const serialPool = Buffer.alloc(4096);
let poolOffset = serialPool.length;

/** Accepts a positive serial of at most 20 octets once DER-encoded (RFC 5280 4.1.2.2). */
export function serialBytes(serialHex: string): Buffer {
  if (!/^[0-9a-fA-F]{1,40}$/.test(serialHex)) throw new RangeError(`serial must be 1-40 hex digits: ${serialHex}`);
  const magnitude = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
  if (magnitude.every((b) => b === 0)) throw new RangeError('serial must not be zero');
  const encoded = unsignedInteger(magnitude);
  if (encoded.length - 2 > 20) throw new RangeError('serial is longer than 20 octets');
  return encoded;
}

/** The serial as Leash stores it: lowercase hex of the magnitude, no leading zero octets. */
export function normalizeSerialHex(serialHex: string): string {
  const encoded = serialBytes(serialHex);
  let body = encoded.subarray(2);
  if (body[0] === 0 && body.length > 1) body = body.subarray(1);
  return body.toString('hex');
}

const VERSION_3 = contextConstructed(0, Buffer.from([0x02, 0x01, 0x02]));
const EMPTY_NAME = sequence();
const BASIC_CONSTRAINTS_LEAF = extension(OID.basicConstraints, true, sequence());
// digitalSignature is bit 0 (0x80, 7 unused bits); keyEncipherment adds bit 2 (0xa0, 5 unused bits).
const KEY_USAGE_SIGN = extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x07, 0x80]));
const KEY_USAGE_SIGN_ENCIPHER = extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x05, 0xa0]));
const EKU_CLIENT = extension(OID.extKeyUsage, false, sequence(oid(OID.clientAuth)));
const EKU_SERVER_CLIENT = extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth), oid(OID.clientAuth)));
const SAN_CRITICAL_PREFIX = Buffer.concat([oid(OID.subjectAltName), booleanValue(true)]);
const SKI_OID = oid(OID.subjectKeyIdentifier);

/**
 * Builds the per-certificate issue function. Everything that does not change between requests is
 * encoded here once, so a request costs one small DER assembly, one SHA-1 and one signature.
 */
export function createIssuer(ctx: SigningContext, crlUrl: string): (input: IssueInput) => IssuedCertificate {
  if (!/^https?:\/\/[\x21-\x7e]+$/.test(crlUrl)) throw new TypeError(`CRL URL must be an http(s) URL: ${crlUrl}`);
  const alg = signatureAlgorithmFor(ctx.keyType);
  const aki = authorityKeyIdentifierExtension(ctx.keyId);
  // DistributionPoint { distributionPoint [0] { fullName [0] { URI [6] } } }
  const crlDp = extension(
    OID.crlDistributionPoints,
    false,
    sequence(sequence(contextConstructed(0, contextConstructed(0, contextPrimitive(6, Buffer.from(crlUrl, 'latin1')))))),
  );

  return function issue(input: IssueInput): IssuedCertificate {
    const { notBefore, notAfter } = input;
    if (!Number.isSafeInteger(notBefore) || !Number.isSafeInteger(notAfter) || notAfter <= notBefore) {
      throw new RangeError('certificate validity must be whole epoch seconds with notAfter after notBefore');
    }
    if (notAfter > ctx.caNotAfter) {
      throw new LeashError('server_error', 'the issuing CA expires before the requested certificate would', {
        detail: `notAfter ${notAfter} is past the CA's ${ctx.caNotAfter}`,
      });
    }
    assertIssuableSans(input.uriSans, input.dnsSans);
    const serialHex = input.serialHex === undefined ? generateSerialHex() : normalizeSerialHex(input.serialHex);
    const names: Buffer[] = [];
    for (const uri of input.uriSans) names.push(contextPrimitive(6, Buffer.from(uri, 'latin1')));
    for (const dns of input.dnsSans) names.push(contextPrimitive(2, Buffer.from(dns, 'latin1')));
    // RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
    const san = sequence(SAN_CRITICAL_PREFIX, octetString(sequenceOf(names)));
    const ski = sequence(SKI_OID, octetString(octetString(keyIdentifierOf(input.spkiDer))));
    const extensions = sequence(
      BASIC_CONSTRAINTS_LEAF,
      input.keyType === 'rsa' ? KEY_USAGE_SIGN_ENCIPHER : KEY_USAGE_SIGN,
      // X509-SVID spec section 4.4: when the EKU extension is present, both purposes MUST be set.
      input.serverAuth || isSvid(input.uriSans) ? EKU_SERVER_CLIENT : EKU_CLIENT,
      ski,
      aki,
      san,
      crlDp,
    );
    const tbs = sequence(
      VERSION_3,
      serialBytes(serialHex),
      alg.algorithmIdentifier,
      ctx.issuerName,
      sequence(time(notBefore), time(notAfter)),
      EMPTY_NAME,
      input.spkiDer,
      contextConstructed(3, extensions),
    );
    const der = signAndWrap(ctx, alg, tbs);
    return { pem: toPem('CERTIFICATE', der), der, serialHex };
  };
}
