import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expiryAt, prepareExpiry } from '../../src/leases/ending-plan.ts';
import { encodeLease } from '../../src/leases/lease-codec.ts';
import { makeLease } from '../contract/lease-fixtures.ts';

// The sweep sends an expired record it patched from the record as read (expiredRecordHead), and
// Redis stores it as sent: it must be the very record encodeLease makes of the expired lease.
describe('an expired record patched from the active one as read', () => {
  it('is byte for byte the record encodeLease makes, whatever the fields', () => {
    const optStr = fc.option(fc.string({ unit: 'grapheme' }));
    fc.assert(
      fc.property(
        fc.record({
          kind: fc.constantFrom('jwt' as const, 'x509' as const),
          rule: fc.string(),
          subject: fc.string({ unit: 'grapheme' }),
          scopes: fc.array(fc.string(), { maxLength: 3 }),
          task_id: optStr,
          serial: fc.option(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 1 })),
          proof_sub: fc.string({ unit: 'grapheme' }),
          proof_jti: optStr,
          client_addr: optStr,
          expires_at: fc.integer({ min: 1_700_000_000, max: 2_000_000_000 }),
        }),
        fc.integer({ min: 0, max: 120_000 }),
        (over, lateMs) => {
          const lease = makeLease(over);
          const issuedMs = lease.issued_at * 1000 + 123;
          const raw = encodeLease(lease, issuedMs);
          const prepared = prepareExpiry(lease.id, raw, lease.expires_at * 1000);
          // Records whose text may not survive a JS string are left to Lua, which encodes them itself.
          fc.pre(prepared !== null);
          const endedMs = lease.expires_at * 1000 + lateMs;
          const plan = expiryAt(prepared!, endedMs);
          expect(plan.ended!.record).toBe(encodeLease({ ...lease, status: 'expired', ended_at: Math.floor(endedMs / 1000) }, issuedMs));
        },
      ),
      { numRuns: 500 },
    );
  });
});
