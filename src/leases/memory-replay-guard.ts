import type { ReplayGuard } from './replay-guard.ts';

/**
 * Replay guard for dev mode and tests (one process, no Redis). Expired keys are dropped lazily,
 * by a sweep at most every `sweepIntervalMs`, so a claim stays O(1) amortised.
 */
export class MemoryReplayGuard implements ReplayGuard {
  private readonly until = new Map<string, number>();
  private readonly now: () => number;
  private readonly sweepIntervalMs: number;
  private nextSweepAt = 0;

  constructor(opts: { now?: () => number; sweepIntervalMs?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 10_000;
  }

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const now = this.now();
    this.sweep(now);
    const held = this.until.get(key);
    if (held !== undefined && held > now) return false;
    this.until.set(key, now + Math.max(1, Math.ceil(ttlSeconds)) * 1000);
    return true;
  }

  async release(key: string): Promise<void> {
    this.until.delete(key);
  }

  /** Keys currently held (expired ones may linger until the next sweep); for tests and metrics. */
  get size(): number {
    return this.until.size;
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + this.sweepIntervalMs;
    for (const [key, until] of this.until) if (until <= now) this.until.delete(key);
  }
}
