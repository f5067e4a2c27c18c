/**
 * SPIFFE trust domains as proof issuers. An issuer entry `spiffe://<trust domain>` trusts JWT-SVIDs
 * of that trust domain, which need carry no `iss` (JWT-SVID spec section 3): the trust domain of
 * the SVID's `sub`, a SPIFFE ID, names the entry instead.
 */

/** A well-formed trust-domain issuer: lowercase name, no path. */
export const TRUST_DOMAIN = /^spiffe:\/\/[a-z0-9._-]+$/;

/** The issuer entry is a SPIFFE trust domain rather than an OIDC issuer URL. */
export const isTrustDomain = (issuer: string): boolean => issuer.startsWith('spiffe:');

/** `spiffe://<trust domain>` of a workload's SPIFFE ID (one with a path), or null when `sub` is not one. */
export function trustDomainOf(sub: unknown): string | null {
  if (typeof sub !== 'string' || !sub.startsWith('spiffe://')) return null;
  const slash = sub.indexOf('/', 'spiffe://'.length);
  return slash > 'spiffe://'.length && slash < sub.length - 1 ? sub.slice(0, slash) : null;
}
