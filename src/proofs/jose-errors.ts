import { errors } from 'jose';
import { ProofError } from './proof-error.ts';

/**
 * Turns what jose throws into a ProofError with a fixed reason and a description that names the
 * failed check. jose messages go only to `detail`: they are safe but not written for callers.
 * Claim names come from jose's fixed list, never from the token.
 */
export function fromJoseError(err: unknown): ProofError {
  if (err instanceof ProofError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new ProofError('bad_signature', 'subject_token signature is invalid', detail);
  }
  if (err instanceof errors.JWTExpired) {
    return err.claim === 'iat'
      ? new ProofError('too_old', "subject_token is too old: its iat is beyond the issuer's max_proof_age", detail)
      : new ProofError('expired', 'subject_token is expired', detail);
  }
  if (err instanceof errors.JWTClaimValidationFailed) return fromClaimFailure(err, detail);
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new ProofError('alg_not_allowed', 'subject_token algorithm is not allowed', detail);
  }
  if (err instanceof errors.JOSENotSupported || (err instanceof errors.JWSInvalid && /crit/i.test(detail))) {
    return /crit|Extension Header/i.test(detail)
      ? new ProofError('crit', 'subject_token has critical header parameters (crit) that are not understood', detail)
      : new ProofError('alg_not_allowed', 'subject_token uses an unsupported algorithm or key', detail);
  }
  if (err instanceof errors.JWTInvalid) {
    return new ProofError('malformed', 'subject_token payload is not a JSON object of claims', detail);
  }
  if (err instanceof errors.JWSInvalid) {
    return new ProofError('malformed', 'subject_token is not a valid signed JWT', detail);
  }
  if (err instanceof TypeError) {
    // jose signals unusable key material (e.g. an RSA key under 2048 bits) with TypeError.
    return new ProofError('key_mismatch', 'the issuer key named by subject_token cannot be used to verify it', detail);
  }
  return new ProofError('malformed', 'subject_token could not be verified', detail);
}

function fromClaimFailure(err: InstanceType<typeof errors.JWTClaimValidationFailed>, detail: string): ProofError {
  const claim = /^[a-z]{2,5}$/.test(err.claim) ? err.claim : 'a required';
  if (err.reason === 'missing') return new ProofError('missing_claim', `subject_token has no ${claim} claim`, detail);
  if (err.reason === 'invalid') return new ProofError('malformed', `subject_token ${claim} claim is not a number`, detail);
  switch (err.claim) {
    case 'nbf':
      return new ProofError('not_yet_valid', 'subject_token is not yet valid: its nbf is in the future', detail);
    case 'iat':
      return new ProofError('iat_in_future', 'subject_token was issued in the future: its iat is ahead of our clock', detail);
    case 'aud':
      return new ProofError('audience', 'subject_token audience is not accepted', detail);
    case 'iss':
      return new ProofError('untrusted_issuer', 'subject_token issuer is not trusted', detail);
    default:
      return new ProofError('malformed', `subject_token ${claim} claim is not accepted`, detail);
  }
}
