import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Lowers this process's CPU priority to `nice` (1-19); a thread already lower is left as it is
 * (raising one back needs privileges). Linux keeps a nice value per thread, and setpriority(2) on
 * the process id reaches only the main thread, so every thread running now is set; threads started
 * later inherit it. Returns how many threads now run at `nice` or lower.
 */
export function lowerCpuPriority(nice: number): number {
  let tids: number[];
  try {
    tids = readdirSync('/proc/self/task').map(Number).filter(Number.isInteger);
  } catch {
    tids = [0]; // not Linux: the process as a whole
  }
  let lowered = 0;
  for (const tid of tids) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
      lowered++;
    } catch {
      // A thread that exited since the listing, or a platform that refuses: it runs as before.
    }
  }
  return lowered;
}

/**
 * LEASH_WORKER_NICE for a process of `role`: only a dedicated worker (LEASH_ROLE=worker) lowers
 * itself, since in `all` and `api` the same event loop serves requests. Returns how many threads run
 * at that nice or lower, or null when it does not apply.
 */
export function lowerWorkerCpuPriority(config: { role: string; workerNice: number }): number | null {
  return config.role === 'worker' && config.workerNice > 0 ? lowerCpuPriority(config.workerNice) : null;
}
