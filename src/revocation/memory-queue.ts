import type { RevocationQueue } from './queue.ts';
import { finalizeRevoked, sweepOnce, type EndingDeps } from './endings.ts';

/**
 * Dev mode's in-process stand-in for the BullMQ queue and worker: the same effects, the same
 * sweep, run on timers in this process.
 */
export function createMemoryRevocationQueue(deps: EndingDeps, sweepIntervalMs: number): RevocationQueue & { start(): void } {
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;
  let sweeping = false;
  const sweep = async (): Promise<void> => {
    if (sweeping) return;
    sweeping = true;
    try {
      await sweepOnce(deps);
    } catch (err) {
      deps.log.error({ err }, 'sweep failed');
    } finally {
      sweeping = false;
    }
  };
  return {
    start() {
      timer ??= setInterval(() => void sweep(), sweepIntervalMs);
      timer.unref();
    },
    async enqueue(ids) {
      pending += 1;
      setImmediate(() => {
        finalizeRevoked(deps, ids)
          .catch((err) => deps.log.error({ err }, 'revoke effects failed; the sweep will retry'))
          .finally(() => (pending -= 1));
      });
    },
    depth: async () => pending,
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
