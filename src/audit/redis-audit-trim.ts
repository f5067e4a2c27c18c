import { DescMerge } from '../util/merge-desc.ts';
import type { RedisClient } from '../redis/connect.ts';

/** Entries one trim pass drops at most; the next sweep goes on from there. */
export const TRIM_STEP = 10_000;
const BATCH = 500;

interface Entry {
  ms: number;
  seq: number;
  stream: number;
}

/**
 * Drops the oldest entries across `streams` together until at most `total` remain, so the cap is
 * the log's and not a 16th per shard (a few busy subjects would otherwise keep far less). Finds
 * the globally oldest by merging the streams oldest first, then cuts each with XTRIM MINID: new
 * entries only ever arrive at the tails, and two workers that race compute the same cut.
 * Returns how many entries it dropped.
 */
export async function trimToTotal(redis: RedisClient, streams: string[], total: number): Promise<number> {
  const lengths = await Promise.all(streams.map((key) => redis.xlen(key)));
  const excess = lengths.reduce((a, b) => a + b, 0) - total;
  if (excess <= 0) return 0;
  const merge = new DescMerge<Entry>(
    streams.map((key, stream) => {
      let min = '-';
      return async (count) => {
        const rows = await redis.xrange(key, min, '+', 'COUNT', count);
        const last = rows[rows.length - 1];
        if (last) min = `(${last[0]}`;
        return rows.map(([id]) => {
          const [ms, seq] = id.split('-').map(Number) as [number, number];
          return { ms, seq, stream };
        });
      };
    }),
    // "Newer" here means comes first: the oldest entry is taken first.
    (a, b) => b.ms - a.ms || b.seq - a.seq || b.stream - a.stream,
    // No stream gives more than the excess, and at the cap a sweep finds a few dozen over it: pages
    // of BATCH read 8,000 entries (2.4 MB from Redis) every sweep to drop those few.
    Math.min(BATCH, excess),
  );
  const cut = new Map<number, Entry>();
  let dropped = 0;
  for (; dropped < Math.min(excess, TRIM_STEP); dropped++) {
    const e = await merge.next();
    if (!e) break;
    cut.set(e.stream, e);
  }
  // MINID keeps ids at or above the threshold: the one right after each stream's last dropped id.
  await Promise.all([...cut].map(([stream, e]) => redis.xtrim(streams[stream]!, 'MINID', `${e.ms}-${e.seq + 1}`)));
  return dropped;
}
