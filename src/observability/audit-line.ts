import type { Logger } from 'pino';
import type { AuditEvent } from '../audit/events.ts';
import { auditEventJson } from '../audit/event-json.ts';
import { rawLineTarget } from './pino-raw-line.ts';

/**
 * An audit event's log line, the line pino would write for `log.info({ audit }, 'audit')`, put
 * together from the event's JSON (audit/event-json.ts): a storm of expiries logs one per lease,
 * and pino's key-by-key serialization and redaction pass were a sixth of the worker's CPU there.
 * No redaction is lost: an audit event never holds a credential (test/security/secrets-in-logs).
 * Where pino's internals are not as expected (pino-raw-line.ts), pino writes the line itself.
 */
export function logAuditEvent(log: Logger, event: AuditEvent): void {
  if (!log.isLevelEnabled('info')) return;
  const target = rawLineTarget(log);
  if (target === null) {
    log.info({ audit: event }, 'audit');
    return;
  }
  target.stream.write(`{"level":${log.levels.values.info},"time":${Date.now()}${target.bindings},"audit":${auditEventJson(event)},"msg":"audit"}\n`);
}
