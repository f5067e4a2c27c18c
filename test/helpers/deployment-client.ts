import { afterAll, beforeAll } from 'vitest';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';

export type StartDeployment = () => Promise<{ url: string; destroy(): Promise<void> }>;

/** The getter of a file's client. */
export type DeploymentClient = () => RedisClient;

/**
 * Starts a real Redis deployment (one server, Sentinel, Cluster) before the file's tests and reaches
 * it through `REDIS_URL`'s client, as the broker does; stops it all after.
 */
export function withDeploymentClient(start: StartDeployment): DeploymentClient {
  let deployment: Awaited<ReturnType<StartDeployment>> | undefined;
  let client: RedisClient | undefined;
  beforeAll(async () => {
    deployment = await start();
    client = connectRedis(deployment.url);
    client.on('error', () => undefined);
    await whenReady(client, 10_000);
  }, 120_000);
  afterAll(async () => {
    client?.disconnect();
    await deployment?.destroy();
  });
  return (): RedisClient => {
    if (!client) throw new Error('the deployment is not up yet');
    return client;
  };
}
