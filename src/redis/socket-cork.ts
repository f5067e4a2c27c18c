import type { Socket } from 'node:net';
import { isCluster, type RedisClient } from './connect.ts';

/** What corking needs of a socket. */
export type CorkableSocket = Pick<Socket, 'cork' | 'uncork' | 'destroyed'>;

/**
 * The one place Leash reaches into ioredis's internals (write-batching.ts): the socket a standalone
 * or Sentinel client writes to, kept at `client.stream` by ioredis 6. Null where it is not there
 * (a Cluster client, no connection yet, or an ioredis that moved it): the writes then go as ioredis
 * sends them, uncorked. test/redis/socket-cork checks the installed ioredis still has it.
 */
export function corkableSocket(redis: RedisClient): CorkableSocket | null {
  if (isCluster(redis)) return null;
  const stream = (redis as { stream?: Partial<CorkableSocket> }).stream;
  if (!stream || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function' || stream.destroyed) return null;
  return stream as CorkableSocket;
}
