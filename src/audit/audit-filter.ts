import { LeashError } from '../errors.ts';
import type { AuditEvent, AuditFilter } from './events.ts';

export const matchesAudit = (e: AuditEvent, f: AuditFilter): boolean =>
  (f.lease_id === undefined || e.lease_id === f.lease_id) &&
  (f.subject === undefined || e.subject === f.subject) &&
  (f.type === undefined || e.type === f.type) &&
  (f.since === undefined || e.time >= f.since);

/** Audit cursors are the opaque base64url of the last examined event's id (encodeCursor of list-cursor.ts). */
export function decodeAuditCursor<T>(cursor: string, parse: (id: string) => T | null): T {
  const parsed = parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (parsed === null) throw new LeashError('bad_request', 'the cursor is not one this server issued');
  return parsed;
}
