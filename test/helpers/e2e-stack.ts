import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from './redis-server.ts';
import { startFakeIssuer, type FakeIssuer } from './fake-issuer.ts';
import { startBroker, type BrokerOptions, type TestBroker } from './broker.ts';
import { e2ePolicy } from './policies.ts';

/** A broker on its own redis-server with the four issuers of e2ePolicy (github, gitlab, k8s, spiffe), and a client on that Redis. */
export interface E2eStack {
  redis: TestRedis;
  client: Redis;
  issuers: { github: FakeIssuer; gitlab: FakeIssuer; k8s: FakeIssuer; spiffe: FakeIssuer };
  broker: TestBroker;
  close(): Promise<void>;
}

export async function startE2eStack(opts: Pick<BrokerOptions, 'env' | 'now'> = {}): Promise<E2eStack> {
  const redis = await startRedis();
  const client = new Redis(redis.url);
  const [github, gitlab, k8s, spiffe] = [await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer()];
  const issuers = { github, gitlab, k8s, spiffe };
  const broker = await startBroker({ redisUrl: redis.url, policy: e2ePolicy(issuers), ...opts });
  return {
    redis,
    client,
    issuers,
    broker,
    async close() {
      await broker.close();
      client.disconnect();
      for (const i of Object.values(issuers)) await i.close();
      await redis.destroy();
    },
  };
}
