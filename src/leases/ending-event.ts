import type { AuditEvent } from '../audit/events.ts';
import type { Lease } from './lease.ts';

/**
 * The audit event of an ending (`lease.revoked` or `lease.expired`). The Redis store builds the same
 * shape in Lua (redis-scripts.ts, `finish`), since it writes the event in the step that ends the lease.
 */
export function endingEvent(lease: Lease, endedMs: number): AuditEvent {
  const expired = lease.status === 'expired';
  const event: AuditEvent = {
    type: expired ? 'lease.expired' : 'lease.revoked',
    time: endedMs,
    lease_id: lease.id,
    rule: lease.rule,
    issuer: lease.issuer,
    subject: lease.subject,
    task_id: lease.task_id,
    actor: expired ? 'worker' : (lease.revoked_by ?? 'worker'),
    reason: expired ? 'expired' : (lease.reason ?? 'revoked'),
    kind: lease.kind,
    serial: lease.serial,
  };
  if (expired) event['lag_ms'] = endedMs - lease.expires_at * 1000;
  return event;
}
