import { Hono } from 'hono';
import { LeashError } from '../errors.ts';
import { revokeLeases } from '../revocation/revoke-leases.ts';
import { resolveCaller } from '../auth/caller.ts';
import { readForm } from '../request/read-form.ts';
import { auditRequest } from '../request/audit-request.ts';

/**
 * POST /revoke (RFC 7009). Possession is the authority: a live Leash token revokes its own
 * lease, whatever its audience. Unknown, foreign or already-ended tokens also get 200, so the
 * endpoint tells nothing about which tokens exist. A revocation leaves a `holder.lease_revoke` event
 * carrying the request's id, as an operator's does: the lease's `lease.revoked` is the worker's.
 */
export function revokeRoutes(): Hono {
  const app = new Hono();
  app.post('/revoke', async (c) => {
    const form = await readForm(c);
    const tokens = form.getAll('token');
    if (tokens.length !== 1 || !tokens[0]) throw new LeashError('invalid_request', 'exactly one token parameter is required');
    const deps = c.get('deps');
    const holder = await resolveCaller(deps, tokens[0], {});
    if (holder) {
      const actor = `holder:${holder.claims.sub}`;
      const reason = 'revoked by holder';
      const revoked = await revokeLeases(deps, [holder.lease.id], { reason, by: actor, path: 'holder' });
      const { id, subject, rule } = holder.lease;
      await auditRequest(c, { type: 'holder.lease_revoke', time: deps.now(), actor, request_id: c.get('requestId'), lease_id: id, subject, rule, reason, changed: revoked.length > 0 });
    }
    return c.body(null, 200, { 'Cache-Control': 'no-store' });
  });
  return app;
}
