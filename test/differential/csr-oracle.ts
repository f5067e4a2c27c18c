/**
 * The oracle of the differential CSR tests: @peculiar/asn1-csr and asn1-x509 (asn1js underneath)
 * parse the request, a byte-exact re-encoding stands for "is DER", WebCrypto checks the
 * signature, and the rules by which Leash refuses more than a PKCS#10 parser would (key types it
 * issues for, SAN types it grants, one CN) are stated here, each with its reason.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { ECDSASigValue, ECParameters } from '@peculiar/asn1-ecc';
import { RSAPublicKey } from '@peculiar/asn1-rsa';
import { AttributeTypeAndValue, BasicConstraints, ExtendedKeyUsage, Extensions, KeyUsage, SubjectAlternativeName } from '@peculiar/asn1-x509';

const subtle = webcrypto.subtle;

export interface CsrView {
  spkiDer: Buffer;
  keyType: 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa';
  rsaBits?: number;
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  emailSans: string[];
  subjectCn?: string;
}
export type Verdict = { ok: true; csr: CsrView } | { ok: false; why: string };

const OIDS = {
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  ed25519: '1.3.101.112',
  rsa: '1.2.840.113549.1.1.1',
  extensionRequest: '1.2.840.113549.1.9.14',
  san: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  eku: '2.5.29.37',
  cn: '2.5.4.3',
};
/** Signature algorithms Leash takes, as WebCrypto names them (SHA-1 and MD5 prove nothing worth trusting). */
const SIG_ALGS: Record<string, { family: 'ec' | 'rsa' | 'ed25519'; hash?: string; nullParams?: boolean }> = {
  '1.2.840.10045.4.3.2': { family: 'ec', hash: 'SHA-256' },
  '1.2.840.10045.4.3.3': { family: 'ec', hash: 'SHA-384' },
  '1.2.840.10045.4.3.4': { family: 'ec', hash: 'SHA-512' },
  '1.2.840.113549.1.1.11': { family: 'rsa', hash: 'SHA-256', nullParams: true },
  '1.2.840.113549.1.1.12': { family: 'rsa', hash: 'SHA-384', nullParams: true },
  '1.2.840.113549.1.1.13': { family: 'rsa', hash: 'SHA-512', nullParams: true },
  '1.3.101.112': { family: 'ed25519' },
};

class Refused extends Error {}
const refuse = (why: string): never => {
  throw new Refused(why);
};

/** Parses `der` as `type` and insists that re-encoding gives the same bytes (else it was not DER). */
function parseDer<T>(der: Uint8Array, type: new () => T, what: string): T {
  let value: T;
  try {
    value = AsnConvert.parse(der, type);
  } catch {
    return refuse(`${what} does not parse`);
  }
  let again: Buffer;
  try {
    again = Buffer.from(AsnConvert.serialize(value));
  } catch {
    return refuse(`${what} does not re-encode`); // e.g. a PrintableString holding '@'
  }
  if (!again.equals(Buffer.from(der))) refuse(`${what} is not DER`);
  return value;
}

const NULL_DER = Buffer.from('0500', 'hex');
/** asn1-schema reads a NULL parameter as null and an absent one as undefined. */
const isNull = (params: ArrayBuffer | null | undefined): boolean => params === null || (params !== undefined && Buffer.from(params).equals(NULL_DER));

/** The bit length of a big-endian unsigned magnitude (leading zero bytes skipped). */
function bitLength(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

interface Key {
  keyType: CsrView['keyType'];
  family: 'ec' | 'rsa' | 'ed25519';
  rsaBits?: number;
  curve?: 'P-256' | 'P-384';
}

function keyOf(req: CertificationRequest): Key {
  const spki = req.certificationRequestInfo.subjectPKInfo;
  const alg = spki.algorithm.algorithm;
  const params = spki.algorithm.parameters;
  if (alg === OIDS.ecPublicKey) {
    // Leash issues for P-256 and P-384 only (policy key_types); named curves only.
    const curve = params != null ? parseDer(new Uint8Array(params), ECParameters, 'ECParameters').namedCurve : undefined;
    if (curve === OIDS.p256) return { keyType: 'ec-p256', family: 'ec', curve: 'P-256' };
    if (curve === OIDS.p384) return { keyType: 'ec-p384', family: 'ec', curve: 'P-384' };
    return refuse(`EC curve ${curve ?? 'explicit'} is not issued for`);
  }
  if (alg === OIDS.ed25519) {
    if (params !== undefined) refuse('Ed25519 key with parameters');
    return { keyType: 'ed25519', family: 'ed25519' };
  }
  if (alg === OIDS.rsa) {
    if (!isNull(params)) refuse('rsaEncryption parameters must be NULL (RFC 3279 section 2.3.1)');
    const rsa = parseDer(new Uint8Array(spki.subjectPublicKey), RSAPublicKey, 'RSAPublicKey');
    const n = Buffer.from(rsa.modulus);
    const e = Buffer.from(rsa.publicExponent);
    const bits = bitLength(n);
    // Leash: 2048 to 8192 bits (RFC 7518-style floor; bigger only slows verification), an odd
    // modulus and an odd exponent of 3 to 2^256: OpenSSL verifies with e = 1, which anyone can sign for.
    if (bits < 2048 || bits > 8192) refuse(`RSA key of ${bits} bits`);
    if ((n[0] ?? 0) & 0x80 || (e[0] ?? 0) & 0x80) refuse('negative RSA number');
    if (((n[n.length - 1] ?? 0) & 1) === 0) refuse('even RSA modulus');
    if (((e[e.length - 1] ?? 0) & 1) === 0 || bitLength(e) < 2 || bitLength(e) > 256) refuse('RSA exponent not odd in [3, 2^256]');
    return { keyType: 'rsa', family: 'rsa', rsaBits: bits };
  }
  return refuse(`key algorithm ${alg} is not issued for`);
}

/** ECDSA-Sig-Value (DER) as WebCrypto's r || s, refusing anything OpenSSL would not re-encode identically. */
function ecdsaRaw(sig: Buffer, size: number): Buffer {
  const v = parseDer(sig, ECDSASigValue, 'ECDSA signature');
  const fixed = (x: ArrayBuffer): Buffer => {
    let b = Buffer.from(x);
    if ((b[0] ?? 0) & 0x80) refuse('negative ECDSA integer');
    while (b.length > size && b[0] === 0) b = b.subarray(1);
    if (b.length > size) refuse('ECDSA integer too large');
    return Buffer.concat([Buffer.alloc(size - b.length), b]);
  };
  return Buffer.concat([fixed(v.r), fixed(v.s)]);
}

async function signatureHolds(req: CertificationRequest, der: Buffer, key: Key): Promise<boolean> {
  const alg = SIG_ALGS[req.signatureAlgorithm.algorithm] ?? refuse(`signature algorithm ${req.signatureAlgorithm.algorithm}`);
  const params = req.signatureAlgorithm.parameters;
  // RSA PKCS#1 v1.5 identifiers carry NULL (or, tolerated, nothing); ECDSA and Ed25519 none.
  if (params !== undefined && !(alg.nullParams && isNull(params))) refuse('unexpected signature algorithm parameters');
  if (alg.family !== key.family) refuse('signature algorithm does not fit the key');
  const spki = AsnConvert.serialize(req.certificationRequestInfo.subjectPKInfo);
  const signed = req.certificationRequestInfoRaw ?? refuse('no raw CertificationRequestInfo');
  const sig = Buffer.from(req.signature);
  try {
    if (key.family === 'ed25519') {
      return await subtle.verify('Ed25519', await subtle.importKey('spki', spki, 'Ed25519', false, ['verify']), sig, signed);
    }
    if (key.family === 'rsa') {
      const k = await subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash: alg.hash! }, false, ['verify']);
      return await subtle.verify('RSASSA-PKCS1-v1_5', k, sig, signed);
    }
    const size = key.curve === 'P-256' ? 32 : 48;
    const k = await subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: key.curve! }, false, ['verify']);
    return await subtle.verify({ name: 'ECDSA', hash: alg.hash! }, k, ecdsaRaw(sig, size), signed);
  } catch (e) {
    if (e instanceof Refused) throw e;
    return false; // a key WebCrypto cannot import (a point off the curve) verifies nothing
  }
}

/** The first TLV of DER bytes: tag and value (lengths already known to be DER). */
function firstTlv(der: Buffer): { tag: number; value: Buffer } {
  const first = der[1]!;
  const count = first & 0x80 ? first & 0x7f : 0;
  let len = count ? 0 : first;
  for (let i = 0; i < count; i++) len = len * 256 + der[2 + i]!;
  const start = 2 + count;
  return { tag: der[0]!, value: der.subarray(start, start + len) };
}

const ascii = (b: Buffer, what: string): string => (b.some((x) => x > 0x7f) ? refuse(`non-ASCII ${what}`) : b.toString('latin1'));

/** A CN's DirectoryString: the string types Leash reads (UniversalString is not one of them). */
function commonName(atv: AttributeTypeAndValue): string {
  const raw = Buffer.from(AsnConvert.serialize(atv));
  const outer = firstTlv(raw).value;
  const oidLen = outer[1]!;
  const { tag, value } = firstTlv(outer.subarray(2 + oidLen));
  switch (tag) {
    case 0x0c: {
      const s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      try {
        return s.decode(value);
      } catch {
        return refuse('CN is not UTF-8');
      }
    }
    case 0x13:
    case 0x16:
      return ascii(value, 'CN');
    case 0x14:
      return value.toString('latin1');
    case 0x1e:
      return value.length % 2 ? refuse('odd BMPString') : Buffer.from(value).swap16().toString('utf16le');
    default:
      return refuse(`CN string type 0x${tag.toString(16)}`);
  }
}

/** An iPAddress as Leash spells it: dotted quad, or eight hex groups without compression. */
export function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) return Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16)).join(':');
  return refuse('iPAddress of neither 4 nor 16 bytes');
}

function readExtensions(der: Buffer, view: CsrView): void {
  const exts = parseDer(der, Extensions, 'Extensions');
  const seen = new Set<string>();
  for (const ext of exts) {
    // RFC 5280 section 4.2: a certificate must not include more than one instance of an extension.
    if (seen.has(ext.extnID)) refuse(`extension ${ext.extnID} twice`);
    seen.add(ext.extnID);
    const value = Buffer.from(ext.extnValue.buffer);
    switch (ext.extnID) {
      case OIDS.san:
        for (const name of parseDer(value, SubjectAlternativeName, 'subjectAltName')) {
          // Leash grants DNS and URI names and reads IP and email ones to refuse them by the grant;
          // any other GeneralName type is refused outright (nothing silently dropped).
          if (name.dNSName !== undefined) view.dnsSans.push(ascii(Buffer.from(name.dNSName, 'latin1'), 'dNSName'));
          else if (name.uniformResourceIdentifier !== undefined) view.uriSans.push(ascii(Buffer.from(name.uniformResourceIdentifier, 'latin1'), 'URI'));
          else if (name.rfc822Name !== undefined) view.emailSans.push(ascii(Buffer.from(name.rfc822Name, 'latin1'), 'rfc822Name'));
          else if (name.iPAddress !== undefined) view.ipSans.push(ipText(ipBytes(value, view.ipSans.length)));
          else refuse('a subjectAltName type Leash does not issue');
        }
        break;
      case OIDS.basicConstraints:
        parseDer(value, BasicConstraints, 'basicConstraints');
        break;
      case OIDS.keyUsage:
        parseDer(value, KeyUsage, 'keyUsage');
        break;
      case OIDS.eku:
        parseDer(value, ExtendedKeyUsage, 'extKeyUsage');
        break;
    }
  }
}

/** The raw bytes of the n-th iPAddress ([7]) of a GeneralNames value: peculiar hands back text. */
function ipBytes(generalNames: Buffer, n: number): Buffer {
  let rest = firstTlv(generalNames).value;
  let seen = 0;
  while (rest.length > 0) {
    const t = firstTlv(rest);
    const headerLen = rest[1]! & 0x80 ? 2 + (rest[1]! & 0x7f) : 2;
    if (t.tag === 0x87 && seen++ === n) return t.value;
    rest = rest.subarray(headerLen + t.value.length);
  }
  return refuse('iPAddress not found');
}

/** What Leash must make of `der`: accept it with this view, or refuse it. */
export async function oracle(der: Buffer): Promise<Verdict> {
  try {
    if (der.length === 0 || der.length > 16 * 1024) refuse('empty or over 16 KiB');
    const req = parseDer(der, CertificationRequest, 'CertificationRequest');
    const info = req.certificationRequestInfo;
    if (info.version !== 0) refuse('version is not v1 (0)');
    const key = keyOf(req);
    if (!(await signatureHolds(req, der, key))) refuse('signature does not verify');
    const view: CsrView = { spkiDer: Buffer.from(AsnConvert.serialize(info.subjectPKInfo)), keyType: key.keyType, uriSans: [], dnsSans: [], ipSans: [], emailSans: [] };
    if (key.rsaBits !== undefined) view.rsaBits = key.rsaBits;
    const requests = info.attributes.filter((a) => a.type === OIDS.extensionRequest);
    // RFC 2985 section 5.4.2: extensionRequest is single-valued, and one attribute of it.
    if (requests.length > 1 || requests.some((a) => a.values.length !== 1)) refuse('extensionRequest not single');
    if (requests[0]) readExtensions(Buffer.from(requests[0].values[0]!), view);
    const cns = info.subject.flatMap((rdn) => rdn.filter((atv) => atv.type === OIDS.cn)).map(commonName);
    // One subject CN at most: with two, which one a relying party reads is anyone's guess.
    if (cns.length > 1) refuse('two CNs');
    if (cns[0] !== undefined) view.subjectCn = cns[0];
    return { ok: true, csr: view };
  } catch (e) {
    if (e instanceof Refused) return { ok: false, why: e.message };
    throw e;
  }
}
