import type { AuditEvent, AuditLog } from '../audit/events.ts';
import type { CreateOptions, Ending, LeaseFilter, LeasePage, LeaseSelector, LeaseStore, RevokeInput, RevokeWhereOptions, SweepOptions } from './store.ts';
import { BudgetExceededError, LeaseExistsError, LeaseLimitError, ProofReplayedError, type ProofHolder } from './store.ts';
import { MemoryReplayGuard } from './memory-replay-guard.ts';
import { createFixedWindows } from '../util/fixed-windows.ts';
import type { Lease } from './lease.ts';
import { endingEvent } from './ending-event.ts';
import { checkNewLease, issuedMsFor } from './lease-codec.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../util/list-cursor.ts';
import { matchesFilter } from './lease-filter.ts';
import { idOfListMember, listMember, listMemberOf } from './list-member.ts';

export interface MemoryLeaseStoreOptions {
  /** How long ended leases stay readable; default 7 days. */
  retentionSeconds?: number;
  /** Where endings and creations write their audit events (exactly once): dev mode's memory log. */
  audit: AuditLog;
}

interface Entry {
  lease: Lease;
  /** When it was written (epoch ms). */
  writtenMs: number;
  member: string;
  /** ms after which pruneRetained drops the ended lease. */
  dropAt: number | null;
}

interface CrlEntry {
  serial: string;
  revoked_at: number;
  expires_at: number;
}

const copy = (l: Lease): Lease => ({ ...l, scopes: [...l.scopes], audiences: [...l.audiences] });

/**
 * Dev-mode lease store: the Redis store's behaviour in one process (same ordering, cursors,
 * limits and endings). State changes happen synchronously before any await, which is what makes
 * each ending happen once under concurrent calls, as the Lua scripts do in Redis.
 */
export function createMemoryLeaseStore(opts: MemoryLeaseStoreOptions): LeaseStore {
  const retentionMs = Math.round((opts.retentionSeconds ?? 7 * 24 * 3600) * 1000);
  if (!(retentionMs >= 0)) throw new TypeError('createMemoryLeaseStore: retentionSeconds must be >= 0');
  const audit = opts.audit;
  const replay = new MemoryReplayGuard();
  const budgets = createFixedWindows();
  const entries = new Map<string, Entry>();
  /** Listing members, ascending. */
  const order: string[] = [];
  /** Ids not ended yet (active, or revoked with effects pending) with their revoked ms if revoked. */
  const live = new Map<string, number | null>();
  const crl = new Map<string, CrlEntry>();

  const activeOf = (pred: (l: Lease) => boolean): Lease[] =>
    [...live.keys()].map((id) => entries.get(id)!.lease).filter((l) => l.status === 'active' && pred(l));

  const flip = (l: Lease, input: RevokeInput): void => {
    l.status = 'revoked';
    l.revoked_at = input.at;
    l.reason = input.reason;
    l.revoked_by = input.by;
    live.set(l.id, Math.round(input.at * 1000));
  };

  // The synchronous half of an ending; the caller awaits the audit write after.
  const finish = (e: Entry, nowMs: number): { ending: Ending; event: AuditEvent } => {
    const l = e.lease;
    if (l.status === 'active') l.status = 'expired';
    l.ended_at = Math.floor(nowMs / 1000);
    e.dropAt = nowMs + retentionMs;
    live.delete(l.id);
    if (l.status === 'revoked' && l.serial !== null) {
      crl.set(l.serial, { serial: l.serial, revoked_at: l.revoked_at ?? l.ended_at, expires_at: l.expires_at });
    }
    return { ending: { lease: copy(l), ended_at_ms: nowMs }, event: endingEvent(copy(l), nowMs) };
  };

  const record = async (done: { ending: Ending; event: AuditEvent }[]): Promise<Ending[]> => {
    for (const d of done) await audit.write(d.event);
    return done.map((d) => d.ending);
  };

  return {
    async releaseProof(leaseId: string, proofKey: string): Promise<boolean> {
      return replay.release(proofKey, leaseId);
    },

    async create(lease: Lease, createOpts: CreateOptions = {}): Promise<void> {
      checkNewLease(lease);
      const max = createOpts.maxActive;
      if (max !== undefined && !(Number.isSafeInteger(max) && max >= 0)) throw new TypeError('create(): maxActive must be a whole number >= 0');
      if (entries.has(lease.id)) throw new LeaseExistsError(lease.id);
      // The claim is the only await: the limit check and the write after it run without a gap.
      const claimed = createOpts.replay;
      if (claimed && !(await replay.claim(claimed.key, claimed.ttlSeconds, lease.id))) throw new ProofReplayedError();
      const now = Date.now();
      // Charged only past the replay check, as in the Redis script; a refusal leaves the proof unclaimed.
      const budget = createOpts.budget;
      if (budget && budget.limit > 0) {
        const { count, ttlMs } = budgets.hit(budget.key, budget.windowMs);
        if (count > budget.limit) {
          if (claimed) await replay.release(claimed.key);
          throw new BudgetExceededError(ttlMs);
        }
      }
      if (max !== undefined) {
        const held = activeOf((l) => l.rule === lease.rule && l.subject === lease.subject && l.expires_at * 1000 > now);
        if (held.length >= max) {
          // A refusal leaves the proof unclaimed, as in the Redis script.
          if (claimed) await replay.release(claimed.key);
          throw new LeaseLimitError(max);
        }
      }
      const writtenMs = issuedMsFor(lease.issued_at, now);
      const member = listMember(writtenMs, lease.id);
      entries.set(lease.id, { lease: copy(lease), writtenMs, member, dropAt: null });
      live.set(lease.id, null);
      order.splice(lowerBound(order, member), 0, member);
      if (createOpts.audit) await audit.write(createOpts.audit);
    },

    async get(id: string): Promise<Lease | null> {
      const e = entries.get(id);
      return e ? copy(e.lease) : null;
    },

    async proofHolder(_subject: string, proofKey: string): Promise<ProofHolder | null> {
      const holder = replay.holder(proofKey);
      const e = holder === undefined ? undefined : entries.get(holder);
      return e ? { lease: copy(e.lease), writtenMs: e.writtenMs } : null;
    },

    async revoke(id: string, input: RevokeInput): Promise<Lease | null> {
      const e = entries.get(id);
      // Past expires_at the lease is already dead: the sweep ends it as expired, not revoked.
      if (!e || e.lease.status !== 'active' || e.lease.expires_at <= input.at) return null;
      flip(e.lease, input);
      return copy(e.lease);
    },

    async revokeWhere(selector: LeaseSelector, input: RevokeInput, opts: RevokeWhereOptions = {}): Promise<string[]> {
      const { subject, rule, issuer, task_id } = selector;
      if (subject === undefined && rule === undefined && issuer === undefined && task_id === undefined) {
        throw new TypeError('revokeWhere(): the selector needs at least one of subject, rule, issuer, task_id');
      }
      const hits = activeOf((l) => l.id !== opts.keep && l.expires_at > input.at && matchesFilter(l, { subject, rule, issuer, task_id }));
      for (const l of hits) flip(l, input);
      return hits.map((l) => l.id);
    },

    async activeIdsOfTask(taskId: string): Promise<string[]> {
      return activeOf((l) => l.task_id === taskId).map((l) => l.id);
    },

    async list(filter: LeaseFilter, page: { limit: number; cursor?: string | null }): Promise<LeasePage> {
      const limit = pageLimit(page.limit);
      let i = page.cursor ? lowerBound(order, decodeCursor(page.cursor, listMemberOf)) - 1 : order.length - 1;
      const leases: Lease[] = [];
      let last: string | null = null;
      for (; i >= 0; i--) {
        const member = order[i]!;
        const e = entries.get(idOfListMember(member));
        if (!e || !matchesFilter(e.lease, filter)) continue;
        if (leases.length === limit) return { leases, next_cursor: encodeCursor(last!) };
        leases.push(copy(e.lease));
        last = member;
      }
      return { leases, next_cursor: null };
    },

    async countActive(): Promise<number> {
      return activeOf(() => true).length;
    },

    async countOverdue(beforeMs: number): Promise<number> {
      return activeOf((l) => l.expires_at * 1000 < beforeMs).length;
    },

    async finalize(id: string, nowMs: number): Promise<Ending | null> {
      const e = entries.get(id);
      if (!e || e.lease.status !== 'revoked' || e.lease.ended_at !== null) return null;
      const [ending] = await record([finish(e, nowMs)]);
      return ending ?? null;
    },

    async finalizeMany(ids: string[], nowMs: number): Promise<Ending[]> {
      const out: Ending[] = [];
      for (const id of ids) {
        const e = await this.finalize(id, nowMs);
        if (e) out.push(e);
      }
      return out;
    },

    async sweep(nowMs: number, sweepOpts: SweepOptions): Promise<Ending[]> {
      const limit = Math.max(0, Math.floor(sweepOpts.limit));
      const due = [...live.keys()]
        .map((id) => entries.get(id)!)
        .filter((e) => e.lease.expires_at * 1000 <= nowMs)
        .sort((a, b) => a.lease.expires_at - b.lease.expires_at)
        .slice(0, limit);
      const done = due.map((e) => finish(e, nowMs));
      if (done.length < limit) {
        const stale = [...live]
          .filter(([, revokedMs]) => revokedMs !== null && revokedMs <= nowMs - sweepOpts.pendingGraceMs)
          .sort((a, b) => a[1]! - b[1]!)
          .slice(0, limit - done.length);
        for (const [id] of stale) done.push(finish(entries.get(id)!, nowMs));
      }
      return record(done);
    },

    async crlEntries(sinceSeconds: number): Promise<CrlEntry[]> {
      for (const [serial, c] of crl) if (c.expires_at < sinceSeconds) crl.delete(serial);
      return [...crl.values()].map((c) => ({ ...c })).sort((a, b) => a.revoked_at - b.revoked_at || (a.serial < b.serial ? -1 : 1));
    },

    async pruneRetained(nowMs: number): Promise<number> {
      let n = 0;
      for (const [id, e] of entries) {
        if (e.dropAt === null || e.dropAt > nowMs) continue;
        entries.delete(id);
        order.splice(lowerBound(order, e.member), 1);
        n++;
      }
      return n;
    },

    async probe(): Promise<void> {},
    async close(): Promise<void> {},
  };
}

/** First index whose member is >= m. */
function lowerBound(a: string[], m: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < m) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
