import type { PreparedExpiry } from './ending-plan.ts';

/**
 * How far ahead the sweep reads expiries, how many it holds, and how many one sweep reads: a burst of
 * leases that expire together (a fleet's CI jobs started in the same minute) is read and worked out
 * over the seconds before it is due, so the sweep that ends it only writes.
 */
export const AHEAD_MS = 60_000;
export const AHEAD_MAX = 100_000;
export const AHEAD_PER_SWEEP = 1_000;

/** A schedule entry read ahead: its expiry worked out, or null for one the sweep takes when due. */
export interface ReadAhead {
  id: string;
  dueMs: number;
  expiry: PreparedExpiry | null;
}

/**
 * Schedule entries read before they are due, per shard in the schedule's order. Only a shortcut:
 * each expiry is written only while its record is still as read, and the schedule keeps every lease
 * until its ending is written, so one that changed, or that was never read ahead, is ended from the
 * schedule as before.
 */
export interface EndingsAhead {
  /** Takes out the shard's entries due by `nowMs`, up to `limit` expiries; returns the expiries. */
  take(shard: number, nowMs: number, limit: number): PreparedExpiry[];
  /** Adds the shard's entries just read (those held already are left as they are). */
  add(shard: number, read: ReadAhead[]): void;
  /** How many of the shard's entries due after `nowMs` are held: where its next read starts. */
  heldAfter(shard: number, nowMs: number): number;
  size(): number;
}

export function createEndingsAhead(shardCount: number): EndingsAhead {
  const queues: ReadAhead[][] = Array.from({ length: shardCount }, () => []);
  const held: Set<string>[] = Array.from({ length: shardCount }, () => new Set());
  let size = 0;
  return {
    take(shard, nowMs, limit) {
      const q = queues[shard]!;
      const out: PreparedExpiry[] = [];
      let n = 0;
      for (; n < q.length && q[n]!.dueMs <= nowMs; n++) {
        const e = q[n]!;
        if (e.expiry !== null) {
          if (out.length === limit) break;
          out.push(e.expiry);
        }
        held[shard]!.delete(e.id);
      }
      if (n > 0) q.splice(0, n);
      size -= n;
      return out;
    },
    add(shard, read) {
      const q = queues[shard]!;
      const ids = held[shard]!;
      const last = q.length > 0 ? q[q.length - 1]!.dueMs : -Infinity;
      let ordered = true;
      for (const e of read) {
        if (ids.has(e.id)) continue;
        ids.add(e.id);
        if (e.dueMs < last) ordered = false;
        q.push(e);
        size++;
      }
      // Reads come in the schedule's order; a lease written meanwhile with an earlier expiry does not.
      if (!ordered) q.sort((a, b) => a.dueMs - b.dueMs);
    },
    heldAfter(shard, nowMs) {
      const q = queues[shard]!;
      let due = 0;
      while (due < q.length && q[due]!.dueMs <= nowMs) due++;
      return q.length - due;
    },
    size: () => size,
  };
}
