import { bigInteger, contextConstructed, extension, sequence, sequenceOf, smallInteger, time } from './der.ts';
import { authorityKeyIdentifierExtension, normalizeSerialHex, serialBytes, signAndWrap, signatureAlgorithmFor } from './issuer.ts';
import type { SigningContext } from './issuer.ts';
import { OID } from './oids.ts';

export interface CrlInput {
  entries: { serialHex: string; /** epoch seconds */ revokedAt: number }[];
  crlNumber: bigint;
  /** epoch seconds */
  thisUpdate: number;
  /** epoch seconds */
  nextUpdate: number;
}

// RFC 5280 5.2.3: CRL numbers fit in 20 octets.
const MAX_CRL_NUMBER = (1n << 159n) - 1n;

/**
 * Builds a v2 CRL with the hand-written encoder rather than @peculiar/x509, because the contract
 * is synchronous and a CRL of a busy CA can list many thousands of serials.
 */
export function createCrlBuilder(ctx: SigningContext): (input: CrlInput) => Buffer {
  const alg = signatureAlgorithmFor(ctx.keyType);
  const aki = authorityKeyIdentifierExtension(ctx.keyId);
  const version2 = smallInteger(1);

  return function buildCrl(input: CrlInput): Buffer {
    const { thisUpdate, nextUpdate, crlNumber } = input;
    if (nextUpdate <= thisUpdate) throw new RangeError('CRL nextUpdate must be after thisUpdate');
    if (crlNumber < 0n || crlNumber > MAX_CRL_NUMBER) throw new RangeError('CRL number must be 0 .. 2^159-1');

    // A serial listed twice would be ambiguous about when it was revoked; keep the earliest.
    const bySerial = new Map<string, number>();
    for (const { serialHex, revokedAt } of input.entries) {
      const serial = normalizeSerialHex(serialHex);
      const seen = bySerial.get(serial);
      if (seen === undefined || revokedAt < seen) bySerial.set(serial, revokedAt);
    }
    const entries: Buffer[] = [];
    for (const [serial, revokedAt] of bySerial) entries.push(sequence(serialBytes(serial), time(revokedAt)));

    const fields: Buffer[] = [version2, alg.algorithmIdentifier, ctx.issuerName, time(thisUpdate), time(nextUpdate)];
    // RFC 5280 5.1.2.6: with nothing revoked the list is absent, not empty.
    if (entries.length > 0) fields.push(sequenceOf(entries));
    fields.push(contextConstructed(0, sequence(aki, extension(OID.crlNumber, false, bigInteger(crlNumber)))));
    return signAndWrap(ctx, alg, sequenceOf(fields));
  };
}
