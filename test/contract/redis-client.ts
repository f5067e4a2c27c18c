import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';

/**
 * A client set up the way createRedisLeaseStore expects: commands fail fast when Redis is down
 * (no offline queue, one retry, a command timeout) instead of waiting for it to come back.
 */
export async function connectTestRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    commandTimeout: 2_000,
    connectTimeout: 2_000,
    retryStrategy: (n) => Math.min(n * 50, 500),
  });
  redis.on('error', () => undefined);
  if (redis.status !== 'ready') await once(redis, 'ready');
  return redis;
}

/** A key prefix no other test uses. */
export const uniquePrefix = (): string => `t-${randomBytes(6).toString('hex')}:`;

/** A private redis-server and a fail-fast client on it for the whole file; `use` receives both once ready. */
export function withTestRedis(use: (redis: Redis, server: TestRedis) => void): void {
  let server: TestRedis | undefined;
  let redis: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    redis = await connectTestRedis(server.url);
    use(redis, server);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.destroy();
  });
}

/** Socket reads Redis has done for all its clients so far (INFO stats): how many writes reached it. */
export async function readsProcessed(observer: Redis): Promise<number> {
  return Number(/total_reads_processed:(\d+)/.exec(await observer.info('stats'))?.[1]);
}
