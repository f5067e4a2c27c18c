import { afterAll, beforeAll, it } from 'vitest';
import { Cluster } from 'ioredis';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { CREATE } from '../../src/leases/redis-scripts.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { command } from '../helpers/redis-nodes.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { closeIssuers, lifecyclePolicy, startIssuers, waitFor, type Issuers } from '../lifecycle/harness.ts';
import { lostReplyUndone } from './lost-reply-scenario.ts';

/**
 * A Cluster whose nodes the broker reaches through TCP proxies (each node announces its proxy's
 * port). A lease write's reply is lost and the whole Cluster is out of reach for 3 s: ioredis's
 * Cluster client sends the write again, and that resend is refused as "Cluster isn't ready", which
 * is also what a write never sent gets. The write did reach Redis, so it must be undone as one
 * that got no answer, and the job's retry with the same proof must get its credential.
 */
let cluster: TestRedisCluster;
const proxies: TcpProxy[] = [];
let issuers: Issuers;
let broker: TestBroker;
let direct: Cluster, seen: LeaseStore;

beforeAll(async () => {
  cluster = await startRedisCluster({ primaries: 3, replicas: 0 });
  const toNode: Record<string, { host: string; port: number }> = {};
  for (const node of cluster.nodes) {
    const proxy = await startTcpProxy(node.port);
    proxies.push(proxy);
    toNode[`127.0.0.1:${proxy.port}`] = { host: '127.0.0.1', port: node.port };
    await command(node.port, 'CONFIG', 'SET', 'cluster-announce-port', String(proxy.port));
    // Loaded on every primary, so the held reply is the write's own, not a NOSCRIPT before it.
    await command(node.port, 'SCRIPT', 'LOAD', CREATE.lua);
  }
  const proxied = new Set(proxies.map((p) => p.port));
  await waitFor('every node to announce its proxy', async () => {
    for (const node of cluster.nodes) {
      const slots = (await command(node.port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      if (!slots.every((range) => proxied.has(Number(range[2][1])))) return false;
    }
    return true;
  }, 20_000, 100);
  issuers = await startIssuers();
  const url = `redis+cluster://${proxies.map((p) => `127.0.0.1:${p.port}`).join(',')}`;
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: url, worker: false });
  // The test's own reader goes around the proxies, so it sees Redis while they hold or refuse.
  direct = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }], { natMap: toNode });
  seen = createRedisLeaseStore({ redis: direct, prefix: broker.config.redisPrefix });
}, 120_000);
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  direct?.disconnect();
  for (const p of proxies) await p.close();
  await cluster?.destroy();
});

it('a Cluster write whose resend is refused as "not ready" is undone, and its proof exchanged on the retry', async () => {
  await lostReplyUndone({ broker, issuers, proxies, seen });
}, 60_000);
