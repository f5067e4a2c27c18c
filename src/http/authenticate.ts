import type { Context, MiddlewareHandler } from 'hono';
import type { Deps } from '../deps.ts';
import { LeashError } from '../errors.ts';
import { isLive } from '../leases/lease.ts';
import { audiencesOf, scopesOf, verifyOwnToken } from '../mint/jwt/verify-own.ts';
import type { Caller } from './context.ts';

export const ADMIN_SCOPE = 'leash:admin';

const unauthorized = (description: string): LeashError => new LeashError('invalid_token', description, { status: 401 });

/**
 * No credentials (or another scheme than Bearer) at all: RFC 6750 section 3.1 says the challenge
 * then carries no error code, only the scheme and realm.
 */
export const credentialsRequired = (description: string): LeashError =>
  new LeashError('invalid_token', description, { status: 401, headers: { 'WWW-Authenticate': 'Bearer realm="leash"' } });

export function bearerOf(c: Context): string | undefined {
  const header = c.req.header('authorization');
  if (!header) return undefined;
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i.exec(header.trim());
  return m?.[1];
}

/**
 * Resolves a Leash token to its caller: signature by a published Leash key, Leash as issuer,
 * not expired, and a lease that is still active. `audience` restricts whom the token is for
 * (Leash's own endpoints need LEASH_ISSUER); holder paths (revoke, task completion) pass none.
 */
export async function resolveCaller(deps: Deps, token: string, opts: { audience?: string }): Promise<Caller | null> {
  const nowSeconds = Math.floor(deps.now() / 1000);
  const v = verifyOwnToken(token, deps.keys, { issuer: deps.config.issuer, nowSeconds, skewSeconds: 0 });
  if (!v.ok) return null;
  if (opts.audience !== undefined && !audiencesOf(v.claims).includes(opts.audience)) return null;
  const lease = await deps.store.get(v.claims.jti);
  if (!lease || !isLive(lease, nowSeconds)) return null;
  return { claims: v.claims, lease, scopes: scopesOf(v.claims) };
}

export const hasScope = (caller: Caller, scope: string): boolean =>
  caller.scopes.includes(scope) || caller.scopes.includes(ADMIN_SCOPE);

/**
 * Guards Leash's protected endpoints: no or bad token 401, valid token without the scope 403.
 * `anyOf` lists scopes of which one suffices; leash:admin always does.
 */
export function requireScope(...anyOf: string[]): MiddlewareHandler {
  return async function requireLeashScope(c, next) {
    const token = bearerOf(c);
    if (!token) throw credentialsRequired('a Leash access token is required (Authorization: Bearer)');
    const caller = await resolveCaller(c.get('deps'), token, { audience: c.get('deps').config.issuer });
    if (!caller) throw unauthorized('the access token is not a live Leash token for this broker');
    if (!anyOf.some((s) => hasScope(caller, s))) {
      throw new LeashError('insufficient_scope', `this endpoint needs scope ${anyOf.join(' or ')}`, { status: 403 });
    }
    c.set('caller', caller);
    await next();
  };
}
