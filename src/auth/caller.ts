import type { Deps } from '../deps.ts';
import { isLive } from '../leases/lease.ts';
import type { Lease } from '../leases/lease.ts';
import { audiencesOf, scopesOf, verifyOwnToken, type LeashTokenClaims } from '../mint/jwt/verify-own.ts';

export const ADMIN_SCOPE = 'leash:admin';

/** Who is calling, once a Leash bearer token has been verified against its live lease. */
export interface Caller {
  claims: LeashTokenClaims;
  lease: Lease;
  scopes: string[];
}

/**
 * Resolves a Leash token to its caller: signature by a published Leash key, Leash as issuer,
 * not expired, and a lease that is still active. `audience` restricts whom the token is for
 * (Leash's own endpoints need LEASH_ISSUER); holder paths (revoke, task completion) pass none.
 * Shared by the API (http/authenticate.ts) and the dashboard's session check.
 */
export async function resolveCaller(deps: Deps, token: string, opts: { audience?: string }): Promise<Caller | null> {
  const r = await resolveCallerOrWhy(deps, token, opts);
  return 'caller' in r ? r.caller : null;
}

/**
 * resolveCaller, or why not: `audience` only for a live Leash token issued for someone else, which
 * its holder may be told (it is in the token); anything else is `invalid` alike.
 */
export async function resolveCallerOrWhy(deps: Deps, token: string, opts: { audience?: string }): Promise<{ caller: Caller } | { why: 'invalid' | 'audience' }> {
  const nowSeconds = Math.floor(deps.now() / 1000);
  const v = verifyOwnToken(token, deps.keys, { issuer: deps.config.issuer, nowSeconds, skewSeconds: 0 });
  if (!v.ok) return { why: 'invalid' };
  const lease = await deps.store.get(v.claims.jti);
  if (!lease || !isLive(lease, nowSeconds)) return { why: 'invalid' };
  if (opts.audience !== undefined && !audiencesOf(v.claims).includes(opts.audience)) return { why: 'audience' };
  return { caller: { claims: v.claims, lease, scopes: scopesOf(v.claims) } };
}

export const hasScope = (caller: Caller, scope: string): boolean =>
  caller.scopes.includes(scope) || caller.scopes.includes(ADMIN_SCOPE);
