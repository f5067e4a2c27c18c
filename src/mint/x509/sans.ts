import { CsrError } from './csr-error.ts';
import { isValidSpiffeId } from '../../policy/template.ts';

const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_RE = new RegExp(`^(?:\\*\\.)?(?:${DNS_LABEL}\\.)*${DNS_LABEL}$`);
const MAX_SANS = 100;

/**
 * A certificate with a SPIFFE ID among its URI SANs is an X509-SVID (X509-SVID spec section 2),
 * whatever the rule says about server_auth. Any `spiffe:` scheme counts, so a malformed one is
 * held to the spec and refused rather than issued as a plain certificate.
 */
export const isSvid = (uriSans: readonly string[]): boolean => uriSans.some((uri) => /^spiffe:/i.test(uri));

/**
 * Granted SANs are templates filled from proof claims, so a claim can carry characters that do
 * not belong in a URI or a host name. Refuse those before anything is recorded or signed rather
 * than emit a certificate that relying parties would parse differently.
 */
export function assertIssuableSans(uriSans: readonly string[], dnsSans: readonly string[]): void {
  if (uriSans.length === 0 && dnsSans.length === 0) {
    throw new CsrError('grant_no_sans', 'the rule grants no subject alternative names, so no certificate can be issued');
  }
  if (uriSans.length + dnsSans.length > MAX_SANS) {
    throw new CsrError('grant_too_many_sans', `a certificate carries at most ${MAX_SANS} subject alternative names`);
  }
  for (const uri of uriSans) {
    if (uri.length > 2048 || !URI_RE.test(uri)) {
      throw new CsrError('grant_san_invalid', `granted URI SAN ${JSON.stringify(uri.slice(0, 200))} is not a valid URI`);
    }
  }
  for (const dns of dnsSans) {
    if (dns.length > 253 || !DNS_RE.test(dns)) {
      throw new CsrError('grant_san_invalid', `granted DNS SAN ${JSON.stringify(dns.slice(0, 200))} is not a valid host name`);
    }
  }
  if (isSvid(uriSans)) assertSvidSans(uriSans);
}

/** X509-SVID spec sections 2 and 3.1: exactly one URI SAN, a SPIFFE ID of a workload (non-root path). */
function assertSvidSans(uriSans: readonly string[]): void {
  if (uriSans.length !== 1) {
    throw new CsrError('grant_svid_invalid', `an X509-SVID carries exactly one URI SAN, its SPIFFE ID; the rule grants ${uriSans.length}`);
  }
  if (!isValidSpiffeId(uriSans[0]!)) {
    throw new CsrError('grant_svid_invalid', `granted URI SAN ${JSON.stringify(uriSans[0]!.slice(0, 200))} is not a valid SPIFFE ID of a workload`);
  }
}

export const sameDnsName = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
