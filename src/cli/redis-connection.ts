import type { RedisClient } from '../redis/connect.ts';
import { CliError, EXIT, usageError } from './client.ts';

/**
 * A connection to the broker's Redis (any REDIS_URL form the broker takes) that fails fast, like
 * the broker: a command that hangs on a dead Redis helps nobody. `what` says what did not happen.
 */
export async function connectCliRedis(url: string, what: string): Promise<RedisClient> {
  const { connectRedis } = await import('../redis/connect.ts');
  const { RedisUrlError } = await import('../redis/redis-url.ts');
  let redis: RedisClient;
  try {
    redis = connectRedis(url, { once: { timeoutMs: 3_000 } });
  } catch (err) {
    if (err instanceof RedisUrlError) throw usageError(`--redis-url (or REDIS_URL): ${err.message}`);
    throw err;
  }
  // connect() rejects with "Connection is closed." once a refused AUTH has closed it: the reason is
  // the last error event.
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastError ??= err;
  });
  // A Cluster's own error says only that no startup node answered; a node's says why.
  redis.on('node error', (err: Error) => {
    lastError = err;
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    const refused = [lastError, err as Error].find((e) => e && /^(WRONGPASS|NOAUTH|NOPERM)\b/.test(e.message));
    if (refused) throw new CliError(`Redis refused the credentials of --redis-url (or REDIS_URL): ${refused.message}; ${what}`, EXIT.REFUSED);
    throw new CliError(`cannot reach Redis (${(err as Error).message}); ${what}`, EXIT.UNAVAILABLE);
  }
  return redis;
}

export async function closeCliRedis(redis: RedisClient): Promise<void> {
  await redis.quit().catch(() => redis.disconnect());
}
