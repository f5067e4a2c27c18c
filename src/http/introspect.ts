import { Hono } from 'hono';
import { LeashError } from '../errors.ts';
import { resolveCaller } from '../auth/caller.ts';
import { requireScope } from './authenticate.ts';
import { readForm } from '../request/read-form.ts';

/**
 * POST /introspect (RFC 7662). The answer starts from `{active: false}` and only a verified
 * Leash token with a live lease turns it into claims: expired, revoked and foreign tokens all
 * look the same from outside.
 */
export function introspectRoutes(): Hono {
  const app = new Hono();
  app.post('/introspect', requireScope('leash:introspect'), async (c) => {
    const form = await readForm(c);
    const tokens = form.getAll('token');
    if (tokens.length !== 1 || !tokens[0]) throw new LeashError('invalid_request', 'exactly one token parameter is required');
    const subject = await resolveCaller(c.get('deps'), tokens[0], {});
    if (!subject) return c.json({ active: false }, 200, { 'Cache-Control': 'no-store' });
    const { claims, lease } = subject;
    return c.json(
      Object.assign({}, claims, { active: true, token_type: 'Bearer', lease_id: lease.id, task_id: lease.task_id ?? undefined }),
      200,
      { 'Cache-Control': 'no-store' },
    );
  });
  return app;
}
