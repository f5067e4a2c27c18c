import type { Deps } from '../deps.ts';
import type { Lease } from '../leases/lease.ts';
import type { ParsedCsr } from '../mint/x509/csr.ts';
import type { Allowed } from '../policy/types.ts';
import { TOKEN_TYPE_X509, type ExchangeResponse } from './request.ts';

/**
 * Issues the certificate of a recorded x509 lease. Identity comes from the decision (rendered
 * SANs), never from the CSR; the CSR only contributes its public key.
 */
export function mintCertificate(deps: Deps, lease: Lease, decision: Allowed, csr: ParsedCsr): ExchangeResponse {
  const ca = deps.ca!;
  const cert = ca.issue({
    spkiDer: csr.spkiDer,
    keyType: csr.keyType,
    uriSans: decision.x509.uri_sans,
    dnsSans: decision.x509.dns_sans,
    notBefore: lease.issued_at - deps.config.clockSkewSeconds,
    notAfter: lease.expires_at,
    serialHex: lease.serial!,
    serverAuth: decision.x509.server_auth,
  });
  const response: ExchangeResponse = {
    access_token: cert.pem,
    issued_token_type: TOKEN_TYPE_X509,
    token_type: 'N_A',
    expires_in: lease.expires_at - lease.issued_at,
    lease_id: lease.id,
    certificate_chain: ca.chainPem,
  };
  if (lease.scopes.length > 0) response.scope = lease.scopes.join(' ');
  return response;
}
