import type { AuditEvent, AuditLog } from './events.ts';

/**
 * Also emits every written event through `log` (which decides whether it needs a line of its own). The line goes out before the
 * write, so an event is still on record when the backing store is down; a failing logger never
 * fails the write.
 */
export function withLogging(audit: AuditLog, log: (event: AuditEvent) => void): AuditLog {
  const logged: AuditLog = {
    async write(event: AuditEvent): Promise<void> {
      try {
        log(event);
      } catch {
        // the log is a second copy; the write below is the one that must succeed
      }
      await audit.write(event);
    },
    list: (filter) => audit.list(filter),
  };
  if (audit.trim) logged.trim = () => audit.trim!();
  return logged;
}
