import type { RedisClient } from '../../redis/connect.ts';
import { signingRecordKey } from '../../redis/keys.ts';
import type { KeyUse, SigningRecord } from './signing-record.ts';

// Fields `<kid>:signed` and `<kid>:live` of one hash; each only ever grows, whichever broker writes.
const RAISE = `local function raise(field, v)
  local cur = tonumber(redis.call('HGET', KEYS[1], field))
  if not cur or cur < tonumber(v) then redis.call('HSET', KEYS[1], field, v) end
end
raise(ARGV[1] .. ':signed', ARGV[2])
raise(ARGV[1] .. ':live', ARGV[3])
return 1`;

/** The signing record in the brokers' Redis: every replica and the CLI see the same one. */
export function createRedisSigningRecord(redis: RedisClient, prefix: string): SigningRecord {
  const key = signingRecordKey(prefix);
  return {
    async note(kid, use) {
      await redis.eval(RAISE, 1, key, kid, String(Math.ceil(use.signedUntilMs)), String(Math.ceil(use.liveUntilMs)));
    },
    async read() {
      const flat = await redis.hgetall(key);
      const out = new Map<string, KeyUse>();
      for (const [field, value] of Object.entries(flat)) {
        const cut = field.lastIndexOf(':');
        const kid = field.slice(0, cut);
        const kind = field.slice(cut + 1);
        if (cut <= 0 || (kind !== 'signed' && kind !== 'live')) continue;
        const ms = /^\d{1,16}$/.test(value) ? Number(value) : Infinity;
        // A kid with only one of its two fields counts as live forever: the safe reading of a torn record.
        const use = out.get(kid) ?? { signedUntilMs: Infinity, liveUntilMs: Infinity };
        out.set(kid, kind === 'signed' ? { ...use, signedUntilMs: ms } : { ...use, liveUntilMs: ms });
      }
      return out;
    },
  };
}
