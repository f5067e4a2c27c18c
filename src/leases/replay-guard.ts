/**
 * Single-use proofs: `claim` succeeds once per key until the key expires. `release` gives a key
 * back when the exchange that claimed it failed before anything was issued. The lease store
 * claims with the lease write (CreateOptions.replay); proofs/ only names the key and its ttl.
 */
export interface ReplayGuard {
  claim(key: string, ttlSeconds: number): Promise<boolean>;
  release(key: string): Promise<void>;
}
