import type { AuditEvent } from '../audit/events.ts';
import type { Lease, LeaseStatus } from './lease.ts';

export interface LeaseFilter {
  subject?: string;
  task_id?: string;
  rule?: string;
  issuer?: string;
  status?: LeaseStatus;
}

export type LeaseSelector = Omit<LeaseFilter, 'status'>;

export interface RevokeWhereOptions {
  /** A lease the selection leaves alone even when it matches (the operator's own, by default). */
  keep?: string;
}

export interface LeasePage {
  leases: Lease[];
  next_cursor: string | null;
}

export interface RevokeInput {
  reason: string;
  /** The actor: an operator's `sub`, `holder:<token sub>`, `task:<sub of the token that completed the task>`. */
  by: string;
  /** epoch seconds */
  at: number;
}

/** What an ending did; returned only by the call that carried it out (exactly once). */
export interface Ending {
  lease: Lease;
  /** epoch milliseconds when the effects ran */
  ended_at_ms: number;
}

export interface SweepOptions {
  limit: number;
  pendingGraceMs: number;
  /**
   * When given, each write of endings is stamped with this clock's time as it is made (never before
   * `nowMs`), not with `nowMs`: a sweep through a burst of expiries records when each lease ended.
   * The memory store ends a call's leases in one step, at `nowMs`.
   */
  clock?: () => number;
}

/**
 * Where leases live. Implementations: Redis (production) and memory (dev mode). The contract
 * suite in test/contract runs against both. Every method that cannot reach its backing store
 * throws StoreUnavailableError; no method exposes a client or transaction type.
 */
export interface LeaseStore {
  /**
   * Records an active lease and schedules its expiry in one atomic step. When `maxActive` is
   * given and the subject already holds that many live leases under the same rule, nothing
   * is written and LeaseLimitError is thrown. `audit` (the allow decision) is written in the same
   * step: one round trip, and never a lease without its decision or a decision without its lease.
   * `replay` claims a single-use proof in that step too (ProofReplayedError when already claimed);
   * a refusal for any reason leaves the proof unclaimed. `budget` is charged only once the proof is
   * known not to be a replay (BudgetExceededError over its limit, and nothing written). An id
   * already written is LeaseExistsError, which is also how a create sent twice comes back.
   */
  create(lease: Lease, opts?: CreateOptions): Promise<void>;
  /**
   * Frees the single-use proof that lease `leaseId` claimed (CreateOptions.replay, by its key), and
   * only while that lease still holds it. For a create() whose outcome the caller never learnt
   * (StoreUnavailableError, NotReplicatedError): the lease may be written, but no credential was
   * handed out, so the proof may be exchanged again. Returns whether it was freed.
   */
  releaseProof(leaseId: string, proofKey: string): Promise<boolean>;
  /** The lease whose write claimed `proofKey` (a proof of `subject`), while its claim holds. */
  proofHolder(subject: string, proofKey: string): Promise<ProofHolder | null>;
  get(id: string): Promise<Lease | null>;
  /**
   * Flips an active lease to revoked now (introspection sees it from the next request on).
   * Returns the revoked lease, or null when it was not active or its expires_at is not after
   * `input.at` (it is already dead; the sweep ends it as expired). Effects run later in finalize().
   */
  revoke(id: string, input: RevokeInput): Promise<Lease | null>;
  /** Flips every live lease (as in revoke()) matching the selector (at least one key) to revoked; returns their ids. */
  revokeWhere(selector: LeaseSelector, input: RevokeInput, opts?: RevokeWhereOptions): Promise<string[]>;
  /** Ids of the active leases of a task (for task completion). */
  activeIdsOfTask(taskId: string): Promise<string[]>;
  /** Newest first; the cursor is stable under concurrent inserts and deletes. */
  list(filter: LeaseFilter, page: { limit: number; cursor?: string | null }): Promise<LeasePage>;
  countActive(): Promise<number>;
  /** Leases due to end before `beforeMs` (epoch ms) whose ending no worker has carried out yet. */
  countOverdue(beforeMs: number): Promise<number>;

  /**
   * Runs the ending effects of a revoked lease exactly once: ended_at, the audit event, removal
   * from the expiry schedule and active indexes, the CRL entry for certificates. Returns null
   * when there was nothing to do (already ended, unknown, or still active).
   */
  finalize(id: string, nowMs: number): Promise<Ending | null>;
  /**
   * finalize() of many ids at once, in as few Redis scripts as a script's few milliseconds allow.
   * Returns the endings carried out (ids with nothing to do are left out).
   */
  finalizeMany(ids: string[], nowMs: number): Promise<Ending[]>;
  /**
   * Ends every active lease whose expires_at <= now (status expired, same effects as finalize),
   * at most `limit` per call, and finalizes revoked leases whose effects are still pending after
   * `pendingGraceMs` (their job went missing). Returns the endings it carried out.
   */
  sweep(nowMs: number, opts: SweepOptions): Promise<Ending[]>;
  /**
   * Reads and works out, for the sweeps to come, expiries due within the next minute, so that a
   * burst of them costs its sweep only the writes. Optional (the memory store has nothing to
   * read); a shortcut only: sweep() ends every due lease whether read ahead or not. Returns how many
   * it read.
   */
  readAhead?(nowMs: number): Promise<number>;
  /**
   * When the next burst of expiries read ahead comes due (epoch ms, after `afterMs`): a time worth
   * a sweep of its own rather than the next scheduled one. Null when none is held.
   */
  nextBurstMs?(afterMs: number): number | null;
  /**
   * Revoked certificates whose notAfter (expires_at) is at or after `sinceSeconds`, for the CRL;
   * entries that expired before it may be dropped. The caller picks the cut: RFC 5280 3.3 keeps
   * an entry on CRLs issued after the certificate expired.
   */
  crlEntries(sinceSeconds: number): Promise<{ serial: string; revoked_at: number; expires_at: number }[]>;
  /** Drops terminal leases whose retention has passed; returns how many. */
  pruneRetained(nowMs: number): Promise<number>;
  /** Proves a lease could be written now (readiness): a scripted write and read on each shard's keys. */
  probe(): Promise<void>;
  close(): Promise<void>;
}

export interface CreateOptions {
  maxActive?: number;
  audit?: AuditEvent;
  /** The proof's replay key (see VerifiedProof.replayKey) and how long to remember it. */
  replay?: { key: string; ttlSeconds: number };
  /**
   * A fixed-window budget this create counts against (the proof subject's), charged in the same
   * step after the replay check, so refused replays never use it up. `key` names the counter; on
   * Redis Cluster it lives in the lease's shard (the subject's), so it must be the subject's own.
   */
  budget?: { key: string; limit: number; windowMs: number };
}

/** A proof's holder: its lease, and when the lease was written (epoch ms, the writer's clock). */
export interface ProofHolder {
  lease: Lease;
  writtenMs: number;
}

export class ProofReplayedError extends Error {
  readonly code = 'ERR_PROOF_REPLAYED';
  constructor() {
    super('the proof has already been exchanged');
    this.name = 'ProofReplayedError';
  }
}

/**
 * create() of a lease id that is already written. Also what a create sent twice comes back as (an
 * ioredis Cluster client sends a command again after its node's connection closed): the first send
 * wrote the lease, and claimed its proof for it, but its answer was lost. A TypeError, as any
 * other misuse of create().
 */
export class LeaseExistsError extends TypeError {
  readonly code = 'ERR_LEASE_EXISTS';
  constructor(readonly leaseId: string) {
    super(`create(): lease ${leaseId} already exists`);
    this.name = 'LeaseExistsError';
  }
}

export class LeaseLimitError extends Error {
  readonly code = 'ERR_LEASE_LIMIT';
  constructor(readonly limit: number) {
    super(`active lease limit of ${limit} reached`);
    this.name = 'LeaseLimitError';
  }
}

export class BudgetExceededError extends Error {
  readonly code = 'ERR_BUDGET_EXCEEDED';
  constructor(readonly retryAfterMs: number) {
    super('budget exhausted for this window');
    this.name = 'BudgetExceededError';
  }
}
