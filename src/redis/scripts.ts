import { createHash } from 'node:crypto';
import { Command, type ChainableCommander } from 'ioredis';
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
 * Scripts with at least this many arguments (a sweep step's ending script has 900 for 100 expiries,
 * a walk step's hundreds) go out as one Buffer (one-buffer-command.ts); smaller ones, every
 * exchange's among them, as ioredis builds them. With all of them as one Buffer, the exchange's p99
 * over an expiry storm rose to 2.3-7.3x its quiet p99 in three runs (`bench/README.md`).
 */
const ONE_BUFFER_MIN_ARGS = 200;

function scriptCommand(s: LuaScript, keys: string[], args: (string | number)[], name: 'evalsha' | 'eval'): Command {
  const all = [name === 'evalsha' ? s.sha : s.lua, keys.length, ...keys, ...args];
  return all.length >= ONE_BUFFER_MIN_ARGS ? new OneBufferCommand(name, all) : new Command(name, all, { replyEncoding: 'utf8' });
}

/**
 * One EVALSHA round trip; the script is sent (and cached by Redis) only after NOSCRIPT. The scripts
 * run in one turn of the event loop leave in one write (write-batching.ts). With
 * `durability.replicas` > 0 the script and a WAIT go in one pipeline (replicated-write.ts).
 */
export async function runScript(redis: RedisClient, s: LuaScript, keys: string[], args: (string | number)[], durability: Durability = NO_WAIT): Promise<unknown> {
  corkUntilNextTurn(redis);
  const call = (name: 'evalsha' | 'eval'): Command => scriptCommand(s, keys, args, name);
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
const sendOn = (p: ChainableCommander, command: Command): void => void (p as unknown as { sendCommand(c: Command): unknown }).sendCommand(command);
