import { describe, expect, it } from 'vitest';
import { mapInLanes } from '../../src/util/lanes.ts';

describe('mapInLanes', () => {
  it('keeps at most `lanes` calls in flight and returns results in order', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapInLanes([5, 1, 4, 2, 3], 2, async (x) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, x));
      inFlight--;
      return x * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
  });

  it('starts no call after one failed', async () => {
    const started: number[] = [];
    await expect(
      mapInLanes([1, 2, 3, 4, 5], 1, async (x) => {
        started.push(x);
        if (x === 2) throw new Error('boom');
        return x;
      }),
    ).rejects.toThrow('boom');
    expect(started).toEqual([1, 2]);
  });

  it('handles no items', async () => {
    expect(await mapInLanes([], 2, async (x: number) => x)).toEqual([]);
  });
});
