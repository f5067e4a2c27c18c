/**
 * The bulk-revocation process (walk-process.ts forks it): a lease store of its own, over a Redis
 * connection of its own, that runs revokeWhere for its API process and sends back what it revoked.
 */
import { connectRedis, type RedisClient } from '../redis/connect.ts';
import { NotReplicatedError } from '../redis/replicated-write.ts';
import { StoreUnavailableError } from '../errors.ts';
import { createRedisLeaseStore } from './redis-store.ts';
import type { LeaseStore } from './store.ts';
import { WALK_CONNECTION_NAME, WALK_ID_CHUNK, type WalkReply, type WalkRequest, type WalkerConfig, type WireError } from './walk-process-wire.ts';

const post = (m: WalkReply): void => {
  if (process.connected) process.send!(m);
};

let redis: RedisClient | null = null;
let store: LeaseStore | null = null;

function init(c: WalkerConfig): void {
  const r = connectRedis(c.redisUrl, {
    name: WALK_CONNECTION_NAME,
    ...(c.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: c.commandTimeoutMs }),
  });
  // An outage shows on the API process's own connections, which report it; a walk over this one fails.
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
}

function wireError(err: unknown): WireError {
  if (err instanceof NotReplicatedError) return { kind: 'not-replicated', acked: err.acked, wanted: err.wanted };
  if (err instanceof StoreUnavailableError) return { kind: 'unavailable', detail: err.detail ?? err.message };
  if (err instanceof TypeError) return { kind: 'invalid', message: err.message };
  return { kind: 'other', message: err instanceof Error ? err.message : String(err) };
}

async function walk(m: Extract<WalkRequest, { call: number }>): Promise<void> {
  // Not connected yet (just started) or cut off: the API process walks this one itself.
  if (!store || redis?.status !== 'ready') return post({ call: m.call, notReady: true });
  try {
    const ids = await store.revokeWhere(m.selector, m.input, m.opts);
    for (let i = 0; i < ids.length; i += WALK_ID_CHUNK) post({ call: m.call, ids: ids.slice(i, i + WALK_ID_CHUNK).join('\n') });
    post({ call: m.call, done: true });
  } catch (err) {
    post({ call: m.call, error: wireError(err) });
  }
}

function close(): void {
  redis?.disconnect();
  process.exit(0);
}

process.on('message', (m: WalkRequest) => {
  if ('init' in m) init(m.init);
  else if ('close' in m) close();
  else void walk(m);
});
// The API process is gone (or let go of it): nothing is left to walk for.
process.on('disconnect', close);
