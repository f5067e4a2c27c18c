/** What crosses between an API process and its bulk-revocation process (walk-process.ts). */
import type { Durability } from '../redis/replicated-write.ts';
import type { LeaseSelector, RevokeInput, RevokeWhereOptions } from './store.ts';

/** What the walker needs to make its own connection and store: its first message. */
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
  /** Revoked ids joined with '\n' (a lease id is base64url): one string copies at a fraction of the cost of as many strings. */
  | { call: number; ids: string }
  | { call: number; done: true }
  | { call: number; error: WireError };

/** Revoked ids per message. */
export const WALK_ID_CHUNK = 5_000;

/** The walker's connection, as CLIENT LIST names it. */
export const WALK_CONNECTION_NAME = 'leash-bulk-revocations';
