import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { RevocationQueue } from './queue.ts';
import { finalizeRevoked, sweepOnce, type EndingDeps } from './endings.ts';

export const QUEUE_NAME = 'leash-revocations';
const SWEEP_SCHEDULER_ID = 'leash-sweep';

interface RevokeJob { ids: string[] }

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
  return {
    queue,
    async enqueue(ids) {
      await queue.add('revoke', { ids });
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
 * ending happen once whatever the retries, stalls or duplicates.
 */
export async function startRevocationWorker(
  connection: ConnectionOptions,
  prefix: string,
  deps: EndingDeps,
  opts: { sweepIntervalMs: number; concurrency?: number },
): Promise<{ close(): Promise<void> }> {
  const queue = new Queue(QUEUE_NAME, { connection, prefix: `{${prefix}bull}` });
  await queue.upsertJobScheduler(SWEEP_SCHEDULER_ID, { every: opts.sweepIntervalMs }, {
    name: 'sweep',
    opts: { removeOnComplete: true, removeOnFail: { count: 100 } },
  });
  const worker = new Worker(
    QUEUE_NAME,
    async (job: Job) => {
      if (job.name === 'revoke') return (await finalizeRevoked(deps, (job.data as RevokeJob).ids)).length;
      if (job.name === 'sweep') return sweepOnce(deps);
      throw new Error(`unknown job ${job.name}`);
    },
    { connection, prefix: `{${prefix}bull}`, concurrency: opts.concurrency ?? 4, stalledInterval: 5_000, maxStalledCount: 5 },
  );
  worker.on('failed', (job, err) => deps.log.warn({ job: job?.name, id: job?.id, err: err.message }, 'revocation job failed; it will be retried'));
  worker.on('error', (err) => deps.log.error({ err: err.message }, 'revocation worker error'));
  return {
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
