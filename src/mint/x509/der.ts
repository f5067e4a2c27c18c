/**
 * A tiny DER encoder for the certificate hot path. @peculiar/x509 builds certificates through a
 * generic ASN.1 object model that costs milliseconds per certificate; the handful of shapes a
 * leaf certificate needs are cheap to write directly into Buffers.
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Definite-length encoding; DER forbids the long form for lengths below 128. */
export function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Writes one tag-length-value with a single allocation, since this runs several times per certificate. */
export const tlv = (tag: number, ...parts: Buffer[]): Buffer => tlvOf(tag, parts);

/** Like `tlv`, for long lists (CRL entries) that must not be spread into call arguments. */
export function tlvOf(tag: number, parts: readonly Buffer[]): Buffer {
  let length = 0;
  for (const p of parts) length += p.length;
  if (length > 0xffffffff) throw new RangeError('DER value too large');
  const lengthBytes = length < 0x80 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : length < 0x1000000 ? 4 : 5;
  const out = Buffer.allocUnsafe(1 + lengthBytes + length);
  out[0] = tag;
  let offset = 1;
  if (lengthBytes === 1) {
    out[offset++] = length;
  } else {
    out[offset++] = 0x80 | (lengthBytes - 1);
    for (let i = lengthBytes - 2; i >= 0; i--) out[offset++] = Math.floor(length / 2 ** (8 * i)) & 0xff;
  }
  for (const p of parts) {
    p.copy(out, offset);
    offset += p.length;
  }
  return out;
}

export const sequence = (...parts: Buffer[]): Buffer => tlvOf(TAG.SEQUENCE, parts);
export const sequenceOf = (parts: readonly Buffer[]): Buffer => tlvOf(TAG.SEQUENCE, parts);
export const octetString = (value: Buffer): Buffer => tlv(TAG.OCTET_STRING, value);
export const nullValue = (): Buffer => Buffer.from([TAG.NULL, 0x00]);
export const booleanValue = (value: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 0x01, value ? 0xff : 0x00]);

/** Context-specific constructed tag: `[n] EXPLICIT`, or `[n] IMPLICIT` over a constructed type. */
export const contextConstructed = (n: number, ...parts: Buffer[]): Buffer => tlv(0xa0 | n, ...parts);
/** Context-specific primitive tag: `[n] IMPLICIT` over a primitive type (e.g. GeneralName URI [6]). */
export const contextPrimitive = (n: number, value: Buffer): Buffer => tlv(0x80 | n, value);

/** BIT STRING whose length is a whole number of bytes (signatures, keys). */
export const bitString = (value: Buffer, unusedBits = 0): Buffer => tlv(TAG.BIT_STRING, Buffer.from([unusedBits]), value);

/**
 * INTEGER from an unsigned big-endian magnitude: leading zero bytes are dropped and one is added
 * back when the top bit is set, so the value stays positive and the encoding minimal.
 */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.subarray(start);
  if (body.length === 0) return Buffer.from([TAG.INTEGER, 0x01, 0x00]);
  return (body[0] as number) & 0x80 ? tlv(TAG.INTEGER, Buffer.from([0]), body) : tlv(TAG.INTEGER, body);
}

export function smallInteger(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`not a non-negative integer: ${value}`);
  return bigInteger(BigInt(value));
}

export function bigInteger(value: bigint): Buffer {
  if (value < 0n) throw new RangeError('negative INTEGER values are not supported');
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return unsignedInteger(Buffer.from(hex, 'hex'));
}

const oidCache = new Map<string, Buffer>();

/** Cached, because extensions name the same few OIDs on every certificate. */
export function oid(dotted: string): Buffer {
  let encoded = oidCache.get(dotted);
  if (!encoded) {
    encoded = encodeOid(dotted);
    oidCache.set(dotted, encoded);
  }
  return encoded;
}

function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new Error(`bad OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2) throw new Error(`bad OID ${dotted}`);
  const [first, second] = arcs as [bigint, bigint];
  if (first > 2n || (first < 2n && second > 39n)) throw new Error(`bad OID ${dotted}`);
  const bytes: number[] = [];
  for (const arc of [first * 40n + second, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(bytes));
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/**
 * RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on, always in Zulu with
 * seconds and no fractions.
 */
export function time(epochSeconds: number): Buffer {
  if (!Number.isSafeInteger(epochSeconds)) throw new RangeError(`time must be whole epoch seconds: ${epochSeconds}`);
  const d = new Date(epochSeconds * 1000);
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`time out of the X.509 range: ${year}`);
  const rest =
    pad2(d.getUTCMonth() + 1) +
    pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds()) +
    'Z';
  return year < 2050
    ? tlv(TAG.UTC_TIME, Buffer.from(pad2(year % 100) + rest, 'latin1'))
    : tlv(TAG.GENERALIZED_TIME, Buffer.from(String(year) + rest, 'latin1'));
}

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
export function extension(extnId: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(extnId), booleanValue(true), octetString(value))
    : sequence(oid(extnId), octetString(value));
}

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}
