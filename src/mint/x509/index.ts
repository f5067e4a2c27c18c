/**
 * The certificate half of minting: what the exchange and the revocation worker call.
 * `generateDevCa` lives in ./generate-ca.ts and is left out here on purpose: it loads
 * @peculiar/x509 and reflect-metadata, which the issuing path never needs.
 */
export { loadCertificateAuthority, CA_FILES } from './ca-store.ts';
export type { CertificateAuthority, CaKeyType, CrlInput, IssuedCertificate, IssueInput } from './ca-store.ts';
export { checkCsrAgainstGrant, describeKeyType, parseCsr } from './csr.ts';
export type { CsrGrant, CsrKeyType, ParsedCsr } from './csr.ts';
export { generateSerialHex, normalizeSerialHex } from './issuer.ts';
