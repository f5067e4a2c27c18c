import { Hono } from 'hono';
import { LeashError } from '../errors.ts';
import { revokeLeases } from '../revocation/revoke-leases.ts';
import { resolveCaller } from '../auth/caller.ts';
import { readForm } from '../request/read-form.ts';

/**
 * POST /revoke (RFC 7009). Possession is the authority: a live Leash token revokes its own
 * lease, whatever its audience. Unknown, foreign or already-ended tokens also get 200, so the
 * endpoint tells nothing about which tokens exist.
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
      await revokeLeases(deps, [holder.lease.id], { reason: 'revoked by holder', by: `holder:${holder.claims.sub}`, path: 'holder', requestId: c.get('requestId') });
    }
    return c.body(null, 200, { 'Cache-Control': 'no-store' });
  });
  return app;
}
