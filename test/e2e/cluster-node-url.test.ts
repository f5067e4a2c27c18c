import { afterAll, beforeAll, expect, it } from 'vitest';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { api, closeIssuers, lifecyclePolicy, startIssuers, type Issuers } from '../lifecycle/harness.ts';

// A plain redis:// URL that names one node of a Cluster: PING answers, every lease write would be
// MOVED or CROSSSLOT. Readiness must say so instead of sending traffic to a broker that cannot issue.
let cluster: TestRedisCluster;
let issuers: Issuers;
let broker: TestBroker;

beforeAll(async () => {
  cluster = await startRedisCluster();
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis://127.0.0.1:${cluster.nodes[0]!.port}`, worker: false });
}, 120_000);
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await cluster?.destroy();
});

it('/readyz answers 503 naming the Redis error, and /token answers 503 with no credential', async () => {
  const r = await waitFor('a readiness answer from a connected broker', async () => {
    const res = await api(broker.url, 'GET', '/readyz');
    return /MOVED|CROSSSLOT|CLUSTERDOWN/.test(String(res.body.checks?.store)) ? res : null;
  }, 15_000, 200);
  expect(r.status).toBe(503);
  expect(r.body.checks.store).toMatch(/^cannot write a lease: .*(MOVED|CROSSSLOT)/);
  const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: 'repo:octo-org/app:cluster-node', jti: 'cluster-node-1' });
  const res = await exchangeProof(broker.url, proof);
  expect(res.status).toBe(503);
  expect(res.body.access_token).toBeUndefined();
});
