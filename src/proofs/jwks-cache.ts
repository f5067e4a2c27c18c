import type { JWK } from 'jose';
import type { TrustedIssuer } from '../policy/types.ts';
import { resolveJwksUri, type GetJson } from './discovery.ts';
import { usableSigningKeys } from './key-select.ts';
import { keysUnavailable } from './proof-error.ts';

export interface JwksCacheOptions {
  getJson: GetJson;
  now: () => number;
  /** Least time between two refreshes that a request can cause (unknown kid, background). */
  minRefreshIntervalMs: number;
  /** Older than this, the next request starts a background refresh; the old keys keep serving. */
  maxAgeMs: number;
  /**
   * Older than this, cached keys no longer serve: a refetch must succeed first (503 until it does).
   * Without a bound, an issuer outage, or someone blocking the fetch, would keep a key the issuer
   * has withdrawn (say, after a compromise) verifying proofs for ever.
   */
  maxStaleMs: number;
  /**
   * With nothing cached, how long a failed fetch answers for every request. Short, so a recovered
   * issuer is usable almost at once, but long enough that a flood of requests during an outage
   * does not turn into a flood of fetches at the issuer.
   */
  coldRetryMs?: number;
  onFetch?: (issuerName: string, ok: boolean) => void;
}

interface Entry {
  /** What the keys depend on: a policy reload that changes it must drop them. */
  fingerprint: string;
  keys: JWK[] | null;
  fetchedAt: number;
  lastAttemptAt: number;
  /** The last refetch an unknown kid caused: those have an interval of their own. */
  lastKidRefreshAt: number;
  lastError: string | null;
  /** Shared by every request that needs the same fetch, so a cold start is one fetch, not N. */
  inflight: Promise<JWK[]> | null;
}

const fingerprints = new WeakMap<TrustedIssuer, string>();

/** Computed once per loaded issuer entry: keysFor runs on every exchange. */
function fingerprint(i: TrustedIssuer): string {
  let fp = fingerprints.get(i);
  if (fp === undefined) fingerprints.set(i, (fp = JSON.stringify([i.issuer, i.jwks_uri ?? null])));
  return fp;
}

/**
 * Per-issuer JWKS cache. Keys are fetched when first needed, refreshed in the background when
 * old, and refreshed on demand (rate limited) when a token names a key we do not know; they are
 * never fetched per request. A failed refresh keeps the old keys serving: an issuer outage must
 * not become a Leash outage for tokens signed by keys we already hold.
 */
export class JwksCache {
  private readonly entries = new Map<string, Entry>();
  private readonly coldRetryMs: number;

  constructor(private readonly opts: JwksCacheOptions) {
    this.coldRetryMs = opts.coldRetryMs ?? Math.min(1000, opts.minRefreshIntervalMs);
  }

  /** Policy reload: keep the caches of issuers whose key source is unchanged, drop the rest. */
  retain(issuers: readonly TrustedIssuer[]): void {
    const wanted = new Map(issuers.map((i) => [i.name, fingerprint(i)]));
    for (const [name, entry] of this.entries) {
      if (wanted.get(name) !== entry.fingerprint) this.entries.delete(name);
    }
  }

  /** The issuer's keys; throws 503 `temporarily_unavailable` when none fresh enough can be had. */
  async keysFor(issuer: TrustedIssuer): Promise<JWK[]> {
    const e = this.entry(issuer);
    const now = this.opts.now();
    if (e.keys && now - e.fetchedAt < this.opts.maxStaleMs) {
      if (now - e.fetchedAt >= this.opts.maxAgeMs && this.mayRefresh(e, now)) {
        void this.refresh(issuer, e).catch(() => undefined);
      }
      return e.keys;
    }
    // No keys, or keys too old to trust: a fetch must succeed (throttled like a cold start).
    if (!e.inflight && now - e.lastAttemptAt < this.coldRetryMs) {
      throw keysUnavailable(issuer.name, `recent fetch failed: ${e.lastError ?? 'unknown error'}`);
    }
    try {
      return await (e.inflight ?? this.refresh(issuer, e));
    } catch (err) {
      throw keysUnavailable(issuer.name, err instanceof Error ? err.message : String(err), err);
    }
  }

  /**
   * A token names a key we do not hold: maybe the issuer rotated. Refetch, at most once per
   * `minRefreshIntervalMs` of such refetches (forged kids must not make us hammer the issuer). A
   * fetch for another reason does not count: a key the issuer published just after the cache was
   * filled is then found at once, not after the interval. Null means no newer keys could be had;
   * the caller then refuses with the error it already has.
   */
  async refreshAfterUnknownKid(issuer: TrustedIssuer): Promise<JWK[] | null> {
    const e = this.entry(issuer);
    const now = this.opts.now();
    if (!e.inflight) {
      if (now - e.lastKidRefreshAt < this.opts.minRefreshIntervalMs) return null;
      e.lastKidRefreshAt = now;
    }
    try {
      return await (e.inflight ?? this.refresh(issuer, e));
    } catch {
      return null;
    }
  }

  private mayRefresh(e: Entry, now: number): boolean {
    return !e.inflight && now - e.lastAttemptAt >= this.opts.minRefreshIntervalMs;
  }

  private entry(issuer: TrustedIssuer): Entry {
    const fp = fingerprint(issuer);
    let e = this.entries.get(issuer.name);
    if (!e || e.fingerprint !== fp) {
      e = { fingerprint: fp, keys: null, fetchedAt: 0, lastAttemptAt: Number.NEGATIVE_INFINITY, lastKidRefreshAt: Number.NEGATIVE_INFINITY, lastError: null, inflight: null };
      this.entries.set(issuer.name, e);
    }
    return e;
  }

  private refresh(issuer: TrustedIssuer, e: Entry): Promise<JWK[]> {
    e.lastAttemptAt = this.opts.now();
    const p: Promise<JWK[]> = this.fetchKeys(issuer)
      .then(
        (keys) => {
          e.keys = keys;
          e.fetchedAt = this.opts.now();
          e.lastError = null;
          this.report(issuer.name, true);
          return keys;
        },
        (err: unknown) => {
          e.lastError = err instanceof Error ? err.message : String(err);
          this.report(issuer.name, false);
          throw err;
        },
      )
      .finally(() => {
        if (e.inflight === p) e.inflight = null;
      });
    e.inflight = p;
    // Background refreshes have no awaiter; the failure is already recorded above.
    p.catch(() => undefined);
    return p;
  }

  private async fetchKeys(issuer: TrustedIssuer): Promise<JWK[]> {
    // Discovery runs on every refresh so a moved jwks_uri is followed without a restart.
    const uri = await resolveJwksUri(issuer, this.opts.getJson);
    return usableSigningKeys(await this.opts.getJson(uri));
  }

  private report(name: string, ok: boolean): void {
    try {
      this.opts.onFetch?.(name, ok);
    } catch {
      // A metrics hook must never decide whether keys are usable.
    }
  }
}
