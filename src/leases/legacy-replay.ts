import { primaries, type RedisClient } from '../redis/connect.ts';
import { replayKey } from '../redis/keys.ts';

/** How often, while replay records of the earlier Cluster layout remain, Leash looks again. */
const RESCAN_MS = 60_000;
const SCAN_COUNT = 1_000;

/**
 * On Redis Cluster, replay records used to be `<prefix>replay:<key>` in slots of their own; they
 * now live in the lease's shard (keys.ts RedisKeys.replay), where the lease script claims them. A
 * record of the earlier layout still holds a proof used before the upgrade until it expires, so
 * while any remain, an exchange on Cluster also checks that proof's earlier record (one command
 * more). Whether any remain is looked up on every primary, at first use and then every minute,
 * until none do. Until the first look has answered, every exchange checks.
 */
export function legacyReplayRecords(redis: RedisClient, prefix: string, now: () => number = Date.now): { used(proofKey: string): Promise<boolean> } {
  let state: 'unknown' | 'present' | 'gone' = 'unknown';
  let nextLook = 0;
  let looking: Promise<void> | null = null;
  const pattern = `${globEscape(prefix)}replay:*`;

  async function anyLeft(): Promise<boolean> {
    const nodes = primaries(redis);
    // A Cluster client that has not learnt its slots yet lists no primaries: that is not "none left".
    if (redis.status !== 'ready' || nodes.length === 0) throw new Error('the Redis client is not ready');
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
        if (keys.length > 0) return true;
        cursor = next;
      } while (cursor !== '0');
    }
    return false;
  }

  function look(): void {
    if (looking !== null || state === 'gone' || now() < nextLook) return;
    nextLook = now() + RESCAN_MS;
    looking = anyLeft()
      .then((left) => {
        state = left ? 'present' : 'gone';
      })
      // Unanswered, it stays as it was (checking) and looks again at the next interval.
      .catch(() => undefined)
      .finally(() => {
        looking = null;
      });
  }

  return {
    async used(proofKey) {
      look();
      if (state === 'gone') return false;
      return (await redis.exists(replayKey(prefix, proofKey))) === 1;
    },
  };
}

/** Redis glob patterns give `*?[]\` meaning: a prefix holding one must match itself only. */
const globEscape = (s: string): string => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
