import { Hono } from 'hono';
import { auditRequest } from '../request/audit-request.ts';
import { z } from 'zod';
import { MAX_PROOF_BYTES } from '../proofs/token-peek.ts';
import { TASK_ID_PATTERN, TASK_ID_RULE } from '../exchange/request.ts';
import { LeashError } from '../errors.ts';
import { matchesFilter } from '../leases/lease-filter.ts';
import type { LeaseSelector } from '../leases/store.ts';
import { revokeBySelector, revokeLeases } from '../revocation/revoke-leases.ts';
import { requireScope } from './authenticate.ts';
import { limitParam, readJson, singleQuery, validate } from './validate.ts';

const text = z.string().min(1).max(512);
/** As long as a proof's own subject may be: a kill switch must reach every lease it issued. */
export const subjectSelector = z.string().min(1).max(MAX_PROOF_BYTES);
/** A task id as the exchange takes it: a selector that could match no task is a typo, said so. */
const taskId = z.string().regex(TASK_ID_PATTERN, TASK_ID_RULE);
export const LeaseListQuery = z.strictObject({
  subject: subjectSelector.optional(),
  task_id: taskId.optional(),
  rule: text.optional(),
  issuer: text.optional(),
  status: z.enum(['active', 'revoked', 'expired']).optional(),
  limit: limitParam,
  cursor: z.string().max(512).optional(),
});
export const RevokeOneBody = z.strictObject({ reason: z.string().min(1).max(512).optional() });
export const BulkRevokeBody = z
  .strictObject({
    subject: subjectSelector.optional(),
    task_id: taskId.optional(),
    rule: text.optional(),
    issuer: text.optional(),
    reason: z.string().min(1).max(512).optional(),
    /** The caller's own lease is kept unless this is true: a kill switch never locks its operator out. */
    include_self: z.boolean().optional(),
  })
  .refine((b) => b.subject || b.task_id || b.rule || b.issuer, { message: 'name at least one of subject, task_id, rule, issuer' });

/** Operator API over leases: list, read, revoke one, bulk revoke (the kill switch). */
export function leaseRoutes(): Hono {
  const app = new Hono();

  app.get('/v1/leases', requireScope('leash:leases:read'), async (c) => {
    const q = validate(LeaseListQuery, singleQuery(c), 'query');
    const { limit, cursor, ...filter } = q;
    const page = await c.get('deps').store.list(filter, { limit, cursor: cursor ?? null });
    return c.json(page);
  });

  // Not "revoke": a GET of the bulk route is a 405 (Allow: POST), not a read of a lease so named.
  // (\x2f is '/', spelled so that method-not-allowed.ts can split the path at its slashes.)
  app.get('/v1/leases/:id{(?!revoke$)[^\\x2f]+}', requireScope('leash:leases:read'), async (c) => {
    const lease = await c.get('deps').store.get(c.req.param('id'));
    if (!lease) throw new LeashError('not_found', 'no lease with this id (it may have passed its retention)');
    return c.json(lease);
  });

  app.post('/v1/leases/revoke', requireScope('leash:leases:revoke'), async (c) => {
    const deps = c.get('deps');
    const body = validate(BulkRevokeBody, await readJson(c), 'body');
    const { reason, include_self: includeSelf, ...selector } = body;
    const caller = c.get('caller');
    const actor = caller.claims.sub;
    const why = reason ?? 'bulk revocation by operator';
    const keep = includeSelf ? undefined : caller.lease.id;
    const revoked = await revokeBySelector(deps, selector as LeaseSelector, { reason: why, by: actor, path: 'bulk' }, keep ? { keep } : {});
    // The caller's lease is live (it authenticated this call), so it was kept exactly when it matched.
    const keptSelf = keep !== undefined && matchesFilter(caller.lease, selector);
    await auditRequest(c, { type: 'operator.bulk_revoke', time: deps.now(), actor, request_id: c.get('requestId'), selector, reason: why, count: revoked, ...(keptSelf ? { kept_self: true } : {}) });
    return c.json(keptSelf ? { revoked, kept_self: true } : { revoked });
  });

  app.post('/v1/leases/:id/revoke', requireScope('leash:leases:revoke'), async (c) => {
    const deps = c.get('deps');
    const id = c.req.param('id');
    const body = validate(RevokeOneBody, await readJson(c, { optional: true }), 'body');
    const actor = c.get('caller').claims.sub;
    const existing = await deps.store.get(id);
    if (!existing) throw new LeashError('not_found', 'no lease with this id (it may have passed its retention)');
    const reason = body.reason ?? 'revoked by operator';
    const [revoked] = await revokeLeases(deps, [id], { reason, by: actor, path: 'operator' });
    await auditRequest(c, { type: 'operator.lease_revoke', time: deps.now(), actor, request_id: c.get('requestId'), lease_id: id, subject: existing.subject, rule: existing.rule, reason, changed: revoked !== undefined });
    return c.json(revoked ?? (await deps.store.get(id)) ?? existing);
  });

  return app;
}
