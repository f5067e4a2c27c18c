import { LeashError } from '../errors.ts';

/** Fixed reason codes for refused proofs: stable for tests, metrics and audit, never shown as prose. */
export type ProofFailure =
  | 'malformed'
  /** A string (value or key) in the header or claims is not well-formed Unicode (a lone surrogate). */
  | 'malformed_claims'
  | 'too_large'
  | 'untrusted_issuer'
  | 'alg_not_allowed'
  | 'unknown_kid'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'too_old'
  | 'iat_in_future'
  | 'audience'
  | 'missing_claim'
  | 'key_mismatch'
  | 'crit';

/**
 * A refused subject token. It is an `invalid_request` (RFC 8693 section 2.2.2) whose description
 * names what is wrong but never echoes the token or claim values; `detail` is for the log only.
 */
export class ProofError extends LeashError {
  declare readonly reason: ProofFailure;

  constructor(reason: ProofFailure, description: string, detail?: string, cause?: unknown) {
    super('invalid_request', description, { detail: detail ?? reason, cause, reason });
    this.name = 'ProofError';
  }
}

export const isProofError = (e: unknown): e is ProofError => e instanceof ProofError;

/** The issuer's keys are not available and nothing is cached: fail closed, but say it is transient. */
export function keysUnavailable(issuerName: string, why: string, cause?: unknown): LeashError {
  return new LeashError('temporarily_unavailable', "the issuer's signing keys could not be fetched; try again", {
    status: 503,
    detail: `jwks of issuer ${issuerName} unavailable: ${why}`,
    cause,
  });
}
