import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { LeashError, StoreUnavailableError } from '../errors.ts';

/** Seconds a 503 asks a client to wait before it retries. */
const RETRY_AFTER_UNAVAILABLE_S = 2;

/**
 * Renders a refusal. OAuth endpoints answer RFC 6749 section 5.2 `{error, error_description}`;
 * the others `{error, message}`. Both carry the request id so a user can quote it to an operator.
 * `detail` is logged by onError and never sent.
 */
export function renderError(c: Context, err: LeashError, style: 'oauth' | 'api'): Response {
  const description = err instanceof StoreUnavailableError ? storeUnavailableFor(c.req.path) : err.description;
  // A malformed request is `invalid_request` in OAuth's vocabulary and `bad_request` in the API's.
  const code = style === 'api' && err.code === 'invalid_request' ? 'bad_request' : err.code;
  const body =
    style === 'oauth'
      ? { error: code, error_description: description, request_id: c.get('requestId') }
      : { error: code, message: description, request_id: c.get('requestId') };
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', ...(err.headers ?? {}) };
  if (err.status === 401 && !headers['WWW-Authenticate']) {
    headers['WWW-Authenticate'] = `Bearer realm="leash", error="${err.code === 'invalid_token' ? 'invalid_token' : 'invalid_request'}"`;
  }
  // A failover or a Redis restart is over in seconds: a client that honours this retries then.
  if (err.status === 503 && !headers['Retry-After']) headers['Retry-After'] = String(RETRY_AFTER_UNAVAILABLE_S);
  if (err.status === 403 && err.code === 'insufficient_scope' && !headers['WWW-Authenticate']) {
    headers['WWW-Authenticate'] = 'Bearer realm="leash", error="insufficient_scope"';
  }
  return c.json(body, err.status as ContentfulStatusCode, headers);
}

/**
 * What a lease store outage means for the request it refused: an exchange handed out nothing, a
 * revocation or task completion is not confirmed (the flip may or may not have been written), and
 * anything else can simply be asked again.
 */
export function storeUnavailableFor(path: string): string {
  if (path === '/token') return 'the lease store is unavailable; no credential was issued';
  if (path === '/revoke' || path.endsWith('/revoke') || path.endsWith('/complete')) {
    return 'the lease store is unavailable; the revocation is not confirmed, retry it';
  }
  return 'the lease store is unavailable; try again';
}

const OAUTH_PATHS = new Set(['/token', '/introspect', '/revoke']);

export const errorStyleFor = (path: string): 'oauth' | 'api' => (OAUTH_PATHS.has(path) ? 'oauth' : 'api');

export function toLeashError(err: unknown): LeashError {
  if (err instanceof LeashError) return err;
  return new LeashError('server_error', 'internal error', { status: 500, detail: err instanceof Error ? err.stack ?? err.message : String(err), cause: err });
}
