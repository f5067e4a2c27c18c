export type AuditType =
  | 'exchange.allowed'
  | 'exchange.denied'
  | 'lease.revoked'
  | 'lease.expired'
  | 'task.completed'
  | 'holder.lease_revoke'
  | 'operator.lease_revoke'
  | 'operator.bulk_revoke'
  | 'break_glass.issued';

/** One audit record. Never carries a token, key or secret: ids, names and hashes only. */
export interface AuditEvent {
  /** Assigned by the log (Redis stream id or equivalent); absent before writing. */
  id?: string;
  type: AuditType;
  /** epoch milliseconds */
  time: number;
  /** Who caused it: the operator's `sub`, `holder:<sub>`, `task:<sub>`, `worker`, or the proof's subject. */
  actor?: string;
  /** Leash's id of the request; a client's own X-Request-Id is only ever client_request_id. */
  request_id?: string;
  client_request_id?: string | undefined;
  lease_id?: string;
  rule?: string;
  issuer?: string;
  subject?: string;
  proof_jti?: string | null;
  task_id?: string | null;
  /** What was asked for and what was granted (scopes, audiences, ttl, kind). */
  asked?: Record<string, unknown>;
  granted?: Record<string, unknown>;
  /** Claim keys and values the rule matched on (never the token itself). */
  claims?: Record<string, unknown>;
  reason?: string;
  client_addr?: string | null;
  count?: number;
  [extra: string]: unknown;
}

/**
 * Marks an event that is logged on its request's access-log line: the audit sinks then skip
 * their own line for it (one log line per request, as measured: a second line cost a quarter
 * of the token endpoint's CPU). A symbol, so it never reaches the stored JSON.
 */
export const LOGGED_WITH_REQUEST: unique symbol = Symbol('leash.audit.loggedWithRequest');

export const isLoggedWithRequest = (e: AuditEvent): boolean => (e as { [LOGGED_WITH_REQUEST]?: boolean })[LOGGED_WITH_REQUEST] === true;

export interface AuditFilter {
  lease_id?: string;
  subject?: string;
  type?: string;
  /** epoch milliseconds */
  since?: number;
  limit: number;
  cursor?: string | null;
}

export interface AuditPage {
  events: AuditEvent[];
  next_cursor: string | null;
}

/** Where audit events go: a Redis stream in production, an array in dev mode; both also log. */
export interface AuditLog {
  write(event: AuditEvent): Promise<void>;
  /** Newest first. */
  list(filter: AuditFilter): Promise<AuditPage>;
  /**
   * A retention pass where the caps are kept across several stores (Redis streams): the worker's
   * sweep runs it. Returns how many events it dropped.
   */
  trim?(): Promise<number>;
}
