import { isLoggedWithRequest, type AuditEvent, type AuditLog } from './events.ts';

/**
 * Also emits every written event through `log` (one JSON log line), unless its request's
 * access-log line carries it. The line goes out before the
 * write, so an event is still on record when the backing store is down; a failing logger never
 * fails the write.
 */
export function withLogging(audit: AuditLog, log: (event: AuditEvent) => void): AuditLog {
  return {
    async write(event: AuditEvent): Promise<void> {
      try {
        if (!isLoggedWithRequest(event)) log(event);
      } catch {
        // the log is a second copy; the write below is the one that must succeed
      }
      await audit.write(event);
    },
    list: (filter) => audit.list(filter),
  };
}
