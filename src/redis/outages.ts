import { Cluster } from 'ioredis';
import type { RedisClient } from './connect.ts';

/** Signs of trouble closer together than this belong to one spell. */
const SPELL_GAP_MS = 10_000;

export interface OutageSpell {
  startMs: number;
  lastMs: number;
}

/**
 * When this process last lost touch with Redis, and when that spell began. Another API process may
 * have written a lease in it whose answer was lost, and be undoing it: the exchange tells a job's
 * retry of that proof to retry (503), not that its proof was used (400).
 */
export class RedisOutages {
  private spell: OutageSpell | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** A connection closed or failed, or a command got no answer. */
  seen(): void {
    const t = this.now();
    if (this.spell === null || t - this.spell.lastMs > SPELL_GAP_MS) this.spell = { startMs: t, lastMs: t };
    else this.spell.lastMs = t;
  }

  /** The latest spell, when its last sign came less than `withinMs` ago. */
  recent(withinMs: number): OutageSpell | null {
    return this.spell !== null && this.now() - this.spell.lastMs < withinMs ? { ...this.spell } : null;
  }
}

/**
 * Records every connection error and close of `redis` (each node's, for a Cluster) as a sign of
 * trouble, from its first ready on: before that nothing was written, and a Cluster client drops
 * seed nodes it finds under other names (`-node`) as it starts.
 */
export function watchOutages(redis: RedisClient, outages: RedisOutages): void {
  let connected = redis.status === 'ready';
  redis.once('ready', () => {
    connected = true;
  });
  const seen = (): void => {
    if (connected) outages.seen();
  };
  redis.on('error', seen);
  redis.on('close', seen);
  if (redis instanceof Cluster) {
    redis.on('node error', seen);
    redis.on('-node', seen);
  }
}
