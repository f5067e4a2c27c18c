import { Socket } from 'node:net';
import { Cluster, type Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/redis/connect.ts';
import { corkableSocket } from '../../src/redis/socket-cork.ts';
import { corkUntilNextTurn } from '../../src/redis/write-batching.ts';
import { connectTestRedis, readsProcessed, uniquePrefix, withTestRedis } from '../contract/redis-client.ts';

/** The adapter over ioredis's socket: these fail when an ioredis upgrade moves what it reads. */
let redis: Redis;
let url: string;
withTestRedis((r, server) => {
  redis = r;
  url = server.url;
});


/** A client whose socket is not where the adapter looks (an ioredis that moved it). */
function withoutStream(client: Redis): RedisClient {
  return new Proxy(client, {
    get(target, key) {
      if (key === 'stream') return undefined;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("ioredis's socket behind corkableSocket", () => {
  it('the installed ioredis keeps a connected client\'s net.Socket where the adapter looks', () => {
    expect(redis.stream).toBeInstanceOf(Socket);
    expect(corkableSocket(redis)).toBe(redis.stream);
  });

  it('corking through it makes one turn\'s commands reach Redis in a handful of reads', async () => {
    const observer = await connectTestRedis(url);
    try {
      const prefix = uniquePrefix();
      const before = await readsProcessed(observer);
      await Promise.all(Array.from({ length: 200 }, (_, i) => {
        corkUntilNextTurn(redis);
        return redis.set(`${prefix}${i}`, 'v');
      }));
      // The observer's own INFO is one read of the difference; a write each measured about 90.
      const reads = (await readsProcessed(observer)) - before - 1;
      expect(reads).toBeGreaterThan(0);
      expect(reads).toBeLessThan(40);
      expect(await redis.get(`${prefix}199`)).toBe('v');
    } finally {
      observer.disconnect();
    }
  });

  it('is null where there is no socket to cork, and commands then go uncorked', async () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    expect(corkableSocket(cluster)).toBeNull();
    expect(corkableSocket({ stream: undefined } as unknown as RedisClient)).toBeNull();
    expect(corkableSocket({ stream: { write() {} } } as unknown as RedisClient)).toBeNull();
    expect(corkableSocket({ stream: { cork() {}, uncork() {}, destroyed: true } } as unknown as RedisClient)).toBeNull();
    const hidden = withoutStream(redis);
    expect(corkableSocket(hidden)).toBeNull();
    const key = `${uniquePrefix()}uncorked`;
    corkUntilNextTurn(hidden);
    // Nothing is held: the command is on the socket already, before this turn ends.
    const write = hidden.set(key, 'v');
    expect((redis.stream as Socket).writableLength).toBe(0);
    await write;
    expect(await redis.get(key)).toBe('v');
  });
});
