import { LeashError } from '../../errors.ts';
import { CsrError, type CsrRefusal } from './csr-error.ts';
import type { KeyType } from '../../policy/types.ts';
import {
  children,
  DerError,
  expectTlv,
  readBoolean,
  readOctetAlignedBitString,
  readOid,
  readNamedBits,
  readRoot,
  readInteger,
  readSmallInteger,
  value,
  whole,
} from './der-reader.ts';
import type { Tlv } from './der-reader.ts';
import { signatureScheme, UnsupportedAlgorithm, verifySignature } from './csr-signature.ts';
import { readCommonNames, readGeneralNames, UnsupportedName } from './names.ts';
import type { RequestedSans } from './names.ts';
import { HARMLESS_CSR_EXTENSIONS, OID } from './oids.ts';
import { assertIssuableSans, isSvid, sameDnsName } from './sans.ts';
import { importSpki, UnsupportedKey } from './spki.ts';
import type { ImportedKey, SpkiKeyType } from './spki.ts';

export type CsrKeyType = SpkiKeyType;

export interface ParsedCsr {
  /** The requester's SubjectPublicKeyInfo, exactly as signed in the request. */
  spkiDer: Buffer;
  keyType: CsrKeyType;
  rsaBits?: number;
  requested: RequestedSans & {
    /** OIDs of requested extensions other than SAN, basicConstraints, nameConstraints, keyUsage and extKeyUsage. */
    otherExtensions: string[];
    /** Purposes asked for in an extKeyUsage extension (OIDs); empty when none was asked for. */
    extKeyUsages: string[];
    /** keyCertSign or cRLSign asked for in a keyUsage extension: CA usages. */
    caKeyUsage: boolean;
    basicConstraintsCa: boolean | null;
    nameConstraints: boolean;
  };
  subjectCn?: string;
}

export interface CsrGrant {
  uri_sans: string[];
  dns_sans: string[];
  key_types: KeyType[];
  /** serverAuth is issued besides clientAuth (always, for an X509-SVID). */
  server_auth?: boolean;
}

/** keyUsage bits 5 and 6 (RFC 5280 section 4.2.1.3), in the first byte of the bits. */
const KEY_CERT_SIGN = 0x04;
const CRL_SIGN = 0x02;

const MAX_DER_BYTES = 16 * 1024;
// Base64 of 16 KiB plus PEM armour and line breaks.
const MAX_TEXT_CHARS = 24 * 1024;
const MIN_RSA_BITS = 2048;
// Bigger RSA keys buy nothing here and make every verification slower.
const MAX_RSA_BITS = 8192;
const PEM_LABELS = ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'] as const;
const B64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

const quote = (s: string): string => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);

const invalid = (reason: CsrRefusal, description: string): CsrError => new CsrError(reason, description);

/** Parses a PKCS#10 request (PEM, or base64/base64url DER) and checks its self-signature. */
export function parseCsr(input: string): ParsedCsr {
  const der = decodeCsrText(input);
  try {
    return parseCsrDer(der);
  } catch (e) {
    if (e instanceof LeashError) throw e;
    if (e instanceof UnsupportedAlgorithm) throw invalid('csr_unsupported_algorithm', `csr ${stripCsr(e.message)}`);
    if (e instanceof UnsupportedName) throw invalid('csr_unsupported_name', `csr ${stripCsr(e.message)}`);
    if (e instanceof DerError) throw invalid('csr_malformed', `csr is not a valid PKCS#10 request (${e.message})`);
    throw e;
  }
}

const stripCsr = (message: string): string => message.replace(/^csr /, '');

function decodeCsrText(input: string): Buffer {
  if (typeof input !== 'string' || input.length === 0) throw invalid('csr_missing', 'csr is missing');
  if (input.length > MAX_TEXT_CHARS) throw invalid('csr_too_large', 'csr is larger than 16 KiB');
  const text = input.trim();
  let b64: string;
  const pem = pemBody(text);
  if (pem !== null) {
    b64 = pem.replace(/\s+/g, '');
  } else if (text.includes('-----BEGIN ')) {
    throw invalid('csr_malformed', 'csr PEM must be a CERTIFICATE REQUEST');
  } else {
    b64 = text.replace(/\s+/g, '');
  }
  if (!B64_RE.test(b64)) throw invalid('csr_malformed', 'csr is not a valid PKCS#10 request (not PEM, base64 or base64url)');
  const der = Buffer.from(b64, 'base64');
  if (der.length > MAX_DER_BYTES) throw invalid('csr_too_large', 'csr is larger than 16 KiB');
  return der;
}

/**
 * The base64 between a CERTIFICATE REQUEST block's boundaries, or null when there is none. Text may
 * stand before and after (RFC 7468 section 2; what `openssl req -text` prints). Found with indexOf,
 * not a lazy regex, which retried from every BEGIN and cost the square of the input's length.
 */
function pemBody(text: string): string | null {
  const begin = text.indexOf('-----BEGIN ');
  if (begin < 0) return null;
  const label = PEM_LABELS.find((l) => text.startsWith(`-----BEGIN ${l}-----`, begin));
  if (label === undefined) return null;
  const from = begin + `-----BEGIN ${label}-----`.length;
  const end = text.indexOf('-----END ', from);
  if (end < 0 || !text.startsWith(`-----END ${label}-----`, end)) throw invalid('csr_malformed', 'csr PEM header and footer do not match');
  if (text.indexOf('-----BEGIN ', end) >= 0) throw invalid('csr_malformed', 'csr holds more than one PEM certificate request');
  return text.slice(from, end);
}

function parseCsrDer(der: Buffer): ParsedCsr {
  const root = readRoot(der, 0x30, 'CertificationRequest');
  const [cri, sigAlg, sig, extra] = children(der, root);
  if (!cri || !sigAlg || !sig || extra) throw new DerError('CertificationRequest must have three fields');
  if (cri.tag !== 0x30 || sigAlg.tag !== 0x30) throw new DerError('malformed CertificationRequest');
  const [version, subject, spki, attributes, extraInfo] = children(der, cri);
  if (!version || !subject || !spki || !attributes || extraInfo) {
    throw new DerError('CertificationRequestInfo must have four fields');
  }
  if (readSmallInteger(der, version) !== 0) throw new DerError('unknown CertificationRequestInfo version');
  if (spki.tag !== 0x30) throw new DerError('expected SubjectPublicKeyInfo');
  if (attributes.tag !== 0xa0) throw new DerError('expected attributes [0]');

  // Copied so the result does not pin the caller's input buffer.
  const spkiDer = Buffer.from(whole(der, spki));
  const { key, keyType, family, rsaBits } = importKey(spkiDer);

  const scheme = signatureScheme(der, sigAlg);
  if (scheme.family !== family) throw invalid('csr_algorithm_mismatch', 'csr signature algorithm does not match its key type');
  const signature = readOctetAlignedBitString(der, sig);
  if (!verifySignature(scheme, key, whole(der, cri), signature)) throw invalid('csr_bad_signature', 'csr signature does not verify');

  const requested = readRequestedExtensions(der, attributes);
  const cns = readCommonNames(der, subject);
  if (cns.length > 1) throw invalid('csr_multiple_cns', 'csr subject has more than one common name');

  const parsed: ParsedCsr = { spkiDer, keyType, requested };
  if (rsaBits !== undefined) parsed.rsaBits = rsaBits;
  if (cns[0] !== undefined) parsed.subjectCn = cns[0];
  return parsed;
}

function importKey(spkiDer: Buffer): ImportedKey {
  let imported: ImportedKey;
  try {
    imported = importSpki(spkiDer);
  } catch (e) {
    if (e instanceof UnsupportedKey) throw invalid('csr_unsupported_key', `csr ${e.message}`);
    throw invalid('csr_invalid_key', 'csr public key is not valid');
  }
  const bits = imported.rsaBits;
  if (bits !== undefined && bits < MIN_RSA_BITS) {
    throw invalid('csr_unsupported_key', `csr key type rsa-${bits} is not allowed (RSA keys need at least ${MIN_RSA_BITS} bits)`);
  }
  if (bits !== undefined && bits > MAX_RSA_BITS) throw invalid('csr_unsupported_key', `csr key type rsa-${bits} is not allowed (at most ${MAX_RSA_BITS} bits)`);
  return imported;
}

function readRequestedExtensions(der: Buffer, attributes: Tlv): ParsedCsr['requested'] {
  const requested: ParsedCsr['requested'] = {
    uriSans: [],
    dnsSans: [],
    ipSans: [],
    emailSans: [],
    otherExtensions: [],
    extKeyUsages: [],
    caKeyUsage: false,
    basicConstraintsCa: null,
    nameConstraints: false,
  };
  let seenExtensionRequest = false;
  for (const attr of children(der, attributes)) {
    const [type, values, extra] = children(der, expectTlv(der, attr.start, 0x30, attributes.end, 'Attribute'));
    if (!type || !values || extra || values.tag !== 0x31) throw new DerError('malformed Attribute');
    // Other attributes (challengePassword, unstructuredName) have no effect on what Leash issues.
    if (readOid(der, type) !== OID.extensionRequest) continue;
    if (seenExtensionRequest) throw new DerError('more than one extensionRequest attribute');
    seenExtensionRequest = true;
    const [extensions, more] = children(der, values);
    if (!extensions || more) throw new DerError('extensionRequest must hold one Extensions value');
    readExtensions(der, expectTlv(der, extensions.start, 0x30, values.end, 'Extensions'), requested);
  }
  return requested;
}

function readExtensions(der: Buffer, extensions: Tlv, requested: ParsedCsr['requested']): void {
  const seen = new Set<string>();
  for (const ext of children(der, extensions)) {
    const fields = children(der, expectTlv(der, ext.start, 0x30, extensions.end, 'Extension'));
    const [idTlv, second, third] = fields;
    if (!idTlv || !second || fields.length > 3) throw new DerError('malformed Extension');
    // critical is DEFAULT FALSE, and DER leaves a default out (X.690 11.5): an explicit FALSE is BER.
    if (third && !readBoolean(der, second)) throw new DerError('Extension critical FALSE must be omitted in DER');
    const valueTlv = third ?? second;
    if (valueTlv.tag !== 0x04) throw new DerError('extension value must be an OCTET STRING');
    const id = readOid(der, idTlv);
    if (seen.has(id)) throw new DerError(`extension ${id} appears twice`);
    seen.add(id);
    const inner = value(der, valueTlv);
    switch (id) {
      case OID.subjectAltName:
        readGeneralNames(inner, readRoot(inner, 0x30, 'subjectAltName'), requested);
        break;
      case OID.basicConstraints: {
        requested.basicConstraintsCa = readBasicConstraintsCa(inner);
        break;
      }
      case OID.nameConstraints:
        requested.nameConstraints = true;
        break;
      case OID.extKeyUsage:
        requested.extKeyUsages = children(inner, readRoot(inner, 0x30, 'extKeyUsage')).map((t) => readOid(inner, t));
        break;
      case OID.keyUsage: {
        const bits = readNamedBits(inner, readRoot(inner, 0x03, 'keyUsage'));
        requested.caKeyUsage = ((bits[0] ?? 0) & (KEY_CERT_SIGN | CRL_SIGN)) !== 0;
        break;
      }
      default:
        requested.otherExtensions.push(id);
    }
  }
}

/** BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }: its cA. */
function readBasicConstraintsCa(inner: Buffer): boolean {
  const fields = children(inner, readRoot(inner, 0x30, 'basicConstraints'));
  let at = 0;
  const ca = fields[at]?.tag === 0x01 ? readBoolean(inner, fields[at++]!) : false;
  // DER leaves the DEFAULT out (X.690 11.5), so a cA that is there is TRUE.
  if (at === 1 && !ca) throw new DerError('basicConstraints cA FALSE must be omitted in DER');
  // Leash never reads the length (the certificate's constraints come from the grant): only its shape.
  if (fields[at]?.tag === 0x02) readInteger(inner, fields[at++]!);
  if (at !== fields.length) throw new DerError('malformed basicConstraints');
  return ca;
}

/** The policy key type a parsed request satisfies, for messages: rsa keys are named by size. */
export const describeKeyType = (csr: ParsedCsr): string =>
  csr.keyType === 'rsa' ? `rsa-${csr.rsaBits ?? 0}` : csr.keyType;

function keyTypeAllowed(csr: ParsedCsr, allowed: readonly KeyType[]): boolean {
  if (csr.keyType !== 'rsa') return allowed.includes(csr.keyType);
  const bits = csr.rsaBits ?? 0;
  if (bits < MIN_RSA_BITS) return false;
  return allowed.some((k) => k.startsWith('rsa-') && bits >= Number(k.slice(4)));
}

/**
 * Refuses a request that asks for more than the rule grants. What the certificate says is decided
 * by the grant alone; this only makes sure the requester is not expecting something else.
 */
export function checkCsrAgainstGrant(csr: ParsedCsr, grant: CsrGrant): void {
  assertIssuableSans(grant.uri_sans, grant.dns_sans);
  if (!keyTypeAllowed(csr, grant.key_types)) {
    throw invalid(
      'csr_key_type_not_allowed',
      `csr key type ${describeKeyType(csr)} is not allowed by the rule (allowed: ${grant.key_types.join(', ') || 'none'})`,
    );
  }
  const r = csr.requested;
  if (r.basicConstraintsCa === true) throw invalid('csr_ca_requested', 'csr requests a CA certificate (basicConstraints CA:TRUE)');
  if (r.nameConstraints) throw invalid('csr_ca_requested', 'csr requests name constraints, which only a CA certificate may carry');
  if (r.caKeyUsage) throw invalid('csr_ca_requested', 'csr requests keyCertSign or cRLSign key usage, which only a CA certificate may carry');
  // A purpose the certificate would not carry is refused, not silently dropped: the requester
  // would only find out at its first TLS handshake.
  const purposes: string[] = grant.server_auth || isSvid(grant.uri_sans) ? [OID.clientAuth, OID.serverAuth] : [OID.clientAuth];
  for (const eku of r.extKeyUsages) {
    if (!purposes.includes(eku)) {
      const name = eku === OID.serverAuth ? 'serverAuth, which the rule does not grant' : `${eku}, which Leash does not issue`;
      throw invalid('csr_eku_not_granted', `csr requests extended key usage ${name}`);
    }
  }
  const other = r.otherExtensions.filter((oid) => !HARMLESS_CSR_EXTENSIONS.has(oid));
  if (other.length > 0) throw invalid('csr_extension_not_issued', `csr requests extensions Leash does not issue: ${other.join(', ')}`);
  for (const uri of r.uriSans) {
    if (!grant.uri_sans.includes(uri)) throw invalid('csr_san_not_granted', `csr requests URI SAN ${quote(uri)}, which the rule does not grant`);
  }
  for (const dns of r.dnsSans) {
    if (!grant.dns_sans.some((g) => sameDnsName(g, dns))) {
      throw invalid('csr_san_not_granted', `csr requests DNS SAN ${quote(dns)}, which the rule does not grant`);
    }
  }
  if (r.ipSans.length > 0) throw invalid('csr_san_not_granted', `csr requests IP SAN ${r.ipSans[0]}, which Leash does not grant`);
  if (r.emailSans.length > 0) throw invalid('csr_san_not_granted', `csr requests email SAN ${quote(r.emailSans[0] ?? '')}, which Leash does not grant`);
  if (csr.subjectCn !== undefined) {
    const cn = csr.subjectCn;
    if (!grant.uri_sans.includes(cn) && !grant.dns_sans.some((g) => sameDnsName(g, cn))) {
      throw invalid('csr_cn_not_granted', `csr subject CN ${quote(cn)} is not one of the granted names`);
    }
  }
}
