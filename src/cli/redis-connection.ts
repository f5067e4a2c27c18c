import type { Redis } from 'ioredis';
import { CliError, EXIT } from './client.ts';

/**
 * A connection to the broker's Redis that fails fast, like the broker: a command that hangs on a
 * dead Redis helps nobody. `what` says what did not happen, for the error.
 */
export async function connectCliRedis(url: string, what: string): Promise<Redis> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 3_000,
    commandTimeout: 3_000,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new CliError(`cannot reach Redis (${(err as Error).message}); ${what}`, EXIT.UNAVAILABLE);
  }
  return redis;
}

export async function closeCliRedis(redis: Redis): Promise<void> {
  await redis.quit().catch(() => redis.disconnect());
}
