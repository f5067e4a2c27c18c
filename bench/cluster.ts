/**
 * Section `cluster`: the JWT exchange on local Redis Clusters against the same broker on one
 * standalone redis-server, all up at once, in interleaved slices. Two Clusters: 3 primaries
 * without replicas (the target's figure: like the standalone baseline, no process applies each
 * write twice), and 3 primaries + 3 replicas (reported: on these two cores the replicas take CPU
 * the standalone baseline never pays). In Cluster the replay record and the budget live in other
 * slots than the lease, so an exchange costs more round trips there; the target is >= 0.85x.
 */
import { startRedisCluster, type TestRedisCluster } from '../test/helpers/redis-cluster.ts';
import type { ChildServer } from './child.ts';
import { benchPolicy, startBroker, startRedis } from './env.ts';
import type { LoadConfig } from './exchange-load.ts';
import { pairedRatios, type PairedRatios } from './interleaved.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { exchangeRounds } from './slices.ts';
import { Redis } from 'ioredis';
import { log, redisPid } from './util.ts';

export interface ClusterResult extends PairedRatios {
  /** The top-level figures: this Cluster (no replicas) / standalone. */
  primaries: number;
  replicasPerPrimary: 0;
  /** The same run's 3 primaries + 3 replicas / standalone. */
  withReplicas: PairedRatios & { primaries: number; replicasPerPrimary: number };
}

/**
 * Slices each: three brokers share a round. Standalone served about 3,000 req/s on a quiet
 * machine, so this leaves 1.3x; a slice that runs out ends early and says so in the log.
 */
const EXPECTED_RPS = 4_000;

export async function benchCluster(cfg: LoadConfig & { rounds: number; sliceMs: number }): Promise<ClusterResult> {
  const standalone = await startRedis();
  const clusters: TestRedisCluster[] = [];
  const issuer = await startProofIssuer('RS256');
  const brokers: ChildServer[] = [];
  try {
    const bare = await startRedisCluster({ primaries: 3, replicas: 0 });
    clusters.push(bare);
    const replicated = await startRedisCluster({ primaries: 3, replicas: 1 });
    clusters.push(replicated);
    log(`cluster: ${bare.nodes.length} primaries (${bare.url}); ${replicated.nodes.length} nodes with replicas (${replicated.url})`);
    const policyPath = benchPolicy(issuer.url);
    const start = async (name: string, redisUrl: string): Promise<ChildServer> => {
      const b = await startBroker({ name, redisUrl, policyPath, role: 'all' });
      brokers.push(b);
      return b;
    };
    const onBare = await start('leash-cluster', bare.url);
    const onReplicated = await start('leash-cluster-replicas', replicated.url);
    const onOne = await start('leash-standalone', standalone.url);
    // Every Redis process's CPU is reported per slice (on 3+3 each write also runs on a replica).
    const pids = async (c: TestRedisCluster): Promise<Record<string, number>> => {
      const primaries = new Set((await c.primaries()).map((n) => n.port));
      let p = 0;
      let r = 0;
      return Object.fromEntries(c.nodes.map((n) => [primaries.has(n.port) ? `primary ${++p}` : `replica ${++r}`, n.pid() ?? NaN]));
    };
    const probe = new Redis(standalone.url);
    const standalonePid = await redisPid(probe).finally(() => probe.disconnect());
    const rounds = await exchangeRounds(
      { cluster: onBare, 'cluster+replicas': onReplicated, standalone: onOne },
      issuer,
      { ...cfg, expectedRps: EXPECTED_RPS },
      {
        cluster: await pids(bare),
        'cluster+replicas': await pids(replicated),
        standalone: { redis: standalonePid },
      },
    );
    return {
      ...pairedRatios(rounds, 'cluster', 'standalone', cfg.sliceMs),
      primaries: 3,
      replicasPerPrimary: 0,
      withReplicas: { ...pairedRatios(rounds, 'cluster+replicas', 'standalone', cfg.sliceMs), primaries: 3, replicasPerPrimary: 1 },
    };
  } finally {
    for (const b of brokers) await b.stop();
    await issuer.close();
    for (const c of clusters) await c.destroy();
    await standalone.destroy();
  }
}
