import { constants, verify as cryptoVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { children, DerError, readOid, readSmallInteger } from './der-reader.ts';
import type { Tlv } from './der-reader.ts';
import { OID } from './oids.ts';

export type KeyFamily = 'rsa' | 'ec' | 'ed25519';

/** How to check one signature with node:crypto. */
export interface SignatureScheme {
  family: KeyFamily;
  /** Digest name for crypto.verify; null for Ed25519, which hashes internally. */
  hash: string | null;
  pssSaltLength?: number;
}

const HASH_BY_OID: Record<string, string> = {
  [OID.sha256]: 'sha256',
  [OID.sha384]: 'sha384',
  [OID.sha512]: 'sha512',
};

const SIMPLE_SCHEMES: Record<string, SignatureScheme> = {
  [OID.sha256WithRSA]: { family: 'rsa', hash: 'sha256' },
  [OID.sha384WithRSA]: { family: 'rsa', hash: 'sha384' },
  [OID.sha512WithRSA]: { family: 'rsa', hash: 'sha512' },
  [OID.ecdsaWithSha256]: { family: 'ec', hash: 'sha256' },
  [OID.ecdsaWithSha384]: { family: 'ec', hash: 'sha384' },
  [OID.ecdsaWithSha512]: { family: 'ec', hash: 'sha512' },
  [OID.ed25519]: { family: 'ed25519', hash: null },
};

/** A well-formed signature or digest algorithm Leash does not accept (SHA-1, MD5, exotic PSS). */
export class UnsupportedAlgorithm extends Error {
  override readonly name = 'UnsupportedAlgorithm';
  readonly code = 'ERR_UNSUPPORTED_ALGORITHM';
}

/**
 * Maps a signature AlgorithmIdentifier to a scheme. SHA-1 and MD5 based algorithms are absent on
 * purpose: a request signed with them proves nothing about key possession worth trusting.
 */
export function signatureScheme(buf: Buffer, algId: Tlv): SignatureScheme {
  const parts = children(buf, algId);
  const algOid = parts[0];
  if (!algOid) throw new DerError('empty AlgorithmIdentifier');
  const id = readOid(buf, algOid);
  const params = parts[1];
  if (parts.length > 2) throw new DerError('AlgorithmIdentifier has extra fields');
  if (id === OID.rsassaPss) {
    if (!params) throw new UnsupportedAlgorithm('RSASSA-PSS with default (SHA-1) parameters is not supported');
    return pssScheme(buf, params);
  }
  const scheme = SIMPLE_SCHEMES[id];
  if (!scheme) throw new UnsupportedAlgorithm(`signature algorithm ${id} is not supported`);
  if (params) {
    // RSA PKCS#1 v1.5 carries NULL parameters; ECDSA and Ed25519 carry none.
    const isNull = params.tag === 0x05 && params.end === params.valueStart;
    if (scheme.family !== 'rsa' || !isNull) throw new DerError('unexpected signature algorithm parameters');
  }
  return scheme;
}

function pssScheme(buf: Buffer, params: Tlv): SignatureScheme {
  let hash = 'sha1';
  let mgfHash = 'sha1';
  let saltLength = 20;
  for (const field of children(buf, params)) {
    const inner = children(buf, field)[0];
    if (!inner) throw new DerError('empty RSASSA-PSS parameter');
    switch (field.tag) {
      case 0xa0:
        hash = digestOf(buf, inner);
        break;
      case 0xa1: {
        const [mgfOid, mgfParams] = children(buf, inner);
        if (!mgfOid || readOid(buf, mgfOid) !== OID.mgf1 || !mgfParams) {
          throw new UnsupportedAlgorithm('RSASSA-PSS mask generation other than MGF1 is not supported');
        }
        mgfHash = digestOf(buf, mgfParams);
        break;
      }
      case 0xa2:
        saltLength = readSmallInteger(buf, inner);
        break;
      case 0xa3:
        if (readSmallInteger(buf, inner) !== 1) throw new UnsupportedAlgorithm('RSASSA-PSS trailer field must be 1');
        break;
      default:
        throw new DerError('unknown RSASSA-PSS parameter');
    }
  }
  if (hash === 'sha1') throw new UnsupportedAlgorithm('RSASSA-PSS with SHA-1 is not supported');
  // node:crypto always uses the message digest for MGF1, so a different MGF1 digest cannot be checked.
  if (mgfHash !== hash) throw new UnsupportedAlgorithm('RSASSA-PSS with an MGF1 digest unlike its message digest');
  return { family: 'rsa', hash, pssSaltLength: saltLength };
}

function digestOf(buf: Buffer, algId: Tlv): string {
  const [idTlv] = children(buf, algId);
  if (!idTlv) throw new DerError('empty digest AlgorithmIdentifier');
  const id = readOid(buf, idTlv);
  if (id === '1.3.14.3.2.26') return 'sha1';
  const hash = HASH_BY_OID[id];
  if (!hash) throw new UnsupportedAlgorithm(`digest ${id} is not supported`);
  return hash;
}

/** True when `signature` over `data` verifies; any failure inside OpenSSL counts as false. */
export function verifySignature(scheme: SignatureScheme, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    if (scheme.pssSaltLength !== undefined) {
      return cryptoVerify(
        scheme.hash,
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.pssSaltLength },
        signature,
      );
    }
    return cryptoVerify(scheme.hash, data, key, signature);
  } catch {
    return false;
  }
}
