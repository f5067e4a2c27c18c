import type { AuditEvent } from '../audit/events.ts';
import type { Deps } from '../deps.ts';
import type { Caller } from '../auth/caller.ts';

declare module 'hono' {
  interface ContextVariableMap {
    deps: Deps;
    requestId: string;
    /** The caller's own X-Request-Id, when valid and not trusted as the request's id. */
    clientRequestId: string;
    clientAddr: string | null;
    caller: Caller;
    /** The audit event a request produced, logged on its access-log line. */
    audit: AuditEvent;
    /** Why the request was refused: its error code and the private detail (never sent). */
    refusal: { code: string; detail: string | undefined };
  }
}

export {};
