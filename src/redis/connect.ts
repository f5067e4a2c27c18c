import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { describeRedisTarget, parseRedisUrl, type RedisTarget } from './redis-url.ts';
import { watchSentinelPrimary } from './sentinel-watch.ts';

/**
 * A standalone, Sentinel or Cluster client: ioredis's own, so failover and slot routing are its.
 * The one client type: modules above redis/ name this, never ioredis.
 */
export type RedisClient = Redis | Cluster;

/** Cluster clients route by slot: a multi-key command or script must keep to one slot. */
export const isCluster = (redis: RedisClient): redis is Cluster => redis instanceof Cluster;

/** Whether a value is one of ioredis's clients (BullMQ's connection option may be one, or options). */
export const isRedisClient = (value: unknown): value is RedisClient => value instanceof Redis || value instanceof Cluster;

export interface ConnectOptions {
  /** BullMQ's connection: blocking commands, so no per-command timeout and no retry limit. */
  forBullmq?: boolean;
  /**
   * A one-shot command (the CLI): connect on connect(), give up after the first failed attempt,
   * and time commands out after this many ms.
   */
  once?: { timeoutMs: number };
  /** Per-command timeout (default 2000 ms); longer when a WAIT must fit in it. */
  commandTimeoutMs?: number;
  /** CLIENT SETNAME of each connection, so an operator's CLIENT LIST tells which one it is. */
  name?: string;
}

/**
 * The client for REDIS_URL (a string is parsed here; config.ts has already checked it at start),
 * tuned to fail fast when Redis is away, so requests answer 503 instead of hanging.
 */
export function connectRedis(url: string | RedisTarget, opts: ConnectOptions = {}): RedisClient {
  const target = typeof url === 'string' ? parseRedisUrl(url) : url;
  const node = nodeOptions(target, opts);
  if (target.kind === 'cluster') {
    const cluster: ClusterOptions = {
      redisOptions: node,
      enableOfflineQueue: opts.forBullmq ? true : false,
      lazyConnect: opts.once !== undefined,
      clusterRetryStrategy: opts.once ? () => null : (attempt) => Math.min(100 * attempt, 2_000),
      // A command to a slot whose primary just died is retried against the refreshed slot map
      // (retryDelayOnFailover x maxRedirections), so a failover shows as a short wait, then 503s.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      slotsRefreshTimeout: 2_000,
      enableAutoPipelining: false,
    };
    return new Cluster(target.nodes, cluster);
  }
  const base: RedisOptions = {
    ...node,
    lazyConnect: opts.once !== undefined,
    enableOfflineQueue: opts.forBullmq ? true : false,
    retryStrategy: opts.once ? () => null : (attempt) => Math.min(100 * attempt, 2_000),
  };
  if (target.kind === 'standalone') return new Redis({ ...base, host: target.node.host, port: target.node.port, db: target.db });
  const client = new Redis({
    ...base,
    sentinels: target.sentinels,
    name: target.name,
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    ...(target.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
    // Not failoverDetector: its disconnect, landing while a reconnect is asking the sentinels,
    // ends the client for good (ioredis 6 sets status "end" when a connect attempt rejects).
    sentinelRetryStrategy: opts.once ? () => null : (attempt) => Math.min(100 * attempt, 2_000),
  });
  if (!opts.once) watchSentinelPrimary(client, target);
  return client;
}

/** What every node connection shares: credentials, TLS, timeouts. */
function nodeOptions(target: RedisTarget, opts: ConnectOptions): RedisOptions {
  const timeoutMs = opts.once?.timeoutMs ?? 2_000;
  const commandTimeout = opts.commandTimeoutMs ?? timeoutMs;
  return {
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: {} } : {}),
    ...(opts.name ? { connectionName: opts.name } : {}),
    maxRetriesPerRequest: opts.forBullmq ? null : 1,
    connectTimeout: timeoutMs,
    ...(opts.forBullmq ? {} : { commandTimeout }),
    // A command in flight when its primary died is not replayed on the next one; it fails and the
    // request answers 503. BullMQ's jobs do retry. (A Cluster client does send it again, through
    // retryDelayOnFailover: a lease creation that meets its own lease says so, see CREATE.)
    autoResendUnfulfilledCommands: opts.forBullmq === true,
    // No auto-pipelining: ioredis keeps one auto-pipeline in flight per connection, so under load
    // every exchange's write waited for the previous batch's whole round trip (a probe of the
    // idle event loop found 35 of 64 requests queued so). Plain commands are written at once and
    // are in flight together; it costs a socket write each. Measured in alternating bench runs.
    enableAutoPipelining: false,
  };
}

/**
 * Whether a command that failed may still have reached Redis (and run there). Without an offline
 * queue, ioredis refuses a command at once, sending nothing, while its connection is not ready.
 */
export function mayHaveReachedRedis(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    // Before the words below: a Cluster's refusal is wrapped with its own.
    if (e instanceof ClusterWriteFailedError) return true;
    if (e.message.includes('enableOfflineQueue options is false')) return false;
  }
  return true;
}

/** A Cluster write that failed: it may have been sent before, whatever the refusal says. */
class ClusterWriteFailedError extends Error {
  override name = 'ClusterWriteFailedError';
}

/**
 * Sends a write whose outcome mayHaveReachedRedis must tell. A Cluster client sends a command
 * again, after a delay, when its node's connection closed with it in flight or the command was
 * redirected, and it refuses such a resend with the words of a command never sent ("Cluster isn't
 * ready and enableOfflineQueue options is false") when the Cluster is out of reach by then. No
 * refusal of a Cluster write can be told from one never sent, so each counts as possibly sent.
 */
export function sendWrite<T>(redis: RedisClient, send: () => Promise<T>): Promise<T> {
  if (!isCluster(redis)) return send();
  return send().catch((err: unknown) => {
    if (mayHaveReachedRedis(err)) throw err;
    throw new ClusterWriteFailedError(`a Cluster write refused, perhaps on a resend: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
}

/** REDIS_URL as a log may show it: no user name or password. */
export function describeRedis(url: string | RedisTarget): string {
  return describeRedisTarget(typeof url === 'string' ? parseRedisUrl(url) : url);
}

/** The primaries holding data: every master of a Cluster, else the one client. */
export function primaries(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/** Resolves once the client is ready, or rejects after timeoutMs (it keeps trying in the background). */
export async function whenReady(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`Redis not ready within ${timeoutMs} ms`)), timeoutMs);
    const onReady = (): void => done();
    function done(err?: Error): void {
      clearTimeout(timer);
      redis.off('ready', onReady);
      if (err) reject(err);
      else resolve();
    }
    redis.on('ready', onReady);
  });
}
