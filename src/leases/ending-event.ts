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

/**
 * The JSON of an expiry's event (endingEvent, then JSON.stringify) in two halves: the fields that
 * do not depend on when it ends, worked out when the expiry is read ahead, and the rest
 * (expiredEventJson) when it ends. Stringifying each event as a burst came due was a tenth of the
 * worker's CPU.
 */
export function expiredEventFields(lease: Lease): string {
  const { id, rule, issuer, subject, task_id, kind, serial } = lease;
  return JSON.stringify({ lease_id: id, rule, issuer, subject, task_id, actor: 'worker', reason: 'expired', kind, serial }).slice(1, -1);
}

/** JSON.stringify(endingEvent(expired lease, endedMs)), from expiredEventFields(lease). */
export const expiredEventJson = (fields: string, endedMs: number, expiresAt: number): string =>
  `{"type":"lease.expired","time":${endedMs},${fields},"lag_ms":${endedMs - expiresAt * 1000}}`;
