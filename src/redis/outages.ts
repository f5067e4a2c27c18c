import type { RedisClient } from './connect.ts';

/** Signs of trouble closer together than this belong to one spell, unless the client was back between. */
const SPELL_GAP_MS = 10_000;

export interface OutageSpell {
  /** The spell's first sign (epoch ms). */
  startMs: number;
  /** Its latest sign. */
  lastMs: number;
  /** When the client was first ready again in it, if it was (a Cluster client stays ready). */
  backMs?: number;
}

/**
 * When this process last lost its connection to Redis, and when that spell began. Another API
 * process may have lost the answer of a lease write then, and be undoing it (exchange/
 * replay-after-outage.ts).
 */
export class RedisOutages {
  private spell: OutageSpell | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** A connection to Redis closed or failed. */
  seen(): void {
    const t = this.now();
    const s = this.spell;
    if (s === null || s.backMs !== undefined || t - s.lastMs > SPELL_GAP_MS) this.spell = { startMs: t, lastMs: t };
    else s.lastMs = t;
  }

  /** The client is ready again. */
  back(): void {
    if (this.spell !== null && this.spell.backMs === undefined) this.spell.backMs = this.now();
  }

  /** The latest spell, when its last sign came less than `withinMs` ago. */
  recent(withinMs: number): OutageSpell | null {
    return this.spell !== null && this.now() - this.spell.lastMs < withinMs ? { ...this.spell } : null;
  }
}

/**
 * Records each connection error and close of `redis` as a sign of trouble, from its first ready on
 * (before that nothing was written), and each ready after as its return. A Cluster client counts
 * only when it loses every node: its node errors and ends also come from a stale slot map after a
 * failover, from redirections and from lazy connections, where a write made a moment later
 * succeeds and its proof must then be a replay (400) at once.
 */
export function watchOutages(redis: RedisClient, outages: RedisOutages): void {
  let connected = redis.status === 'ready';
  redis.on('ready', () => {
    if (connected) outages.back();
    connected = true;
  });
  const seen = (): void => {
    if (connected) outages.seen();
  };
  redis.on('error', seen);
  redis.on('close', seen);
}
