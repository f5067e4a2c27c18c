import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Deps } from '../deps.ts';
import { hasScope, resolveCaller, type Caller } from '../auth/caller.ts';

export const SESSION_COOKIE = 'leash_dashboard';
export const READ_SCOPE = 'leash:leases:read';
const MAX_TOKEN_CHARS = 8192;

export interface Session {
  caller: Caller;
  /** Only ever used to derive the CSRF token; never rendered. */
  token: string;
}

export type SignInResult = { ok: true; session: Session } | { ok: false; status: 401 | 403; reason: string };

/**
 * Checks an operator token exactly as the operator API does (Leash-signed, aud = LEASH_ISSUER,
 * live lease), plus the read scope. Called on every dashboard request, so revoking the operator's
 * lease ends the session at once: no server-side session state to forget to clear.
 */
export async function verifyOperator(deps: Deps, token: string): Promise<SignInResult> {
  if (token.length === 0 || token.length > MAX_TOKEN_CHARS) return { ok: false, status: 401, reason: 'That is not a Leash token.' };
  const caller = await resolveCaller(deps, token, { audience: deps.config.issuer });
  if (!caller) return { ok: false, status: 401, reason: `That is not a live Leash token for this broker (audience ${deps.config.issuer}); it may have expired or been revoked.` };
  if (!hasScope(caller, READ_SCOPE)) return { ok: false, status: 403, reason: `The token is valid but lacks ${READ_SCOPE} (or leash:admin).` };
  return { ok: true, session: { caller, token } };
}

/** The session of this request, or why there is none (`absent` when no cookie was sent). */
export async function readSession(c: Context): Promise<SignInResult | { ok: false; status: 200; reason: 'absent' }> {
  const token = getCookie(c, SESSION_COOKIE);
  if (!token) return { ok: false, status: 200, reason: 'absent' };
  return verifyOperator(c.get('deps'), token);
}

/** HttpOnly so page script could never read it; Strict so no other site can make the browser send it. */
export function startSession(c: Context, session: Session): void {
  const deps = c.get('deps');
  const maxAge = Math.max(1, session.caller.claims.exp - Math.floor(deps.now() / 1000));
  setCookie(c, SESSION_COOKIE, session.token, {
    httpOnly: true,
    sameSite: 'Strict',
    path: '/dashboard',
    secure: deps.config.issuer.startsWith('https:'),
    maxAge,
  });
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/dashboard', secure: c.get('deps').config.issuer.startsWith('https:') });
}

/**
 * The CSRF token is an HMAC keyed by the session's own token: stateless across replicas, bound to
 * this session, and underivable by a page that cannot read the HttpOnly cookie.
 */
export const csrfTokenOf = (session: Session): string =>
  createHmac('sha256', session.token).update('leash-dashboard-csrf-v1').digest('base64url');

export function isCsrfValid(session: Session, presented: string | null): boolean {
  if (!presented) return false;
  const want = Buffer.from(csrfTokenOf(session));
  const got = Buffer.from(presented);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Defence in depth for form posts: a browser-sent Origin or Sec-Fetch-Site must say same-origin.
 * Accepts the origin of LEASH_ISSUER (behind a proxy) and of the request URL itself.
 */
export function isSameOriginPost(c: Context): boolean {
  const site = c.req.header('sec-fetch-site');
  if (site && site !== 'same-origin' && site !== 'none') return false;
  const origin = c.req.header('origin');
  if (origin === undefined) return true;
  return origin === new URL(c.get('deps').config.issuer).origin || origin === new URL(c.req.url).origin;
}

export const canRevoke = (session: Session): boolean => hasScope(session.caller, 'leash:leases:revoke');
export const canReadAudit = (session: Session): boolean => hasScope(session.caller, 'leash:audit:read');
