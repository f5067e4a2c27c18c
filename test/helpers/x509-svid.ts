/**
 * An independent reading of an X509-SVID against its spec (spiffe/spiffe standards/X509-SVID.md,
 * sections 2 to 4 and Appendix A) and of its SPIFFE ID against standards/SPIFFE-ID.md section 2.
 * Certificates are parsed with @peculiar/x509, not with Leash's own DER code.
 * Each violation starts with the section it breaks, so a failing test names the rule.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const NAME_CONSTRAINTS = '2.5.29.30';
const F = x509.KeyUsageFlags;

/** SPIFFE-ID.md section 2: scheme, trust domain and path rules; `leaf` adds X509-SVID 3.1's non-root path. */
export function spiffeIdViolations(id: string, role: 'leaf' | 'signing'): string[] {
  const out: string[] = [];
  const m = /^([^:]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(id);
  if (!m) return [`SPIFFE-ID 2: ${JSON.stringify(id)} is not a URI with an authority`];
  const [, scheme, authority, path, query, fragment] = m as unknown as [string, string, string, string, string?, string?];
  if (scheme !== 'spiffe') out.push(`SPIFFE-ID 2: scheme is ${JSON.stringify(scheme)}, not spiffe`);
  if (query !== undefined) out.push('SPIFFE-ID 2: has a query');
  if (fragment !== undefined) out.push('SPIFFE-ID 2: has a fragment');
  if (authority.includes('@')) out.push('SPIFFE-ID 2.1: has userinfo');
  if (authority.includes(':')) out.push('SPIFFE-ID 2.1: has a port (or a ":")');
  const host = authority.replace(/^.*@/, '').replace(/:.*$/, '');
  if (host === '') out.push('SPIFFE-ID 2.1: empty trust domain');
  if (host.includes('%')) out.push('SPIFFE-ID 2.1: percent-encoded trust domain');
  if (!/^[a-z0-9._-]*$/.test(host)) out.push(`SPIFFE-ID 2.1: trust domain ${JSON.stringify(host)} is not lowercase [a-z0-9.-_]`);
  if (host.length > 255) out.push('SPIFFE-ID 2.3: trust domain over 255 bytes');
  if (Buffer.byteLength(id) > 2048) out.push('SPIFFE-ID 2.3: over 2048 bytes');
  if (path !== '') {
    if (path.includes('%')) out.push('SPIFFE-ID 2.2: percent-encoded path');
    if (path.endsWith('/')) out.push('SPIFFE-ID 2.2: trailing /');
    for (const segment of path.slice(1).split('/')) {
      if (segment === '' && !path.endsWith('/')) out.push('SPIFFE-ID 2.2: empty path segment');
      if (segment === '.' || segment === '..') out.push(`SPIFFE-ID 2.2: relative segment ${segment}`);
      if (!/^[A-Za-z0-9._-]*$/.test(segment)) out.push(`SPIFFE-ID 2.2: segment ${JSON.stringify(segment)} is not [a-zA-Z0-9.-_]`);
    }
  }
  if (role === 'leaf' && path === '') out.push('X509-SVID 3.1: a leaf SPIFFE ID needs a non-root path');
  if (role === 'signing' && path !== '') out.push('X509-SVID 3.2: a signing certificate SPIFFE ID has no path');
  return out;
}

const uriSansOf = (cert: x509.X509Certificate): { uris: string[]; critical: boolean | undefined } => {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return { uris: san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [], critical: san?.critical };
};

/** X509-SVID sections 2, 3.1, 4.1-4.4 and Appendix A for a leaf. `keyIsRsa`: keyEncipherment is then allowed. */
export function leafSvidViolations(pem: string, opts: { keyIsRsa: boolean }): string[] {
  const out: string[] = [];
  const cert = new x509.X509Certificate(pem);
  const { uris, critical } = uriSansOf(cert);
  // Section 2 / Appendix A (SAN uniformResourceIdentifier): exactly one URI SAN, the SPIFFE ID.
  if (uris.length !== 1) out.push(`X509-SVID 2: ${uris.length} URI SANs, not exactly one`);
  for (const uri of uris) out.push(...spiffeIdViolations(uri, 'leaf'));
  // Section 3.1: without a Subject the SAN extension must be critical (RFC 5280 4.1.2.6).
  if (cert.subject === '' && critical !== true) out.push('X509-SVID 3.1: empty Subject but the SAN extension is not critical');
  // Section 4.1 / Appendix A (Basic Constraints CA): a leaf sets cA false.
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc) out.push('X509-SVID 4.1: no basic constraints extension (a leaf sets cA false)');
  else {
    if (bc.ca) out.push('X509-SVID 4.1: leaf with cA true');
    if (bc.pathLength !== undefined) out.push('X509-SVID Appendix A: pathLenConstraint on a leaf');
  }
  // Section 4.2: name constraints belong to signing certificates only.
  if (cert.getExtension(NAME_CONSTRAINTS)) out.push('X509-SVID 4.2: name constraints on a leaf');
  // Section 4.3 / Appendix A (Key Usage): present, critical, digitalSignature, never keyCertSign or cRLSign;
  // keyEncipherment and keyAgreement are the only others a leaf may set.
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (!ku) out.push('X509-SVID 4.3: no key usage extension');
  else {
    if (!ku.critical) out.push('X509-SVID 4.3: key usage not critical');
    if (!(ku.usages & F.digitalSignature)) out.push('X509-SVID 4.3: leaf without digitalSignature');
    if (ku.usages & F.keyCertSign) out.push('X509-SVID 4.3: leaf with keyCertSign');
    if (ku.usages & F.cRLSign) out.push('X509-SVID 4.3: leaf with cRLSign');
    const others = ku.usages & ~(F.digitalSignature | F.keyEncipherment | F.keyAgreement | F.keyCertSign | F.cRLSign);
    if (others) out.push(`X509-SVID Appendix A: leaf key usage bits ${others} beyond digitalSignature, keyEncipherment, keyAgreement`);
    if (!opts.keyIsRsa && ku.usages & F.keyEncipherment) out.push('X509-SVID 4.3: keyEncipherment for a non-RSA key');
  }
  // Section 4.4: SHOULD be present; when present, both serverAuth and clientAuth MUST be set.
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku) out.push('X509-SVID 4.4: no extended key usage extension (SHOULD be present)');
  else {
    const usages = eku.usages.map(String);
    if (!usages.includes(SERVER_AUTH)) out.push('X509-SVID 4.4: EKU without id-kp-serverAuth');
    if (!usages.includes(CLIENT_AUTH)) out.push('X509-SVID 4.4: EKU without id-kp-clientAuth');
  }
  return out;
}

/** X509-SVID 3.2, 4.1, 4.3 and Appendix A for a CA certificate of the chain handed out with a leaf. */
export function signingCertViolations(pem: string): string[] {
  const out: string[] = [];
  const cert = new x509.X509Certificate(pem);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) out.push('X509-SVID 4.1: signing certificate without cA true');
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (!ku) out.push('X509-SVID 4.3: signing certificate without key usage');
  else {
    if (!ku.critical) out.push('X509-SVID 4.3: key usage not critical');
    if (!(ku.usages & F.keyCertSign)) out.push('X509-SVID 4.3: signing certificate without keyCertSign');
    if (ku.usages & F.digitalSignature) out.push('X509-SVID Appendix A: digitalSignature on a signing certificate');
    if (ku.usages & (F.keyAgreement | F.keyEncipherment)) out.push('X509-SVID Appendix A: keyAgreement or keyEncipherment on a signing certificate');
  }
  const { uris } = uriSansOf(cert);
  if (uris.length > 1) out.push(`X509-SVID 2: ${uris.length} URI SANs on a signing certificate`);
  for (const uri of uris) out.push(...spiffeIdViolations(uri, 'signing'));
  return out;
}
