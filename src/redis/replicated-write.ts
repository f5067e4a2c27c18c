import type { ChainableCommander, Redis } from 'ioredis';
import { StoreUnavailableError } from '../errors.ts';
import { isCluster, type RedisClient } from './connect.ts';

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
 * Sends `write` (commands on one key's slot), then makes sure `d.replicas` replicas hold it.
 * Resolves with the write's reply once they do. `retry` may ask for the write to be sent again
 * (e.g. EVAL after NOSCRIPT).
 *
 * On one server or Sentinel, the writes a connection sends in one turn of the event loop share a
 * single WAIT sent after them (group commit: WAIT covers every earlier write of its connection).
 * A WAIT blocks its connection until it is answered, so one WAIT a write held the next write back
 * for a replica's round trip each (bench/README.md: 0.71x exchanges/s against no WAIT). On a
 * Cluster the write and its WAIT go in one pipeline, which goes to the node of the write's slot
 * and is sent again as a whole after a redirection.
 */
export async function writeThenWait(
  redis: RedisClient,
  d: Durability,
  write: (p: ChainableCommander) => void,
  retry?: (err: Error) => ((p: ChainableCommander) => void) | null,
): Promise<unknown> {
  const pipeline = (w: (p: ChainableCommander) => void, thenWait: boolean): Promise<[Error | null, unknown][] | null> => {
    const p = redis.pipeline();
    w(p);
    if (thenWait) p.wait(d.replicas, d.waitMs);
    return p.exec();
  };
  const retryOf = (replies: [Error | null, unknown][]): ((p: ChainableCommander) => void) | null => {
    const err = replies[0]?.[0];
    return err && retry ? retry(err) : null;
  };
  if (isCluster(redis)) {
    const replies = (await pipeline(write, true)) ?? [];
    const again = retryOf(replies);
    return confirmed(d, again ? ((await pipeline(again, true)) ?? []) : replies);
  }
  // Sent now (a pipeline of plain commands is written as exec() is called), so the turn's WAIT,
  // sent at the end of the turn, comes after it on the connection.
  const writing = pipeline(write, false);
  const waiting = turnWait(redis, d);
  waiting.catch(() => undefined); // the write's own failure is the one reported
  const [writeReply] = (await writing) ?? [];
  const again = writeReply ? retryOf([writeReply]) : null;
  // Sent again after the turn's WAIT left: that WAIT does not cover it, so it takes its own.
  if (again) return confirmed(d, (await pipeline(again, true)) ?? []);
  const acked = await waiting.then(
    (n): [Error | null, unknown] => [null, n],
    (err: unknown): [Error | null, unknown] => [err instanceof Error ? err : new Error(String(err)), null],
  );
  return confirmed(d, [writeReply ?? [new Error('empty pipeline reply'), null], acked]);
}

/** The write's reply, given its reply and its WAIT's: throws unless enough replicas confirmed it. */
function confirmed(d: Durability, replies: [Error | null, unknown][]): unknown {
  const [writeErr, result] = replies[0] ?? [new Error('empty pipeline reply'), null];
  if (writeErr) throw writeErr;
  const [waitErr, acked] = replies[1] ?? [new Error('no WAIT reply'), null];
  if (waitErr) throw new StoreUnavailableError(`redis WAIT: ${waitErr.message}`, waitErr);
  if (typeof acked !== 'number' || acked < d.replicas) throw new NotReplicatedError(Number(acked) || 0, d.replicas, result);
  return result;
}

/** A WAIT to be sent at the end of this turn, on the connection the turn's writes went out on. */
interface TurnWait {
  stream: unknown;
  reply: Promise<unknown>;
}

/** Per client, the WAIT of the current turn for each durability setting. */
const turnWaits = new WeakMap<Redis, Map<string, TurnWait>>();

/**
 * The reply of the WAIT `redis` sends at the end of this turn, after every write sent before it.
 * A write sent after that WAIT has left joins the next turn's.
 */
function turnWait(redis: Redis, d: Durability): Promise<unknown> {
  let open = turnWaits.get(redis);
  if (open === undefined) turnWaits.set(redis, (open = new Map()));
  const key = `${d.replicas}/${d.waitMs}`;
  const stream = redis.stream;
  const current = open.get(key);
  if (current !== undefined && current.stream === stream) return current.reply;
  const group = open;
  const wait: TurnWait = {
    stream,
    reply: new Promise((resolve, reject) =>
      setImmediate(() => {
        if (group.get(key) === wait) group.delete(key);
        // A WAIT on a newer connection (a reconnect, perhaps to a new primary) would not answer
        // for writes sent on the old one.
        if (redis.stream !== stream) return reject(new Error('the connection to Redis changed before WAIT'));
        redis.wait(d.replicas, d.waitMs).then(resolve, reject);
      }),
    ),
  };
  group.set(key, wait);
  return wait.reply;
}

/**
 * WAIT for writes already made on `key`'s node by this connection (a worker's endings, after the
 * script that made them), sent with a read of `key` so that a Cluster routes it to that node.
 * Only worth a round trip when something was written: WAIT blocks the connection while it waits.
 */
export async function waitForReplicas(redis: RedisClient, d: Durability, key: string): Promise<void> {
  if (d.replicas > 0) await writeThenWait(redis, d, (p) => p.exists(key));
}
