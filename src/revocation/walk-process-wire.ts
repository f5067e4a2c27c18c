/** What crosses between an API process and its bulk-revocation process (walk-process.ts). */
import type { Durability } from '../redis/replicated-write.ts';
import type { LeaseSelector, RevokeInput, RevokeWhereOptions } from '../leases/store.ts';

/** What the walker needs to make its own connections, store and effects queue: its first message. */
export interface WalkerConfig {
  redisUrl: string;
  commandTimeoutMs?: number;
  prefix: string;
  retentionSeconds: number;
  durability: Durability;
}

export type WalkRequest =
  | { init: WalkerConfig }
  | { call: number; selector: LeaseSelector; input: RevokeInput; opts: RevokeWhereOptions }
  | { close: true };

/** A failure, by the class the API process throws again. */
export type WireError =
  | { kind: 'not-replicated'; acked: number; wanted: number }
  | { kind: 'unavailable'; detail: string }
  | { kind: 'invalid'; message: string }
  | { kind: 'other'; message: string };

export type WalkReply =
  | { ready: true }
  | { unreadable: string }
  | { call: number; notReady: true }
  /** How many leases the walk revoked; `queueError` when their effects jobs could not be queued. */
  | { call: number; revoked: number; queueError?: string }
  | { call: number; error: WireError };

/** The walker's connection, as CLIENT LIST names it. */
export const WALK_CONNECTION_NAME = 'leash-bulk-revocations';
