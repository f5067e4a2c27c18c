import { LeashUnavailableError } from './errors.ts';

export interface IntrospectionOptions {
  /**
   * A Leash token with scope `leash:introspect` and audience LEASH_ISSUER. A function lets a
   * long-running service hand in a fresh one, since Leash tokens are short-lived themselves.
   */
  token: string | (() => string | Promise<string>);
  /** How long an active/inactive answer is reused; the upper bound on revocation lag. Default 5000. */
  cacheTtlMs?: number;
  /** Per request. Default 3000. */
  timeoutMs?: number;
  /** Entries kept at most; the oldest go first. Default 10,000. */
  maxEntries?: number;
}

/** Asks Leash whether a lease is still active, remembering each answer for cacheTtlMs. */
export type IsActive = (jti: string, token: string) => Promise<boolean>;

interface Entry {
  active: boolean;
  until: number;
}

/**
 * RFC 7662 client with a short cache keyed by the token's `jti` (Leash's lease id). Concurrent
 * checks of one lease share a single request. Failures are never cached and never read as
 * "active": the caller fails closed.
 */
export function createIntrospectionCheck(endpoint: string, opts: IntrospectionOptions, now: () => number = Date.now): IsActive {
  const ttl = opts.cacheTtlMs ?? 5000;
  const timeoutMs = opts.timeoutMs ?? 3000;
  const maxEntries = opts.maxEntries ?? 10_000;
  if (!Number.isFinite(ttl) || ttl < 0) throw new TypeError('introspection.cacheTtlMs must be a non-negative number');
  if (typeof opts.token !== 'string' && typeof opts.token !== 'function') throw new TypeError('introspection.token must be a string or a function');
  const cache = new Map<string, Entry>();
  const inFlight = new Map<string, Promise<boolean>>();

  async function askLeash(jti: string, token: string): Promise<boolean> {
    // Trimmed: a token read from a file (renewed by a sidecar) usually ends with a newline.
    const bearer = String(typeof opts.token === 'function' ? await opts.token() : opts.token).trim();
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new LeashUnavailableError('the Leash introspection endpoint could not be reached', { cause: err });
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new LeashUnavailableError(`Leash refused this server's introspection token (HTTP ${res.status}); it needs a live token with leash:introspect`);
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new LeashUnavailableError(`the Leash introspection endpoint answered HTTP ${res.status}`);
    }
    const body = (await res.json().catch(() => null)) as { active?: unknown; jti?: unknown } | null;
    if (!body || typeof body.active !== 'boolean') throw new LeashUnavailableError('the Leash introspection answer has no boolean "active"');
    // An active answer about another lease would be a broker bug; treat it as no answer.
    if (body.active && body.jti !== undefined && body.jti !== jti) throw new LeashUnavailableError('the Leash introspection answer is about another token');
    remember(jti, body.active);
    return body.active;
  }

  function remember(jti: string, active: boolean): void {
    if (ttl === 0) return;
    cache.delete(jti);
    cache.set(jti, { active, until: now() + ttl });
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  }

  return async function isActive(jti, token) {
    const hit = cache.get(jti);
    if (hit && hit.until > now()) return hit.active;
    if (hit) cache.delete(jti);
    const pending = inFlight.get(jti);
    if (pending) return pending;
    const p = askLeash(jti, token).finally(() => inFlight.delete(jti));
    inFlight.set(jti, p);
    return p;
  };
}
