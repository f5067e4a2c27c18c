import type { RedisClient } from '../redis/connect.ts';
import { StoreUnavailableError } from '../errors.ts';
import type { ReplayGuard } from './replay-guard.ts';
import { replayKey } from '../redis/keys.ts';
import { NO_WAIT, NotReplicatedError, writeThenWait, type Durability } from '../redis/replicated-write.ts';
import { corkUntilNextTurn } from '../redis/write-batching.ts';

/**
 * Replay guard shared by every API replica: one `SET key 1 NX EX ttl` per exchange, atomic in
 * Redis, so two replicas racing on the same proof cannot both win. Any Redis error fails closed
 * (503): a proof we cannot mark as used must not be exchanged.
 */
export class RedisReplayGuard implements ReplayGuard {
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly durability: Durability;

  /** With `durability`, a claim counts only once WAIT confirms it on that many replicas. */
  constructor(opts: { redis: RedisClient; prefix: string; durability?: Durability }) {
    this.redis = opts.redis;
    this.prefix = opts.prefix;
    this.durability = opts.durability ?? NO_WAIT;
  }

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlSeconds));
    try {
      // On Cluster every exchange claims here first (another slot than its lease): batched as the
      // lease writes are.
      corkUntilNextTurn(this.redis);
      if (this.durability.replicas === 0) return (await this.redis.set(this.key(key), '1', 'EX', ttl, 'NX')) === 'OK';
      return (await writeThenWait(this.redis, this.durability, (p) => p.set(this.key(key), '1', 'EX', ttl, 'NX'))) === 'OK';
    } catch (err) {
      if (err instanceof NotReplicatedError) {
        if (err.result !== 'OK') return false; // claimed before: a replay, whatever the replicas say
        // Ours but unconfirmed: the proof may be tried again rather than burnt (nothing was issued).
        await this.release(key).catch(() => undefined);
        throw err;
      }
      throw new StoreUnavailableError('replay guard: SET NX failed', err);
    }
  }

  async release(key: string): Promise<void> {
    try {
      await this.redis.del(this.key(key));
    } catch (err) {
      throw new StoreUnavailableError('replay guard: DEL failed', err);
    }
  }

  private key(key: string): string {
    return replayKey(this.prefix, key);
  }
}
