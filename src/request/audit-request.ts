import type { Context } from 'hono';
import { LOGGED_WITH_REQUEST, type AuditEvent } from '../audit/events.ts';

/** Records a request's audit event in the audit log; its log line is the request's access-log line. */
export async function auditRequest(c: Context, event: AuditEvent): Promise<void> {
  const clientRequestId = c.get('clientRequestId');
  if (clientRequestId !== undefined) event.client_request_id = clientRequestId;
  const marked = Object.assign(event, { [LOGGED_WITH_REQUEST]: true });
  c.set('audit', marked);
  await c.get('deps').audit.write(marked);
}
