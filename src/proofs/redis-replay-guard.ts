import type { Cluster, Redis } from 'ioredis';
import { StoreUnavailableError } from '../errors.ts';
import type { ReplayGuard } from './replay-guard.ts';
import { replayKey } from '../leases/redis-keys.ts';

/**
 * Replay guard shared by every API replica: one `SET key 1 NX EX ttl` per exchange, atomic in
 * Redis, so two replicas racing on the same proof cannot both win. Any Redis error fails closed
 * (503): a proof we cannot mark as used must not be exchanged.
 */
export class RedisReplayGuard implements ReplayGuard {
  private readonly redis: Redis | Cluster;
  private readonly prefix: string;

  constructor(opts: { redis: Redis | Cluster; prefix: string }) {
    this.redis = opts.redis;
    this.prefix = opts.prefix;
  }

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlSeconds));
    try {
      return (await this.redis.set(this.key(key), '1', 'EX', ttl, 'NX')) === 'OK';
    } catch (err) {
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
