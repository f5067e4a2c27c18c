import { ALGORITHMS } from '../policy/schema.ts';
import type { TrustedIssuer } from '../policy/types.ts';
import { ProofError } from './proof-error.ts';

/** Every asymmetric JWS algorithm Leash verifies (the policy schema's list). HS* and `none` are never accepted. */
export const DEFAULT_ALGORITHMS: readonly string[] = ALGORITHMS;

/**
 * The algorithms accepted for this issuer. A policy listing HS256 or none cannot switch them on:
 * with a public JWKS, a symmetric algorithm lets anyone who has the public key forge tokens.
 */
export function allowedAlgorithms(issuer: TrustedIssuer): readonly string[] {
  let allowed = allowedByIssuer.get(issuer);
  if (!allowed) {
    const configured = issuer.algorithms ?? DEFAULT_ALGORITHMS;
    allowed = Object.freeze(configured.filter((a) => DEFAULT_ALGORITHMS.includes(a)));
    allowedByIssuer.set(issuer, allowed);
  }
  return allowed;
}

/** Computed once per loaded issuer entry (a policy reload makes new entries), not per proof. */
const allowedByIssuer = new WeakMap<TrustedIssuer, readonly string[]>();

/**
 * Checks the (still untrusted) protected header. Key-locating headers (`jku`, `x5u`, `jwk`,
 * `x5c`) are deliberately not looked at: keys come only from the issuer's configured JWKS, so a
 * token can never point us at a key or URL of its own choosing.
 */
export function checkHeader(header: Record<string, unknown>, issuer: TrustedIssuer): string {
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '') {
    throw new ProofError('malformed', 'subject_token header has no alg');
  }
  if (alg.toLowerCase() === 'none') {
    throw new ProofError('alg_not_allowed', 'subject_token algorithm none is not allowed');
  }
  const shown = /^[A-Za-z0-9_+-]{1,16}$/.test(alg) ? alg : 'in its header';
  if (/^HS\d+$/i.test(alg)) {
    throw new ProofError('alg_not_allowed', `subject_token algorithm ${shown} is not allowed: symmetric algorithms are refused`);
  }
  if (!allowedAlgorithms(issuer).includes(alg)) {
    throw new ProofError('alg_not_allowed', `subject_token algorithm ${shown} is not allowed for issuer ${issuer.name}`);
  }
  // Leash understands no JWS extensions, so any critical one must make us refuse (RFC 7515 4.1.11).
  if (header.crit !== undefined) {
    throw new ProofError('crit', 'subject_token has critical header parameters (crit) that are not understood');
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new ProofError('malformed', 'subject_token header kid is not a string');
  }
  return alg;
}
