import { afterAll, beforeAll } from 'vitest';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';

export type StartDeployment = () => Promise<{ url: string; destroy(): Promise<void> }>;

/**
 * Starts a real Redis deployment (one server, Sentinel, Cluster) before the file's tests and reaches
 * it through `REDIS_URL`'s client, as the broker does; stops both after. Returns the client's getter.
 */
export function withDeploymentClient(start: StartDeployment): () => RedisClient {
  let deployment: Awaited<ReturnType<StartDeployment>> | undefined;
  let redis: RedisClient | undefined;
  beforeAll(async () => {
    deployment = await start();
    redis = connectRedis(deployment.url);
    redis.on('error', () => undefined);
    await whenReady(redis, 10_000);
  }, 120_000);
  afterAll(async () => {
    redis?.disconnect();
    await deployment?.destroy();
  });
  return () => {
    if (!redis) throw new Error('the deployment is not up yet');
    return redis;
  };
}
