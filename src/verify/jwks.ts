import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/** Freshness when the answer names none (a proxy dropped Cache-Control): Leash's own max-age. */
const DEFAULT_MAX_AGE_SECONDS = 300;
/**
 * An unknown kid refetches at most this often, so forged kids cannot flood Leash. Shorter than
 * jose's 30 s: a key rotated in just after a fetch would have its tokens refused for that long.
 */
export const KID_MISS_COOLDOWN_MS = 5_000;
const FETCH_TIMEOUT_MS = 5_000;

/**
 * Seconds an answer may be reused as a private cache (RFC 9111 sections 4.2.1 and 5.2.2): its
 * max-age less its Age. no-store, no-cache and a malformed or repeated max-age allow no reuse.
 */
export function freshnessSeconds(cacheControl: string | null, age: string | null): number {
  let maxAge: number | undefined;
  for (const part of (cacheControl ?? '').split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName!.trim().toLowerCase();
    if (name === 'no-store' || name === 'no-cache') return 0;
    if (name !== 'max-age') continue;
    const value = rest.join('=').trim().replace(/^"(.*)"$/, '$1');
    if (maxAge !== undefined || !/^\d+$/.test(value)) return 0;
    maxAge = Number(value);
  }
  const ageSeconds = age !== null && /^\d+$/.test(age.trim()) ? Number(age.trim()) : 0;
  return Math.max(0, (maxAge ?? DEFAULT_MAX_AGE_SECONDS) - ageSeconds);
}

export interface LeashJwksOptions {
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

/**
 * Leash's JWKS for jwtVerify, kept no longer than the max-age Leash sends with it (jose's
 * createRemoteJWKSet keeps it 10 minutes whatever the answer says, so a key removed in an
 * emergency would be trusted twice as long as Leash promises). An unknown kid refetches, at most
 * once per cooldown; a failed fetch fails closed: expired keys are never used as a fallback.
 */
export function createLeashJwks(url: URL, opts: LeashJwksOptions = {}): JWTVerifyGetKey {
  const now = opts.now ?? Date.now;
  let local: JWTVerifyGetKey | undefined;
  let fetchedAt = -Infinity;
  let freshUntil = -Infinity;
  let pending: Promise<void> | undefined;

  const reload = (): Promise<void> => {
    pending ??= (async () => {
      // Freshness counts from when the request left: the answer can only be older than that.
      const requestedAt = now();
      const res = await fetch(url, {
        redirect: 'manual',
        headers: { accept: 'application/jwk-set+json, application/json' },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (res.status !== 200) throw new Error(`Leash's JWKS answered ${res.status}`);
      const next = createLocalJWKSet((await res.json()) as JSONWebKeySet);
      local = next;
      fetchedAt = requestedAt;
      freshUntil = requestedAt + freshnessSeconds(res.headers.get('cache-control'), res.headers.get('age')) * 1000;
    })().finally(() => {
      pending = undefined;
    });
    return pending;
  };

  return async function leashKey(header, token) {
    if (!local || now() >= freshUntil) await reload();
    try {
      return await local!(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || now() < fetchedAt + KID_MISS_COOLDOWN_MS) throw err;
      await reload();
      return local!(header, token);
    }
  };
}
