import type { LeaseFilter, LeasePage } from './store.ts';
import type { Lease } from './lease.ts';
import { decodeLease } from './lease-codec.ts';
import { decodeCursor, encodeCursor, matchesFilter, pageLimit } from './list-cursor.ts';
import { DescMerge } from './merge-desc.ts';
import { SHARD_COUNT, idOfListMember, shardOf, type RedisKeys } from './redis-keys.ts';
import type { RedisClient } from './redis-scripts.ts';

/** Index entries one list() call examines at most; a sparse filter pages on with a cursor. */
export const LIST_SCAN_BUDGET = 5_000;
const BATCH = 200;

interface Entry {
  shard: number;
  member: string;
}

/**
 * Newest first over the 16 shards' listing indexes, filters applied here, bodies read with one
 * MGET per shard and chunk. Members whose lease is gone (retention passed) are removed lazily.
 * `io` wraps each Redis call (error mapping).
 */
export async function listLeases(
  redis: RedisClient,
  keys: RedisKeys,
  io: <T>(what: string, f: () => Promise<T>) => Promise<T>,
  filter: LeaseFilter,
  page: { limit: number; cursor?: string | null },
): Promise<LeasePage> {
  const limit = pageLimit(page.limit);
  const start = page.cursor ? `(${decodeCursor(page.cursor)}` : '+';
  // A subject and rule pin the shard: every lease of that pair lives there.
  const shards =
    filter.rule !== undefined && filter.subject !== undefined
      ? [shardOf(filter.rule, filter.subject)]
      : Array.from({ length: SHARD_COUNT }, (_, s) => s);
  const filtered = Object.values(filter).some((v) => v !== undefined);
  const merge = new DescMerge<Entry>(
    shards.map((shard) => {
      let bound = start;
      return async (count) => {
        const members = await io('list', () => redis.zrevrangebylex(keys.all(shard), bound, '-', 'LIMIT', 0, count));
        const last = members[members.length - 1];
        if (last !== undefined) bound = `(${last}`;
        return members.map((member) => ({ shard, member }));
      };
    }),
    (a, b) => (a.member > b.member ? 1 : a.member < b.member ? -1 : 0),
    filtered ? BATCH : Math.min(limit + 1, BATCH),
  );

  const leases: Lease[] = [];
  const stale: Entry[] = [];
  let last: string | null = null;
  let examined = 0;
  let unexamined = false; // taken from the merge in the last chunk but not looked at
  while (leases.length < limit && examined < LIST_SCAN_BUDGET) {
    const want = Math.min(filtered ? Math.max(limit - leases.length, 100) : limit - leases.length, 500);
    const chunk: Entry[] = [];
    while (chunk.length < want) {
      const e = await merge.next();
      if (!e) break;
      chunk.push(e);
    }
    if (chunk.length === 0) break;
    const bodies = await readBodies(redis, keys, io, chunk);
    let i = 0;
    while (i < chunk.length && leases.length < limit && examined < LIST_SCAN_BUDGET) {
      const entry = chunk[i++]!;
      const raw = bodies[i - 1];
      examined++;
      last = entry.member;
      if (raw == null) stale.push(entry);
      else {
        const { lease } = decodeLease(idOfListMember(entry.member), raw);
        if (matchesFilter(lease, filter)) leases.push(lease);
      }
    }
    unexamined = i < chunk.length;
  }
  if (stale.length > 0) await dropStale(redis, keys, io, stale);
  const more = last !== null && (unexamined || !merge.exhausted);
  return { leases, next_cursor: more ? encodeCursor(last!) : null };
}

async function readBodies(
  redis: RedisClient,
  keys: RedisKeys,
  io: <T>(what: string, f: () => Promise<T>) => Promise<T>,
  chunk: Entry[],
): Promise<(string | null)[]> {
  const byShard = new Map<number, number[]>();
  chunk.forEach((e, i) => byShard.set(e.shard, [...(byShard.get(e.shard) ?? []), i]));
  const out: (string | null)[] = new Array(chunk.length).fill(null);
  await Promise.all(
    [...byShard].map(async ([shard, idx]) => {
      const ks = idx.map((i) => keys.lease(shard, idOfListMember(chunk[i]!.member)));
      const vals = await io('list', () => redis.mget(...ks));
      idx.forEach((i, j) => (out[i] = vals[j] ?? null));
    }),
  );
  return out;
}

// The lease key expired with its retention before pruneRetained ran: drop its index entries.
async function dropStale(
  redis: RedisClient,
  keys: RedisKeys,
  io: <T>(what: string, f: () => Promise<T>) => Promise<T>,
  stale: Entry[],
): Promise<void> {
  await Promise.all(
    stale.map((e) => io('list', () => Promise.all([redis.zrem(keys.all(e.shard), e.member), redis.zrem(keys.gone(e.shard), e.member)]))),
  );
}
