import { redisKeys, SHARD_COUNT } from '../redis/keys.ts';
import { runScript, scriptOf } from '../redis/scripts.ts';
import { type RedisClient } from '../redis/connect.ts';

/**
 * KEYS leases, due, all, act index, audit of one shard. Writes, reads back and removes a probe
 * entry in each, in one script: what an exchange's lease write needs (scripts loaded, every key
 * in one slot, the node writable, memory to spare), with nothing left for others to see.
 */
const PROBE = scriptOf(`
local f = 'readiness-probe'
redis.call('HSET', KEYS[1], f, '1')
local ok = redis.call('HGET', KEYS[1], f) == '1'
redis.call('HDEL', KEYS[1], f)
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], 0, f)
  ok = ok and redis.call('ZSCORE', KEYS[i], f) ~= false
  redis.call('ZREM', KEYS[i], f)
end
redis.call('HSET', KEYS[4], f, '1')
redis.call('HDEL', KEYS[4], f)
local sid = redis.call('XADD', KEYS[5], '*', 'probe', '1')
redis.call('XDEL', KEYS[5], sid)
if not ok then return redis.error_reply('probe entries did not read back') end
return 1
`);

/** Runs the probe on every shard; rejects with the first shard's error (naming the shard). */
export async function probeShards(redis: RedisClient, prefix: string | undefined): Promise<void> {
  const keys = redisKeys(prefix);
  await Promise.all(
    Array.from({ length: SHARD_COUNT }, async (_, s) => {
      try {
        await runScript(redis, PROBE, [keys.leases(s), keys.due(s), keys.all(s), keys.index(s, 'act'), keys.audit(s)], []);
      } catch (err) {
        throw new Error(`shard ${s}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
}
