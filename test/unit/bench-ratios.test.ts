import { describe, expect, it } from 'vitest';
import { summarizeRatios } from '../../bench/interleaved.ts';

// The bench's verdict against oidc-provider rests on this summary of per-pair ratios.
describe('bench: summarizeRatios', () => {
  it('averages on a log scale: a 0.8x and a 1.25x pair cancel out', () => {
    const s = summarizeRatios([0.8, 1.25, 0.8, 1.25]);
    expect(s.geoMean).toBeCloseTo(1, 10);
    expect(s.median).toBeCloseTo(1.025, 10);
    expect(s.below).toBe(2);
    expect(s.low).toBeLessThan(1);
    expect(s.high).toBeGreaterThan(1);
  });

  it("gives Student's t interval of the mean log ratio", () => {
    const ratios = [1.1, 1.2, 1.05, 1.15, 1.1];
    const logs = ratios.map(Math.log);
    const mean = logs.reduce((a, b) => a + b) / logs.length;
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / (logs.length - 1));
    const s = summarizeRatios(ratios);
    // 4 degrees of freedom: t = 2.78 (a normal 1.96 would overstate the certainty of 5 pairs).
    expect(s.low).toBeCloseTo(Math.exp(mean - (2.78 * sd) / Math.sqrt(5)), 10);
    expect(s.high).toBeCloseTo(Math.exp(mean + (2.78 * sd) / Math.sqrt(5)), 10);
    expect(s.low).toBeGreaterThan(1);
    expect(s.below).toBe(0);
  });

  it('equal ratios have no spread; a single pair has no interval', () => {
    const same = summarizeRatios([0.9, 0.9, 0.9]);
    expect([same.low, same.geoMean, same.high].map((x) => x.toFixed(6))).toEqual(['0.900000', '0.900000', '0.900000']);
    const one = summarizeRatios([1.3]);
    expect(one.geoMean).toBeCloseTo(1.3, 10);
    expect(Number.isNaN(one.low) && Number.isNaN(one.high)).toBe(true);
  });
});
