import type { ChainableCommander } from 'ioredis';
import { StoreUnavailableError } from '../errors.ts';
import type { RedisClient } from './connect.ts';

/** LEASH_REDIS_MIN_REPLICAS and LEASH_REDIS_WAIT_MS; `replicas: 0` sends no WAIT at all. */
export interface Durability {
  replicas: number;
  waitMs: number;
}

export const NO_WAIT: Durability = { replicas: 0, waitMs: 0 };

/**
 * The write reached its primary, but fewer replicas than LEASH_REDIS_MIN_REPLICAS confirmed it in
 * time: a failover now could lose it, so it does not count as done (503, retried by the caller).
 */
export class NotReplicatedError extends StoreUnavailableError {
  /** `result` is the write's own reply (a script's refusal code tells that nothing was written). */
  constructor(readonly acked: number, readonly wanted: number, readonly result: unknown = undefined) {
    super(`redis WAIT: ${acked} of ${wanted} replica(s) confirmed the write`);
    this.name = 'NotReplicatedError';
  }
}

/**
 * Sends `write` (commands on one key's slot) followed by `WAIT replicas waitMs` in one pipeline, so
 * the WAIT goes through the very connection and node that took the write (a Cluster pipeline goes
 * to the node of its keys' slot). Resolves with the write's reply once enough replicas hold it.
 * `retry` may ask for the write to be sent again (e.g. EVAL after NOSCRIPT).
 */
export async function writeThenWait(
  redis: RedisClient,
  d: Durability,
  write: (p: ChainableCommander) => void,
  retry?: (err: Error) => ((p: ChainableCommander) => void) | null,
): Promise<unknown> {
  const send = async (w: (p: ChainableCommander) => void): Promise<[Error | null, unknown][]> => {
    const p = redis.pipeline();
    w(p);
    p.wait(d.replicas, d.waitMs);
    return (await p.exec()) ?? [];
  };
  let replies = await send(write);
  const firstErr = replies[0]?.[0];
  const again = firstErr && retry ? retry(firstErr) : null;
  if (again) replies = await send(again);
  const [writeErr, result] = replies[0] ?? [new Error('empty pipeline reply'), null];
  if (writeErr) throw writeErr;
  const [waitErr, acked] = replies[1] ?? [new Error('no WAIT reply'), null];
  if (waitErr) throw new StoreUnavailableError(`redis WAIT: ${waitErr.message}`, waitErr);
  if (typeof acked !== 'number' || acked < d.replicas) throw new NotReplicatedError(Number(acked) || 0, d.replicas, result);
  return result;
}

/**
 * WAIT for writes already made on `key`'s node by this connection (a worker's endings, after the
 * script that made them), sent with a read of `key` so that a Cluster routes it to that node.
 * Only worth a round trip when something was written: WAIT blocks the connection while it waits.
 */
export async function waitForReplicas(redis: RedisClient, d: Durability, key: string): Promise<void> {
  if (d.replicas > 0) await writeThenWait(redis, d, (p) => p.exists(key));
}
