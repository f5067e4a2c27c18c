import type { ReplayGuard } from './replay-guard.ts';

/**
 * Replay guard for dev mode and tests (one process, no Redis). Expired keys are dropped lazily,
 * by a sweep at most every `sweepIntervalMs`, so a claim stays O(1) amortised.
 */
export class MemoryReplayGuard implements ReplayGuard {
  private readonly held = new Map<string, { until: number; owner: string }>();
  private readonly now: () => number;
  private readonly sweepIntervalMs: number;
  private nextSweepAt = 0;

  constructor(opts: { now?: () => number; sweepIntervalMs?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 10_000;
  }

  async claim(key: string, ttlSeconds: number, owner = ''): Promise<boolean> {
    const now = this.now();
    this.sweep(now);
    const held = this.held.get(key);
    if (held !== undefined && held.until > now) return false;
    this.held.set(key, { until: now + Math.max(1, Math.ceil(ttlSeconds)) * 1000, owner });
    return true;
  }

  async release(key: string, owner?: string): Promise<boolean> {
    if (owner !== undefined && this.held.get(key)?.owner !== owner) return false;
    return this.held.delete(key);
  }

  /** The owner that claimed `key`, while its claim holds. */
  holder(key: string): string | undefined {
    const held = this.held.get(key);
    return held !== undefined && held.until > this.now() ? held.owner : undefined;
  }

  /** Keys currently held (expired ones may linger until the next sweep); for tests and metrics. */
  get size(): number {
    return this.held.size;
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + this.sweepIntervalMs;
    for (const [key, { until }] of this.held) if (until <= now) this.held.delete(key);
  }
}
