export type LeaseKind = 'jwt' | 'x509';
export type LeaseStatus = 'active' | 'revoked' | 'expired';

/** Times are Unix epoch seconds, like the `iat`/`exp` of the credential the lease backs. */
export interface Lease {
  id: string;
  kind: LeaseKind;
  status: LeaseStatus;
  rule: string;
  /** Name of the trusted issuer entry in the policy (not its URL). */
  issuer: string;
  subject: string;
  scopes: string[];
  audiences: string[];
  task_id: string | null;
  /** Certificate serial, lower-case hex, for x509 leases. */
  serial: string | null;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
  /** When the worker carried out the ending (expired or revoked effects done). */
  ended_at: number | null;
  reason: string | null;
  revoked_by: string | null;
  proof_iss: string;
  proof_sub: string;
  proof_jti: string | null;
  client_addr: string | null;
}

export const isLive = (lease: Lease, nowSeconds: number): boolean =>
  lease.status === 'active' && lease.expires_at > nowSeconds;
