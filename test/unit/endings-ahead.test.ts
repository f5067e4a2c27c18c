import { describe, expect, it } from 'vitest';
import { BURST_MIN, createEndingsAhead, type ReadAhead } from '../../src/leases/endings-ahead.ts';
import { prepareExpiry } from '../../src/leases/ending-plan.ts';
import { encodeLease } from '../../src/leases/lease-codec.ts';
import { makeLease } from '../contract/lease-fixtures.ts';

/** A schedule entry as the sweep reads it ahead, for an active lease due at `dueMs`. */
function entry(i: number, dueMs: number): ReadAhead {
  const lease = makeLease({ id: `lease-${String(i).padStart(6, '0')}`, issued_at: Math.floor(dueMs / 1000) - 600, expires_at: Math.floor(dueMs / 1000) });
  const expiry = prepareExpiry(lease.id, encodeLease(lease, lease.issued_at * 1000), dueMs);
  if (expiry === null) throw new Error('an active lease is always prepared');
  return { id: lease.id, dueMs, expiry };
}

/**
 * The held expiries are a queue per shard that the sweep takes from the front of, in steps of 100,
 * through a burst of tens of thousands: taking must hand out each expiry once, in due order, across
 * the points where a queue drops what it has handed out, and entries added out of order meanwhile.
 */
describe('expiries held ahead', () => {
  it('hands out a long burst once, in order, across the queue cutting what it took', () => {
    const ahead = createEndingsAhead(2);
    const dueMs = 1_800_000_000_000;
    const burst = Array.from({ length: 10_000 }, (_, i) => entry(i, dueMs + Math.floor(i / 100)));
    for (let i = 0; i < burst.length; i += 1_000) ahead.add(0, burst.slice(i, i + 1_000));
    expect(ahead.size()).toBe(10_000);
    // Read again (another sweep's read overlapping this one): nothing is held twice.
    ahead.add(0, burst.slice(500, 1_500));
    expect(ahead.size()).toBe(10_000);

    const taken: string[] = [];
    const lastDue = dueMs + 99;
    for (let step = 0; step < 120; step++) {
      const got = ahead.take(0, lastDue, 100);
      if (got.length === 0) break;
      for (const e of got) taken.push(e.id);
      expect(ahead.size()).toBe(10_000 - taken.length);
      expect(ahead.heldAfter(0, dueMs - 1)).toBe(10_000 - taken.length);
    }
    expect(taken).toEqual(burst.map((e) => e.id));
    expect(ahead.take(0, lastDue, 100)).toEqual([]);
    expect(ahead.nextBurst(0, 1)).toBeNull();
    // Taken entries are no longer held: a later read of the same ids (still due, say after a
    // failed write) holds them again.
    ahead.add(0, burst.slice(0, 3));
    expect(ahead.take(0, lastDue, 100).map((e) => e.id)).toEqual(burst.slice(0, 3).map((e) => e.id));
  });

  it('keeps due order when an earlier expiry is added after part of the queue was taken', () => {
    const ahead = createEndingsAhead(1);
    const at = 1_800_000_000_000;
    const later = Array.from({ length: 6_000 }, (_, i) => entry(i, at + 10_000 + i));
    ahead.add(0, later);
    // Past the point where the queue cuts what it handed out.
    for (let i = 0; i < 50; i++) expect(ahead.take(0, at + 10_000 + 4_999, 100)).toHaveLength(100);
    const early = entry(900_001, at + 5_000);
    ahead.add(0, [early]);
    expect(ahead.size()).toBe(1_001);
    expect(ahead.heldAfter(0, at)).toBe(1_001);
    expect(ahead.take(0, at + 5_000, 100).map((e) => e.id)).toEqual([early.id]);
    const rest = ahead.take(0, at + 20_000, 2_000).map((e) => e.id);
    expect(rest).toEqual(later.slice(5_000).map((e) => e.id));
    expect(ahead.size()).toBe(0);
  });

  it('finds the next burst only among what is still held', () => {
    const ahead = createEndingsAhead(2);
    const at = 1_800_000_000_000;
    // Two bursts of BURST_MIN: one at `at` on shard 0, one 10 s later over both shards.
    ahead.add(0, Array.from({ length: BURST_MIN }, (_, i) => entry(i, at + (i % 50))));
    ahead.add(0, Array.from({ length: BURST_MIN / 2 }, (_, i) => entry(10_000 + i, at + 10_000 + 20)));
    ahead.add(1, Array.from({ length: BURST_MIN / 2 }, (_, i) => entry(20_000 + i, at + 10_000 + 10)));
    expect(ahead.nextBurst(at - 1_000, BURST_MIN)).toBe(at);
    for (let i = 0; i < BURST_MIN / 100; i++) expect(ahead.take(0, at + 50, 100)).toHaveLength(100);
    expect(ahead.nextBurst(at - 1_000, BURST_MIN)).toBe(at + 10_000 + 10);
  });
});
