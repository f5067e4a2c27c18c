import { Hono } from 'hono';
import { audiencesOf } from '../mint/jwt/verify-own.ts';
import { auditRequest } from '../request/audit-request.ts';
import { LeashError } from '../errors.ts';
import { TASK_ID_PATTERN, TASK_ID_RULE } from '../exchange/request.ts';
import { revokeLeases } from '../revocation/revoke-leases.ts';
import { hasScope, resolveCaller } from '../auth/caller.ts';
import { bearerOf, credentialsRequired } from './authenticate.ts';


/**
 * POST /v1/tasks/{task_id}/complete ends every lease of the task. Any live token of that task
 * may say "done" (whatever its audience); so may an operator with leash:leases:revoke.
 */
export function taskRoutes(): Hono {
  const app = new Hono();
  app.post('/v1/tasks/:task_id{.+}/complete', async (c) => {
    const deps = c.get('deps');
    const taskId = c.req.param('task_id');
    if (!TASK_ID_PATTERN.test(taskId)) throw new LeashError('bad_request', TASK_ID_RULE);
    const token = bearerOf(c);
    if (!token) throw credentialsRequired('a live token of this task, or an operator token, is required');
    const caller = await resolveCaller(deps, token, {});
    if (!caller) throw new LeashError('invalid_token', 'the token is not a live Leash token', { status: 401 });
    const isTaskToken = caller.lease.task_id === taskId;
    const isOperator = audiencesOf(caller.claims).includes(deps.config.issuer) && hasScope(caller, 'leash:leases:revoke');
    if (!isTaskToken && !isOperator) {
      const whose = caller.lease.task_id === null ? 'belongs to no task' : 'belongs to another task';
      throw new LeashError('insufficient_scope', `the token ${whose}, and is not an operator token with leash:leases:revoke`, { status: 403 });
    }
    const actor = isTaskToken ? `task:${caller.claims.sub}` : caller.claims.sub;
    const ids = await deps.store.activeIdsOfTask(taskId);
    const revoked = await revokeLeases(deps, ids, { reason: 'task completed', by: actor, path: 'task' });
    await auditRequest(c, { type: 'task.completed', time: deps.now(), actor, request_id: c.get('requestId'), task_id: taskId, count: revoked.length, subject: caller.claims.sub });
    return c.json({ task_id: taskId, revoked: revoked.length, lease_ids: revoked.map((l) => l.id) });
  });
  return app;
}
