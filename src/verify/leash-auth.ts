import type { Context, MiddlewareHandler } from 'hono';
import { LeashTokenInvalidError, LeashVerifyError } from './errors.ts';
import type { LeashClaims, LeashVerifier } from './verifier.ts';

declare module 'hono' {
  interface ContextVariableMap {
    /** The verified Leash token claims, set by leashAuth(). */
    leash: LeashClaims;
  }
}

export interface LeashAuthOptions {
  /** Every one of these must be granted. Default none. */
  scopes?: string[];
  /** The realm named in WWW-Authenticate. Default "leash". */
  realm?: string;
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i;

/**
 * Hono middleware guarding a route with a Leash access token: sets `c.get('leash')`, or answers
 * 401 (no/bad/revoked token) or 403 (missing scope) with an RFC 6750 WWW-Authenticate header, or
 * 503 (Leash out of reach) with Retry-After; each with a `{error, message}` body.
 */
export function leashAuth(verifier: LeashVerifier, options: LeashAuthOptions = {}): MiddlewareHandler {
  const scopes = options.scopes ?? [];
  const realm = options.realm ?? 'leash';
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
    throw new TypeError('scopes must be an array of RFC 6749 scope tokens');
  }

  return async function leashAuthMiddleware(c, next) {
    const header = c.req.header('authorization');
    // RFC 6750 section 3.1: no credentials at all gets a challenge without an error code.
    if (!header) return refuse(c, 401, `Bearer realm="${realm}"`, 'invalid_token', 'a Leash access token is required (Authorization: Bearer)');
    const token = BEARER.exec(header.trim())?.[1];
    try {
      if (!token) throw new LeashTokenInvalidError('the Authorization header is not "Bearer <token>"');
      c.set('leash', await verifier.verify(token, { scopes }));
    } catch (err) {
      if (!(err instanceof LeashVerifyError)) throw err;
      const scopeParam = err.oauthError === 'insufficient_scope' ? `, scope="${scopes.join(' ')}"` : '';
      const challenge = err.status === 503 ? undefined : `Bearer realm="${realm}", error="${err.oauthError}", error_description="${err.message.replace(/["\\]/g, '')}"${scopeParam}`;
      return refuse(c, err.status, challenge, err.oauthError, err.message);
    }
    await next();
  };
}

function refuse(c: Context, status: 401 | 403 | 503, challenge: string | undefined, error: string, message: string): Response {
  const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
  if (challenge) headers['WWW-Authenticate'] = challenge;
  if (status === 503) headers['Retry-After'] = '5';
  return c.json({ error, message }, status, headers);
}
