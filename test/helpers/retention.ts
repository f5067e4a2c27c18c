import type { Redis } from 'ioredis';
import type { RedisKeys } from '../../src/redis/keys.ts';

/** When the lease ended, as its shard's retention list holds it (pairs of ended ms and id); null if absent. */
export async function retainedEndedAt(redis: Redis, keys: RedisKeys, shard: number, id: string): Promise<number | null> {
  const entries = await redis.lrange(keys.ended(shard), 0, -1);
  for (let i = 0; i + 1 < entries.length; i += 2) if (entries[i + 1] === id) return Number(entries[i]);
  return null;
}
