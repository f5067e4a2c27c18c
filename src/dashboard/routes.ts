import { Hono, type Context } from 'hono';
import { auditRequest } from '../request/audit-request.ts';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { readForm } from '../request/read-form.ts';
import { isLeaseId } from '../leases/lease-id.ts';
import { revokeLeases } from '../revocation/revoke-leases.ts';
import { PAGE_HEADERS, type Html } from './layout.ts';
import { gatherOverview } from './overview.ts';
import { canReadAudit, canRevoke, csrfTokenOf, endSession, isCsrfValid, isSameOriginPost, readSession, startSession, verifyOperator, type Session } from './session.ts';
import { renderDashboard, renderLogin, renderMessage, type Notice } from './views.ts';

const MAX_REASON = 512;

const respond = (c: Context, body: Html, status: number): Response | Promise<Response> =>
  c.html(body, status as ContentfulStatusCode, { ...PAGE_HEADERS, 'Cache-Control': 'no-store' });

/** Post/redirect/get, so a reload never re-submits a revocation. */
const backToDashboard = (c: Context, query = ''): Response => {
  c.header('Cache-Control', 'no-store');
  return c.redirect(`/dashboard${query}`, 303);
};

/**
 * The operator dashboard: server-rendered HTML, no script. Authentication is the operator API's
 * own (a Leash token with aud LEASH_ISSUER and a live lease), carried in an HttpOnly cookie because
 * a browser cannot attach a bearer header to a navigation.
 */
export function dashboardRoutes(): Hono {
  const app = new Hono();

  app.get('/dashboard', async function showDashboard(c) {
    const s = await readSession(c);
    if (!s.ok) return refuseSession(c, s.status, s.reason);
    const deps = c.get('deps');
    const session = s.session;
    const overview = await gatherOverview(deps, { withDenials: canReadAudit(session) });
    return respond(
      c,
      renderDashboard({
        operator: { sub: session.caller.claims.sub, scopes: session.caller.scopes, expiresAt: session.caller.claims.exp },
        nowSeconds: Math.floor(deps.now() / 1000),
        csrf: csrfTokenOf(session),
        canRevoke: canRevoke(session),
        overview,
        notice: await revokedNotice(c),
      }),
      200,
    );
  });

  app.post('/dashboard/login', async function signIn(c) {
    if (!isSameOriginPost(c)) return respond(c, renderMessage('Refused', { kind: 'bad', text: 'Cross-site form posts are refused.' }), 403);
    const form = await readForm(c);
    const r = await verifyOperator(c.get('deps'), (form.get('token') ?? '').trim());
    if (!r.ok) return respond(c, renderLogin({ kind: 'bad', text: r.reason }), r.status);
    startSession(c, r.session);
    c.get('deps').log.info({ request_id: c.get('requestId'), actor: r.session.caller.claims.sub, lease_id: r.session.caller.lease.id }, 'dashboard sign-in');
    return backToDashboard(c);
  });

  app.post('/dashboard/logout', async function signOut(c) {
    const s = await requireSession(c);
    if (s instanceof Response) return s;
    endSession(c);
    return backToDashboard(c);
  });

  app.post('/dashboard/leases/:id/revoke', async function revokeFromDashboard(c) {
    const s = await requireSession(c);
    if (s instanceof Response) return s;
    const { session, form } = s;
    if (!canRevoke(session)) return respond(c, renderMessage('Not allowed', { kind: 'bad', text: 'Revoking needs leash:leases:revoke (or leash:admin).' }), 403);
    const deps = c.get('deps');
    const id = c.req.param('id');
    const existing = isLeaseId(id) ? await deps.store.get(id) : null;
    if (!existing) return respond(c, renderMessage('No such lease', { kind: 'bad', text: 'No lease with this id (it may have passed its retention).' }), 404);
    const reason = (form.get('reason') ?? '').trim().slice(0, MAX_REASON) || 'revoked by operator (dashboard)';
    const actor = session.caller.claims.sub;
    const [revoked] = await revokeLeases(deps, [id], { reason, by: actor, path: 'operator' });
    await auditRequest(c, { type: 'operator.lease_revoke', time: deps.now(), actor, request_id: c.get('requestId'), lease_id: id, subject: existing.subject, rule: existing.rule, reason, changed: revoked !== undefined, via: 'dashboard' });
    return backToDashboard(c, `?revoked=${encodeURIComponent(id)}`);
  });

  return app;
}

/** No or ended session: the sign-in form, and the stale cookie dropped. */
function refuseSession(c: Context, status: 200 | 401 | 403, reason: string): Response | Promise<Response> {
  if (status === 200) return respond(c, renderLogin(null), 200);
  endSession(c);
  return respond(c, renderLogin({ kind: 'bad', text: `Signed out: ${reason}` }), status);
}

/** For form posts: same origin, a live session, and the CSRF token bound to that session. */
async function requireSession(c: Context): Promise<Response | { session: Session; form: URLSearchParams }> {
  if (!isSameOriginPost(c)) return respond(c, renderMessage('Refused', { kind: 'bad', text: 'Cross-site form posts are refused.' }), 403);
  const s = await readSession(c);
  if (!s.ok) return refuseSession(c, s.status === 200 ? 401 : s.status, s.status === 200 ? 'no session.' : s.reason);
  const form = await readForm(c);
  if (!isCsrfValid(s.session, form.get('csrf'))) return respond(c, renderMessage('Refused', { kind: 'bad', text: 'The form is stale or did not come from this dashboard (CSRF check failed). Reload and try again.' }), 403);
  return { session: s.session, form };
}

/** Confirms a revocation after the redirect, only for a lease that really is no longer active. */
async function revokedNotice(c: Context): Promise<Notice> {
  const id = c.req.query('revoked');
  if (!id || !isLeaseId(id)) return null;
  const lease = await c.get('deps').store.get(id);
  return lease && lease.status !== 'active' ? { kind: 'ok', text: `Lease ${id} revoked.` } : null;
}
