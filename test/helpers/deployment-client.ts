import { afterAll, beforeAll } from 'vitest';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';

export type StartDeployment = () => Promise<{ url: string; destroy(): Promise<void> }>;

/** The getter of a file's client; `.walk()` gets a second one, as the broker gives bulk revocations. */
export type DeploymentClient = (() => RedisClient) & { walk(): RedisClient };

/**
 * Starts a real Redis deployment (one server, Sentinel, Cluster) before the file's tests and reaches
 * it through `REDIS_URL`'s client, as the broker does; stops it all after.
 */
export function withDeploymentClient(start: StartDeployment): DeploymentClient {
  let deployment: Awaited<ReturnType<StartDeployment>> | undefined;
  let clients: RedisClient[] = [];
  beforeAll(async () => {
    deployment = await start();
    clients = [connectRedis(deployment.url), connectRedis(deployment.url)];
    for (const c of clients) c.on('error', () => undefined);
    await Promise.all(clients.map((c) => whenReady(c, 10_000)));
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await deployment?.destroy();
  });
  const get = (i: number) => (): RedisClient => {
    const c = clients[i];
    if (!c) throw new Error('the deployment is not up yet');
    return c;
  };
  return Object.assign(get(0), { walk: get(1) });
}
