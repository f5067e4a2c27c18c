import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './connect.ts';

/** What corking needs of a socket. */
export type CorkableSocket = Pick<Socket, 'cork' | 'uncork' | 'destroyed'>;

/**
 * The one place Leash reaches into ioredis's internals (write-batching.ts): the sockets a client
 * writes its commands to. ioredis 6 keeps a connection's socket at `.stream`; a Cluster client
 * writes each command on the connection of its slot's primary (`nodes('master')`, public API),
 * each such a connection. Empty where there is none (not connected yet, or an ioredis that moved
 * it): the writes then go as ioredis sends them, uncorked. test/redis/socket-cork checks the
 * installed ioredis still has them, standalone and Cluster.
 */
export function corkableSockets(redis: RedisClient): CorkableSocket[] {
  if (!isCluster(redis)) {
    const s = socketOf(redis);
    return s === null ? [] : [s];
  }
  const out: CorkableSocket[] = [];
  for (const node of redis.nodes('master')) {
    const s = socketOf(node);
    if (s !== null) out.push(s);
  }
  return out;
}

function socketOf(connection: Redis): CorkableSocket | null {
  const stream = (connection as { stream?: Partial<CorkableSocket> }).stream;
  if (!stream || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function' || stream.destroyed) return null;
  return stream as CorkableSocket;
}
