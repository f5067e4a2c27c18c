import { Hono } from 'hono';
import { z } from 'zod';
import { requireScope } from './authenticate.ts';
import { validate } from './validate.ts';

/** `since` as epoch milliseconds or an ISO 8601 time. */
const since = z.string().transform((v, ctx) => {
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) {
    ctx.addIssue({ code: 'custom', message: 'must be epoch milliseconds or an ISO 8601 time' });
    return z.NEVER;
  }
  return n;
});

export const AuditQuery = z.strictObject({
  lease_id: z.string().min(1).max(128).optional(),
  subject: z.string().min(1).max(512).optional(),
  type: z.string().min(1).max(64).optional(),
  since: since.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(512).optional(),
});

export function auditRoutes(): Hono {
  const app = new Hono();
  app.get('/v1/audit', requireScope('leash:audit:read'), async (c) => {
    const q = validate(AuditQuery, c.req.query(), 'query');
    const page = await c.get('deps').audit.list({ ...q, cursor: q.cursor ?? null });
    return c.json(page);
  });
  return app;
}
