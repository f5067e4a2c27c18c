import { randomUUID } from 'node:crypto';
import type { Lease } from '../../src/leases/lease.ts';
import type { RevokeInput } from '../../src/leases/store.ts';
import { newLeaseId } from '../../src/leases/lease-id.ts';

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A lease with realistic field sizes (a GitHub Actions deploy job); overrides win. */
export function makeLease(over: Partial<Lease> = {}): Lease {
  const now = nowSeconds();
  const rule = over.rule ?? 'app-deploy';
  const subject = over.subject ?? 'repo:octo-org/octo-repo:environment:prod';
  return {
    kind: 'jwt',
    status: 'active',
    rule,
    issuer: 'github',
    subject,
    scopes: ['deploy:write', 'artifacts:read'],
    audiences: ['https://deploy.acme.internal'],
    task_id: null,
    serial: null,
    issued_at: now,
    expires_at: now + 600,
    revoked_at: null,
    ended_at: null,
    reason: null,
    revoked_by: null,
    proof_iss: 'https://token.actions.githubusercontent.com',
    proof_sub: subject,
    proof_jti: randomUUID(),
    client_addr: '203.0.113.7',
    ...over,
    id: over.id ?? newLeaseId(subject),
  };
}

export const revokeInput = (over: Partial<RevokeInput> = {}): RevokeInput => ({
  reason: 'compromised runner',
  by: 'operator:alice',
  at: nowSeconds(),
  ...over,
});
