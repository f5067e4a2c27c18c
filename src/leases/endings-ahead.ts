import type { PreparedExpiry } from './ending-plan.ts';

/**
 * How far ahead the sweep reads expiries, how many it holds, and how many one sweep reads: a burst of
 * leases that expire together (a fleet's CI jobs started in the same minute) is read and worked out
 * over the seconds before it is due, so the sweep that ends it only writes.
 */
export const AHEAD_MS = 60_000;
export const AHEAD_MAX = 100_000;
export const AHEAD_PER_SWEEP = 1_000;
/**
 * A burst worth a sweep at its due time rather than at the next scheduled one: at least BURST_MIN
 * expiries held due within one BURST_SLOT_MS slot (burst-wake.ts asks for a sweep then).
 */
export const BURST_MIN = 1_000;
export const BURST_SLOT_MS = 100;

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
  /** The due time of the first expiry held of the first slot after `afterMs` holding at least `min`; null for none. */
  nextBurst(afterMs: number, min: number): number | null;
  size(): number;
}

export function createEndingsAhead(shardCount: number): EndingsAhead {
  const queues = Array.from({ length: shardCount }, () => new ShardQueue());
  const held: Set<string>[] = Array.from({ length: shardCount }, () => new Set());
  // Expiries held per BURST_SLOT_MS slot of their due time: a minute ahead is 600 slots at most.
  const perSlot = new Map<number, number>();
  const count = (dueMs: number, by: number): void => {
    const slot = Math.floor(dueMs / BURST_SLOT_MS);
    const n = (perSlot.get(slot) ?? 0) + by;
    if (n === 0) perSlot.delete(slot);
    else perSlot.set(slot, n);
  };
  let size = 0;
  return {
    take(shard, nowMs, limit) {
      const q = queues[shard]!;
      const out: PreparedExpiry[] = [];
      let n = q.head;
      for (; n < q.items.length && q.items[n]!.dueMs <= nowMs; n++) {
        const e = q.items[n]!;
        if (e.expiry !== null) {
          if (out.length === limit) break;
          out.push(e.expiry);
          count(e.dueMs, -1);
        }
        held[shard]!.delete(e.id);
        q.items[n] = TAKEN;
      }
      size -= n - q.head;
      q.dropTo(n);
      return out;
    },
    add(shard, read) {
      const q = queues[shard]!;
      const ids = held[shard]!;
      const last = q.items.length > q.head ? q.items[q.items.length - 1]!.dueMs : -Infinity;
      let ordered = true;
      for (const e of read) {
        if (ids.has(e.id)) continue;
        ids.add(e.id);
        if (e.dueMs < last) ordered = false;
        q.items.push(e);
        if (e.expiry !== null) count(e.dueMs, 1);
        size++;
      }
      // Reads come in the schedule's order; a lease written meanwhile with an earlier expiry does not.
      if (!ordered) q.sort();
    },
    heldAfter(shard, nowMs) {
      const q = queues[shard]!;
      let due = q.head;
      while (due < q.items.length && q.items[due]!.dueMs <= nowMs) due++;
      return q.items.length - due;
    },
    nextBurst(afterMs, min) {
      let first: number | null = null;
      for (const [slot, n] of perSlot) if (n >= min && (first === null || slot < first) && (slot + 1) * BURST_SLOT_MS > afterMs) first = slot;
      if (first === null) return null;
      const from = Math.max(first * BURST_SLOT_MS, Math.floor(afterMs) + 1);
      let due = Infinity;
      for (const q of queues) {
        const e = q.items[firstAtOrAfter(q.items, q.head, from)];
        if (e !== undefined && e.dueMs < due) due = e.dueMs;
      }
      return due === Infinity ? null : due;
    },
    size: () => size,
  };
}

/** What a taken entry's place holds until the array is cut: the expiry it held is not kept alive. */
const TAKEN: ReadAhead = { id: '', dueMs: -Infinity, expiry: null };

/**
 * A shard's entries in due order, from `head` on. Taking moves `head` rather than the entries: a
 * splice at the front moved (or, when V8 cannot trim the array in place, copied) the thousands
 * behind it on every take of 100, a thousand times in a burst of 100,000.
 */
class ShardQueue {
  items: ReadAhead[] = [];
  head = 0;

  /** Drops the entries before index `n`; the array is cut only once most of it is dropped. */
  dropTo(n: number): void {
    this.head = n;
    if (this.head === this.items.length || (this.head >= 4_096 && this.head * 2 >= this.items.length)) this.cut();
  }

  sort(): void {
    this.cut();
    this.items.sort((a, b) => a.dueMs - b.dueMs);
  }

  /** Leaves only the entries from `head` on. */
  private cut(): void {
    if (this.head === 0) return;
    this.items = this.items.slice(this.head);
    this.head = 0;
  }
}

/** The index of the first entry of `q` from `lo` on (in due order) due at or after `ms`. */
function firstAtOrAfter(q: ReadAhead[], from: number, ms: number): number {
  let lo = from;
  let hi = q.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (q[mid]!.dueMs < ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
