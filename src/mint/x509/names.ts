import { children, DerError, readOid, value } from './der-reader.ts';
import type { Tlv } from './der-reader.ts';
import { OID } from './oids.ts';

export interface RequestedSans {
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  emailSans: string[];
}

const GENERAL_NAME_TYPES: Record<number, string> = {
  0xa0: 'otherName',
  0x81: 'rfc822Name',
  0x82: 'dNSName',
  0xa3: 'x400Address',
  0xa4: 'directoryName',
  0xa5: 'ediPartyName',
  0x86: 'uniformResourceIdentifier',
  0x87: 'iPAddress',
  0x88: 'registeredID',
};

/** A well-formed GeneralName of a type Leash never issues (otherName, x400Address, ...). */
export class UnsupportedName extends Error {
  override readonly name = 'UnsupportedName';
  readonly code = 'ERR_UNSUPPORTED_NAME';
}

/**
 * Decodes a SubjectAltName value. Name types Leash never issues are refused here rather than
 * dropped, since silently ignoring part of what a requester asked for hides mistakes.
 */
export function readGeneralNames(buf: Buffer, generalNames: Tlv, into: RequestedSans): void {
  if (generalNames.tag !== 0x30) throw new DerError('expected GeneralNames');
  for (const name of children(buf, generalNames)) {
    const v = value(buf, name);
    switch (name.tag) {
      case 0x81:
        into.emailSans.push(ia5(v));
        break;
      case 0x82:
        into.dnsSans.push(ia5(v));
        break;
      case 0x86:
        into.uriSans.push(ia5(v));
        break;
      case 0x87:
        into.ipSans.push(formatIp(v));
        break;
      default:
        throw new UnsupportedName(
          `csr requests a subjectAltName of type ${GENERAL_NAME_TYPES[name.tag] ?? 'unknown'}, which Leash does not issue`,
        );
    }
  }
}

/** Every commonName in a Name (RDNSequence). */
export function readCommonNames(buf: Buffer, name: Tlv): string[] {
  if (name.tag !== 0x30) throw new DerError('expected a Name');
  const out: string[] = [];
  for (const rdn of children(buf, name)) {
    if (rdn.tag !== 0x31) throw new DerError('expected a RelativeDistinguishedName');
    for (const atv of children(buf, rdn)) {
      // Checked, not assumed: children() takes any constructed tag, and a SET here is not a Name.
      if (atv.tag !== 0x30) throw new DerError('expected an AttributeTypeAndValue');
      const [type, val, extra] = children(buf, atv);
      if (!type || !val || extra) throw new DerError('bad AttributeTypeAndValue');
      if (readOid(buf, type) === OID.commonName) out.push(directoryString(buf, val));
    }
  }
  return out;
}

function directoryString(buf: Buffer, t: Tlv): string {
  const v = value(buf, t);
  switch (t.tag) {
    case 0x0c: {
      const s = v.toString('utf8');
      if (!Buffer.from(s, 'utf8').equals(v)) throw new DerError('invalid UTF8String');
      return s;
    }
    case 0x13:
    case 0x16:
      return ia5(v);
    case 0x14:
      return v.toString('latin1');
    case 0x1e:
      if (v.length % 2) throw new DerError('invalid BMPString');
      return Buffer.from(v).swap16().toString('utf16le');
    default:
      throw new DerError(`unsupported string type 0x${t.tag.toString(16)} in subject`);
  }
}

function ia5(v: Buffer): string {
  for (const b of v) {
    if (b > 0x7f) throw new DerError('non-ASCII byte in an IA5String');
  }
  return v.toString('latin1');
}

function formatIp(v: Buffer): string {
  if (v.length === 4) return Array.from(v).join('.');
  if (v.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(v.readUInt16BE(i).toString(16));
    return groups.join(':');
  }
  throw new DerError('iPAddress must be 4 or 16 bytes');
}
