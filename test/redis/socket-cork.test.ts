import { Socket } from 'node:net';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';
import { corkableSockets } from '../../src/redis/socket-cork.ts';
import { corkUntilNextTurn } from '../../src/redis/write-batching.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
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
    expect(corkableSockets(redis)).toEqual([redis.stream]);
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

  it('is empty where there is no socket to cork, and commands then go uncorked', async () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    expect(corkableSockets(cluster)).toEqual([]);
    expect(corkableSockets({ stream: undefined } as unknown as RedisClient)).toEqual([]);
    expect(corkableSockets({ stream: { write() {} } } as unknown as RedisClient)).toEqual([]);
    expect(corkableSockets({ stream: { cork() {}, uncork() {}, destroyed: true } } as unknown as RedisClient)).toEqual([]);
    const hidden = withoutStream(redis);
    expect(corkableSockets(hidden)).toEqual([]);
    const key = `${uniquePrefix()}uncorked`;
    corkUntilNextTurn(hidden);
    // Nothing is held: the command is on the socket already, before this turn ends.
    const write = hidden.set(key, 'v');
    expect((redis.stream as Socket).writableLength).toBe(0);
    await write;
    expect(await redis.get(key)).toBe('v');
  });
});

describe("a Cluster client's primaries behind corkableSockets", () => {
  let deployment: TestRedisCluster;
  let cluster: Cluster;
  let observers: Redis[] = [];
  /** Keys spread over every shard's slot, so every primary gets some. */
  const spread = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}{s${i % 16}}:${i}`);
  const readsOfPrimaries = async (): Promise<number> => (await Promise.all(observers.map(readsProcessed))).reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    deployment = await startRedisCluster({ primaries: 3, replicas: 0 });
    cluster = connectRedis(deployment.url) as Cluster;
    cluster.on('error', () => undefined);
    await whenReady(cluster, 10_000);
    // ioredis connects a primary on its first command.
    await Promise.all(spread(uniquePrefix(), 16).map((k) => cluster.set(k, 'v')));
    observers = await Promise.all((await deployment.primaries()).map((n) => connectTestRedis(`redis://127.0.0.1:${n.port}`)));
  }, 120_000);
  afterAll(async () => {
    for (const o of observers) o.disconnect();
    cluster?.disconnect();
    await deployment?.destroy();
  });

  it("the installed ioredis keeps each primary connection's net.Socket where the adapter looks", () => {
    const masters = cluster.nodes('master');
    expect(masters).toHaveLength(3);
    for (const m of masters) expect(m.stream).toBeInstanceOf(Socket);
    expect(corkableSockets(cluster)).toEqual(masters.map((m) => m.stream));
  });

  it("holds one turn's commands on every primary's socket until the turn ends, then each gets its answer", async () => {
    const keys = spread(uniquePrefix(), 16);
    const writes = keys.map((k) => {
      corkUntilNextTurn(cluster);
      return cluster.set(k, 'v');
    });
    // 16 commands, fewer than MAX_HELD per primary: all still held, on every primary.
    for (const m of cluster.nodes('master')) expect((m.stream as Socket).writableLength).toBeGreaterThan(0);
    await Promise.all(writes);
    expect(await Promise.all(keys.map((k) => cluster.get(k)))).toEqual(keys.map(() => 'v'));
  });

  it("makes one turn's commands over all primaries reach Redis in a handful of reads", async () => {
    const keys = spread(uniquePrefix(), 240);
    const before = await readsOfPrimaries();
    await Promise.all(keys.map((k) => {
      corkUntilNextTurn(cluster);
      return cluster.set(k, 'v');
    }));
    // Each observer's INFO is one read of the difference.
    const reads = (await readsOfPrimaries()) - before - observers.length;
    expect(reads).toBeGreaterThan(0);
    // Writes of MAX_HELD per primary: about 30 reads over the 3 primaries (measured 25).
    expect(reads).toBeLessThan(60);
    expect(await cluster.get(keys[239]!)).toBe('v');
  });
});
