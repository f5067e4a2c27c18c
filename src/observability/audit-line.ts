import type { Logger } from 'pino';
import type { AuditEvent } from '../audit/events.ts';
import { auditEventJson } from '../audit/event-json.ts';
import { rawLineTarget } from './pino-raw-line.ts';

/**
 * Audit events' log lines, the lines pino would write for `log.info({ audit }, 'audit')` each,
 * put together from the events' JSON (audit/event-json.ts) and handed to the destination in one
 * write: a storm of expiries logs one line per lease, and both pino's key-by-key serialization
 * and a destination write per line were each about a sixth of the worker's CPU there (sonic-boom
 * measures the whole buffered text on every write). No redaction is lost: an audit event never
 * holds a credential (test/security/secrets-in-logs). Where pino's internals are not as expected
 * (pino-raw-line.ts), pino writes each line itself.
 */
export function logAuditEvents(log: Logger, events: readonly AuditEvent[]): void {
  if (events.length === 0 || !log.isLevelEnabled('info')) return;
  const target = rawLineTarget(log);
  if (target === null) {
    for (const event of events) log.info({ audit: event }, 'audit');
    return;
  }
  const head = `{"level":${log.levels.values.info},"time":${Date.now()}${target.bindings},"audit":`;
  let text = '';
  for (const event of events) text += `${head}${auditEventJson(event)},"msg":"audit"}\n`;
  target.stream.write(text);
}
