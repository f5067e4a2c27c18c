/**
 * Single-use proofs: `claim` succeeds once per key until the key expires. `release` gives a key
 * back when the exchange that claimed it failed before anything was issued; given an owner (the
 * claiming lease's id), only while that owner holds it. The lease store claims with the lease write
 * (CreateOptions.replay); proofs/ only names the key and its ttl.
 */
export interface ReplayGuard {
  claim(key: string, ttlSeconds: number, owner?: string): Promise<boolean>;
  release(key: string, owner?: string): Promise<boolean>;
}
