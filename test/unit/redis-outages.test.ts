import { expect, it } from 'vitest';
import { RedisOutages } from '../../src/redis/outages.ts';

it('tells the latest spell of trouble while its last sign is recent, and starts a new one after a quiet gap', () => {
  let now = 1_000_000;
  const outages = new RedisOutages(() => now);
  expect(outages.recent(10_000)).toBeNull();
  outages.seen();
  now += 3_000;
  outages.seen();
  expect(outages.recent(10_000)).toEqual({ startMs: 1_000_000, lastMs: 1_003_000 });
  now += 9_999;
  expect(outages.recent(10_000)).not.toBeNull();
  now += 1;
  expect(outages.recent(10_000)).toBeNull();
  // More than ten seconds after its last sign, trouble is a new spell.
  now += 5_000;
  outages.seen();
  expect(outages.recent(10_000)).toEqual({ startMs: now, lastMs: now });
});

it('notes when the client was first back in a spell; trouble after that is a new spell', () => {
  let now = 1_000_000;
  const outages = new RedisOutages(() => now);
  outages.back();
  expect(outages.recent(10_000)).toBeNull();
  outages.seen();
  now += 300;
  outages.seen();
  now += 200;
  outages.back();
  outages.back();
  expect(outages.recent(10_000)).toEqual({ startMs: 1_000_000, lastMs: 1_000_300, backMs: 1_000_500 });
  // Lost again after it was back: a spell of its own, however soon.
  now += 500;
  outages.seen();
  expect(outages.recent(10_000)).toEqual({ startMs: 1_001_000, lastMs: 1_001_000 });
});
