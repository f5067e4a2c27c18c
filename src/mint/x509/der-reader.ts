/**
 * A minimal, strict DER reader: enough to walk a PKCS#10 request or a certificate without an
 * object model. It refuses indefinite and non-minimal lengths so that what is signed and what
 * is read are the same bytes.
 */

/** The bytes are not the strict DER this reader accepts; the message names what is wrong. */
export class DerError extends Error {
  override readonly name = 'DerError';
  readonly code = 'ERR_DER_INVALID';
}

export interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first value byte. */
  valueStart: number;
  /** Offset just past the value. */
  end: number;
}

/** Reads the TLV at `offset`, which must end within `limit`. */
export function readTlv(buf: Buffer, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated DER');
  const tag = buf[offset] as number;
  // High-tag-number form never occurs in the structures Leash reads.
  if ((tag & 0x1f) === 0x1f) throw new DerError('unsupported high tag number');
  let pos = offset + 1;
  const first = buf[pos++] as number;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0) throw new DerError('indefinite length is not DER');
    if (count > 4) throw new DerError('DER length too large');
    if (pos + count > limit) throw new DerError('truncated DER');
    if (buf[pos] === 0) throw new DerError('non-minimal DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[pos++] as number);
    if (length < 0x80) throw new DerError('non-minimal DER length');
  }
  const end = pos + length;
  if (end > limit) throw new DerError('truncated DER');
  return { tag, start: offset, valueStart: pos, end };
}

/** Reads a TLV and insists on its tag. */
export function expectTlv(buf: Buffer, offset: number, tag: number, limit?: number, what = 'element'): Tlv {
  const t = readTlv(buf, offset, limit);
  if (t.tag !== tag) throw new DerError(`expected ${what} (tag 0x${tag.toString(16)}), got 0x${t.tag.toString(16)}`);
  return t;
}

/** The direct children of a constructed TLV, which must tile its value exactly. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new DerError('expected a constructed element');
  const out: Tlv[] = [];
  let pos = parent.valueStart;
  while (pos < parent.end) {
    const child = readTlv(buf, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

export const value = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.valueStart, t.end);
export const whole = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start, t.end);

export function decodeOid(bytes: Buffer): string {
  if (bytes.length === 0) throw new DerError('empty OID');
  const arcs: string[] = [];
  let acc = 0n;
  let started = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (!started && b === 0x80) throw new DerError('non-minimal OID arc');
    started = true;
    acc = (acc << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = acc < 40n ? 0n : acc < 80n ? 1n : 2n;
        arcs.push(String(first), String(acc - first * 40n));
      } else {
        arcs.push(String(acc));
      }
      acc = 0n;
      started = false;
    }
  }
  if (started) throw new DerError('truncated OID');
  return arcs.join('.');
}

export function readOid(buf: Buffer, t: Tlv): string {
  if (t.tag !== 0x06) throw new DerError('expected an OID');
  return decodeOid(value(buf, t));
}

/** The two's-complement bytes of a minimally encoded INTEGER of any size and sign. */
export function readInteger(buf: Buffer, t: Tlv): Buffer {
  if (t.tag !== 0x02) throw new DerError('expected an INTEGER');
  const v = value(buf, t);
  if (v.length === 0) throw new DerError('empty INTEGER');
  const second = (v[1] as number) & 0x80;
  if (v.length > 1 && ((v[0] === 0 && second === 0) || (v[0] === 0xff && second !== 0))) throw new DerError('non-minimal INTEGER');
  return v;
}

/** A small non-negative INTEGER (versions, path lengths). */
export function readSmallInteger(buf: Buffer, t: Tlv): number {
  const v = readInteger(buf, t);
  if (v.length > 4) throw new DerError('INTEGER out of range');
  if ((v[0] as number) & 0x80) throw new DerError('negative INTEGER');
  return v.reduce((acc, b) => acc * 256 + b, 0);
}

export function readBoolean(buf: Buffer, t: Tlv): boolean {
  if (t.tag !== 0x01 || t.end - t.valueStart !== 1) throw new DerError('expected a BOOLEAN');
  const b = buf[t.valueStart];
  if (b === 0x00) return false;
  if (b === 0xff) return true;
  throw new DerError('BOOLEAN must be 0x00 or 0xff in DER');
}

/** The bytes of a BIT STRING that holds whole octets (keys, signatures). */
export function readOctetAlignedBitString(buf: Buffer, t: Tlv): Buffer {
  if (t.tag !== 0x03 || t.end - t.valueStart < 1) throw new DerError('expected a BIT STRING');
  if (buf[t.valueStart] !== 0) throw new DerError('BIT STRING has unused bits');
  return buf.subarray(t.valueStart + 1, t.end);
}

/**
 * A named-bit BIT STRING (keyUsage): its bytes, first bit as 0x80 of the first byte. The unused-bit
 * count must be 0-7 and 0 when no bytes follow (X.690 8.6.2.2-8.6.2.3).
 */
export function readNamedBits(buf: Buffer, t: Tlv): Buffer {
  if (t.tag !== 0x03 || t.end - t.valueStart < 1) throw new DerError('expected a BIT STRING');
  const unused = buf[t.valueStart] as number;
  if (unused > 7) throw new DerError('BIT STRING unused-bit count above 7');
  if (unused !== 0 && t.end - t.valueStart === 1) throw new DerError('empty BIT STRING with unused bits');
  return buf.subarray(t.valueStart + 1, t.end);
}

/** Parses a complete DER value: trailing bytes mean the input is something else. */
export function readRoot(buf: Buffer, tag: number, what: string): Tlv {
  const t = expectTlv(buf, 0, tag, buf.length, what);
  if (t.end !== buf.length) throw new DerError(`trailing bytes after ${what}`);
  return t;
}
