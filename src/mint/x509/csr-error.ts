import { LeashError } from '../../errors.ts';

/** Fixed reasons a certificate request is refused: stable for tests and audit, never sent (the wire says `invalid_request`). */
export type CsrRefusal =
  | 'csr_missing'
  | 'csr_too_large'
  /** Not PEM, base64 or base64url, or not strict DER PKCS#10. */
  | 'csr_malformed'
  | 'csr_unsupported_algorithm'
  | 'csr_unsupported_name'
  /** A key type, curve or RSA size Leash does not certify. */
  | 'csr_unsupported_key'
  | 'csr_invalid_key'
  | 'csr_algorithm_mismatch'
  | 'csr_bad_signature'
  | 'csr_multiple_cns'
  | 'csr_key_type_not_allowed'
  /** basicConstraints CA:TRUE, nameConstraints, keyCertSign or cRLSign. */
  | 'csr_ca_requested'
  | 'csr_eku_not_granted'
  | 'csr_extension_not_issued'
  | 'csr_san_not_granted'
  | 'csr_cn_not_granted'
  // The rule's granted SANs (templates filled from claims) cannot go into a certificate.
  | 'grant_no_sans'
  | 'grant_too_many_sans'
  | 'grant_san_invalid'
  | 'grant_svid_invalid';

/** A refused certificate request: an `invalid_request` whose `reason` says which check failed. */
export class CsrError extends LeashError {
  declare readonly reason: CsrRefusal;

  constructor(reason: CsrRefusal, description: string, detail?: string) {
    super('invalid_request', description, { reason, detail: detail ?? reason });
    this.name = 'CsrError';
  }
}
