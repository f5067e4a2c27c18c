import type { ChainableCommander, Cluster } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
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
  constructor(readonly acked: number, readonly wanted: number, readonly result: unknown = undefined, cause?: Error) {
    super(`redis WAIT: ${acked} of ${wanted} replica(s) confirmed the write${cause ? ` (${cause.message})` : ''}`, cause);
    this.name = 'NotReplicatedError';
  }
}

/** Adds one write command to the pipeline. */
type Write = (p: ChainableCommander) => void;
type Reply = [Error | null, unknown];

/**
 * Sends `write` (commands on the slot of `key`), then makes sure `d.replicas` replicas hold it.
 * Resolves with the write's reply once they do. `retry` may ask for the write to be sent again
 * (e.g. EVAL after NOSCRIPT).
 *
 * Writes share a WAIT (group commit): they go at the end of their turn of the event loop, or once
 * their connection's last WAIT is answered, in one pipeline that ends with their WAIT, which
 * answers for every earlier write of its connection. A WAIT blocks its connection until it is
 * answered, so a WAIT a write held each write back by a replica's round trip (bench/README.md:
 * 0.67-0.70x exchanges/s against no WAIT). On a Cluster there is a pipeline per node, so its WAIT
 * runs on the node that ran its writes; a write redirected elsewhere fails (MOVED) rather than
 * count that WAIT. A write sent again after `retry` goes with the next batch.
 */
export async function writeThenWait(redis: RedisClient, d: Durability, key: string, write: Write, retry?: (err: Error) => Write | null): Promise<unknown> {
  const sent = await turnWrite(redis, d, key, write);
  const again = sent.write[0] && retry ? retry(sent.write[0]) : null;
  return confirmed(d, again ? await turnWrite(redis, d, key, again) : sent);
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** The replies of `writes` sent in one pipeline, then of their WAIT. */
async function pipelined(redis: RedisClient, writes: Write[], d: Durability): Promise<Reply[]> {
  const p = redis.pipeline();
  for (const w of writes) w(p);
  p.wait(d.replicas, d.waitMs);
  return ((await p.exec()) ?? []) as Reply[];
}

/** What a write's batch answered for it: its own reply and its WAIT's. */
interface Sent {
  write: Reply;
  wait: Reply;
}

/** The write's reply, unless too few replicas confirmed it. */
function confirmed(d: Durability, { write, wait }: Sent): unknown {
  const [writeErr, result] = write;
  if (writeErr) throw writeErr;
  const [waitErr, acked] = wait;
  // The write is on the primary, unconfirmed: a WAIT that failed (timed out at the client, its
  // connection dropped) is a refusal like a short count, so the caller ends the lease and frees the
  // proof rather than leave them to a write no one was told of.
  if (waitErr) throw new NotReplicatedError(0, d.replicas, result, waitErr);
  if (typeof acked !== 'number' || acked < d.replicas) throw new NotReplicatedError(Number(acked) || 0, d.replicas, result);
  return result;
}

/** Writes that go together in one pipeline ending with their WAIT. */
interface Batch {
  writes: Write[];
  answers: ((sent: Sent) => void)[];
}

/** One connection's replicated writes: those waiting for the next batch, and whether one is out. */
interface Lane {
  next: Batch | null;
  /** A batch is sent or about to be, and its WAIT not yet answered. */
  busy: boolean;
}

const lanes = new WeakMap<RedisClient, Map<string, Lane>>();

/**
 * The lane a write on `key` joins: one per connection, so on a Cluster one per node (the nodes that
 * serve the key's slot; ioredis takes a pipeline whose keys are all served by one set of nodes). A
 * lane per slot would have a node run one WAIT per slot written, one after another, long enough
 * for the last writes to time out (bench/README.md, fourteenth pass).
 */
function laneOf(redis: RedisClient, d: Durability, key: string): Lane {
  let byId = lanes.get(redis);
  if (byId === undefined) lanes.set(redis, (byId = new Map()));
  const id = `${d.replicas}/${d.waitMs}/${isCluster(redis) ? nodeOf(redis, key) : ''}`;
  let lane = byId.get(id);
  if (lane === undefined) byId.set(id, (lane = { next: null, busy: false }));
  return lane;
}

/** The nodes serving `key`'s slot, as ioredis routes a pipeline (the slot alone before it knows). */
function nodeOf(cluster: Cluster, key: string): string {
  const slot = calculateSlot(key);
  return cluster.slots[slot]?.join(';') ?? `slot ${slot}`;
}

/**
 * The write's and its WAIT's replies, from the batch it goes out with. A batch leaves at the
 * end of a turn, and only once the lane's last batch is answered: a WAIT blocks its connection, so a
 * batch sent behind one waits for it on the server anyway, and with the replicas gone each would
 * add a whole LEASH_REDIS_WAIT_MS, until writes timed out at the client with their outcome unknown.
 * One WAIT out at a time keeps any write within two of them.
 */
function turnWrite(redis: RedisClient, d: Durability, key: string, write: Write): Promise<Sent> {
  const lane = laneOf(redis, d, key);
  const batch = (lane.next ??= { writes: [], answers: [] });
  batch.writes.push(write);
  if (!lane.busy) {
    lane.busy = true;
    setImmediate(() => sendNext(redis, d, lane));
  }
  return new Promise((resolve) => batch.answers.push(resolve));
}

function sendNext(redis: RedisClient, d: Durability, lane: Lane): void {
  const b = lane.next;
  lane.next = null;
  if (b === null) {
    lane.busy = false;
    return;
  }
  pipelined(redis, b.writes, d)
    .then(
      (replies) => {
        const wait = replies[b.writes.length] ?? [new Error('no WAIT reply'), null];
        b.answers.forEach((answer, i) => answer({ write: replies[i] ?? [new Error('empty pipeline reply'), null], wait }));
      },
      (err: unknown) => {
        const failed: Reply = [asError(err), null];
        b.answers.forEach((answer) => answer({ write: failed, wait: failed }));
      },
    )
    .finally(() => setImmediate(() => sendNext(redis, d, lane)));
}

/**
 * WAIT for writes already made on `key`'s node by this connection (a worker's endings, after the
 * script that made them), sent with a read of `key` so that a Cluster routes it to that node.
 * Only worth a round trip when something was written: WAIT blocks the connection while it waits.
 */
export async function waitForReplicas(redis: RedisClient, d: Durability, key: string): Promise<void> {
  if (d.replicas > 0) await writeThenWait(redis, d, key, (p) => p.exists(key));
}
