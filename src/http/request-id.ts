import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';

/** A client's id is kept when it is 1 to 128 visible ASCII characters (no space, no control). */
const CLIENT_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export interface RequestIdOptions {
  /** LEASH_TRUST_REQUEST_ID: a proxy in front sets X-Request-Id, so a valid one is the request's id. */
  trustClient?: boolean;
}

/**
 * Leash makes each request's id (`requestId`, echoed as X-Request-Id), so no client can make its
 * events share an id with someone else's. A client's own X-Request-Id is kept as `clientRequestId`.
 */
export function requestIds(opts: RequestIdOptions = {}): MiddlewareHandler {
  const trustClient = opts.trustClient ?? false;
  return async function assignRequestId(c, next) {
    const given = c.req.header('x-request-id');
    const valid = given !== undefined && CLIENT_REQUEST_ID.test(given) ? given : undefined;
    if (trustClient && valid !== undefined) {
      c.set('requestId', valid);
    } else {
      c.set('requestId', randomUUID());
      if (valid !== undefined) c.set('clientRequestId', valid);
    }
    c.header('X-Request-Id', c.get('requestId'));
    await next();
  };
}
