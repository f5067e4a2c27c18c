import { createHash } from 'node:crypto';
import type { RedisClient } from './connect.ts';
import { NO_WAIT, writeThenWait, type Durability } from './replicated-write.ts';
import { corkUntilNextTurn } from './write-batching.ts';

export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

/** A script and its SHA1, computed once at module load (EVALSHA names it by that). */
export const scriptOf = (lua: string): LuaScript => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });

/**
 * One EVALSHA round trip; the script is sent (and cached by Redis) only after NOSCRIPT. The scripts
 * run in one turn of the event loop leave in one write (write-batching.ts). With
 * `durability.replicas` > 0 the script and a WAIT go in one pipeline (replicated-write.ts).
 */
export async function runScript(redis: RedisClient, s: LuaScript, keys: string[], args: (string | number)[], durability: Durability = NO_WAIT): Promise<unknown> {
  corkUntilNextTurn(redis);
  if (durability.replicas > 0) {
    return writeThenWait(redis, durability, keys[0] ?? '', (p) => p.evalsha(s.sha, keys.length, ...keys, ...args), (err) =>
      err.message.startsWith('NOSCRIPT') ? (p) => p.eval(s.lua, keys.length, ...keys, ...args) : null,
    );
  }
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return await redis.eval(s.lua, keys.length, ...keys, ...args);
  }
}
