import type { LeaseFilter, LeasePage } from './store.ts';
import type { Lease } from './lease.ts';
import { decodeLease } from './lease-codec.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../util/list-cursor.ts';
import { matchesFilter } from './lease-filter.ts';
import { DescMerge } from '../util/merge-desc.ts';
import { SHARD_COUNT, shardsOfPair, type RedisKeys } from '../redis/keys.ts';
import { idOfListMember, listMember, listMemberOf, msOfListMember } from './list-member.ts';
import type { RedisClient } from '../redis/connect.ts';

/** Index entries one list() call examines at most; a sparse filter pages on with a cursor. */
export const LIST_SCAN_BUDGET = 5_000;
const BATCH = 200;

interface Entry {
  shard: number;
  ms: number;
  id: string;
}

type Io = <T>(what: string, f: () => Promise<T>) => Promise<T>;

/**
 * Newest first over the 16 shards' listing indexes, in (issued ms, id) order, filters applied
 * here, bodies read with one HMGET per shard and chunk. The cursor is the last position examined.
 * `io` wraps each Redis call (error mapping).
 */
export async function listLeases(
  redis: RedisClient,
  keys: RedisKeys,
  io: Io,
  filter: LeaseFilter,
  page: { limit: number; cursor?: string | null },
): Promise<LeasePage> {
  const limit = pageLimit(page.limit);
  const cursor = page.cursor ? decodeCursor(page.cursor, listMemberOf) : null;
  const start = cursor ? { ms: msOfListMember(cursor), id: idOfListMember(cursor) } : null;
  // A subject and rule pin the shards: its subject's, and where the pair's leases went before.
  const shards =
    filter.rule !== undefined && filter.subject !== undefined
      ? shardsOfPair(filter.rule, filter.subject)
      : Array.from({ length: SHARD_COUNT }, (_, s) => s);
  const filtered = Object.values(filter).some((v) => v !== undefined);
  const merge = new DescMerge<Entry>(
    shards.map((shard) => {
      let bound = start;
      return async (count) => {
        const entries = await io('list', () => olderThan(redis, keys.all(shard), shard, bound, count));
        bound = entries[entries.length - 1] ?? bound;
        return entries;
      };
    }),
    (a, b) => a.ms - b.ms || (a.id > b.id ? 1 : a.id < b.id ? -1 : 0),
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
      last = listMember(entry.ms, entry.id);
      if (raw == null) stale.push(entry);
      else {
        // An unreadable record is left out (the scripts report it when they meet it).
        const lease = decodeLease(entry.id, raw)?.lease;
        if (lease && matchesFilter(lease, filter)) leases.push(lease);
      }
    }
    unexamined = i < chunk.length;
  }
  if (stale.length > 0) await dropStale(redis, keys, io, stale);
  const more = last !== null && (unexamined || !merge.exhausted);
  return { leases, next_cursor: more ? encodeCursor(last!) : null };
}

/** The entries after `bound` in (score, id) descending order: ties at bound's ms, then older. */
async function olderThan(redis: RedisClient, key: string, shard: number, bound: Pick<Entry, 'ms' | 'id'> | null, count: number): Promise<Entry[]> {
  const older = (rows: string[]): Entry[] => {
    const out: Entry[] = [];
    for (let i = 0; i + 1 < rows.length; i += 2) out.push({ shard, id: rows[i]!, ms: Number(rows[i + 1]) });
    return out;
  };
  if (!bound) return older(await redis.zrange(key, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, count, 'WITHSCORES'));
  const [ties, rest] = await Promise.all([
    redis.zrange(key, String(bound.ms), String(bound.ms), 'BYSCORE'),
    redis.zrange(key, `(${bound.ms}`, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, count, 'WITHSCORES'),
  ]);
  const sameMs = ties.filter((id) => id < bound.id).reverse().map((id) => ({ shard, id, ms: bound.ms }));
  return [...sameMs, ...older(rest)];
}

async function readBodies(redis: RedisClient, keys: RedisKeys, io: Io, chunk: Entry[]): Promise<(string | null)[]> {
  const byShard = new Map<number, number[]>();
  chunk.forEach((e, i) => byShard.set(e.shard, [...(byShard.get(e.shard) ?? []), i]));
  const out: (string | null)[] = new Array(chunk.length).fill(null);
  await Promise.all(
    [...byShard].map(async ([shard, idx]) => {
      const vals = await io('list', () => redis.hmget(keys.leases(shard), ...idx.map((i) => chunk[i]!.id)));
      idx.forEach((i, j) => (out[i] = vals[j] ?? null));
    }),
  );
  return out;
}

// A listing entry without a body (an interrupted prune, say): drop it.
async function dropStale(redis: RedisClient, keys: RedisKeys, io: Io, stale: Entry[]): Promise<void> {
  await Promise.all(
    stale.map((e) => io('list', () => Promise.all([redis.zrem(keys.all(e.shard), e.id), redis.zrem(keys.gone(e.shard), e.id)]))),
  );
}
