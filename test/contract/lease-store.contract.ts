import { describe, expect, it } from 'vitest';
import type { AuditLog } from '../../src/audit/events.ts';
import type { Lease } from '../../src/leases/lease.ts';
import { BudgetExceededError, LeaseExistsError, LeaseLimitError, ProofReplayedError, type LeaseStore } from '../../src/leases/store.ts';
import { newLeaseId } from '../../src/leases/lease-id.ts';
import { endingsContract } from './lease-store-endings.contract.ts';
import { makeLease, nowSeconds, revokeInput } from './lease-fixtures.ts';

export interface StoreUnderTest {
  store: LeaseStore;
  /** The audit log the store's endings are written to. */
  audit: AuditLog;
}

/** Builds a fresh, empty store (its own key prefix for Redis) for one test. */
export type MakeStore = (opts?: { retentionSeconds?: number }) => Promise<StoreUnderTest>;

const sorted = (ids: string[]): string[] => [...ids].sort();

/** The behaviour every LeaseStore adapter must have. Each test builds its own store. */
export function leaseStoreContract(name: string, make: MakeStore): void {
  describe(`LeaseStore contract: ${name}`, () => {
    it('returns every field of a created lease as it was written', async () => {
      const { store } = await make();
      const cert = makeLease({
        kind: 'x509', serial: '7f3a9c0e11d2b4a5', task_id: 'task-42', proof_sub: 'other-sub', proof_jti: null, client_addr: null, scopes: [],
      });
      const jwt = makeLease({ audiences: ['https://a.example', 'https://b.example'] });
      await store.create(cert);
      await store.create(jwt);
      expect(await store.get(cert.id)).toEqual(cert);
      expect(await store.get(jwt.id)).toEqual(jwt);
      expect(await store.get(newLeaseId('nobody'))).toBeNull();
      expect(await store.get('not a lease id')).toBeNull();
      expect(await store.countActive()).toBe(2);
    });

    it('counts as overdue the active leases due before a time, and no other', async () => {
      const { store } = await make();
      const now = nowSeconds();
      await store.create(makeLease({ issued_at: now - 120, expires_at: now - 60 }));
      await store.create(makeLease({ issued_at: now - 120, expires_at: now - 30 }));
      await store.create(makeLease({ expires_at: now + 600 }));
      expect(await store.countOverdue((now - 45) * 1000)).toBe(1);
      expect(await store.countOverdue(now * 1000)).toBe(2);
      expect(await store.countOverdue((now + 3600) * 1000)).toBe(3);
    });

    it('refuses a lease whose id was not made for its rule and subject, or that exists', async () => {
      const { store } = await make();
      await expect(store.create(makeLease({ id: 'x'.repeat(22) }))).rejects.toBeInstanceOf(TypeError);
      const a = makeLease({ subject: 'repo:a/b:ref:refs/heads/main' });
      await expect(store.create({ ...a, subject: 'repo:c/d:ref:refs/heads/main' })).rejects.toBeInstanceOf(TypeError);
      await store.create(a);
      await expect(store.create(a)).rejects.toBeInstanceOf(TypeError);
    });

    it('claims a single-use proof with the lease, and a refused create leaves the proof unclaimed', async () => {
      const { store } = await make();
      const replay = (key: string) => ({ key: `test:jti:${key}`, ttlSeconds: 60 });
      const first = makeLease();
      await store.create(first, { replay: replay('once') });
      const again = makeLease();
      await expect(store.create(again, { replay: replay('once') })).rejects.toBeInstanceOf(ProofReplayedError);
      expect(await store.get(again.id)).toBeNull();
      // An existing id: refused, and the proof it carried can still be used.
      await expect(store.create(first, { replay: replay('exists') })).rejects.toBeInstanceOf(TypeError);
      await store.create(makeLease(), { replay: replay('exists') });
      // The lease limit: refused before the proof is claimed, with or without a limit in the way.
      await store.create(makeLease({ subject: 'repo:octo-org/limited:environment:prod' }), { maxActive: 1 });
      const limited = makeLease({ subject: 'repo:octo-org/limited:environment:prod' });
      await expect(store.create(limited, { maxActive: 1, replay: replay('limited') })).rejects.toBeInstanceOf(LeaseLimitError);
      await store.create(makeLease(), { maxActive: 5, replay: replay('limited') });
      await expect(store.create(makeLease(), { maxActive: 5, replay: replay('limited') })).rejects.toBeInstanceOf(ProofReplayedError);
    });

    it('a create sent again after it was written is told apart from a replay: the lease exists', async () => {
      const { store } = await make();
      const replay = { key: `test:jti:twice-${Math.random()}`, ttlSeconds: 60 };
      const lease = makeLease();
      await store.create(lease, { replay });
      await expect(store.create(lease, { replay })).rejects.toBeInstanceOf(LeaseExistsError);
      await expect(store.create(lease, { replay, maxActive: 50 })).rejects.toBeInstanceOf(LeaseExistsError);
      // Another lease with that proof is a replay, as ever.
      await expect(store.create(makeLease(), { replay })).rejects.toBeInstanceOf(ProofReplayedError);
    });

    it('releases a proof only for the lease that holds it, so a late release cannot free a proof exchanged since', async () => {
      const { store } = await make();
      const replay = { key: `test:jti:release-${Math.random()}`, ttlSeconds: 60 };
      const abandoned = makeLease();
      await store.create(abandoned, { replay });
      // Another lease's id, or a lease that claimed nothing, frees nothing.
      expect(await store.releaseProof(makeLease().id, replay.key)).toBe(false);
      await expect(store.create(makeLease(), { replay })).rejects.toBeInstanceOf(ProofReplayedError);
      expect(await store.releaseProof(abandoned.id, replay.key)).toBe(true);
      const retried = makeLease();
      await store.create(retried, { replay });
      // The abandoned lease's release, tried again after the retry claimed the proof: refused.
      expect(await store.releaseProof(abandoned.id, replay.key)).toBe(false);
      await expect(store.create(makeLease(), { replay })).rejects.toBeInstanceOf(ProofReplayedError);
      // With a lease limit the claim is made after the count; the record names its lease there too.
      const limited = { key: `${replay.key}-limited`, ttlSeconds: 60 };
      const held = makeLease();
      await store.create(held, { replay: limited, maxActive: 50 });
      expect(await store.releaseProof(retried.id, limited.key)).toBe(false);
      expect(await store.releaseProof(held.id, limited.key)).toBe(true);
      await store.create(makeLease(), { replay: limited, maxActive: 50 });
    });

    it('tells which lease holds a proof, while its claim holds', async () => {
      const { store } = await make();
      const replay = { key: `test:jti:holder-${Math.random()}`, ttlSeconds: 60 };
      const holder = makeLease();
      expect(await store.proofHolder(holder.subject, replay.key)).toBeNull();
      await store.create(holder, { replay });
      expect(await store.proofHolder(holder.subject, replay.key)).toMatchObject({ lease: { id: holder.id, status: 'active' } });
      expect(Math.abs((await store.proofHolder(holder.subject, replay.key))!.writtenMs - Date.now())).toBeLessThan(5_000);
      // Claimed by the lease a retry wrote once the first was released: that one.
      await store.releaseProof(holder.id, replay.key);
      expect(await store.proofHolder(holder.subject, replay.key)).toBeNull();
      const retried = makeLease();
      await store.create(retried, { replay, maxActive: 50 });
      expect((await store.proofHolder(retried.subject, replay.key))?.lease.id).toBe(retried.id);
    });

    it('charges a budget only past the replay check; over it nothing is written and the proof stays unclaimed', async () => {
      const { store } = await make();
      const budget = { key: `sub:test:${Math.random()}`, limit: 2, windowMs: 60_000 };
      const replay = (key: string) => ({ key: `test:jti:budget-${key}-${budget.key}`, ttlSeconds: 60 });
      await store.create(makeLease(), { budget, replay: replay('used') });
      // Replays, with and without a lease limit in the script's way: refused, and never charged.
      for (let i = 0; i < 5; i++) {
        await expect(store.create(makeLease(), { budget, replay: replay('used') })).rejects.toBeInstanceOf(ProofReplayedError);
        await expect(store.create(makeLease(), { budget, maxActive: 50, replay: replay('used') })).rejects.toBeInstanceOf(ProofReplayedError);
      }
      await store.create(makeLease(), { budget, replay: replay('second') });
      const over = makeLease();
      const refused = await store.create(over, { budget, replay: replay('third') }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'ERR_BUDGET_EXCEEDED' });
      expect((refused as BudgetExceededError).retryAfterMs).toBeGreaterThan(0);
      expect((refused as BudgetExceededError).retryAfterMs).toBeLessThanOrEqual(60_000);
      expect(await store.get(over.id)).toBeNull();
      // The refused proof was not used up: with room in another budget it goes through once.
      const other = { ...budget, key: `${budget.key}:other` };
      await store.create(makeLease(), { budget: other, maxActive: 50, replay: replay('third') });
      await expect(store.create(makeLease(), { budget: other, replay: replay('third') })).rejects.toBeInstanceOf(ProofReplayedError);
    });

    it('never lets concurrent creates exceed a budget', async () => {
      const { store } = await make();
      const budget = { key: `sub:test:${Math.random()}`, limit: 4, windowMs: 60_000 };
      const results = await Promise.allSettled(Array.from({ length: 12 }, () => store.create(makeLease(), { budget })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(BudgetExceededError);
    });

    it('never lets concurrent creates exceed max_active_leases', async () => {
      const { store } = await make();
      const now = nowSeconds();
      // An expired-but-not-swept lease of the same pair does not count.
      await store.create(makeLease({ issued_at: now - 100, expires_at: now - 10 }));
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => store.create(makeLease(), { maxActive: 5 })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(refused).toHaveLength(15);
      for (const r of refused) expect(r.reason).toMatchObject({ code: 'ERR_LEASE_LIMIT', limit: 5 });
      // Another subject, or the same one once a lease is revoked, has room again.
      await store.create(makeLease({ subject: 'repo:octo-org/other:environment:prod' }), { maxActive: 5 });
      const page = await store.list({ status: 'active', subject: 'repo:octo-org/octo-repo:environment:prod' }, { limit: 100 });
      await store.revoke(page.leases[0]!.id, revokeInput());
      await store.create(makeLease(), { maxActive: 5 });
      await expect(store.create(makeLease(), { maxActive: 5 })).rejects.toMatchObject({ code: 'ERR_LEASE_LIMIT' });
    });

    it('flips an active lease to revoked once', async () => {
      const { store } = await make();
      const lease = makeLease({ task_id: 'task-1' });
      await store.create(lease);
      const input = revokeInput();
      const revoked = await store.revoke(lease.id, input);
      expect(revoked).toEqual({ ...lease, status: 'revoked', revoked_at: input.at, reason: input.reason, revoked_by: input.by });
      expect(await store.get(lease.id)).toEqual(revoked);
      expect(await store.revoke(lease.id, revokeInput())).toBeNull();
      expect(await store.revoke(newLeaseId('s'), revokeInput())).toBeNull();
      expect(await store.revoke('garbage', revokeInput())).toBeNull();
      expect(await store.activeIdsOfTask('task-1')).toEqual([]);
      expect(await store.countActive()).toBe(0);
    });

    describe('revokeWhere', () => {
      const fixture = async (): Promise<{ store: LeaseStore; leases: Lease[] }> => {
        const { store } = await make();
        const leases: Lease[] = [];
        for (const subject of ['repo:a/one:environment:prod', 'repo:b/two:environment:prod']) {
          for (const rule of ['deploy', 'read-only']) {
            for (const issuer of ['github', 'gitlab']) {
              for (const task_id of ['task-x', 'task-y', null]) leases.push(makeLease({ subject, rule, issuer, task_id }));
            }
          }
        }
        for (const l of leases) await store.create(l);
        // One already revoked lease of every shape: never returned again.
        await store.revoke(leases[0]!.id, revokeInput());
        return { store, leases };
      };
      const selectors = [
        { subject: 'repo:a/one:environment:prod' },
        { rule: 'deploy' },
        { issuer: 'gitlab' },
        { task_id: 'task-x' },
        { rule: 'read-only', subject: 'repo:b/two:environment:prod' },
        { task_id: 'task-y', issuer: 'github' },
        { subject: 'repo:a/one:environment:prod', issuer: 'github', rule: 'deploy' },
        { subject: 'nobody' },
      ];
      for (const selector of selectors) {
        it(`revokes exactly the matching active leases: ${JSON.stringify(selector)}`, async () => {
          const { store, leases } = await fixture();
          const expected = leases
            .slice(1)
            .filter((l) => Object.entries(selector).every(([k, v]) => l[k as keyof Lease] === v))
            .map((l) => l.id);
          const ids = await store.revokeWhere(selector, revokeInput({ reason: 'bulk' }));
          expect(sorted(ids)).toEqual(sorted(expected));
          for (const id of ids) expect(await store.get(id)).toMatchObject({ status: 'revoked', reason: 'bulk' });
          expect(await store.countActive()).toBe(leases.length - 1 - expected.length);
          expect(await store.revokeWhere(selector, revokeInput())).toEqual([]);
        });
      }
      it('refuses an empty selector', async () => {
        const { store } = await make();
        await expect(store.revokeWhere({}, revokeInput())).rejects.toBeInstanceOf(TypeError);
      });
    });

    it('lists the active leases of a task', async () => {
      const { store } = await make();
      const mine = [makeLease({ task_id: 't-1' }), makeLease({ task_id: 't-1', rule: 'other', subject: 'repo:z/z:ref:main' })];
      for (const l of [...mine, makeLease({ task_id: 't-2' }), makeLease()]) await store.create(l);
      expect(sorted(await store.activeIdsOfTask('t-1'))).toEqual(sorted(mine.map((l) => l.id)));
      await store.revoke(mine[0]!.id, revokeInput());
      expect(await store.activeIdsOfTask('t-1')).toEqual([mine[1]!.id]);
      expect(await store.activeIdsOfTask('t-none')).toEqual([]);
    });

    it('keeps counting and finding leases of a subject or task with many leases', async () => {
      const { store } = await make();
      const many = () => makeLease({ task_id: 'big-task' });
      const results = await Promise.allSettled(Array.from({ length: 90 }, () => store.create(many(), { maxActive: 70 })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(70);
      let ids = await store.activeIdsOfTask('big-task');
      expect(new Set(ids).size).toBe(70);
      for (const id of ids.slice(0, 60)) expect(await store.revoke(id, revokeInput())).not.toBeNull();
      ids = await store.activeIdsOfTask('big-task');
      expect(ids).toHaveLength(10);
      for (let i = 0; i < 60; i++) await store.create(many(), { maxActive: 70 });
      await expect(store.create(many(), { maxActive: 70 })).rejects.toMatchObject({ code: 'ERR_LEASE_LIMIT' });
      const revoked = await store.revokeWhere({ task_id: 'big-task' }, revokeInput());
      expect(revoked).toHaveLength(70);
      expect(await store.activeIdsOfTask('big-task')).toEqual([]);
      expect(await store.revokeWhere({ rule: 'app-deploy', subject: 'repo:octo-org/octo-repo:environment:prod' }, revokeInput())).toEqual([]);
      await store.create(many(), { maxActive: 1 });
    });

    describe('list', () => {
      it('applies every filter and returns newest first', async () => {
        const { store } = await make();
        const base = nowSeconds() - 10_000;
        const leases = Array.from({ length: 24 }, (_, i) =>
          makeLease({
            issued_at: base + i,
            expires_at: base + 100_000,
            subject: `repo:o/r${i % 3}:environment:prod`,
            rule: i % 2 ? 'deploy' : 'read',
            issuer: i % 4 < 2 ? 'github' : 'gitlab',
            task_id: i % 5 === 0 ? 'task-5' : null,
          }),
        );
        for (const l of leases) await store.create(l);
        await store.revoke(leases[3]!.id, revokeInput());
        await store.revoke(leases[9]!.id, revokeInput());
        const current = await Promise.all(leases.map(async (l) => (await store.get(l.id))!));
        const newestFirst = [...current].reverse();
        const filters = [
          {}, { status: 'revoked' as const }, { status: 'active' as const }, { subject: 'repo:o/r1:environment:prod' },
          { rule: 'deploy' }, { issuer: 'gitlab' }, { task_id: 'task-5' }, { rule: 'read', subject: 'repo:o/r0:environment:prod' },
          { status: 'expired' as const },
        ];
        for (const filter of filters) {
          const want = newestFirst.filter((l) => Object.entries(filter).every(([k, v]) => l[k as keyof Lease] === v));
          const page = await store.list(filter, { limit: 100 });
          expect(page.leases, JSON.stringify(filter)).toEqual(want);
          expect(page.next_cursor).toBeNull();
        }
      });

      it('pages without duplicates or misses while leases are created and revoked', async () => {
        const { store } = await make();
        const base = nowSeconds() - 50_000;
        const originals = Array.from({ length: 40 }, (_, i) => makeLease({ issued_at: base + i * 10, expires_at: base + 100_000 }));
        for (const l of originals) await store.create(l);
        const seen: Lease[] = [];
        let cursor: string | null = null;
        let round = 0;
        do {
          const page: Awaited<ReturnType<LeaseStore['list']>> = await store.list({}, { limit: 7, cursor });
          seen.push(...page.leases);
          cursor = page.next_cursor;
          // Churn between pages: newer leases, a lease in between the existing ones, revocations.
          await store.create(makeLease());
          await store.create(makeLease({ issued_at: base + round * 70 + 5, expires_at: base + 100_000 }));
          await store.revoke(originals[(round * 13) % originals.length]!.id, revokeInput());
          round++;
        } while (cursor && round < 50);
        const ids = seen.map((l) => l.id);
        expect(new Set(ids).size).toBe(ids.length);
        for (const l of originals) expect(ids).toContain(l.id);
        for (let i = 1; i < seen.length; i++) expect(seen[i]!.issued_at).toBeLessThanOrEqual(seen[i - 1]!.issued_at);
      });

      it('pages a filtered listing to the end', async () => {
        const { store } = await make();
        const leases = Array.from({ length: 30 }, (_, i) => makeLease({ issuer: i % 3 === 0 ? 'gitlab' : 'github' }));
        for (const l of leases) await store.create(l);
        const got: string[] = [];
        let cursor: string | null = null;
        for (let i = 0; i < 20; i++) {
          const page: Awaited<ReturnType<LeaseStore['list']>> = await store.list({ issuer: 'gitlab' }, { limit: 3, cursor });
          got.push(...page.leases.map((l) => l.id));
          cursor = page.next_cursor;
          if (!cursor) break;
        }
        expect(cursor).toBeNull();
        expect(sorted(got)).toEqual(sorted(leases.filter((l) => l.issuer === 'gitlab').map((l) => l.id)));
      });

      it('rejects a cursor it did not issue', async () => {
        const { store } = await make();
        await expect(store.list({}, { limit: 5, cursor: 'bm9wZQ' })).rejects.toMatchObject({ code: 'bad_request' });
      });
    });

    endingsContract(make);

    it('answers a readiness probe', async () => {
      const { store } = await make();
      await expect(store.probe()).resolves.toBeUndefined();
    });
  });
}
