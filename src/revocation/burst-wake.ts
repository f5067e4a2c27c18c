import type { Queue } from 'bullmq';
import type { LeaseStore } from '../leases/store.ts';

/**
 * Adds a `sweep` job due when the next burst of expiries read ahead comes due, so that a burst (a
 * fleet's jobs started in the same minute) starts ending at its due time, not up to a sweep
 * interval later. The job id names the time: every worker asks for the same one and BullMQ keeps
 * one. Returns the waker to call after each sweep.
 */
export function burstWaker(store: Pick<LeaseStore, 'nextBurstMs'>, sweepQueue: Queue, now: () => number): () => Promise<void> {
  let asked: number | null = null;
  return async () => {
    const at = store.nextBurstMs?.(now()) ?? null;
    if (at === null || at === asked) return;
    await sweepQueue.add('sweep', {}, { jobId: `burst-${at}`, delay: Math.max(0, at - now()), removeOnComplete: true, removeOnFail: { count: 100 } });
    asked = at;
  };
}
