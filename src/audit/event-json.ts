import type { AuditEvent } from './events.ts';

const serialized = new WeakMap<AuditEvent, string>();

/**
 * An event's JSON, made once: an allowed exchange's event goes into the Redis audit stream with
 * its lease and onto the request's log line, and a ~1 KB stringify is worth not doing twice.
 * Events are not changed once built (the only mark they get is a symbol, which JSON leaves out).
 */
export function auditEventJson(event: AuditEvent): string {
  let json = serialized.get(event);
  if (json === undefined) {
    json = JSON.stringify(event);
    serialized.set(event, json);
  }
  return json;
}
