import { Hono } from 'hono';
import { z } from 'zod';
import { requireScope } from './authenticate.ts';
import { limitParam, singleQuery, validate } from './validate.ts';
import { subjectSelector } from './leases.ts';

/**
 * Epoch values below this are seconds (they reach the year 5138), values from it on milliseconds
 * (from March 1973): lease times and JWT claims are in seconds, audit event times in milliseconds,
 * and either may be pasted here.
 */
const FIRST_EPOCH_MS = 1e11;

/** `since` as epoch seconds, epoch milliseconds, or an ISO 8601 time; returned in milliseconds. */
const since = z.string().transform((v, ctx) => {
  const epoch = /^\d+(\.\d+)?$/.test(v) ? Number(v) : undefined;
  const n = epoch === undefined ? Date.parse(v) : epoch < FIRST_EPOCH_MS ? epoch * 1000 : epoch;
  if (!Number.isFinite(n)) {
    ctx.addIssue({ code: 'custom', message: 'must be epoch seconds, epoch milliseconds or an ISO 8601 time' });
    return z.NEVER;
  }
  return n;
});

export const AuditQuery = z.strictObject({
  lease_id: z.string().min(1).max(128).optional(),
  subject: subjectSelector.optional(),
  type: z.string().min(1).max(64).optional(),
  since: since.optional(),
  limit: limitParam,
  cursor: z.string().max(512).optional(),
});

export function auditRoutes(): Hono {
  const app = new Hono();
  app.get('/v1/audit', requireScope('leash:audit:read'), async (c) => {
    const q = validate(AuditQuery, singleQuery(c), 'query');
    const page = await c.get('deps').audit.list({ ...q, cursor: q.cursor ?? null });
    return c.json(page);
  });
  return app;
}
