import { createHash } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './connect.ts';
import { NO_WAIT, writeThenWait, type Durability } from './replicated-write.ts';
import { OneBufferCommand } from './one-buffer-command.ts';
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
  const call = (name: 'evalsha' | 'eval'): OneBufferCommand => new OneBufferCommand(name, [name === 'evalsha' ? s.sha : s.lua, keys.length, ...keys, ...args]);
  if (durability.replicas > 0) {
    return writeThenWait(redis, durability, (p) => sendOn(p, call('evalsha')), (err) => (err.message.startsWith('NOSCRIPT') ? (p) => sendOn(p, call('eval')) : null));
  }
  try {
    return await redis.sendCommand(call('evalsha'));
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return await redis.sendCommand(call('eval'));
  }
}

/** Queues `command` on a pipeline (ioredis's Pipeline has sendCommand; its chainable type does not say so). */
const sendOn = (p: ChainableCommander, command: OneBufferCommand): void => void (p as unknown as { sendCommand(c: OneBufferCommand): unknown }).sendCommand(command);
