import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { isRedisClient } from '../redis/connect.ts';
import type { RevocationQueue } from './queue.ts';
import { burstWaker } from './burst-wake.ts';
import { finalizeRevoked, sweepOnce, type EndingDeps } from './endings.ts';

export const QUEUE_NAME = 'leash-revocations';
/**
 * The repeatable sweep has a queue of its own: its scheduler always keeps a next run delayed, which
 * in the revocations queue would make depth() (leash_queue_depth) never drop to 0.
 */
export const SWEEP_QUEUE_NAME = 'leash-sweep';
const SWEEP_SCHEDULER_ID = 'leash-sweep';

interface RevokeJob { ids: string[] }
/** Lease ids per `revoke` job at most. */
const JOB_IDS = 5_000;
/** Jobs per addBulk write (each ~125 KB of ids). */
const ADD_BULK = 8;
/** How often a worker upserts the sweep's schedule again (see startRevocationWorker). */
const SCHEDULE_MEND_MS = 10_000;

/** Producer side, used by API processes: one `revoke` job per revocation request. */
export function createBullmqRevocationQueue(connection: ConnectionOptions, prefix: string): RevocationQueue & { queue: Queue } {
  const queue = new Queue<RevokeJob>(QUEUE_NAME, {
    connection,
    prefix: `{${prefix}bull}`,
    defaultJobOptions: {
      attempts: 10,
      backoff: { type: 'exponential', delay: 200 },
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 5000 },
    },
  });
  // Without a listener BullMQ prints connection errors to stderr; the caller's client reports them.
  queue.on('error', () => undefined);
  return {
    queue,
    async enqueue(ids) {
      // A bulk revocation's million ids in one job would be one 25 MB write, read and parse, each
      // holding Redis or an event loop; jobs of a few thousand spread that over the workers.
      if (ids.length <= JOB_IDS) return void (await queue.add('revoke', { ids }));
      const jobs = [];
      for (let i = 0; i < ids.length; i += JOB_IDS) jobs.push({ name: 'revoke', data: { ids: ids.slice(i, i + JOB_IDS) } });
      // A few jobs a write: 50 (250,000 ids, ~6 MB) held the API's event loop and Redis for seconds.
      for (let i = 0; i < jobs.length; i += ADD_BULK) await queue.addBulk(jobs.slice(i, i + ADD_BULK));
    },
    async depth() {
      const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
    },
    close: () => queue.close(),
  };
}

/**
 * Worker side (LEASH_ROLE=worker or all): processes `revoke` jobs and the repeatable `sweep`
 * that ends leases at expiry. Any number of workers may run; the store's Lua scripts make every
 * ending happen once whatever the retries, stalls or duplicates. A client instance passed as
 * `connection` belongs to the worker from then on: close() disconnects it.
 */
export async function startRevocationWorker(
  connection: ConnectionOptions,
  prefix: string,
  deps: EndingDeps,
  opts: { sweepIntervalMs: number; concurrency?: number },
): Promise<{ close(): Promise<void> }> {
  const bullPrefix = `{${prefix}bull}`;
  const sweepQueue = new Queue(SWEEP_QUEUE_NAME, { connection, prefix: bullPrefix });
  sweepQueue.on('error', () => undefined); // the same connection's errors are logged by the workers below
  const schedule = (): Promise<unknown> =>
    sweepQueue.upsertJobScheduler(SWEEP_SCHEDULER_ID, { every: opts.sweepIntervalMs }, {
      name: 'sweep',
      opts: { removeOnComplete: true, removeOnFail: { count: 100 } },
    });
  await schedule();
  // BullMQ adds each sweep's successor as the sweep starts; when Redis fails at that moment, no
  // successor is added and the sweeps stop for good. Upserting the schedule now and then mends
  // that (an upsert replaces the pending sweep, it never adds a second one). One that fails (Redis
  // away) is tried again at the next mend; the workers below report the outage.
  const mend = setInterval(() => void schedule().catch(() => undefined), SCHEDULE_MEND_MS);
  mend.unref();
  // Earlier versions scheduled the sweep in the revocations queue; drop that schedule if present.
  const revocations = new Queue(QUEUE_NAME, { connection, prefix: bullPrefix });
  revocations.on('error', () => undefined);
  await revocations.removeJobScheduler(SWEEP_SCHEDULER_ID);
  await revocations.close();
  const wakeForBurst = burstWaker(deps.store, sweepQueue, deps.now);
  const handle = async (job: Job): Promise<number> => {
    if (job.name === 'revoke') return (await finalizeRevoked(deps, (job.data as RevokeJob).ids)).length;
    if (job.name === 'sweep') {
      const ended = await sweepOnce(deps);
      // The endings stand; a wake that cannot be asked for leaves the burst to the scheduled sweeps.
      await wakeForBurst().catch((err: unknown) => deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not schedule a sweep for the next burst of expiries'));
      return ended;
    }
    throw new Error(`unknown job ${job.name}`);
  };
  // runRetryDelay: after a failed Redis call (an outage, a restart still loading its data) a worker
  // tries again this much later; BullMQ's 15 s held endings back long after Redis was back.
  const common = { connection, prefix: bullPrefix, stalledInterval: 5_000, maxStalledCount: 5, runRetryDelay: 1_000 };
  const workers = [
    new Worker(QUEUE_NAME, handle, { ...common, concurrency: opts.concurrency ?? 4 }),
    // One sweep at a time per process; other processes sweep too, the Lua scripts keep endings single.
    new Worker(SWEEP_QUEUE_NAME, handle, { ...common, concurrency: 1 }),
  ];
  for (const worker of workers) {
    worker.on('failed', (job, err) => deps.log.warn({ job: job?.name, id: job?.id, err: err.message }, 'revocation job failed; it will be retried'));
    worker.on('error', (err) => deps.log.error({ err: err.message }, 'revocation worker error'));
  }
  return {
    async close() {
      clearInterval(mend);
      await Promise.all(workers.map((w) => w.close()));
      await sweepQueue.close();
      // BullMQ leaves a client it was handed open; left alone it would keep reconnecting forever.
      if (isRedisClient(connection)) connection.disconnect();
    },
  };
}
