import type { Lease, LeaseStatus } from './lease.ts';

export interface LeaseFilter {
  subject?: string;
  task_id?: string;
  rule?: string;
  issuer?: string;
  status?: LeaseStatus;
}

export type LeaseSelector = Omit<LeaseFilter, 'status'>;

export interface LeasePage {
  leases: Lease[];
  next_cursor: string | null;
}

export interface RevokeInput {
  reason: string;
  by: string;
  /** epoch seconds */
  at: number;
}

/**
 * Where leases live. Implementations: Redis (production) and memory (dev mode). The contract
 * suite in test/contract runs against both. Every method that cannot reach its backing store
 * throws StoreUnavailableError; no method exposes a client or transaction type.
 */
export interface LeaseStore {
  /**
   * Records an active lease and schedules its expiry in one atomic step. When `maxActive` is
   * given and the subject already holds that many active leases under the same rule, nothing
   * is written and LeaseLimitError is thrown.
   */
  create(lease: Lease, opts?: { maxActive?: number }): Promise<void>;
  get(id: string): Promise<Lease | null>;
  /** Flips an active lease to revoked now. Returns the lease as revoked, or null when it was not active. */
  revoke(id: string, input: RevokeInput): Promise<Lease | null>;
  /** Flips every active lease matching the selector to revoked; returns their ids. */
  revokeWhere(selector: LeaseSelector, input: RevokeInput): Promise<string[]>;
  /** Active leases of a task (for task completion). */
  idsOfTask(taskId: string): Promise<string[]>;
  list(filter: LeaseFilter, page: { limit: number; cursor?: string | null }): Promise<LeasePage>;
  countActive(): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class LeaseLimitError extends Error {
  readonly code = 'ERR_LEASE_LIMIT';
  constructor(readonly limit: number) {
    super(`active lease limit of ${limit} reached`);
    this.name = 'LeaseLimitError';
  }
}
