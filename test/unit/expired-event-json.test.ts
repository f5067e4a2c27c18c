import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { endingEvent, expiredEventFields, expiredEventJson } from '../../src/leases/ending-event.ts';
import { makeLease } from '../contract/lease-fixtures.ts';

// The sweep writes an expiry's event from two halves made at different times; the stream, the
// log line and a future hash chain must see exactly the JSON endingEvent's object stringifies to.
describe('an expiry event put together from its halves', () => {
  it('is byte for byte JSON.stringify(endingEvent(...)), whatever the strings in the lease', () => {
    fc.assert(
      fc.property(
        fc.record({
          rule: fc.string(),
          issuer: fc.string({ unit: 'grapheme' }),
          subject: fc.string({ unit: 'grapheme' }),
          task_id: fc.option(fc.string({ unit: 'binary' })),
          kind: fc.constantFrom('jwt' as const, 'x509' as const),
          serial: fc.option(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 1 })),
          expires_at: fc.integer({ min: 1_700_000_000, max: 2_000_000_000 }),
        }),
        fc.integer({ min: 0, max: 120_000 }),
        (over, lateMs) => {
          const lease = makeLease(over);
          const endedMs = over.expires_at * 1000 + lateMs;
          const ended = { ...lease, status: 'expired' as const, ended_at: Math.floor(endedMs / 1000) };
          expect(expiredEventJson(expiredEventFields(lease), endedMs, lease.expires_at)).toBe(JSON.stringify(endingEvent(ended, endedMs)));
        },
      ),
      { numRuns: 500 },
    );
  });
});
