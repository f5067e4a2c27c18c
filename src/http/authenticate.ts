import type { Context, MiddlewareHandler } from 'hono';
import { LeashError } from '../errors.ts';
import { hasScope, resolveCallerOrWhy } from '../auth/caller.ts';

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
 * Guards Leash's protected endpoints: no or bad token 401, valid token without the scope 403.
 * `anyOf` lists scopes of which one suffices; leash:admin always does.
 */
export function requireScope(...anyOf: string[]): MiddlewareHandler {
  return async function requireLeashScope(c, next) {
    const token = bearerOf(c);
    if (!token) throw credentialsRequired('a Leash access token is required (Authorization: Bearer)');
    const issuer = c.get('deps').config.issuer;
    const r = await resolveCallerOrWhy(c.get('deps'), token, { audience: issuer });
    if ('why' in r && r.why === 'audience') throw unauthorized(`the access token is not for this broker: its aud does not include ${issuer}`);
    if ('why' in r) throw unauthorized('the access token is not a live Leash token for this broker');
    const { caller } = r;
    if (!anyOf.some((s) => hasScope(caller, s))) {
      throw new LeashError('insufficient_scope', `this endpoint needs scope ${anyOf.join(' or ')}`, { status: 403 });
    }
    c.set('caller', caller);
    await next();
  };
}
