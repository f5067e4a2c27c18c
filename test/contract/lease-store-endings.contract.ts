import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditLog } from '../../src/audit/events.ts';
import type { Ending } from '../../src/leases/store.ts';
import type { MakeStore } from './lease-store.contract.ts';
import { makeLease, nowSeconds, revokeInput } from './lease-fixtures.ts';

const SWEEP = { limit: 1000, pendingGraceMs: 60_000 };

async function endingEvents(audit: AuditLog, leaseId: string): Promise<AuditEvent[]> {
  const page = await audit.list({ lease_id: leaseId, limit: 100 });
  return page.events.filter((e) => e.type === 'lease.revoked' || e.type === 'lease.expired');
}

/** Endings: finalize, sweep, the CRL and retention. Part of leaseStoreContract. */
export function endingsContract(make: MakeStore): void {
  describe('endings', () => {
    it('finalizes many revoked leases at once, each exactly once, and nothing else', async () => {
      const { store, audit } = await make();
      // More than one script's worth in one shard, and a few of other shards.
      const revoked = [
        ...Array.from({ length: 150 }, () => makeLease({ subject: 'repo:o/many:ref:main' })),
        ...Array.from({ length: 5 }, (_, i) => makeLease({ subject: `repo:o/other-${i}:ref:main`, kind: 'x509', serial: `0${i}` })),
      ];
      const active = makeLease({ subject: 'repo:o/many:ref:main' });
      for (const l of [...revoked, active]) await store.create(l);
      for (const l of revoked) await store.revoke(l.id, revokeInput());
      const nowMs = Date.now();
      const ids = [...revoked.map((l) => l.id), active.id, revoked[0]!.id, 'garbage'];
      const [a, b] = await Promise.all([store.finalizeMany(ids, nowMs), store.finalizeMany(ids, nowMs)]);
      const ended = [...a, ...b].map((e) => e.lease.id).sort();
      expect(ended).toEqual(revoked.map((l) => l.id).sort());
      for (const e of [...a, ...b]) expect(e).toMatchObject({ ended_at_ms: nowMs, lease: { status: 'revoked', ended_at: Math.floor(nowMs / 1000) } });
      expect(await store.finalizeMany(ids, nowMs)).toEqual([]);
      expect(await store.get(active.id)).toMatchObject({ status: 'active' });
      expect(await endingEvents(audit, revoked[149]!.id)).toHaveLength(1);
      expect(await store.countActive()).toBe(1);
    });

    it('ends expiries read ahead when they are due, once each, a lease revoked meanwhile as revoked', async () => {
      const { store, audit } = await make();
      const expiresAt = nowSeconds() + 5;
      const leases = Array.from({ length: 40 }, (_, i) =>
        makeLease({ subject: `repo:o/ahead-${i % 9}:ref:main`, issued_at: expiresAt - 300, expires_at: expiresAt, task_id: `ahead-${i % 4}` }),
      );
      for (const l of leases) await store.create(l);
      // A store that reads ahead (Redis) reads them now; the memory store has nothing to read.
      if (store.readAhead) expect(await store.readAhead(Date.now())).toBe(40);
      expect(await store.sweep(expiresAt * 1000 - 1, SWEEP)).toEqual([]);
      const revoked = leases[3]!;
      await store.revoke(revoked.id, revokeInput({ at: expiresAt - 1 }));
      const nowMs = expiresAt * 1000 + 25;
      const ended = await store.sweep(nowMs, SWEEP);
      expect(ended.map((e) => e.lease.id).sort()).toEqual(leases.map((l) => l.id).sort());
      expect(ended.find((e) => e.lease.id === revoked.id)?.lease.status).toBe('revoked');
      expect(await store.sweep(nowMs + 1_000, SWEEP)).toEqual([]);
      const expired = leases[5]!;
      const events = await endingEvents(audit, expired.id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'lease.expired', time: nowMs, lease_id: expired.id, subject: expired.subject, task_id: expired.task_id, actor: 'worker', reason: 'expired', lag_ms: 25 });
      expect(await endingEvents(audit, revoked.id)).toHaveLength(1);
      expect(await store.countActive()).toBe(0);
    });

    it('finalizes a revoked lease exactly once, with one audit event', async () => {
      const { store, audit } = await make();
      const lease = makeLease({ kind: 'x509', serial: 'a1b2c3', task_id: 'task-9' });
      await store.create(lease);
      expect(await store.finalize(lease.id, Date.now())).toBeNull(); // still active
      const input = revokeInput();
      await store.revoke(lease.id, input);
      const nowMs = Date.now();
      const results = await Promise.all([store.finalize(lease.id, nowMs), store.finalize(lease.id, nowMs)]);
      const done = results.filter((r): r is Ending => r !== null);
      expect(done).toHaveLength(1);
      expect(done[0]!.ended_at_ms).toBe(nowMs);
      expect(done[0]!.lease).toMatchObject({ id: lease.id, status: 'revoked', ended_at: Math.floor(nowMs / 1000), reason: input.reason });
      expect(await store.finalize(lease.id, nowMs)).toBeNull();
      expect(await store.get(lease.id)).toEqual(done[0]!.lease);
      const events = await endingEvents(audit, lease.id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: 'lease.revoked', time: nowMs, lease_id: lease.id, rule: lease.rule, issuer: lease.issuer, subject: lease.subject,
        task_id: 'task-9', actor: input.by, reason: input.reason, kind: 'x509', serial: 'a1b2c3',
      });
      expect(typeof events[0]!.id).toBe('string');
      // Ended: no longer due, so a later sweep does nothing to it.
      expect(await store.sweep(Date.now() + 10_000_000, SWEEP)).toEqual([]);
    });

    it('ends due leases exactly once when two sweeps run concurrently', async () => {
      const { store, audit } = await make();
      const now = nowSeconds();
      const due = Array.from({ length: 30 }, (_, i) => makeLease({ subject: `repo:o/r${i}:ref:main`, expires_at: now + 1 }));
      const later = makeLease({ expires_at: now + 3600 });
      for (const l of [...due, later]) await store.create(l);
      const sweepAt = (now + 2) * 1000;
      const [a, b] = await Promise.all([store.sweep(sweepAt, SWEEP), store.sweep(sweepAt, SWEEP)]);
      const ids = [...a, ...b].map((e) => e.lease.id);
      expect(ids.sort()).toEqual(due.map((l) => l.id).sort());
      for (const e of [...a, ...b]) {
        expect(e.lease).toMatchObject({ status: 'expired', ended_at: now + 2 });
        expect(e.ended_at_ms).toBe(sweepAt);
      }
      expect(await store.get(later.id)).toMatchObject({ status: 'active' });
      expect(await store.countActive()).toBe(1);
      const events = await endingEvents(audit, due[0]!.id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'lease.expired', actor: 'worker', lag_ms: 1000, kind: 'jwt', serial: null });
      expect(await store.sweep(sweepAt, SWEEP)).toEqual([]);
    });

    it('sweeps at most the limit per call', async () => {
      const { store } = await make();
      const now = nowSeconds();
      for (let i = 0; i < 10; i++) await store.create(makeLease({ subject: `s-${i}`, expires_at: now }));
      expect(await store.sweep((now + 1) * 1000, { limit: 3, pendingGraceMs: 0 })).toHaveLength(3);
      expect(await store.sweep((now + 1) * 1000, { limit: 100, pendingGraceMs: 0 })).toHaveLength(7);
    });

    it('ends a lease once when revocation races expiry', async () => {
      const { store, audit } = await make();
      const now = nowSeconds();
      const leases = Array.from({ length: 20 }, (_, i) => makeLease({ subject: `repo:race/r${i}:ref:main`, expires_at: now + 1 }));
      for (const l of leases) await store.create(l);
      const sweepAt = (now + 2) * 1000;
      const endings: Ending[] = [];
      const results = await Promise.all([
        store.sweep(sweepAt, SWEEP),
        ...leases.map(async (l) => {
          await store.revoke(l.id, revokeInput());
          const e = await store.finalize(l.id, sweepAt);
          return e ? [e] : [];
        }),
        store.sweep(sweepAt, SWEEP),
      ]);
      for (const r of results) endings.push(...r);
      endings.push(...(await store.sweep(sweepAt, SWEEP)));
      for (const l of leases) endings.push(...[await store.finalize(l.id, sweepAt)].filter((e): e is Ending => e !== null));
      expect(endings.map((e) => e.lease.id).sort()).toEqual(leases.map((l) => l.id).sort());
      for (const l of leases) expect(await endingEvents(audit, l.id)).toHaveLength(1);
    });

    it('finalizes revocations whose effects job went missing after the grace period', async () => {
      const { store, audit } = await make();
      const lease = makeLease();
      await store.create(lease);
      const at = nowSeconds();
      await store.revoke(lease.id, revokeInput({ at }));
      expect(await store.sweep(at * 1000 + 1000, { limit: 10, pendingGraceMs: 5000 })).toEqual([]);
      const done = await store.sweep(at * 1000 + 6000, { limit: 10, pendingGraceMs: 5000 });
      expect(done.map((e) => e.lease.id)).toEqual([lease.id]);
      expect(done[0]!.lease.status).toBe('revoked');
      expect(await endingEvents(audit, lease.id)).toHaveLength(1);
    });

    it('lists revoked certificates whose notAfter is at or after the cut it is given', async () => {
      const { store } = await make();
      const now = nowSeconds();
      const long = makeLease({ kind: 'x509', serial: '0badc0de', expires_at: now + 3600 });
      const short = makeLease({ kind: 'x509', serial: '0ddba11', expires_at: now + 60 });
      const jwt = makeLease();
      const expiring = makeLease({ kind: 'x509', serial: 'feed', expires_at: now + 1 });
      for (const l of [long, short, jwt, expiring]) await store.create(l);
      for (const l of [long, short, jwt]) await store.revoke(l.id, revokeInput({ at: now }));
      expect(await store.crlEntries(now)).toEqual([]); // effects (the CRL entry) run at finalize
      for (const l of [long, short, jwt]) await store.finalize(l.id, Date.now());
      await store.sweep((now + 2) * 1000, SWEEP); // an expired certificate is never on the CRL
      expect(await store.crlEntries(now)).toEqual([
        { serial: '0badc0de', revoked_at: now, expires_at: now + 3600 },
        { serial: '0ddba11', revoked_at: now, expires_at: now + 60 },
      ].sort((a, b) => (a.serial < b.serial ? -1 : 1)));
      // The cut is inclusive: a certificate whose notAfter is the cut is still listed.
      expect((await store.crlEntries(now + 60)).map((e) => e.serial).sort()).toEqual(['0badc0de', '0ddba11']);
      expect(await store.crlEntries(now + 61)).toEqual([{ serial: '0badc0de', revoked_at: now, expires_at: now + 3600 }]);
      // Dropped below the cut: an older cut does not bring it back.
      expect((await store.crlEntries(now)).map((e) => e.serial)).toEqual(['0badc0de']);
      expect(await store.crlEntries(now + 3601)).toEqual([]);
    });

    it('keeps ended leases for the retention period, then drops them', async () => {
      const { store } = await make({ retentionSeconds: 2 });
      const ended = makeLease();
      const active = makeLease({ expires_at: nowSeconds() + 3600 });
      await store.create(ended);
      await store.create(active);
      await store.revoke(ended.id, revokeInput());
      const nowMs = Date.now();
      await store.finalize(ended.id, nowMs);
      expect(await store.pruneRetained(nowMs + 1000)).toBe(0);
      expect(await store.get(ended.id)).toMatchObject({ status: 'revoked' });
      expect(await store.pruneRetained(nowMs + 2000)).toBe(1);
      expect(await store.get(ended.id)).toBeNull();
      expect((await store.list({}, { limit: 10 })).leases.map((l) => l.id)).toEqual([active.id]);
      expect(await store.pruneRetained(nowMs + 10_000)).toBe(0);
      expect(await store.get(active.id)).toMatchObject({ status: 'active' });
    });
  });
}
