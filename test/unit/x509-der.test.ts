import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bigInteger,
  encodeLength,
  oid,
  sequence,
  time,
  tlv,
  tlvOf,
  unsignedInteger,
} from '../../src/mint/x509/der.ts';
import { children, decodeOid, DerError, readRoot, readTlv } from '../../src/mint/x509/der-reader.ts';
import { openssl } from '../helpers/csr.ts';

const hex = (b: Buffer): string => b.toString('hex');

describe('DER encoder', () => {
  it('encodes lengths in the shortest definite form', () => {
    expect(hex(encodeLength(0))).toBe('00');
    expect(hex(encodeLength(127))).toBe('7f');
    expect(hex(encodeLength(128))).toBe('8180');
    expect(hex(encodeLength(255))).toBe('81ff');
    expect(hex(encodeLength(256))).toBe('820100');
    expect(hex(encodeLength(65535))).toBe('82ffff');
    expect(hex(encodeLength(65536))).toBe('83010000');
  });

  it('writes the same length header in tlv as encodeLength', () => {
    for (const n of [0, 1, 127, 128, 255, 256, 4000, 65535, 65536, 70000]) {
      const out = tlv(0x04, Buffer.alloc(n));
      expect(hex(out.subarray(1, out.length - n))).toBe(hex(encodeLength(n)));
    }
  });

  it('keeps INTEGERs positive and minimal', () => {
    expect(hex(unsignedInteger(Buffer.from('7f', 'hex')))).toBe('02017f');
    expect(hex(unsignedInteger(Buffer.from('80', 'hex')))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.from('000001', 'hex')))).toBe('020101');
    expect(hex(unsignedInteger(Buffer.from('0000', 'hex')))).toBe('020100');
    expect(hex(unsignedInteger(Buffer.from('00ff', 'hex')))).toBe('020200ff');
    expect(hex(bigInteger(0n))).toBe('020100');
    expect(hex(bigInteger(42n))).toBe('02012a');
    expect(hex(bigInteger(256n))).toBe('02020100');
  });

  it('encodes OIDs as openssl does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leash-der-'));
    for (const dotted of ['1.2.840.113549.1.9.14', '2.5.29.17', '2.999.3', '1.3.6.1.4.1.311.60.2.1.3']) {
      const out = join(dir, 'oid.der');
      const r = openssl(['asn1parse', '-genstr', `OID:${dotted}`, '-out', out, '-noout']);
      expect(r.status).toBe(0);
      expect(hex(oid(dotted))).toBe(hex(readFileSync(out)));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips OIDs through the reader', () => {
    const arc = fc.bigInt({ min: 0n, max: (1n << 70n) - 1n });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(arc, { maxLength: 8 }), (a, b, rest) => {
        const dotted = [a, b, ...rest].join('.');
        const encoded = oid(dotted);
        expect(decodeOid(encoded.subarray(2))).toBe(dotted);
      }),
    );
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050', () => {
    const at = (iso: string): number => Date.parse(iso) / 1000;
    expect(time(0).toString('latin1', 2)).toBe('700101000000Z');
    expect(time(at('2049-12-31T23:59:59Z'))[0]).toBe(0x17);
    expect(time(at('2049-12-31T23:59:59Z')).toString('latin1', 2)).toBe('491231235959Z');
    expect(time(at('2050-01-01T00:00:00Z'))[0]).toBe(0x18);
    expect(time(at('2050-01-01T00:00:00Z')).toString('latin1', 2)).toBe('20500101000000Z');
    expect(() => time(1.5)).toThrow(RangeError);
  });
});

describe('DER reader', () => {
  it('walks what the encoder writes', () => {
    const der = sequence(oid('2.5.29.17'), tlv(0x04, Buffer.alloc(300, 7)), sequence());
    const root = readRoot(der, 0x30, 'test');
    const parts = children(der, root);
    expect(parts.map((p) => p.tag)).toEqual([0x06, 0x04, 0x30]);
    expect((parts[1] as { end: number; valueStart: number }).end - (parts[1] as { valueStart: number }).valueStart).toBe(300);
  });

  it('round-trips arbitrary lengths', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70_000 }), (n) => {
        const der = tlvOf(0x04, [Buffer.alloc(n)]);
        const t = readTlv(der, 0);
        expect(t.end - t.valueStart).toBe(n);
        expect(t.end).toBe(der.length);
      }),
      { numRuns: 50 },
    );
  });

  it.each([
    ['indefinite length', '3080'],
    ['non-minimal long form', '30810100'],
    ['leading zero length byte', '3082000100'],
    ['truncated value', '3005020101'],
    ['truncated header', '30'],
  ])('refuses %s', (_name, h) => {
    expect(() => readTlv(Buffer.from(h, 'hex'), 0)).toThrow(DerError);
  });

  it('refuses trailing bytes after the root', () => {
    expect(() => readRoot(Buffer.from('300000', 'hex'), 0x30, 'x')).toThrow(expect.objectContaining({ name: 'DerError', code: 'ERR_DER_INVALID' }));
  });

  it('refuses children that overrun their parent', () => {
    const der = Buffer.from('3003040500', 'hex');
    expect(() => children(der, readRoot(der, 0x30, 'x'))).toThrow(DerError);
  });
});
