import type { Redis } from 'ioredis';
import { isCluster, primaries, type RedisClient } from './connect.ts';
import { peerOf } from './peer.ts';

/**
 * What a Redis deployment must be for Leash to keep its promises: every primary with at least
 * LEASH_REDIS_MIN_REPLICAS replicas connected, and none allowed to evict keys (an evicted lease or
 * revocation is silently gone). Read from every primary of a Cluster.
 */
export interface DeploymentOptions {
  minReplicas: number;
  allowEviction: boolean;
}

export interface EvictionReport {
  /** Primaries whose maxmemory-policy is not noeviction, as `host:port=policy`. */
  evicting: string[];
  /** Primaries that refused CONFIG GET (managed Redis): the policy cannot be known. */
  unknown: string[];
}

/** Where a node connection is: its socket's peer, else (not connected) its options. */
const nameOf = (node: Redis): string => {
  const peer = peerOf(node);
  return peer ? `${peer.host}:${peer.port}` : `${node.options.host ?? '?'}:${node.options.port ?? '?'}`;
};

/** CONFIG GET maxmemory-policy on every primary. */
export async function readEvictionPolicies(redis: RedisClient): Promise<EvictionReport> {
  const nodes = primaries(redis);
  if (nodes.length === 0) throw new Error('no Redis primary is known yet');
  const report: EvictionReport = { evicting: [], unknown: [] };
  await Promise.all(
    nodes.map(async (node) => {
      let reply: unknown;
      try {
        reply = await node.config('GET', 'maxmemory-policy');
      } catch (err) {
        // Managed Redis renames or forbids CONFIG; anything else (the node is down) is a real failure.
        if (!/unknown command|NOPERM|no permissions|not allowed/i.test((err as Error).message)) throw err;
        report.unknown.push(nameOf(node));
        return;
      }
      const policy = Array.isArray(reply) ? String(reply[1]) : '';
      if (policy !== 'noeviction') report.evicting.push(`${nameOf(node)}=${policy || 'unknown'}`);
    }),
  );
  return report;
}

/** The sentence that stops the start (or warns with LEASH_ALLOW_EVICTION=1). */
export const evictionMessage = (evicting: string[]): string =>
  `Redis maxmemory-policy is not noeviction (${evicting.join(', ')}): Redis could silently drop leases and revocations; ` +
  'set maxmemory-policy noeviction, or LEASH_ALLOW_EVICTION=1 to run anyway';

/** Checks for /readyz: `replicas` (only with minReplicas >= 1) and `maxmemory_policy`. */
export async function deploymentReadiness(redis: RedisClient, opts: DeploymentOptions): Promise<{ ok: boolean; checks: Record<string, string> }> {
  const checks: Record<string, string> = {};
  let ok = true;
  const work: Promise<void>[] = [];
  if (opts.minReplicas > 0) {
    work.push(
      replicaCounts(redis, opts.minReplicas).then(
        (short) => {
          if (short.length === 0) checks.replicas = `ok (at least ${opts.minReplicas} per primary)`;
          else {
            ok = false;
            checks.replicas = `fewer than ${opts.minReplicas} connected: ${short.join(', ')}`;
          }
        },
        (err: Error) => {
          ok = false;
          checks.replicas = `unknown (INFO replication failed: ${err.message})`;
        },
      ),
    );
  }
  work.push(
    readEvictionPolicies(redis).then(
      ({ evicting, unknown }) => {
        if (evicting.length > 0) {
          checks.maxmemory_policy = `evicting: ${evicting.join(', ')}${opts.allowEviction ? ' (allowed by LEASH_ALLOW_EVICTION)' : ''}`;
          if (!opts.allowEviction) ok = false;
        } else checks.maxmemory_policy = unknown.length > 0 ? `unknown (CONFIG refused on ${unknown.join(', ')})` : 'noeviction';
      },
      (err: Error) => {
        ok = false;
        checks.maxmemory_policy = `unknown (CONFIG GET failed: ${err.message})`;
      },
    ),
  );
  await Promise.all(work);
  return { ok, checks };
}

/** Primaries with fewer connected replicas than wanted, as `host:port=count`; none known counts as short. */
async function replicaCounts(redis: RedisClient, wanted: number): Promise<string[]> {
  const nodes = primaries(redis);
  if (nodes.length === 0) return ['no primary known'];
  const counts = await Promise.all(nodes.map(async (n) => [n, connectedReplicas(await n.info('replication'))] as const));
  return counts.filter(([, c]) => c < wanted).map(([n, c]) => `${nameOf(n)}=${c}`);
}

/** `connected_slaves` of INFO replication, counting only replicas whose link is online. */
function connectedReplicas(info: string): number {
  return info.split('\r\n').filter((l) => /^slave\d+:/.test(l) && /state=online/.test(l)).length;
}

interface WarnLog {
  warn(obj: object, msg: string): void;
}

/**
 * At start: a Cluster node reached through a redis:// or Sentinel URL, or an evicting primary
 * (unless LEASH_ALLOW_EVICTION=1, then a warning), stops the start (an Error with the message). A
 * refused CONFIG GET, or a Redis not reachable yet, only warns: /readyz keeps checking.
 */
export async function checkDeploymentAtStart(redis: RedisClient, opts: DeploymentOptions, log: WarnLog): Promise<void> {
  let report: EvictionReport;
  try {
    await firstConnection(redis, 5_000);
    if (!isCluster(redis) && (await servesCluster(redis))) throw new ClusterNodeError();
    report = await readEvictionPolicies(redis);
  } catch (err) {
    if (err instanceof ClusterNodeError) throw err;
    log.warn({ err: (err as Error).message }, 'could not read Redis maxmemory-policy at start; /readyz checks it');
    return;
  }
  if (report.unknown.length > 0) {
    log.warn({ nodes: report.unknown }, 'Redis refused CONFIG GET maxmemory-policy (managed Redis?): make sure maxmemory-policy is noeviction, or leases and revocations may be evicted');
  }
  if (report.evicting.length === 0) return;
  if (!opts.allowEviction) throw new Error(evictionMessage(report.evicting));
  log.warn({ nodes: report.evicting }, `LEASH_ALLOW_EVICTION=1: running although ${evictionMessage(report.evicting)}`);
}

/**
 * A redis:// or Sentinel URL that reaches a Cluster node would start and then fail every write to
 * another node's slots with MOVED: the start stops instead, saying which form to use.
 */
class ClusterNodeError extends Error {
  constructor() {
    super('REDIS_URL: the server is a Redis Cluster node (cluster_enabled:1); use redis+cluster://host1:port1,host2:port2 (or rediss+cluster://)');
  }
}

async function servesCluster(redis: RedisClient): Promise<boolean> {
  try {
    return /^cluster_enabled:1\s*$/m.test(await redis.info('cluster'));
  } catch {
    return false; // INFO refused (managed Redis): the writes will say so
  }
}

/** Ready, or the first connection error, or the timeout: whichever comes first. */
function firstConnection(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`Redis not ready within ${timeoutMs} ms`)), timeoutMs);
    const onReady = (): void => done();
    const onError = (err: Error): void => done(err);
    function done(err?: Error): void {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      if (err) reject(err);
      else resolve();
    }
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}
