import type { JWK } from 'jose';
import { ProofError } from './proof-error.ts';

/** Key type (and curve) each accepted algorithm needs; a key of another type is never tried. */
const FIT: Record<string, { kty: string; crv?: string }> = {
  RS256: { kty: 'RSA' }, RS384: { kty: 'RSA' }, RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' }, PS384: { kty: 'RSA' }, PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' }, ES384: { kty: 'EC', crv: 'P-384' }, ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};

/** The issuer's JWKS document is not a JWK Set (`{"keys": [...]}`). */
export class JwksDocumentError extends Error {
  override readonly name = 'JwksDocumentError';
  readonly code = 'ERR_JWKS_INVALID';
}

/**
 * Without a kid every fitting key is tried; bound that so a kid-less token cannot make us run
 * many signature checks against an issuer that publishes a long JWKS.
 */
const MAX_KIDLESS_CANDIDATES = 8;

/**
 * The keys of a fetched JWK Set that may verify signatures: `use` absent, `sig`, or `jwt-svid` (a
 * SPIFFE bundle's JWT-SVID keys; its `x509-svid` keys are CA certificates, not JWT keys), `key_ops`
 * absent or allowing verify, never symmetric (`oct`: a shared secret has no place in a public
 * document) and never private (`d`: an issuer leaking its private key is not one to trust).
 */
export function usableSigningKeys(doc: unknown): JWK[] {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new JwksDocumentError('the JWKS document is not a JWK Set');
  }
  return ((doc as { keys: unknown[] }).keys).filter((k): k is JWK => {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) return false;
    const jwk = k as Record<string, unknown>;
    if (typeof jwk.kty !== 'string' || jwk.kty === 'oct' || jwk.d !== undefined) return false;
    if (jwk.use !== undefined && jwk.use !== 'sig' && jwk.use !== 'jwt-svid') return false;
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return false;
    return jwk.kid === undefined || typeof jwk.kid === 'string';
  });
}

export function keyFitsAlg(jwk: JWK, alg: string): boolean {
  const fit = FIT[alg];
  if (!fit || jwk.kty !== fit.kty) return false;
  if (fit.crv !== undefined && jwk.crv !== fit.crv) return false;
  // A key pinned to one algorithm must not be used with another (e.g. an RS256 key with PS256).
  return jwk.alg === undefined || jwk.alg === alg;
}

/**
 * The keys to try for this token. Throws `unknown_kid` when the key is not (yet) known, which
 * the caller may answer with one rate-limited JWKS refresh, and `key_mismatch` when the named key
 * exists but cannot be used with the header's alg (an algorithm-confusion attempt or a broken
 * issuer; refreshing would not help).
 */
export function selectKeys(keys: readonly JWK[], alg: string, kid: string | undefined): JWK[] {
  if (kid !== undefined) {
    const named = keys.filter((k) => k.kid === kid);
    if (named.length === 0) {
      throw new ProofError('unknown_kid', "subject_token key id (kid) is not among the issuer's signing keys");
    }
    const fitting = named.filter((k) => keyFitsAlg(k, alg));
    if (fitting.length === 0) {
      throw new ProofError('key_mismatch', 'subject_token algorithm does not fit the issuer key named by its kid');
    }
    return fitting.slice(0, MAX_KIDLESS_CANDIDATES);
  }
  const fitting = keys.filter((k) => keyFitsAlg(k, alg));
  if (fitting.length === 0) {
    throw new ProofError('unknown_kid', "subject_token has no kid and none of the issuer's signing keys fits its algorithm");
  }
  if (fitting.length > MAX_KIDLESS_CANDIDATES) {
    throw new ProofError('unknown_kid', 'subject_token has no kid and the issuer publishes too many keys to try');
  }
  return fitting;
}
