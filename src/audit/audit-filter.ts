import type { AuditEvent, AuditFilter } from './events.ts';

export const matchesAudit = (e: AuditEvent, f: AuditFilter): boolean =>
  (f.lease_id === undefined || e.lease_id === f.lease_id) &&
  (f.subject === undefined || e.subject === f.subject) &&
  (f.type === undefined || e.type === f.type) &&
  (f.since === undefined || e.time >= f.since);
