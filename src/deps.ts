import type { AuditLog } from './audit/events.ts';
import type { AbandonedLeases } from './exchange/abandoned-leases.ts';
import type { Config } from './config.ts';
import type { LeaseStore } from './leases/store.ts';
import type { KeyStore } from './mint/jwt/keystore.ts';
import type { CertificateAuthority, RetiredAuthority } from './mint/x509/ca-store.ts';
import type { Logger } from './observability/logger.ts';
import type { RedisOutages } from './redis/outages.ts';
import type { Metrics } from './observability/metrics.ts';
import type { Policy } from './policy/types.ts';
import type { ProofVerifier } from './proofs/proof-verifier.ts';
import type { RevocationQueue } from './revocation/queue.ts';
import type { WalkProcess } from './revocation/walk-process.ts';
import type { RateLimiter } from './rate-limit/rate-limiter.ts';

/** Everything a request handler or the worker needs; built once by createDeps, reached via c.get('deps'). */
export interface Deps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  store: LeaseStore;
  audit: AuditLog;
  keys: KeyStore;
  proofs: ProofVerifier;
  /** The policy in force; reload swaps it atomically. */
  policy(): Policy;
  /** Re-reads the policy file; a bad file keeps the last good policy in force and is reported. */
  reloadPolicy(): { ok: true } | { ok: false; error: string };
  /** Null when no CA is configured: certificate requests are then refused. */
  ca: CertificateAuthority | null;
  /** CAs taken out of service whose certificates may still be live: GET /crl/<key id> serves their CRLs. */
  retiredCas: RetiredAuthority[];
  revocations: RevocationQueue;
  /** API processes on Redis: the process that walks bulk revocations and queues their effects. */
  walker?: WalkProcess;
  rateLimiter: RateLimiter;
  /** Leases whose write the exchange could not count as done: ended, and their proofs freed, with retries. */
  abandoned: AbandonedLeases;
  /** When this process last lost touch with Redis (never, on the in-memory store). */
  outages: RedisOutages;
  /** epoch milliseconds; injectable for clock-skew tests */
  now(): number;
  /** Health of the backing store and keys, for /readyz. */
  ready(): Promise<{ ok: boolean; checks: Record<string, string> }>;
  close(): Promise<void>;
}
