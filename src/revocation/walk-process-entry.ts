/**
 * The bulk-revocation process (walk-process.ts forks it): a lease store and an effects queue of its
 * own, over Redis connections of its own. It runs an API process's bulk revocations and queues
 * their effects itself, so a million revoked ids never cross to the API process.
 */
import { connectRedis, type RedisClient } from '../redis/connect.ts';
import { NotReplicatedError } from '../redis/replicated-write.ts';
import { StoreUnavailableError } from '../errors.ts';
import { createBullmqRevocationQueue } from './bullmq-queue.ts';
import type { RevocationQueue } from './queue.ts';
import { createRedisLeaseStore } from '../leases/redis-store.ts';
import type { LeaseStore } from '../leases/store.ts';
import { WALK_CONNECTION_NAME, type WalkReply, type WalkRequest, type WalkerConfig, type WireError } from './walk-process-wire.ts';

const post = (m: WalkReply): void => {
  if (process.connected) process.send!(m);
};

let redis: RedisClient | null = null;
let bull: RedisClient | null = null;
let store: LeaseStore | null = null;
let effects: RevocationQueue | null = null;

function init(c: WalkerConfig): void {
  const r = connectRedis(c.redisUrl, {
    name: WALK_CONNECTION_NAME,
    ...(c.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: c.commandTimeoutMs }),
  });
  // An outage shows on the API process's own connections, which report it; a walk over these fails.
  r.on('error', () => undefined);
  r.on('ready', () => post({ ready: true }));
  redis = r;
  store = createRedisLeaseStore({
    redis: r,
    prefix: c.prefix,
    retentionSeconds: c.retentionSeconds,
    durability: c.durability,
    onUnreadable: (id) => post({ unreadable: id }),
  });
  bull = connectRedis(c.redisUrl, { forBullmq: true });
  bull.on('error', () => undefined);
  effects = createBullmqRevocationQueue(bull, c.prefix);
}

function wireError(err: unknown): WireError {
  if (err instanceof NotReplicatedError) return { kind: 'not-replicated', acked: err.acked, wanted: err.wanted };
  if (err instanceof StoreUnavailableError) return { kind: 'unavailable', detail: err.detail ?? err.message };
  if (err instanceof TypeError) return { kind: 'invalid', message: err.message };
  return { kind: 'other', message: err instanceof Error ? err.message : String(err) };
}

async function walk(m: Extract<WalkRequest, { call: number }>): Promise<void> {
  // Not connected yet (just started) or cut off: the API process walks this one itself.
  if (!store || !effects || redis?.status !== 'ready') return post({ call: m.call, notReady: true });
  let ids: string[];
  try {
    ids = await store.revokeWhere(m.selector, m.input, m.opts);
  } catch (err) {
    return post({ call: m.call, error: wireError(err) });
  }
  // The flips stand whatever happens to their effects jobs: unqueued, the sweep takes them over.
  let queueError: string | undefined;
  if (ids.length > 0) await effects.enqueue(ids).catch((err: unknown) => (queueError = err instanceof Error ? err.message : String(err)));
  post(queueError === undefined ? { call: m.call, revoked: ids.length } : { call: m.call, revoked: ids.length, queueError });
}

function close(): void {
  redis?.disconnect();
  bull?.disconnect();
  process.exit(0);
}

process.on('message', (m: WalkRequest) => {
  if ('init' in m) init(m.init);
  else if ('close' in m) close();
  else void walk(m);
});
// The API process is gone (or let go of it): nothing is left to walk for.
process.on('disconnect', close);
