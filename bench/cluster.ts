/**
 * Section `cluster`: the JWT exchange on a local 3-primary / 3-replica Redis Cluster
 * (REDIS_URL=redis+cluster://...) against the same broker on one standalone redis-server, both
 * up at once, in interleaved slices. In Cluster the replay record and the budget live in other
 * slots than the lease, so an exchange costs more round trips there; the target is >= 0.85x.
 */
import { startRedisCluster } from '../test/helpers/redis-cluster.ts';
import type { ChildServer } from './child.ts';
import { benchPolicy, startBroker, startRedis } from './env.ts';
import type { LoadConfig } from './exchange-load.ts';
import type { PairedRatios } from './interleaved.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { exchangeSlices } from './slices.ts';
import { Redis } from 'ioredis';
import { log, redisPid } from './util.ts';

export interface ClusterResult extends PairedRatios {
  primaries: number;
  replicasPerPrimary: number;
}

export async function benchCluster(cfg: LoadConfig & { rounds: number; sliceMs: number }): Promise<ClusterResult> {
  const standalone = await startRedis();
  const cluster = await startRedisCluster({ primaries: 3, replicas: 1 });
  const issuer = await startProofIssuer('RS256');
  const brokers: ChildServer[] = [];
  try {
    log(`cluster: ${cluster.nodes.length} nodes up (${cluster.url})`);
    const policyPath = benchPolicy(issuer.url);
    const onCluster = await startBroker({ name: 'leash-cluster', redisUrl: cluster.url, policyPath, role: 'all' });
    brokers.push(onCluster);
    const onOne = await startBroker({ name: 'leash-standalone', redisUrl: standalone.url, policyPath, role: 'all' });
    brokers.push(onOne);
    // Every Redis process's CPU is reported per slice: on Cluster each write also runs on a replica.
    const nodes = Object.fromEntries(cluster.nodes.map((n, i) => [`redis ${i + 1}`, n.pid() ?? NaN]));
    const probe = new Redis(standalone.url);
    const standalonePid = await redisPid(probe).finally(() => probe.disconnect());
    const r = await exchangeSlices({ cluster: onCluster, standalone: onOne }, 'cluster', 'standalone', issuer, cfg, { cluster: nodes, standalone: { redis: standalonePid } });
    return { ...r, primaries: 3, replicasPerPrimary: 1 };
  } finally {
    for (const b of brokers) await b.stop();
    await issuer.close();
    await cluster.destroy();
    await standalone.destroy();
  }
}
