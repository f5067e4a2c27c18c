import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker } from '../helpers/broker.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { closeIssuers, lifecyclePolicy, startIssuers, type Issuers } from '../lifecycle/harness.ts';

// A plain redis:// URL that names one node of a Cluster: PING answers, and every lease write to
// another node's slots would be MOVED. The start stops, saying which form to use, rather than
// running a broker that cannot issue.
let cluster: TestRedisCluster;
let issuers: Issuers;

beforeAll(async () => {
  cluster = await startRedisCluster();
  issuers = await startIssuers();
}, 120_000);
afterAll(async () => {
  await closeIssuers(issuers);
  await cluster?.destroy();
});

it('a redis:// URL naming a Cluster node stops the start, naming REDIS_URL and redis+cluster://', async () => {
  const started = startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis://127.0.0.1:${cluster.nodes[0]!.port}`, worker: false });
  await expect(started).rejects.toThrow(/^REDIS_URL: the server is a Redis Cluster node \(cluster_enabled:1\); use redis\+cluster:\/\//);
}, 60_000);

it('the same nodes as redis+cluster:// start', async () => {
  const seeds = cluster.nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
  const broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis+cluster://${seeds}`, worker: false });
  await broker.close();
}, 60_000);
