/** Leases written straight through the store for the Redis-side sections, shaped like real ones. */
import { randomUUID } from 'node:crypto';
import type { Lease } from '../src/leases/lease.ts';
import { newLeaseId } from '../src/leases/lease-id.ts';
import type { LeaseStore } from '../src/leases/store.ts';

export interface LeaseShape {
  rule?: string;
  subject: string;
  issuedAt: number;
  expiresAt: number;
  taskId?: string | null;
  proofIss?: string;
}

/** A GitHub Actions deploy lease with realistic field sizes (as the exchange writes it). */
export function benchLease(s: LeaseShape): Lease {
  const rule = s.rule ?? 'gh-deploy';
  return {
    id: newLeaseId(s.subject),
    kind: 'jwt',
    status: 'active',
    rule,
    issuer: 'github',
    subject: s.subject,
    scopes: ['deploy:write', 'artifacts:read'],
    audiences: ['https://deploy.acme.internal'],
    task_id: s.taskId ?? null,
    serial: null,
    issued_at: s.issuedAt,
    expires_at: s.expiresAt,
    revoked_at: null,
    ended_at: null,
    reason: null,
    revoked_by: null,
    proof_iss: s.proofIss ?? 'https://token.actions.githubusercontent.com',
    proof_sub: s.subject,
    proof_jti: randomUUID(),
    client_addr: '10.1.2.3',
  };
}

/**
 * Creates `count` leases with up to `inFlight` create calls outstanding (ioredis pipelines them
 * on one connection). Stops early when `deadline` (epoch ms) passes; returns how many it wrote.
 */
export async function createMany(
  store: LeaseStore,
  count: number,
  make: (i: number) => Lease,
  opts: { inFlight?: number; deadline?: number; onProgress?: (done: number) => void } = {},
): Promise<number> {
  const inFlight = opts.inFlight ?? 1_000;
  let next = 0;
  let done = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop && next < count) {
      const i = next++;
      await store.create(make(i));
      done++;
      if (done % 50_000 === 0) {
        opts.onProgress?.(done);
        if (opts.deadline !== undefined && Date.now() > opts.deadline) stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, () => worker()));
  return done;
}
