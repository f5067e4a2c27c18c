import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditFilter, AuditLog } from '../../src/audit/events.ts';
import { withLogging } from '../../src/audit/log-sink.ts';
import { newLeaseId } from '../../src/leases/lease-id.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes events 2 ms apart, so every adapter must return them in exactly the reverse order. */
async function writeSample(audit: AuditLog): Promise<AuditEvent[]> {
  const leases = [newLeaseId('repo:a'), newLeaseId('repo:b'), newLeaseId('repo:a')];
  const types = ['exchange.allowed', 'lease.revoked', 'operator.bulk_revoke', 'exchange.denied'] as const;
  const written: AuditEvent[] = [];
  for (let i = 0; i < 40; i++) {
    const e: AuditEvent = {
      type: types[i % 4]!,
      time: Date.now(),
      actor: i % 4 === 2 ? 'operator:alice' : 'repo:a',
      subject: i % 3 === 0 ? 'repo:b' : 'repo:a',
      // Operator actions and refusals have no lease (a refusal made none).
      ...(i % 4 >= 2 ? {} : { lease_id: leases[i % 3]! }),
      ...(i % 4 === 2 ? {} : { rule: i % 3 === 2 ? 'read' : 'deploy' }),
      granted: { scopes: ['deploy:write'] },
    };
    await audit.write(e);
    written.push(e);
    await sleep(2);
  }
  return written.reverse();
}

const strip = (events: AuditEvent[]): AuditEvent[] => events.map(({ id: _id, ...rest }) => rest);

async function listAll(audit: AuditLog, filter: Omit<AuditFilter, 'limit' | 'cursor'>, limit: number): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const page: Awaited<ReturnType<AuditLog['list']>> = await audit.list({ ...filter, limit, cursor });
    out.push(...page.events);
    cursor = page.next_cursor;
    if (!cursor) return out;
  }
  throw new Error('listing did not end');
}

export interface AuditCaps {
  maxEvents?: number;
  maxDenials?: number;
}

/** The behaviour every AuditLog adapter must have. */
export function auditLogContract(name: string, make: (caps?: AuditCaps) => Promise<AuditLog>): void {
  describe(`AuditLog contract: ${name}`, () => {
    it('lists events newest first with ids, and filters them', async () => {
      const audit = await make();
      const written = await writeSample(audit);
      const all = (await audit.list({ limit: 1000 })).events;
      expect(strip(all)).toEqual(written);
      expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
      const lease = written[0]!.lease_id ?? written[1]!.lease_id!;
      const since = written[9]!.time;
      const filters: Omit<AuditFilter, 'limit'>[] = [
        { lease_id: lease }, { subject: 'repo:b' }, { type: 'exchange.denied' }, { since },
        { type: 'lease.revoked', subject: 'repo:a' }, { lease_id: 'unknown' },
      ];
      for (const f of filters) {
        const want = written.filter(
          (e) => (f.lease_id === undefined || e.lease_id === f.lease_id) && (f.subject === undefined || e.subject === f.subject)
            && (f.type === undefined || e.type === f.type) && (f.since === undefined || e.time >= f.since),
        );
        expect(strip((await audit.list({ ...f, limit: 1000 })).events), JSON.stringify(f)).toEqual(want);
      }
    });

    it('pages through every event once, filtered or not', async () => {
      const audit = await make();
      const written = await writeSample(audit);
      expect(strip(await listAll(audit, {}, 7))).toEqual(written);
      expect(strip(await listAll(audit, { subject: 'repo:b' }, 4))).toEqual(written.filter((e) => e.subject === 'repo:b'));
    });

    it('a flood of refusals evicts only older refusals, never an event that issued or ended a credential', async () => {
      const audit = await make({ maxEvents: 1000, maxDenials: 160 });
      const credentials: AuditEvent[] = [];
      for (let i = 0; i < 20; i++) {
        const lease_id = newLeaseId(`repo:${i}`);
        const e: AuditEvent = { type: i % 2 ? 'lease.revoked' : 'exchange.allowed', time: Date.now(), lease_id, rule: 'deploy', subject: `repo:${i}` };
        await audit.write(e);
        credentials.push(e);
        await sleep(2);
      }
      const flood = 2500;
      for (let i = 0; i < flood; i++) {
        await audit.write({ type: 'exchange.denied', time: Date.now(), actor: 'unverified', proof_jti: null, reason: 'invalid_request', n: i });
      }
      const kept = await listAll(audit, {}, 1000);
      expect(strip(kept.filter((e) => e.type !== 'exchange.denied'))).toEqual(credentials.reverse());
      const refusals = kept.filter((e) => e.type === 'exchange.denied');
      expect(refusals.length).toBeLessThan(flood);
      // What is gone is older: the newest 160 (the cap) are all kept.
      const n = new Set(refusals.map((e) => e.n as number));
      for (let i = flood - 160; i < flood; i++) expect(n.has(i), `refusal ${i}`).toBe(true);
      expect(strip(await listAll(audit, { type: 'exchange.allowed' }, 3))).toEqual(credentials.filter((e) => e.type === 'exchange.allowed'));
    });

    it('rejects a cursor it did not issue', async () => {
      const audit = await make();
      await expect(audit.list({ limit: 5, cursor: 'bm9wZQ' })).rejects.toMatchObject({ code: 'bad_request' });
    });

    it('also logs every event when wrapped with withLogging', async () => {
      const logged: AuditEvent[] = [];
      const audit = withLogging(await make(), (e) => logged.push(e));
      const event: AuditEvent = { type: 'exchange.denied', time: Date.now(), subject: 'x', reason: 'no rule' };
      await audit.write(event);
      expect(logged).toEqual([event]);
      expect(strip((await audit.list({ limit: 10 })).events)).toEqual([event]);
      const failing = withLogging(await make(), () => {
        throw new Error('logger down');
      });
      await expect(failing.write(event)).resolves.toBeUndefined();
    });
  });
}
