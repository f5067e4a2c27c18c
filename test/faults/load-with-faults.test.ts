/**
 * Bounded run of scripts/load-with-faults.ts: two API and two worker processes (src/main.ts) over
 * one Redis, a steady exchange load with 2-5 s TTLs and holder revocations, while a worker is
 * SIGKILLed, Redis restarts and an API process is SIGKILLed and restarted. The invariants are
 * checked by the script from Redis itself; see its header for the list.
 */
import { describe, expect, it } from 'vitest';
import { runLoadWithFaults } from '../../scripts/load-with-faults.ts';

describe('load with faults (2 API + 2 worker processes, one Redis)', () => {
  it('keeps every lease, ending and revocation consistent through a worker kill, a Redis restart and an API restart', async () => {
    const lines: string[] = [];
    const report = await runLoadWithFaults({ loadMs: 8_000, concurrency: 4, revokeRatio: 0.25, drainMs: 25_000, log: (l) => lines.push(l) });
    const context = `${JSON.stringify(report, null, 2)}\n${lines.join('\n')}`;

    expect(report.violations, context).toEqual([]);
    // The run did what it claims: load, revocations checked by introspection, every fault, and
    // some requests refused or cut off by the faults (none of which produced a credential).
    expect(report.faults, context).toHaveLength(4);
    expect(report.issued, context).toBeGreaterThan(100);
    expect(report.introspectedAfterRevoke, context).toBeGreaterThan(10);
    expect((report.outcomes['503'] ?? 0) + (report.outcomes['network'] ?? 0), context).toBeGreaterThan(0);
    // Drained: every short lease ended; only the introspector's 1-hour lease is live.
    expect(report.liveLeases, context).toBe(1);
    expect(report.endedLeases, context).toBe(report.leases - 1);
    expect(report.leases - 1 - report.orphanLeases, context).toBe(report.issued);
  }, 120_000);
});
