import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { ProofError } from './proof-error.ts';
import { verifyOffLoop, verifyOnLoop, type Check } from '../crypto/signature-thread.ts';
import { isTrustDomain, trustDomainOf } from '../policy/trust-domain.ts';

/**
 * The hot-path half of proof verification, on node:crypto: one signature check (about 4x cheaper
 * than jose's WebCrypto path per proof, measured in this repo's bench; run off the event loop) and the
 * registered-claim checks jose's jwtVerify would make, with the same outcomes. Keys still come
 * only from the issuer's cached JWKS, chosen by key-select.ts.
 */

const HASH: Record<string, string | null> = {
  RS256: 'sha256', RS384: 'sha384', RS512: 'sha512',
  PS256: 'sha256', PS384: 'sha384', PS512: 'sha512',
  ES256: 'sha256', ES384: 'sha384', ES512: 'sha512',
  EdDSA: null,
};
/** Raw (r || s) signature length per ECDSA algorithm (RFC 7518 section 3.4). */
const EC_SIG_BYTES: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132 };

const keyObjects = new WeakMap<JWK, KeyObject>();

/** Imports a JWK once per fetched key object (the JWKS cache owns the JWK's lifetime). */
export function publicKeyOf(jwk: JWK, alg: string): KeyObject {
  let key = keyObjects.get(jwk);
  if (!key) {
    try {
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw new ProofError('key_mismatch', 'the issuer key named by subject_token cannot be used to verify it', `key import failed: ${String(err)}`, err);
    }
    if (key.type !== 'public') throw new ProofError('key_mismatch', 'the issuer key named by subject_token cannot be used to verify it', 'not a public key');
    keyObjects.set(jwk, key);
  }
  // RFC 7518 section 3.3: RSA keys of 2048 bits or more (jose enforces the same).
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new ProofError('key_mismatch', 'the issuer key named by subject_token cannot be used to verify it', `RSA key of ${bits} bits`);
  }
  return key;
}

/** The signature check of a compact JWS, or null for one that cannot verify under `alg` (alg already allowed). */
export function checkOf(token: string, alg: string, key: KeyObject): Check | null {
  const hash = HASH[alg];
  if (hash === undefined) return null;
  const dot = token.lastIndexOf('.');
  const signature = token.slice(dot + 1);
  if (alg.startsWith('ES') && base64urlBytes(signature) !== EC_SIG_BYTES[alg]) return null;
  const mode = alg.startsWith('ES') ? 'p1363' : alg.startsWith('PS') ? 'pss' : 'plain';
  return { hash, signingInput: token.slice(0, dot), signature, mode, key };
}

/**
 * True when the compact JWS's signature verifies under `key` with `alg` (alg already allowed).
 * With `offLoop` the check runs on the signature worker thread (signature-thread.ts).
 */
export function signatureVerifies(token: string, alg: string, key: KeyObject, offLoop = true): Promise<boolean> {
  const check = checkOf(token, alg, key);
  if (!check) return Promise.resolve(false);
  return offLoop ? verifyOffLoop(check) : Promise.resolve(verifyOnLoop(check));
}

/** Decoded length of unpadded base64url text (what Buffer.from(s, 'base64url') would give). */
const base64urlBytes = (s: string): number => Math.floor((s.length * 3) / 4);

export interface ClaimRules {
  issuer: string;
  audiences: readonly string[];
  /** epoch seconds */
  now: number;
  skewSeconds: number;
  maxAgeSeconds: number;
}

const numeric = (claims: Record<string, unknown>, name: 'exp' | 'iat' | 'nbf'): number | undefined => {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ProofError('malformed', `subject_token ${name} claim is not a number`);
  return v;
};

/**
 * The first whole second (epoch) at which checkRegisteredClaims refuses these claims for expiry or
 * age, whatever else they hold: it accepts while floor(now) < exp + skew and, with an iat,
 * floor(now) <= iat + maxAge + skew. A replay record must outlive it.
 */
export function acceptedUntil(exp: number, iat: number | undefined, skewSeconds: number, maxAgeSeconds: number): number {
  const byExp = Math.ceil(exp + skewSeconds);
  return iat === undefined ? byExp : Math.min(byExp, Math.floor(iat + maxAgeSeconds + skewSeconds) + 1);
}

/**
 * The checks of jose's jwtVerify(issuer, audience, requiredClaims exp/iat/sub, clockTolerance,
 * maxTokenAge). For a SPIFFE trust domain, as the JWT-SVID spec (section 3) requires of a
 * validator: `iss` optional (the `sub` must be a SPIFFE ID of that trust domain) and `iat` optional.
 */
export function checkRegisteredClaims(claims: Record<string, unknown>, rules: ClaimRules): void {
  const svid = isTrustDomain(rules.issuer);
  for (const name of svid ? (['exp', 'sub'] as const) : (['exp', 'iat', 'sub'] as const)) {
    if (claims[name] === undefined) throw new ProofError('missing_claim', `subject_token has no ${name} claim`);
  }
  if (svid) {
    if ((claims.iss !== undefined && claims.iss !== rules.issuer) || trustDomainOf(claims.sub) !== rules.issuer) {
      throw new ProofError('untrusted_issuer', 'subject_token issuer is not trusted');
    }
  } else if (claims.iss !== rules.issuer) {
    throw new ProofError('untrusted_issuer', 'subject_token issuer is not trusted');
  }
  const aud = claims.aud;
  if (aud === undefined) throw new ProofError('missing_claim', 'subject_token has no aud claim');
  const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  // An aud array naming other audiences too is accepted: aud means "intended for"; the replay
  // guard is what limits reuse of the proof here.
  if (!auds.some((a) => typeof a === 'string' && rules.audiences.includes(a))) {
    throw new ProofError('audience', 'subject_token audience is not accepted');
  }
  const { now, skewSeconds: skew } = rules;
  const exp = numeric(claims, 'exp')!;
  const iat = numeric(claims, 'iat');
  const nbf = numeric(claims, 'nbf');
  if (nbf !== undefined && nbf > now + skew) {
    throw new ProofError('not_yet_valid', 'subject_token is not yet valid: its nbf is in the future');
  }
  if (exp <= now - skew) throw new ProofError('expired', 'subject_token is expired');
  if (iat === undefined) {
    // An SVID without iat: its age is unknown, so it is accepted only if it cannot be used for
    // longer than max_proof_age from now, the window an iat would have allowed at most.
    if (exp - now - rules.maxAgeSeconds > skew) {
      throw new ProofError('too_old', "subject_token has no iat and is valid for longer than the issuer's max_proof_age");
    }
    return;
  }
  const age = now - iat;
  if (age < -skew) throw new ProofError('iat_in_future', 'subject_token was issued in the future: its iat is ahead of our clock');
  if (age - rules.maxAgeSeconds > skew) {
    throw new ProofError('too_old', "subject_token is too old: its iat is beyond the issuer's max_proof_age");
  }
}
