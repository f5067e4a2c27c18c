import type { AuditEvent } from './events.ts';

// The JSON rides on the event under a symbol (JSON.stringify leaves symbol keys out). A WeakMap
// did the same, but a storm of expiries put 100,000 entries a few seconds into it, and weak
// entries are costly to collect: the worker's GC time grew with them.
const JSON_OF: unique symbol = Symbol('leash.audit.json');
type WithJson = { [JSON_OF]?: string };
// Not enumerable: Object.assign and spreads copy enumerable symbol keys, and a copy given another
// id must not carry this JSON.
const keep = (event: AuditEvent, json: string): void => void Object.defineProperty(event, JSON_OF, { value: json, writable: true, configurable: true, enumerable: false });

/**
 * An event's JSON, made once: an allowed exchange's event goes into the Redis audit stream with
 * its lease and onto the request's log line, and a ~1 KB stringify is worth not doing twice.
 * Events are not changed once built (the only mark they get is a symbol, which JSON leaves out).
 */
export function auditEventJson(event: AuditEvent): string {
  let json = (event as WithJson)[JSON_OF];
  if (json === undefined) {
    json = JSON.stringify(event);
    keep(event, json);
  }
  return json;
}

/**
 * Marks `event` (which is then given its stream `id`) with its JSON: `json` is the event's JSON
 * before the id, as written to the stream. The id goes last, where JSON.stringify would put a key
 * added last; stream ids are digits and dashes, so nothing needs escaping. Saves a second
 * stringify of every ending's event for its log line.
 */
export function withStreamId<E extends AuditEvent>(event: E, json: string, id: string): E & { id: string } {
  const withId = Object.assign(event, { id });
  keep(withId, `${json.slice(0, -1)},"id":"${id}"}`);
  return withId;
}
